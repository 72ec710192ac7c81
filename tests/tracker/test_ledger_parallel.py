"""verify_ledger on committed ledgers, where it splits the work: worker processes over seq ranges
on SQLite (the parent checks the links across their borders), the link check on a connection of
its own on PostgreSQL. Whatever was tampered with, the verdict is the plain walk's."""
import pytest
from django.db import connection

from tests.tracker.test_canonical import reference_verdict, verdict
from tests.tracker.test_ledger import rehash_from, rewrite_stored_rows, triggers_lifted
from tracker import ledger, services
from tracker.ledger import stored, verify
from tracker.models import CustodyEvent

EVENTS = 60
WORKERS = 3  # ranges 1-20, 21-40, 41-60


@pytest.fixture
def db(committed_db):
    """Every test here commits for real (workers and other connections read committed rows
    only). Named `db` so that pytest-django creates the test database for these tests."""


@pytest.fixture
def split(monkeypatch):
    """Split even this small ledger, and record that it was split."""
    monkeypatch.setattr(verify, "PARALLEL_FROM", 10)
    monkeypatch.setattr(verify, "VERIFY_WORKERS", WORKERS)
    monkeypatch.setattr(verify, "VERIFY_CHUNK_ROWS", 7)  # several chunks in each range
    used = []
    if connection.vendor == "sqlite":
        scan_ranges = verify._SQLiteLedger.scan_ranges

        def recorded(self, ranges):
            results = scan_ranges(self, ranges)
            used.append(results is not None)
            return results

        monkeypatch.setattr(verify._SQLiteLedger, "scan_ranges", recorded)
    else:
        class Beside(verify._Beside):
            def result(self):
                used.append(True)
                return super().result()

        monkeypatch.setattr(verify, "_Beside", Beside)
    return used


@pytest.fixture
def busy(make_media, cast, places):
    """60 committed events; event 45 (a disc import's nested summary) has no stored body."""
    jacket, disc = make_media("FJ-P1"), make_media("CD-P1", kind="cd")
    services.tag_bind(uid="04000000000A01", media=jacket, actor=cast["staff"])
    while CustodyEvent.objects.count() < EVENTS - 1:
        if CustodyEvent.objects.count() == 44:
            services.media_disc_imported(
                media=disc, manifest_id=1, studies=[], actor=cast["staff"], summary={"files": 1, "problems": 0}
            )
            continue
        services.media_seen(
            media=jacket, location=[places["shelf"], places["shelf2"]][CustodyEvent.objects.count() % 2],
            actor=cast["staff"], read=ledger.Read("04000000000A01"),
        )
    services.media_seen(media=disc, location=places["clinic"], actor=cast["staff"])
    assert CustodyEvent.objects.count() == EVENTS and ledger.verify_ledger().ok


def raw(sql: str, params=()) -> None:
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute(sql, params)


TAMPERINGS = {
    # what was done: (SQL, params, first bad seq; None when the chain is still whole)
    "nothing": ("SELECT 1", [], None),
    "the link across a border": ("UPDATE tracker_custodyevent SET prev_hash = %s WHERE seq = 21", ["ab" * 32], 21),
    "the last event of a range": ("UPDATE tracker_custodyevent SET tag_uid = 'FFFF' WHERE seq = 20", [], 20),
    "the first event of a range": ("UPDATE tracker_custodyevent SET tag_uid = 'FFFF' WHERE seq = 41", [], 41),
    "a hash inside a range": ("UPDATE tracker_custodyevent SET hash = %s WHERE seq = 30", ["cd" * 32], 30),
    "the last event of a range, deleted": ("DELETE FROM tracker_custodyevent WHERE seq = 20", [], 20),
    "the first event of a range, deleted": ("DELETE FROM tracker_custodyevent WHERE seq = 21", [], 21),
    "the newest event, deleted": ("DELETE FROM tracker_custodyevent WHERE seq = 60", [], None),
    "an event moved far out": ("UPDATE tracker_custodyevent SET seq = 1000 WHERE seq = 33", [], 33),
    "an event without a stored body": (
        "UPDATE tracker_custodyevent SET actor_id = NULL WHERE seq = 45", [], 45,
    ),
}


@pytest.mark.parametrize("what", list(TAMPERINGS))
def test_a_split_verification_names_what_the_plain_walk_names(busy, split, what):
    sql, params, first_bad = TAMPERINGS[what]
    raw(sql, params)
    result = ledger.verify_ledger()
    assert split and all(split), "the ledger was checked in parts"
    assert verdict(result) == reference_verdict(ledger.ledger_rows())
    assert result.first_bad_seq == first_bad, result.reason


def test_checkpoints_inside_ranges_are_checked_and_catch_a_rewrite(busy, split, cast):
    ledger.checkpoint()  # at 60
    assert ledger.verify_ledger().checkpoints == 1
    rows = [dict(row) for row in ledger.ledger_rows()]
    rows[34]["actor_id"] = cast["auditor"].pk
    rehash_from(rows, 34)
    with triggers_lifted():
        rewrite_stored_rows(rows[34:], columns=("actor_id", "prev_hash", "hash"))
    assert ledger.verify_rows(ledger.ledger_rows()).ok, "the rewritten chain is whole"
    result = ledger.verify_ledger()
    assert split and all(split)
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "events 1..60 were rewritten" in result.reason


@pytest.mark.sqlite
def test_a_worker_checks_the_body_column_itself(busy):
    """Each worker reads its range in one transaction, after checking the column there."""
    request = {"path": str(connection.settings_dict["NAME"]), "first": 1, "last": EVENTS}
    good = stored.scan_sqlite_range(request | {"definition": verify._sqlite_definition()})
    assert good["usable"] and good["failure"] is None and good["last_hash"] == ledger.verify_ledger().head_hash
    assert [seq for seq, _prev in good["odd"]] == [45]
    other = verify._sqlite_definition().replace("CASE WHEN", "CASE  WHEN  1 = 1 AND", 1)
    assert stored.scan_sqlite_range(request | {"definition": other}) == {"usable": False}


def test_the_column_definition_is_compared_token_by_token():
    table = 'CREATE TABLE "t" ("a" int, "body" BLOB GENERATED ALWAYS AS (x || \'y\') STORED)'
    ours = '"body" BLOB GENERATED ALWAYS AS (x || \'y\') STORED'
    assert stored.body_column_is(table, ours)
    assert stored.body_column_is(table.replace("GENERATED ALWAYS", "generated   always"), ours)
    hidden = (
        'CREATE TABLE "t" ("a" int, "body" BLOB GENERATED ALWAYS AS (z) STORED '
        f"/* {ours} */, \"c\" text DEFAULT '{ours.replace(chr(39), chr(39) * 2)}') -- {ours}"
    )
    assert not stored.body_column_is(hidden, ours)
    assert not stored.body_column_is(table.replace("'y'", "'Y'"), ours)
    assert not stored.body_column_is(table.replace('"body" BLOB GENERATED', '"body" BLOB, "x" BLOB GENERATED'), ours)
    twice = table.replace('"a" int', ours.replace("x ||", "z ||"))
    assert not stored.body_column_is(twice, ours), "two columns called body"
    assert not stored.body_column_is(None, ours)
