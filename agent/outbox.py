"""The durable outbox: every read is committed here (WAL, synchronous=FULL) before anything else
happens to it, and leaves only when the server has acknowledged it.

One SQLite file holds the queue of reads, the device counter, the position of a replayed sim file
and the agent's status, so a read, its counter and the sim position are committed together: an
agent killed at any instant neither loses nor repeats a read.
"""
from __future__ import annotations

import json
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    uid TEXT NOT NULL,
    read_at TEXT NOT NULL,
    counter INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    uid TEXT NOT NULL,
    read_at TEXT NOT NULL,
    counter INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
DEFAULT_CAP = 200_000
ALARM_FRACTION = 0.9


@dataclass(frozen=True)
class QueuedRead:
    id: int
    event_id: str
    uid: str
    read_at: str
    counter: int

    def as_scan(self) -> dict:
        return {"event_id": self.event_id, "uid": self.uid, "read_at": self.read_at, "counter": self.counter}


def utc_now_text() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


class Outbox:
    """A queue of reads in one SQLite file. Use one Outbox object per thread."""

    def __init__(self, path: str | Path, *, cap: int = DEFAULT_CAP):
        self.path = Path(path)
        self.cap = cap
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # --- writing -----------------------------------------------------------------------------

    def put(self, uid: str, *, read_at: str | None = None, state: dict | None = None) -> QueuedRead:
        """Store one read with a new event_id and the next device counter; commit `state`
        (e.g. the sim file position) in the same transaction."""
        event_id = str(uuid.uuid4())
        read_at = read_at or utc_now_text()
        with self._transaction():
            counter = int(self._get("counter", "0")) + 1
            self._set("counter", str(counter))
            for key, value in (state or {}).items():
                self._set(key, str(value))
            cursor = self.db.execute(
                "INSERT INTO reads (event_id, uid, read_at, counter) VALUES (?, ?, ?, ?)",
                (event_id, uid, read_at, counter),
            )
        return QueuedRead(cursor.lastrowid, event_id, uid, read_at, counter)

    def ack(self, ids: list[int]) -> None:
        """The server holds these reads: remove them from the queue."""
        if not ids:
            return
        with self._transaction():
            self.db.executemany("DELETE FROM reads WHERE id = ?", [(i,) for i in ids])
            self._set("last_delivery", utc_now_text())

    def reject(self, read: QueuedRead, reason: str) -> None:
        """The server refused this read for good: keep it aside with the reason, never drop it."""
        with self._transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO rejected (event_id, uid, read_at, counter, reason, rejected_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (read.event_id, read.uid, read.read_at, read.counter, reason, utc_now_text()),
            )
            self.db.execute("DELETE FROM reads WHERE id = ?", (read.id,))

    def set_state(self, **values) -> None:
        with self._transaction():
            for key, value in values.items():
                self._set(key, value if isinstance(value, str) else json.dumps(value))

    # --- reading -----------------------------------------------------------------------------

    def peek(self, limit: int) -> list[QueuedRead]:
        rows = self.db.execute(
            "SELECT id, event_id, uid, read_at, counter FROM reads ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [QueuedRead(*row) for row in rows]

    def queued(self) -> int:
        return self.db.execute("SELECT count(*) FROM reads").fetchone()[0]

    def near_cap(self) -> bool:
        return self.queued() >= self.cap * ALARM_FRACTION

    def get_state(self, key: str, default: str | None = None) -> str | None:
        return self._get(key, default)

    def status(self) -> dict:
        queued = self.queued()
        state = dict(self.db.execute("SELECT key, value FROM state").fetchall())
        oldest = self.db.execute("SELECT read_at FROM reads ORDER BY id LIMIT 1").fetchone()
        return {
            "queued": queued,
            "cap": self.cap,
            "alarm": queued >= self.cap * ALARM_FRACTION,
            "oldest_queued_read_at": oldest[0] if oldest else None,
            "rejected": self.db.execute("SELECT count(*) FROM rejected").fetchone()[0],
            "device_counter": int(state.get("counter", "0")),
            "last_delivery": state.get("last_delivery"),
            "last_error": state.get("last_error"),
            "reader_connected": state.get("reader_connected") == "true",
            "sim_position": int(state["sim_position"]) if "sim_position" in state else None,
        }

    # --- internals ---------------------------------------------------------------------------

    @contextmanager
    def _transaction(self):
        # BEGIN IMMEDIATE waits (up to the connection timeout) for another thread's write.
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _get(self, key: str, default: str | None) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def _set(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )
