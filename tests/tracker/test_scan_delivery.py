"""A station's delivery of reads recorded together (services.scan_record_many) means exactly what
recording the same reads one by one (services.scan_record) means: the same results, the same
ledger events, the same scan records and items, in the same order."""
import uuid
from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tracker import ledger, projection, services
from tracker.choices import ReaderMode
from tracker.exceptions import DomainError
from tracker.models import Badge, CustodyEvent, Media, ReaderDevice, ReaderKey, ScanRecord
from tracker.services.stations import DELIVERY_CHUNK

SHELVED = [f"04A1000000000{n}" for n in range(1, 6)]
ON_LOAN, IN_TRANSIT, RETIRED = "04B10000000001", "04B10000000002", "04B10000000003"
BADGE, UNKNOWN = "04C10000000001", "04D10000000001"
UIDS = [*SHELVED, ON_LOAN, IN_TRANSIT, RETIRED, BADGE, UNKNOWN, "zz-unreadable", "04:a1:00:00:00:00:01"]


@pytest.fixture
def room(make_media, cast, places):
    """Items on their shelf, one on loan (handed on to shelf 2), one with a courier, one
    retired; a badge; a locate station at shelf 2 that has already recorded one read."""
    staff = cast["staff"]
    for n, uid in enumerate([*SHELVED, ON_LOAN, IN_TRANSIT, RETIRED]):
        item = make_media(f"FJ-{n}")
        services.tag_bind(uid=uid, media=item, actor=staff)
    services.media_check_out(media=Media.objects.get(code="FJ-5"), borrower=cast["doctor"], actor=staff)
    # handed on to the station's shelf: its first read there is the hand-over's acceptance
    services.handover_offer(media=Media.objects.get(code="FJ-5"), actor=cast["doctor"], to_location=places["shelf2"])
    services.media_transfer(media=Media.objects.get(code="FJ-6"), actor=staff, to_location=places["courier"])
    services.media_retire(media=Media.objects.get(code="FJ-7"), actor=staff, reason="cracked")
    Badge.objects.create(uid=BADGE, user=cast["doctor2"])
    device = ReaderDevice.objects.create(name="counter-9", location=places["shelf2"], mode=ReaderMode.LOCATE)
    earlier = services.StationRead(uuid.uuid4(), SHELVED[0], timezone.now() - timedelta(minutes=5), 1)
    services.scan_record_many(device=device, reads=[earlier])
    return {"device": device, "earlier": earlier}


def _delivery(data, earlier) -> list:
    """Reads as a station might deliver them: mostly new, some repeating an event_id of this
    delivery or of the earlier read (with the same or other details)."""
    start = timezone.now() - timedelta(minutes=1)
    reads = []
    for n in range(data.draw(st.integers(2, 40), label="size")):
        uid = data.draw(st.sampled_from(UIDS), label="uid")
        repeat = data.draw(st.sampled_from(["new"] * 6 + ["same", "other", "earlier"]), label="repeat")
        read = services.StationRead(uuid.uuid4(), uid, start + timedelta(seconds=n), n + 2)
        if repeat == "earlier":
            read = earlier
        elif repeat in ("same", "other") and reads:
            twin = data.draw(st.sampled_from(reads), label="twin")
            read = twin if repeat == "same" else services.StationRead(twin.event_id, uid, read.read_at, read.counter)
        reads.append(read)
    return reads


def _outcomes(results) -> list:
    shown = []
    for result in results:
        if isinstance(result, DomainError):
            shown.append(("refused", type(result).__name__, result.code, result.message))
        else:
            record, replayed = result
            shown.append((str(record.event_id), record.outcome, record.code, record.message,
                          record.media_id, record.event_seq, replayed))
    return shown


def _state(since_seq: int) -> dict:
    """What the reads left behind, without the receive times (and the hashes made of them)."""
    return {
        "events": list(
            CustodyEvent.objects.filter(seq__gt=since_seq).order_by("seq").values_list(
                "seq", "event_id", "kind", "media_id", "tag_uid", "actor_id", "device_id",
                "from_location_id", "to_location_id", "holder_id", "device_time", "device_counter",
                "payload",
            )
        ),
        "scans": list(
            ScanRecord.objects.order_by("id").values_list(
                "event_id", "raw_uid", "uid", "read_at", "counter", "mode", "outcome", "code",
                "message", "media_id", "event_seq",
            )
        ),
        "media": list(
            Media.objects.order_by("pk").values_list("pk", "status", "current_location_id", "current_holder_id")
        ),
        "borrower": list(ReaderDevice.objects.values_list("pk", "borrower_id")),
    }


def _rolled_back(work):
    """Run `work` and undo everything it wrote; return what it returned."""
    with transaction.atomic():
        outcome = work()
        transaction.set_rollback(True)
    return outcome


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_delivery_recorded_together_means_what_its_reads_mean_one_by_one(room, data):
    device, reads = room["device"], _delivery(data, room["earlier"])
    head = CustodyEvent.objects.order_by("-seq").values_list("seq", flat=True).first()

    def one_by_one():
        results = []
        for read in reads:
            try:
                results.append(services.scan_record(
                    device=device, event_id=read.event_id, raw_uid=read.raw_uid, read_at=read.read_at,
                    counter=read.counter,
                ))
            except DomainError as error:
                results.append(error)
        return _outcomes(results), _state(head)

    def together():
        outcome = _outcomes(services.scan_record_many(device=device, reads=reads)), _state(head)
        assert ledger.verify_ledger().ok
        assert projection.rebuild(check_only=True) == []
        return outcome

    expected, expected_state = _rolled_back(one_by_one)
    got, got_state = _rolled_back(together)
    assert got == expected
    assert got_state == expected_state


def test_a_delivery_larger_than_a_chunk_is_recorded_in_order_through_the_api(room, places):
    """The agent's largest batch (500 reads) over a few items: every read stored once, in order,
    each event leaving the place the previous read of the same item put it."""
    _row, key = ReaderKey.objects.create_key(name="k", reader=room["device"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    start = timezone.now() - timedelta(minutes=10)
    scans = [
        {"event_id": str(uuid.uuid4()), "uid": SHELVED[n % 3], "read_at": (start + timedelta(seconds=n)).isoformat(),
         "counter": n}
        for n in range(500)
    ]
    assert 500 > 2 * DELIVERY_CHUNK
    before = dict(Media.objects.values_list("pk", "current_location_id"))
    results = client.post("/api/v1/scans/", {"scans": scans}, format="json").json()["results"]
    assert [r["event_id"] for r in results] == [s["event_id"] for s in scans]
    assert all(r["stored"] and r["status"] == 201 and r["outcome"] == "ok" for r in results)
    seqs = [r["seq"] for r in results]
    assert seqs == list(range(seqs[0], seqs[0] + 500))
    recorded = list(ScanRecord.objects.filter(event_id__in=[s["event_id"] for s in scans]).order_by("id")
                    .values_list("event_id", flat=True))
    assert [str(e) for e in recorded] == [s["event_id"] for s in scans]
    events = CustodyEvent.objects.filter(seq__gte=seqs[0]).order_by("seq")
    first_of = {}
    for event in events:
        if event.media_id in first_of:
            assert event.from_location_id == places["shelf2"].pk  # moved there by its previous read
        else:
            first_of[event.media_id] = event.seq
            assert event.from_location_id == before[event.media_id]  # where it was until now
    assert ledger.verify_ledger().ok
    assert projection.rebuild(check_only=True) == []
    again = client.post("/api/v1/scans/", {"scans": scans}, format="json").json()["results"]
    assert all(r["stored"] and r["replayed"] and r["status"] == 200 for r in again)
    assert [r["seq"] for r in again] == seqs
