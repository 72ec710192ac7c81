"""Scan ingest throughput against bare INSERTs of the same rows (target ≥ 0.5×).

    .venv/bin/python bench/scan_ingest.py [--database sqlite|postgres] [--scans N] [--profile]

A locate-mode reader station delivers reads in batches of 200: 90 % of the tags are bound to
jackets (each read appends a `seen` event and moves the jacket), 10 % are unknown (the read is
stored as `unknown_tag`, nothing else). Two ways in, each measured against its own baseline:
- service: services.scan_record_many() for each delivery, with the values ScanIngestApi.post
  passes it (it records a locate station's reads together, DELIVERY_CHUNK to a transaction);
- API: ScanIngestApi driven through APIRequestFactory, one request per 200 reads, so reader-key
  authentication, JSON parsing, both serializers and the response are paid too (no HTTP).
Baseline: the rows each read left behind (its ScanRecord row and, for a known tag, its
CustodyEvent row; every column and value, hashes included) INSERTed one row per statement with
raw cursor.execute() into twin tables with the same indexes, unique and foreign-key constraints,
in transactions of the same reads as the service's (DELIVERY_CHUNK reads of a delivery to a
transaction; before deliveries were recorded together it was one transaction per read, on both
sides). The baseline does not pay for the jacket's projection UPDATE or for any lookup; the scan
path does. Rounds alternate scan path and baseline.

--profile also prints the queries of one known and one unknown read (CaptureQueriesContext) and
the functions where the API path spends its time (cProfile).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
BATCH = 200
KNOWN_SHARE = 0.9
SCAN_COLUMNS = (
    "event_id", "device_id", "raw_uid", "uid", "read_at", "counter", "received_at", "mode",
    "outcome", "code", "message", "message_source", "media_id", "event_seq", "undo_seq",
)
EVENT_COLUMNS = (
    "seq", "event_id", "kind", "media_id", "tag_uid", "actor_id", "device_id", "from_location_id",
    "to_location_id", "holder_id", "device_time", "device_counter", "received_at", "payload",
    "prev_hash", "hash",
)
TWINS = {"tracker_scanrecord": "bench_bare_scan", "tracker_custodyevent": "bench_bare_event"}


# --- a fresh database ---------------------------------------------------------------------------


def bench_environment(kind: str, pg_database: str) -> dict:
    """Environment variables that point Filmroom at a new scratch database (created here) with
    production-like settings; also used for the servers the other benchmarks start."""
    scratch = Path(tempfile.mkdtemp(prefix="filmroom-bench-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "FILMROOM_VAR_DIR": str(scratch),
        "FILMROOM_LOG_LEVEL": os.environ.get("FILMROOM_LOG_LEVEL", "WARNING"),
        # As in production: with DEBUG on, Django also records every query.
        "FILMROOM_DEBUG": "0",
        "FILMROOM_SECURE_SSL_REDIRECT": "0",  # plain HTTP on loopback
        "FILMROOM_ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "FILMROOM_SECRET_KEY": "bench-only-" + os.urandom(24).hex(),
    }
    if kind == "postgres":
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {pg_database} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {pg_database}")
        env["DATABASE_URL"] = f"{PG_SERVER}/{pg_database}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{scratch / 'bench.sqlite3'}"
    return env


def open_database(kind: str, pg_database: str = "bench_ingest") -> str:
    """Set Django up on a new, migrated database of this kind; return a name for it."""
    sys.path.insert(0, str(ROOT))
    env = bench_environment(kind, pg_database)
    os.environ.update(env)

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    if kind == "postgres":
        return f"PostgreSQL {pg_database}"
    return f"SQLite {env['DATABASE_URL'].removeprefix('sqlite:///')}"


def tag_uid(n: int) -> str:
    return f"04{n:012X}"


def stocked_file_room(
    jackets: int = 2000, mode: str = "locate", uids: list[str] | None = None
) -> dict:
    """A shelf, a reader station standing at it, and `jackets` jackets each wearing a tag (the
    tags `uids`, or 04000000000001 ...). Bulk-created: the ledger starts empty."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone as dj_timezone

    from tracker.choices import LocationKind, MediaKind
    from tracker.models import Location, Media, ReaderDevice, Tag, TagBinding

    shelf = Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF)
    clinic = Location.objects.create(
        code="ORTHO", name="Orthopaedics", kind=LocationKind.DEPARTMENT
    )
    staff = get_user_model().objects.create(username="staff")
    reader = ReaderDevice.objects.create(name="counter-1", location=shelf, mode=mode)
    uids = uids or [tag_uid(n) for n in range(1, jackets + 1)]
    media = Media.objects.bulk_create(
        Media(code=f"FJ-{i:06}", kind=MediaKind.FILM_JACKET, home_location=shelf,
              current_location=shelf)
        for i in range(len(uids))
    )
    tags = Tag.objects.bulk_create(Tag(uid=uid) for uid in uids)
    now = dj_timezone.now()
    TagBinding.objects.bulk_create(
        TagBinding(tag=tag, media=item, bound_at=now, bound_seq=0) for tag, item in zip(tags, media)
    )
    return {"shelf": shelf, "clinic": clinic, "staff": staff, "reader": reader, "uids": uids}


class ScanMix:
    """Reads as a station reports them: mostly bound tags, some unknown ones, a rising counter."""

    def __init__(self, uids: list[str], *, seed: int = 200):
        import random

        self.uids, self.random, self.n = uids, random.Random(seed), 0
        self.start = datetime(2025, 3, 1, 7, 0, tzinfo=timezone.utc)

    def next(self) -> dict:
        self.n += 1
        if self.random.random() < KNOWN_SHARE:
            uid = self.random.choice(self.uids)
        else:
            uid = f"04{self.random.getrandbits(48) | 1 << 47:012X}"  # never a bound tag's UID
        return {
            "event_id": uuid.uuid4(),
            "uid": uid,
            "read_at": self.start + timedelta(milliseconds=self.n * 250),
            "counter": self.n,
        }

    def take(self, count: int) -> list[dict]:
        return [self.next() for _ in range(count)]


def as_json(scan: dict) -> dict:
    return {
        "event_id": str(scan["event_id"]),
        "uid": scan["uid"],
        "read_at": scan["read_at"].isoformat().replace("+00:00", "Z"),
        "counter": scan["counter"],
    }


def reader_key(reader) -> str:
    from tracker.models import ReaderKey

    _row, key = ReaderKey.objects.create_key(name=reader.name, reader=reader)
    return key


# --- the two ways in ------------------------------------------------------------------------------


def ingest_service(reader, scans: list[dict]) -> float:
    """services.scan_record_many() for each delivery of 200 reads, as ScanIngestApi.post calls
    it; return the seconds taken."""
    from tracker import services
    from tracker.exceptions import DomainError

    def run():
        for start in range(0, len(scans), BATCH):
            reads = [
                services.StationRead(s["event_id"], s["uid"], s["read_at"], s["counter"])
                for s in scans[start:start + BATCH]
            ]
            for scan, result in zip(scans[start:], services.scan_record_many(device=reader, reads=reads)):
                if isinstance(result, DomainError):
                    raise AssertionError(f"read refused: {scan}")

    return timed(run)


def api_requests(key: str, scans: list[dict]) -> list:
    from rest_framework.test import APIRequestFactory

    factory = APIRequestFactory()
    return [
        factory.post(
            "/api/v1/scans/", {"scans": [as_json(s) for s in scans[start:start + BATCH]]},
            format="json", HTTP_AUTHORIZATION=f"Api-Key {key}",
        )
        for start in range(0, len(scans), BATCH)
    ]


def ingest_api(key: str, scans: list[dict]) -> float:
    """ScanIngestApi for each batch of 200 (requests built beforehand); return the seconds taken."""
    from tracker.api import ScanIngestApi

    view = ScanIngestApi.as_view()
    requests = api_requests(key, scans)

    def run():
        for request in requests:
            response = view(request)
            assert response.status_code == 200, response.data
            assert all(r["stored"] and r["status"] == 201 for r in response.data["results"])

    return timed(run)


# --- the baseline ---------------------------------------------------------------------------------


def create_twin_tables() -> None:
    """Copies of tracker_scanrecord and tracker_custodyevent with the same columns, indexes,
    unique and foreign-key constraints, without the ledger's append-only triggers (they guard
    only UPDATE, DELETE and TRUNCATE, which neither side runs)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table, twin in TWINS.items():
            if connection.vendor == "postgresql":
                cursor.execute(f"CREATE TABLE {twin} (LIKE {table} INCLUDING ALL)")
                cursor.execute(
                    "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = %s::regclass AND contype = 'f'", [table],
                )
                for name, definition in cursor.fetchall():
                    cursor.execute(f"ALTER TABLE {twin} ADD CONSTRAINT bare_{name} {definition}")
            else:
                cursor.execute(
                    "SELECT type, sql FROM sqlite_master WHERE tbl_name = %s "
                    "AND sql IS NOT NULL AND type IN ('table', 'index')", [table],
                )
                for kind, sql in sorted(cursor.fetchall(), key=lambda row: row[0] != "table"):
                    sql = sql.replace(f'"{table}"', f'"{twin}"')
                    if kind == "index":
                        sql = sql.replace('INDEX "', 'INDEX "bare_', 1)
                    cursor.execute(sql)


def _select(table: str, columns: tuple, key: str, values: list) -> dict:
    """{key value: row as the database adapter takes it back} for the rows whose `key` is in
    `values`."""
    from django.db import connection

    if connection.vendor == "sqlite":  # the stored text, not the datetime Django's converter makes
        wanted = [f"CAST({c} AS TEXT)" if c in ("read_at", "received_at", "device_time") else c
                  for c in columns]
    else:
        wanted = [f"{c}::text" if c in ("payload", "message_source") else c for c in columns]
    index = columns.index(key)
    rows = {}
    with connection.cursor() as cursor:
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            placeholders = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {', '.join(wanted)} FROM {table} WHERE {key} IN ({placeholders})", chunk
            )
            rows.update({row[index]: list(row) for row in cursor.fetchall()})
    return rows


def written_rows(scans: list[dict]) -> list[tuple[list, list | None]]:
    """For each read, in delivery order: (its ScanRecord row, its CustodyEvent row or None)."""
    from django.db import connection

    from tracker.models import ScanRecord

    field = ScanRecord._meta.get_field("event_id")
    ids = [field.get_db_prep_value(s["event_id"], connection) for s in scans]
    records = _select("tracker_scanrecord", SCAN_COLUMNS, "event_id", ids)
    events = _select("tracker_custodyevent", EVENT_COLUMNS, "event_id", ids)
    pairs = [(records[i], events.get(i)) for i in ids]
    known = sum(1 for _r, e in pairs if e is not None)
    assert len(records) == len(scans) and 0 < known < len(scans), (len(records), known)
    return pairs


def insert_bare(pairs: list[tuple[list, list | None]]) -> float:
    """The same rows, in transactions of the same reads as the service's; return the seconds."""
    from django.db import connection, transaction

    from tracker.services.stations import DELIVERY_CHUNK

    def sql(table, columns):
        placeholders = ", ".join(["%s"] * len(columns))
        return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"

    scan_sql = sql(TWINS["tracker_scanrecord"], SCAN_COLUMNS)
    event_sql = sql(TWINS["tracker_custodyevent"], EVENT_COLUMNS)

    def run():
        for delivery in range(0, len(pairs), BATCH):
            for start in range(delivery, min(delivery + BATCH, len(pairs)), DELIVERY_CHUNK):
                with transaction.atomic(), connection.cursor() as cursor:
                    for record, event in pairs[start:min(start + DELIVERY_CHUNK, delivery + BATCH)]:
                        if event is not None:
                            cursor.execute(event_sql, event)
                        cursor.execute(scan_sql, record)

    return timed(run)


def timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


# --- profile --------------------------------------------------------------------------------------


def profile(room: dict, key: str, mix: ScanMix) -> None:
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tracker import services

    reader = room["reader"]
    print("\nQueries per read (services.scan_record, CaptureQueriesContext):")
    for label, uid in (("bound tag, locate", room["uids"][7]), ("unknown tag", "04FFFFFFFFFF01")):
        scan = mix.next()
        with CaptureQueriesContext(connection) as queries:
            services.scan_record(device=reader, event_id=scan["event_id"], raw_uid=uid,
                                 read_at=scan["read_at"], counter=scan["counter"])
        print(f"  {label}: {len(queries)} queries")
        for query in queries:
            print(f"    {' '.join(query['sql'].split())[:150]}")
    scans = mix.take(2000)
    requests = api_requests(key, scans)
    from tracker.api import ScanIngestApi

    view = ScanIngestApi.as_view()
    profiler = cProfile.Profile()
    profiler.enable()
    for request in requests:
        view(request)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    print(f"\ncProfile of the API path, {len(scans)} reads: {total / len(scans) * 1000:.2f} ms per "
          "read under the profiler (its overhead inflates Python-heavy parts)")
    for order in ("tottime", "cumulative"):
        print(f"  top by {order}:")
        rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2 if order == "tottime" else 3],
                      reverse=True)[:25]
        for (filename, line, name), (_cc, calls, tt, ct, _callers) in rows:
            where = filename.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
            print(f"    {tt / len(scans) * 1e6:8.0f} us self {ct / len(scans) * 1e6:8.0f} us cum "
                  f"{calls / len(scans):6.1f} calls/read  {where}:{line} {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Scan ingest vs bare INSERTs of the same rows.")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--scans", type=int, default=2000, help="reads per measurement")
    parser.add_argument("--profile", action="store_true", help="also print queries and a profile")
    args = parser.parse_args()
    name = open_database(args.database)

    from django.db import connection

    from tracker.models import CustodyEvent, ScanRecord

    room = stocked_file_room()
    key = reader_key(room["reader"])
    create_twin_tables()
    mix = ScanMix(room["uids"])
    warm = mix.take(BATCH)  # warm up code paths, caches and the connection on both sides
    ingest_service(room["reader"], warm)
    insert_bare(written_rows(warm))
    ingest_api(key, mix.take(BATCH))
    print(f"{name}: {args.scans} reads per measurement ({KNOWN_SHARE:.0%} bound tags in locate "
          f"mode -> seen events, the rest unknown tags), batches of {BATCH}; baseline = raw INSERT "
          "of the "
          "same ScanRecord + CustodyEvent rows, one row per statement, transactions of the same "
          "reads as the service's; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    for round_no in (1, 2):
        for label, ingest in (
            ("service", lambda scans: ingest_service(room["reader"], scans)),
            ("API    ", lambda scans: ingest_api(key, scans)),
        ):
            scans = mix.take(args.scans)
            path_s = ingest(scans)
            bare_s = insert_bare(written_rows(scans))
            print(f"round {round_no} {label}: scan path {args.scans / path_s:>7,.0f} reads/s, "
                  f"bare INSERT {args.scans / bare_s:>7,.0f} reads/s, "
                  f"ratio {bare_s / path_s:.2f}x (target >= 0.5x)")
    records, events = ScanRecord.objects.count(), CustodyEvent.objects.count()
    assert records == mix.n, (records, mix.n)
    if args.profile:
        profile(room, key, mix)
    print(f"stored {records} scan records and {events} ledger events")
    if connection.vendor == "postgresql":
        connection.close()


if __name__ == "__main__":
    main()
