"""Keyboard-wedge readers: the reader types the tag number followed by Enter. The agent reads
those lines from its standard input or a tty; the server turns them into the canonical UID with
the reader format configured for this station (hex, reversed, decimal, AZERTY digits...)."""
from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

from . import Tap


class WedgeReader:
    connected = True

    def __init__(self, device: str | None = None):
        self.device = device

    def taps(self, stop: threading.Event) -> Iterator[Tap]:
        stream = open(self.device, encoding="utf-8", errors="replace") if self.device else sys.stdin
        try:
            for line in stream:
                if stop.is_set():
                    return
                text = line.strip()
                if text:
                    yield Tap(text)
        finally:
            if self.device:
                stream.close()
