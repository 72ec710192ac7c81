"""Simulated reader: replays a file of UIDs (one per line) or reads random demo tags N times a
second. A replayed file resumes after the last read stored in the outbox."""
from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from . import Tap


def demo_uids(count: int = 200) -> list[str]:
    """The UIDs `manage.py seed_demo` binds: 04 + the first 12 hex digits of sha256(code)."""
    codes = [f"FJ{n:05d}" for n in range(1, count + 1)] + [f"D{n:05d}" for n in range(1, count + 1)]
    return ["04" + hashlib.sha256(code.encode()).hexdigest()[:12].upper() for code in codes]


class FileReader:
    connected = True

    def __init__(self, path: str | Path, *, start: int = 0):
        self.path = Path(path)
        self.start = start

    def taps(self, stop: threading.Event) -> Iterator[Tap]:
        with self.path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines):
                if number < self.start:
                    continue
                if stop.is_set():
                    return
                uid = line.strip()
                if uid:
                    # The position is committed with the read, so a restart continues after it.
                    yield Tap(uid, {"sim_position": number + 1})


class RandomReader:
    connected = True

    def __init__(self, rate: float, *, uids: list[str] | None = None, seed: int | None = None):
        self.interval = 1.0 / rate
        self.uids = uids or demo_uids()
        self.random = random.Random(seed)

    def taps(self, stop: threading.Event) -> Iterator[Tap]:
        next_at = time.monotonic()
        while not stop.is_set():
            yield Tap(self.random.choice(self.uids))
            next_at += self.interval
            stop.wait(max(0.0, next_at - time.monotonic()))
