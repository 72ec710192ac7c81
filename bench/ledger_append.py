"""Ledger append throughput against bare INSERTs of the same rows (target ≥ 0.5×).

    .venv/bin/python bench/ledger_append.py [--database sqlite|postgres] [--events N]

Two write patterns, each measured against its own baseline on the same database:
- one transaction per event, as services do: transaction.atomic() + ledger.replayed() +
  ledger.append(); baseline: the same rows (every column and value, hashes included) INSERTed
  with raw cursor.execute(), one transaction.atomic() per row;
- batched, N events per transaction: the same, with one transaction around the whole batch.
The baseline writes into `bench_bare_event`, a copy of the ledger table with the same columns,
indexes, unique and foreign-key constraints, so both sides pay for the same table (the database
writing each row's stored body included). Rounds alternate ledger and baseline so drift on a busy
machine hits both. For reference, each round also INSERTs the rows into `bench_plain_event`, the
same copy without the generated body column: what writing the body costs every INSERT.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from throwaway_db import arguments, file_room, open_database, timed

BARE_TABLE = "bench_bare_event"
PLAIN_TABLE = "bench_plain_event"
COLUMNS = (
    "seq", "event_id", "kind", "media_id", "tag_uid", "actor_id", "device_id", "from_location_id",
    "to_location_id", "holder_id", "device_time", "device_counter", "received_at", "payload",
    "prev_hash", "hash",
)


def create_bare_table() -> None:
    """A twin of tracker_custodyevent without the append-only triggers (they only guard UPDATE,
    DELETE and TRUNCATE, which neither side runs)."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"CREATE TABLE {BARE_TABLE} (LIKE tracker_custodyevent INCLUDING ALL)")
            cursor.execute(
                f"CREATE TABLE {PLAIN_TABLE} "
                "(LIKE tracker_custodyevent INCLUDING ALL EXCLUDING GENERATED)"
            )
            cursor.execute(f"ALTER TABLE {PLAIN_TABLE} DROP COLUMN body")
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'tracker_custodyevent'::regclass AND contype = 'f'"
            )
            for name, definition in cursor.fetchall():
                for table in (BARE_TABLE, PLAIN_TABLE):
                    cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {table}_{name} {definition}")
        else:
            cursor.execute(
                "SELECT type, sql FROM sqlite_master WHERE tbl_name = 'tracker_custodyevent' "
                "AND sql IS NOT NULL AND type IN ('table', 'index')"
            )
            for kind, sql in sorted(cursor.fetchall(), key=lambda row: row[0] != "table"):
                sql = sql.replace('"tracker_custodyevent"', f'"{BARE_TABLE}"')
                if kind == "index":
                    sql = sql.replace('INDEX "', 'INDEX "bare_', 1)
                cursor.execute(sql)
                if kind == "table":  # the body is the table's last column
                    plain = sql[: sql.index(', "body" BLOB GENERATED')] + ")"
                    cursor.execute(plain.replace(f'"{BARE_TABLE}"', f'"{PLAIN_TABLE}"', 1))
                else:
                    cursor.execute(
                        sql.replace(f'"{BARE_TABLE}"', f'"{PLAIN_TABLE}"')
                        .replace('INDEX "bare_', 'INDEX "plain_', 1)
                    )


class Scans:
    """Sightings of the jackets at alternating places, as a reader station reports them."""

    def __init__(self, room: dict):
        self.room, self.n = room, 0

    def next(self):
        from tracker import ledger
        from tracker.choices import EventKind

        self.n += 1
        start = datetime(2025, 3, 1, 7, 0, tzinfo=timezone.utc)
        read_at = start + timedelta(milliseconds=self.n * 250)
        request = ledger.EventRequest(
            EventKind.SEEN,
            media=self.room["media"][self.n % len(self.room["media"])],
            actor=self.room["users"][0],
            device=self.room["reader"],
            to_location=self.room["places"][self.n % 2],
            event_id=uuid.uuid4(),
            read=ledger.Read(f"04A2{self.n:010X}", read_at, self.n),
        )
        return request, self.room["places"][(self.n + 1) % 2]


def append_events(scans: Scans, count: int, *, batched: bool) -> float:
    """Append `count` scans; return the seconds it took (requests are made beforehand, as the
    baseline's rows are)."""
    from django.db import transaction

    from tracker import ledger

    requests = [scans.next() for _ in range(count)]

    def one(request, from_location):
        with transaction.atomic():
            if ledger.replayed(request) is None:
                ledger.append(request, from_location=from_location, payload={})

    def run():
        if batched:
            with transaction.atomic():
                for request, from_location in requests:
                    one(request, from_location)
        else:
            for request, from_location in requests:
                one(request, from_location)

    return timed(run)[0]


def stored_rows(first_seq: int) -> list[list]:
    """The rows append() wrote from first_seq on, as the database adapter takes them."""
    from django.db import connection

    columns = list(COLUMNS)
    if connection.vendor == "sqlite":  # the stored text, not the datetime Django's converter makes
        times = ("device_time", "received_at")
        columns = [f"CAST({c} AS TEXT)" if c in times else c for c in columns]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM tracker_custodyevent WHERE seq >= %s ORDER BY seq",
            [first_seq],
        )
        return [list(row) for row in cursor.fetchall()]


def insert_bare(rows: list[list], *, batched: bool, table: str = BARE_TABLE) -> None:
    from django.db import connection, transaction

    placeholders = ", ".join(["%s"] * len(COLUMNS))
    sql = f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES ({placeholders})"

    def one(row):
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, row)

    if batched:
        with transaction.atomic():
            for row in rows:
                one(row)
    else:
        for row in rows:
            one(row)


def main() -> None:
    args = arguments("Ledger append vs bare INSERTs of the same rows.", 5_000)
    name = open_database(args.database)

    from django.db import connection

    from tracker import ledger

    room = file_room()
    create_bare_table()
    scans = Scans(room)
    append_events(scans, 200, batched=False)  # warm up code paths and caches
    insert_bare(stored_rows(1), batched=False)
    insert_bare(stored_rows(1), batched=False, table=PLAIN_TABLE)
    print(f"{name}: {args.events} events per measurement, "
          "baseline = raw cursor.execute() INSERT of the same rows into an identical table")

    next_seq, results = 201, {}
    for batched in (False, True):
        label = "one transaction per event"
        if batched:
            label = f"{args.events} events in one transaction"
        for round_no in (1, 2):
            ledger_s = append_events(scans, args.events, batched=batched)
            rows = stored_rows(next_seq)
            next_seq += len(rows)
            assert len(rows) == args.events
            bare_s, _ = timed(lambda: insert_bare(rows, batched=batched))
            plain_s, _ = timed(lambda: insert_bare(rows, batched=batched, table=PLAIN_TABLE))
            results.setdefault(label, []).append(bare_s / ledger_s)
            print(
                f"{label}, round {round_no}: ledger {args.events / ledger_s:>8,.0f} events/s, "
                f"bare INSERT {args.events / bare_s:>8,.0f} rows/s, "
                f"ratio {bare_s / ledger_s:.2f}x (target >= 0.5x); "
                f"bare INSERT without the body column {args.events / plain_s:>8,.0f} rows/s"
            )
    check = ledger.verify_ledger()
    assert check.ok and check.events == next_seq - 1, check
    if connection.vendor == "postgresql":
        connection.close()


if __name__ == "__main__":
    main()
