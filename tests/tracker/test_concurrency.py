"""Many app-server threads at once on PostgreSQL: one item is lent once, the ledger keeps a
gap-free, valid chain, and a retried event is recorded once.

Every thread works on its own database connection, exactly as separate requests or servers
would, and the data is really committed (`committed_db`), so the database's own locks decide."""
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from tests.conftest import make_user
from tracker import ledger, services
from tracker.choices import EventKind, LocationKind, MediaKind, MediaStatus, Role
from tracker.exceptions import AlreadyOnLoan
from tracker.models import CustodyEvent, Loan, Location, Media, ReaderDevice, ScanRecord

pytestmark = pytest.mark.postgres


@pytest.fixture
def db(committed_db):
    """Every test here commits for real. Named `db` because pytest-django creates the test
    database only for tests that request a fixture of that name; committed_db alone is not seen,
    and run on its own this file would otherwise connect to the configured (real) database."""


@pytest.fixture
def file_room(db):
    """Committed people and places (`cast` lives in a test transaction threads cannot see)."""
    shelf = Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF)
    return {
        "staff": make_user("staff", Role.FILE_ROOM),
        "doctor": make_user("doctor", Role.CLINICIAN),
        "shelf": shelf,
        "clinic": Location.objects.create(
            code="ORTHO", name="Orthopaedics", kind=LocationKind.DEPARTMENT
        ),
    }


def register(file_room, code: str) -> Media:
    return services.media_register(
        code=code,
        kind=MediaKind.FILM_JACKET,
        home_location=file_room["shelf"],
        actor=file_room["staff"],
    )


def run_together(count: int, work) -> list:
    """Run work(i) in `count` threads released at the same instant; return each result or error."""
    start = threading.Barrier(count)
    outcomes: list = [None] * count

    def thread_main(i: int) -> None:
        try:
            start.wait()
            outcomes[i] = work(i)
        except Exception as exc:  # the outcome under test, inspected by the caller
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread never finished"
    return outcomes


def assert_ledger_intact() -> None:
    seqs = list(CustodyEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    result = ledger.verify_ledger()
    assert result.ok, result.reason
    assert result.events == len(seqs)


def test_it_lends_an_item_once_when_fifty_check_outs_race(file_room):
    media = register(file_room, "FJ-RACE")

    outcomes = run_together(
        50,
        lambda i: services.media_check_out(
            media=media, borrower=file_room["doctor"], actor=file_room["staff"]
        ),
    )

    loans = [o for o in outcomes if isinstance(o, Loan)]
    refused = [o for o in outcomes if isinstance(o, AlreadyOnLoan)]
    others = [o for o in outcomes if not isinstance(o, (Loan, AlreadyOnLoan))]
    assert (len(loans), len(refused)) == (1, 49), others
    assert CustodyEvent.objects.filter(kind=EventKind.CHECKED_OUT).count() == 1
    assert Loan.objects.filter(media=media, returned_at__isnull=True).get().pk == loans[0].pk
    media.refresh_from_db()
    assert (media.status, media.current_holder) == (MediaStatus.ON_LOAN, file_room["doctor"])
    assert_ledger_intact()


def test_it_answers_one_201_and_forty_nine_409s_to_fifty_api_check_outs(file_room):
    register(file_room, "FJ-API")
    clients = []
    for _ in range(50):
        client = APIClient()
        client.force_login(file_room["staff"])
        clients.append(client)

    responses = run_together(
        50,
        lambda i: clients[i].post(
            "/api/v1/loans/", {"media": "FJ-API", "borrower": "doctor"}, format="json"
        ),
    )

    statuses = sorted(getattr(r, "status_code", r) for r in responses)
    assert statuses == [201] + [409] * 49
    codes = {r.json()["error"]["code"] for r in responses if r.status_code == 409}
    assert codes == {"already_on_loan"}
    assert CustodyEvent.objects.filter(kind=EventKind.CHECKED_OUT).count() == 1
    assert Loan.objects.filter(media__code="FJ-API", returned_at__isnull=True).count() == 1
    assert_ledger_intact()


def test_it_keeps_seq_gap_free_when_twenty_threads_append_two_thousand_events(file_room):
    items = [register(file_room, f"FJ-{i:02}") for i in range(20)]
    places = [file_room["shelf"], file_room["clinic"]]

    def sightings(i: int) -> int:
        for n in range(100):
            services.media_seen(media=items[i], location=places[n % 2], actor=file_room["staff"])
        return 100

    outcomes = run_together(20, sightings)

    assert outcomes == [100] * 20
    assert CustodyEvent.objects.count() == 20 + 2000
    for media in items:
        assert CustodyEvent.objects.filter(media=media, kind=EventKind.SEEN).count() == 100
    assert_ledger_intact()


def test_it_records_a_retried_check_out_once_and_gives_every_retry_the_same_loan(file_room):
    media = register(file_room, "FJ-RETRY")
    event_id = uuid.uuid4()

    outcomes = run_together(
        10,
        lambda i: services.media_check_out(
            media=media, borrower=file_room["doctor"], actor=file_room["staff"], event_id=event_id
        ),
    )

    assert all(isinstance(o, Loan) for o in outcomes), outcomes
    assert {loan.pk for loan in outcomes} == {Loan.objects.get(media=media).pk}
    assert CustodyEvent.objects.filter(event_id=event_id).count() == 1
    assert CustodyEvent.objects.filter(kind=EventKind.CHECKED_OUT).count() == 1
    assert_ledger_intact()


@pytest.mark.parametrize("bound", [True, False], ids=["bound tag", "unknown tag"])
def test_a_read_delivered_ten_times_at_once_is_recorded_once(file_room, bound):
    # An agent retrying while its first request still runs: the read is looked up outside the
    # ledger lock, so the racing twins are stopped by the UNIQUE event_id and answered as replays.
    media = register(file_room, "FJ-TWIN")
    uid = "04AABBCCDDEE01" if bound else "04AABBCCDDEE99"
    services.tag_bind(uid="04AABBCCDDEE01", media=media, actor=file_room["staff"])
    reader = ReaderDevice.objects.create(name="desk", location=file_room["shelf"], mode="locate")
    event_id, read_at = uuid.uuid4(), timezone.now()

    outcomes = run_together(
        10,
        lambda i: services.scan_record(
            device=ReaderDevice.objects.get(pk=reader.pk), event_id=event_id, raw_uid=uid,
            read_at=read_at, counter=7,
        ),
    )

    assert all(isinstance(o, tuple) for o in outcomes), outcomes
    assert sorted(replayed for _record, replayed in outcomes) == [False] + [True] * 9
    assert {record.pk for record, _replayed in outcomes} == {ScanRecord.objects.get().pk}
    assert CustodyEvent.objects.filter(event_id=event_id).count() == (1 if bound else 0)
    assert_ledger_intact()


def test_a_delivery_posted_five_times_at_once_is_recorded_once(file_room):
    # An agent retrying a whole delivery while the first is still being recorded together: the
    # racing chunks are stopped by the UNIQUE event_ids, rolled back and recorded read by read,
    # which finds the first delivery's reads and answers them as replays.
    staff = file_room["staff"]
    uids = [f"04AABBCCDD{n:04X}" for n in range(20)]
    for n, uid in enumerate(uids):
        services.tag_bind(uid=uid, media=register(file_room, f"FJ-{n}"), actor=staff)
    reader = ReaderDevice.objects.create(name="desk", location=file_room["clinic"], mode="locate")
    start = timezone.now()
    reads = [
        services.StationRead(uuid.uuid4(), uids[n % 25] if n % 25 < 20 else f"04FFFF0000{n:04X}",
                             start + timedelta(seconds=n), n)
        for n in range(250)
    ]

    outcomes = run_together(
        5, lambda i: services.scan_record_many(device=ReaderDevice.objects.get(pk=reader.pk), reads=reads)
    )

    assert all(isinstance(o, list) and len(o) == 250 for o in outcomes), outcomes
    for n in range(250):
        results = [o[n] for o in outcomes]
        assert all(isinstance(r, tuple) for r in results), results
        assert sorted(replayed for _record, replayed in results) == [False] + [True] * 4
        assert len({record.pk for record, _replayed in results}) == 1
    assert ScanRecord.objects.count() == 250
    assert CustodyEvent.objects.filter(kind=EventKind.SEEN).count() == 200
    assert Media.objects.filter(current_location=file_room["clinic"]).count() == 20
    assert_ledger_intact()
