"""Ledger verification speed against a bare hashlib loop over the same bytes (target ≥ 0.3×).

    .venv/bin/python bench/ledger_verify.py [--database sqlite|postgres] [--events N]

Fills a fresh database with N chained events (default 1 000 000), generated the way append()
computes them (ledger.event_body + RFC 8785 via the rfc8785 package, independent of any fast
path in the ledger; payload keys in the order append() stores them) and bulk-inserted (COPY on
PostgreSQL, executemany on SQLite; the database writes each row's stored body as it inserts it).
Then times:
- baseline: sha256(prev_hash_bytes || canonical_body_bytes) for every row, bytes in memory;
- verify_ledger(): what `manage.py verify_ledger` runs (the stored bodies, checked in parallel:
  worker processes on SQLite, the server's parallel workers and a second connection on
  PostgreSQL; the machine's load average is printed with each round);
- verify_rows(ledger_rows()): the public row-by-row API over ORM value dicts (what
  verify_ledger(exact=True) runs).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from datetime import datetime, timedelta, timezone

from throwaway_db import arguments, file_room, open_database, timed

CHUNK = 50_000
COLUMNS = (
    "seq", "event_id", "kind", "media_id", "tag_uid", "actor_id", "device_id", "from_location_id",
    "to_location_id", "holder_id", "device_time", "device_counter", "received_at", "payload",
    "prev_hash", "hash",
)


def event_rows(count: int, room: dict):
    """Yield (row dict, canonical body bytes) for events 1..count, chained from genesis."""
    import rfc8785

    from tracker import ledger
    from tracker.choices import EventKind

    rng = random.Random(8785)
    kinds = [EventKind.SEEN] * 6 + [EventKind.CHECKED_OUT, EventKind.RETURNED]
    kinds.append(EventKind.TRANSFERRED)
    shelf, clinic = (p.pk for p in room["places"])
    staff, doctor, doctor2 = (u.pk for u in room["users"])
    reader = room["reader"].pk
    media = [m.pk for m in room["media"]]
    start = datetime(2025, 3, 1, 7, 0, tzinfo=timezone.utc)
    prev = ledger.GENESIS_HASH
    for seq in range(1, count + 1):
        received = start + timedelta(seconds=seq * 3, microseconds=rng.randrange(1_000_000))
        scanned = rng.random() < 0.7
        kind = rng.choice(kinds)
        read_at = received - timedelta(milliseconds=rng.randrange(900))
        payload = {}
        if kind == EventKind.CHECKED_OUT:
            payload = {"due_at": ledger.format_time(received + timedelta(days=14))}
        elif kind == EventKind.TRANSFERRED and seq % 3 == 0:
            payload = {"copies": 2, "note": "Übergabe an Station 3 — 病房"}
        row = {
            "seq": seq,
            "event_id": uuid.UUID(int=rng.getrandbits(128), version=4),
            "kind": str(kind),
            "media_id": rng.choice(media),
            "tag_uid": f"04{rng.getrandbits(48):012X}" if scanned else "",
            "actor_id": staff,
            "device_id": reader if scanned else None,
            "from_location_id": shelf,
            "to_location_id": clinic if kind != EventKind.RETURNED else shelf,
            "holder_id": rng.choice([doctor, doctor2]) if kind == EventKind.CHECKED_OUT else None,
            "device_time": read_at if scanned else None,
            "device_counter": seq if scanned else None,
            "received_at": received,
            "payload": payload,
        }
        body = rfc8785.dumps(ledger.event_body(row))
        row["prev_hash"] = prev
        row["hash"] = prev = hashlib.sha256(bytes.fromhex(prev) + body).hexdigest()
        if seq <= 3:
            assert row["hash"] == ledger.chain_hash(row["prev_hash"], ledger.event_body(row))
        yield row, body


def insert(rows: list[dict]) -> None:
    from django.db import connection, transaction

    with transaction.atomic():
        if connection.vendor == "postgresql":
            connection.ensure_connection()
            with connection.connection.cursor() as cursor:
                copy_sql = f"COPY tracker_custodyevent ({', '.join(COLUMNS)}) FROM STDIN"
                with cursor.copy(copy_sql) as copy:
                    for row in rows:
                        copy.write_row(
                            [json.dumps(row[c]) if c == "payload" else row[c] for c in COLUMNS]
                        )
        else:
            ops = connection.ops
            values = [
                [
                    row["seq"], row["event_id"].hex, row["kind"], row["media_id"],
                    row["tag_uid"], row["actor_id"], row["device_id"], row["from_location_id"],
                    row["to_location_id"], row["holder_id"],
                    ops.adapt_datetimefield_value(row["device_time"]), row["device_counter"],
                    ops.adapt_datetimefield_value(row["received_at"]), json.dumps(row["payload"]),
                    row["prev_hash"], row["hash"],
                ]
                for row in rows
            ]
            placeholders = ", ".join(["%s"] * len(COLUMNS))
            with connection.cursor() as cursor:
                columns = ", ".join(COLUMNS)
                cursor.executemany(
                    f"INSERT INTO tracker_custodyevent ({columns}) VALUES ({placeholders})", values
                )


def fill(count: int, room: dict) -> tuple[list[bytes], str]:
    bodies, batch, head = [], [], None
    for row, body in event_rows(count, room):
        bodies.append(body)
        batch.append(row)
        if len(batch) == CHUNK:
            insert(batch)
            head, batch = row["hash"], []
    if batch:
        insert(batch)
        head = batch[-1]["hash"]
    return bodies, head


def bare_loop(bodies: list[bytes]) -> bytes:
    sha256, prev = hashlib.sha256, bytes(32)
    for body in bodies:
        prev = sha256(prev + body).digest()
    return prev


def main() -> None:
    args = arguments("Ledger verify vs a bare hashlib loop over the same bytes.", 1_000_000)
    name = open_database(args.database)

    from django.db import connection

    from tracker import ledger

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # connect before timing anything
    fill_seconds, (bodies, head) = timed(lambda: fill(args.events, file_room()))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE tracker_custodyevent")
    size = sum(len(b) for b in bodies)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(body) FROM tracker_custodyevent")
        (written,) = cursor.fetchone()
    print(f"{name}: {args.events} events generated and inserted in {fill_seconds:.1f} s "
          f"(mean canonical body {size / len(bodies):.0f} bytes; the database wrote the body of "
          f"{written} of them)")

    results = {}
    for round_no in (1, 2):
        bare_s, bare_head = timed(lambda: bare_loop(bodies))
        assert bare_head.hex() == head
        full_s, full = timed(ledger.verify_ledger)
        assert full.ok and full.events == args.events and full.head_hash == head, full
        rows_s, by_rows = timed(lambda: ledger.verify_rows(ledger.ledger_rows()))
        assert by_rows.ok and by_rows.head_hash == head, by_rows
        results[round_no] = (bare_s, full_s, rows_s)
        n = args.events
        print(f"round {round_no}: bare hashlib loop {n / bare_s:>10,.0f} events/s ({bare_s:.2f} s)"
              f"  load {os.getloadavg()[0]:.1f}")
        print(f"         verify_ledger()          {n / full_s:>10,.0f} events/s ({full_s:.2f} s)"
              f"  ratio {bare_s / full_s:.2f}x  (target >= 0.3x)")
        print(f"         verify_rows(ledger_rows()) {n / rows_s:>8,.0f} events/s ({rows_s:.2f} s)"
              f"  ratio {bare_s / rows_s:.2f}x")


if __name__ == "__main__":
    main()
