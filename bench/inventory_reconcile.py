"""Reconcile an inventory of 5 000 reads against the expected set of a 5 000-item room.

    .venv/bin/python bench/inventory_reconcile.py [--database sqlite|postgres] [--items 5000]
        [--runs 5] [--close]

Target (issue 6): `services.inventory_result()` ≤ 1 s. Baseline, in the same run on the same
database: one bare SQL statement computing the same missing set (the expected items EXCEPT the
items whose active tag was read), and Python set operations over the already-fetched id lists.
The room: 10 shelves of `--items` tagged jackets; the reads: all but 25 of them, 20 jackets of
another room (misplaced) and 5 UIDs bound to nothing. Rows are laid down in bulk (as the
projection would hold them); `--close` then times inventory_close() once (a `seen` event per
item read, a flag per missing item). Database `bench_inventory`, or an SQLite file under /tmp.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import throwaway_db  # noqa: E402

throwaway_db.PG_DATABASE = "bench_inventory"  # not another benchmark's database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--close", action="store_true")
    args = parser.parse_args()
    name = throwaway_db.open_database(args.database)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from tracker import services
    from tracker.choices import InventoryStatus, LocationKind, MediaStatus
    from tracker.models import InventoryRead, InventorySession, Location, Media, Tag, TagBinding

    staff = get_user_model().objects.create_user(username="bench-staff", password="x")
    room = Location.objects.create(code="FR", name="File room", kind=LocationKind.ROOM)
    other = Location.objects.create(code="OTHER", name="Other room", kind=LocationKind.ROOM)
    shelves = [
        Location.objects.create(code=f"FR-{n}", name=f"Shelf {n}", kind=LocationKind.SHELF, parent=room)
        for n in range(10)
    ]
    now = timezone.now()
    rows = [(shelves[n % 10], f"J{n:06d}", f"04{n:012X}") for n in range(args.items)]
    rows += [(other, f"X{n:03d}", f"04{900000 + n:012X}") for n in range(20)]
    Media.objects.bulk_create(
        (Media(code=code, kind="film_jacket", home_location=home, current_location=home, last_seen_at=now)
         for home, code, _uid in rows), batch_size=2000,
    )
    Tag.objects.bulk_create((Tag(uid=uid) for _home, _code, uid in rows), batch_size=2000)
    media = dict(Media.objects.values_list("code", "pk"))
    tags = dict(Tag.objects.values_list("uid", "pk"))
    TagBinding.objects.bulk_create(
        (TagBinding(tag_id=tags[uid], media_id=media[code], bound_at=now, bound_seq=0)
         for _home, code, uid in rows), batch_size=2000,
    )
    session = services.inventory_start(scope=room, actor=staff)
    reads = [uid for _home, _code, uid in rows[25:]] + [f"05{n:012X}" for n in range(5)]
    for start in range(0, len(reads), 500):
        services.inventory_record_reads(session=session, uids=reads[start:start + 500])
    assert InventoryRead.objects.filter(session=session).count() == len(reads)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

    within = list(services.places_within(room))
    m, b, t, r = (model._meta.db_table for model in (Media, TagBinding, Tag, InventoryRead))
    marks = ", ".join(["%s"] * len(within))
    sql = (
        f"SELECT m.id FROM {m} m WHERE m.home_location_id IN ({marks}) AND m.status = %s "
        f"EXCEPT SELECT b.media_id FROM {b} b JOIN {t} t ON t.id = b.tag_id "
        f"JOIN {r} r ON r.uid = t.uid WHERE r.session_id = %s AND b.unbound_at IS NULL"
    )

    def bare_sql() -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, [*within, MediaStatus.ON_SHELF, session.pk])
            return len(cursor.fetchall())

    expected_ids = list(
        Media.objects.filter(home_location_id__in=within, status=MediaStatus.ON_SHELF).values_list("pk", flat=True)
    )
    read_ids = list(
        TagBinding.objects.filter(unbound_at__isnull=True, tag__uid__in=InventoryRead.objects.filter(
            session=session).values("uid")).values_list("media_id", flat=True)
    )

    def python_sets() -> int:
        return len(set(expected_ids) - set(read_ids))

    def reconcile() -> int:
        result = services.inventory_result(session)
        assert (len(result.misplaced), len(result.unknown), result.reads) == (20, 5, len(reads))
        return len(result.missing)

    def timed(fn) -> tuple[float, int]:
        times, answer = [], None
        for _run in range(args.runs):
            started = time.perf_counter()
            answer = fn()
            times.append(time.perf_counter() - started)
        return statistics.median(times), answer

    reconcile()  # warm: imports, the ORM's query compilation caches
    ours, missing = timed(reconcile)
    baseline, bare_missing = timed(bare_sql)
    in_python, py_missing = timed(python_sets)
    assert missing == bare_missing == py_missing == 25, (missing, bare_missing, py_missing)

    print(f"database: {name}")
    print(f"room: {args.items} items on 10 shelves; inventory: {len(reads)} reads "
          f"({missing} missing, 20 misplaced, 5 unknown); median of {args.runs} runs")
    print(f"inventory_result():            {ours * 1000:8.1f} ms  (target ≤ 1000 ms: "
          f"{'met' if ours <= 1 else 'MISSED'})")
    print(f"baseline, one bare SQL EXCEPT: {baseline * 1000:8.1f} ms  → ratio {ours / baseline:.1f}×")
    print(f"Python set difference of the fetched ids: {in_python * 1000:.2f} ms "
          f"(the sets alone, without fetching them)")
    if args.close:
        started = time.perf_counter()
        services.inventory_close(session=session, actor=staff)
        closing = time.perf_counter() - started
        assert InventorySession.objects.get(pk=session.pk).status == InventoryStatus.CLOSED
        print(f"inventory_close(): {closing:.2f} s for {len(reads) - 5} seen events and {missing} flags "
              f"({closing / (len(reads) - 5 + missing) * 1000:.2f} ms per event)")


if __name__ == "__main__":
    main()
