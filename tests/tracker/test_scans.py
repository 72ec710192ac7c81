"""Scan ingest: a reader's batch of reads becomes ledger events, idempotently, per item."""
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from tracker import services
from tracker.choices import MediaStatus, ReaderMode, UidFormat
from tracker.models import Badge, CustodyEvent, Loan, ReaderDevice, ReaderKey, ScanRecord


@pytest.fixture
def station(places):
    """A registered reader at shelf FR-A2 and an API client holding its key."""
    out = StringIO()
    call_command("register_reader", "counter-1", "--location", "FR-A2", "--mode", "locate", stdout=out, stderr=StringIO())
    key = out.getvalue().strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return {"device": ReaderDevice.objects.get(name="counter-1"), "client": client, "key": key}


@pytest.fixture
def tagged(make_media, cast):
    media = make_media("FJ-100")
    services.tag_bind(uid="04A1B2C3D4E5F6", media=media, actor=cast["staff"])
    return media


def read(uid="04A1B2C3D4E5F6", **extra):
    return {"event_id": str(uuid.uuid4()), "uid": uid, "read_at": timezone.now().isoformat(), "counter": 1, **extra}


def post(station, *scans, **body):
    return station["client"].post("/api/v1/scans/", {"scans": list(scans), **body}, format="json")


def test_register_reader_prints_a_key_once_and_stores_only_its_hash(station):
    row = ReaderKey.objects.get(reader=station["device"])
    assert station["key"].startswith(row.prefix + ".")
    assert station["key"] not in row.hashed_key


def test_a_read_at_a_locate_station_records_the_item_seen_there(station, tagged, places):
    scan = read()
    response = post(station, scan)
    assert response.status_code == 200
    [result] = response.json()["results"]
    assert result["stored"] is True and result["outcome"] == "ok" and result["media"] == "FJ-100"
    event = CustodyEvent.objects.get(event_id=scan["event_id"])
    assert (event.kind, event.device, event.to_location, event.tag_uid) == ("seen", station["device"], places["shelf2"], "04A1B2C3D4E5F6")
    assert event.device_counter == 1 and event.device_time is not None
    tagged.refresh_from_db()
    assert tagged.current_location == places["shelf2"]


def test_replaying_a_read_returns_the_first_result_and_adds_nothing(station, tagged):
    scan = read()
    first = post(station, scan).json()["results"][0]
    events = CustodyEvent.objects.count()
    again = post(station, scan).json()["results"][0]
    assert again["stored"] and again["replayed"] and again["seq"] == first["seq"]
    assert CustodyEvent.objects.count() == events and ScanRecord.objects.count() == 1


def test_the_same_event_id_with_another_uid_is_a_conflict_for_that_item_only(station, tagged):
    scan = read()
    post(station, scan)
    other = read()
    response = post(station, {**scan, "uid": "04FFFFFFFFFFFF"}, other)
    first, second = response.json()["results"]
    assert (first["stored"], first["status"], first["code"]) == (False, 409, "event_conflict")
    assert second["stored"] is True


def test_a_mixed_batch_keeps_the_good_reads_and_says_why_the_bad_ones_failed(station, tagged):
    good = read()
    results = post(
        station,
        {"event_id": "not-a-uuid", "uid": "04A1B2C3D4E5F6", "read_at": timezone.now().isoformat()},
        {"event_id": str(uuid.uuid4()), "uid": "", "read_at": timezone.now().isoformat()},
        {"event_id": str(uuid.uuid4()), "uid": "04A1B2C3D4E5F6", "read_at": "yesterday"},
        good,
        read(uid="zz-not-hex"),
        read(uid="04DEADBEEF0001"),
    ).json()["results"]
    assert [r["stored"] for r in results] == [False, False, False, True, True, True]
    assert all(r["code"] == "invalid" and r["message"] for r in results[:3])
    assert "read_at" in results[2]["message"]
    assert results[3]["outcome"] == "ok"
    assert results[4]["outcome"] == "error" and "Unreadable tag" in results[4]["message"]
    assert results[5]["outcome"] == "unknown_tag" and "Bind it" in results[5]["message"]
    assert ScanRecord.objects.count() == 3  # every well-formed read is kept, even unknown or unreadable


def test_a_revoked_key_is_refused_with_401(station, tagged):
    row = ReaderKey.objects.get(reader=station["device"])
    row.revoked = True
    row.save()
    response = post(station, read())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_no_key_and_a_person_logged_in_are_both_refused(client_for, station):
    assert APIClient().post("/api/v1/scans/", {"scans": [read()]}, format="json").status_code == 401
    assert client_for("staff").post("/api/v1/scans/", {"scans": [read()]}, format="json").status_code == 401


def test_a_reader_cannot_post_as_another_reader(station, places):
    call_command("register_reader", "counter-2", "--location", "FR-A1", stdout=StringIO(), stderr=StringIO())
    response = post(station, read(), reader="counter-2")
    assert response.status_code == 403
    assert "counter-1" in response.json()["error"]["message"]
    assert ScanRecord.objects.count() == 0


def test_an_oversized_batch_is_refused_whole(station, tagged):
    response = post(station, *[read() for _ in range(501)])
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "batch_too_large"
    assert ScanRecord.objects.count() == 0


def test_check_in_returns_the_item_to_this_station(station, tagged, cast, places):
    services.media_check_out(media=tagged, borrower=cast["doctor"], actor=cast["staff"])
    services.station_configure(device=station["device"], mode=ReaderMode.CHECK_IN)
    [result] = post(station, read()).json()["results"]
    tagged.refresh_from_db()
    assert result["outcome"] == "ok"
    assert (tagged.status, tagged.current_location) == (MediaStatus.ON_SHELF, places["shelf2"])
    [again] = post(station, read()).json()["results"]
    assert again["outcome"] == "warning" and "already checked in" in again["message"]


def test_check_out_needs_a_borrower_and_a_badge_tap_names_one(station, tagged, cast):
    services.station_configure(device=station["device"], mode=ReaderMode.CHECK_OUT)
    [refused] = post(station, read()).json()["results"]
    assert refused["outcome"] == "error" and "borrower" in refused["message"]
    Badge.objects.create(uid="0A0B0C0D", user=cast["doctor"])
    [badge] = post(station, read(uid="0a:0b:0c:0d")).json()["results"]
    assert badge["outcome"] == "badge" and "Doctor" in badge["message"]
    [lent] = post(station, read()).json()["results"]
    assert lent["outcome"] == "ok"
    assert Loan.objects.get(returned_at__isnull=True).borrower == cast["doctor"]
    [twice] = post(station, read()).json()["results"]
    assert twice["outcome"] == "error" and twice["code"] == "already_on_loan" and "Doctor" in twice["message"]


def test_transfer_mode_sends_items_to_the_chosen_place(station, tagged, places):
    services.station_configure(device=station["device"], mode=ReaderMode.TRANSFER, destination=places["courier"])
    [result] = post(station, read()).json()["results"]
    tagged.refresh_from_db()
    assert result["outcome"] == "ok" and tagged.status == MediaStatus.IN_TRANSIT


def test_a_wedge_reader_in_decimal_is_normalised_with_the_station_format(station, make_media, cast):
    media = make_media("FJ-200")
    services.tag_bind(uid="DEADBEEF", media=media, actor=cast["staff"])
    ReaderDevice.objects.filter(pk=station["device"].pk).update(uid_format=UidFormat.DECIMAL_REVERSED_4)
    # 0xEFBEADDE = 4022250974: the reversed first four bytes, as a wedge reader types them
    [result] = post(station, read(uid="4022250974")).json()["results"]
    assert result["media"] == "FJ-200"


def test_undo_appends_the_opposite_event_and_only_once(station, tagged, cast, places):
    services.station_configure(device=station["device"], mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    post(station, read())
    record = ScanRecord.objects.get()
    event = services.scan_undo(record=record, actor=cast["staff"])
    tagged.refresh_from_db()
    assert event.kind == "returned" and event.payload["undo_of"] == record.event_seq
    assert tagged.status == MediaStatus.ON_SHELF and tagged.current_location == places["shelf"]
    with pytest.raises(services.Conflict):
        services.scan_undo(record=record, actor=cast["staff"])


def test_undo_is_refused_after_the_window_or_once_the_item_moved(station, tagged, cast):
    services.station_configure(device=station["device"], mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    post(station, read())
    record = ScanRecord.objects.get()
    services.media_transfer(media=tagged, to_holder=cast["doctor2"], actor=cast["doctor"])
    with pytest.raises(services.Conflict, match="moved since"):
        services.scan_undo(record=record, actor=cast["staff"])
    ScanRecord.objects.filter(pk=record.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    record.refresh_from_db()
    with pytest.raises(services.Conflict, match="Too late"):
        services.scan_undo(record=record, actor=cast["staff"])


def test_a_borrower_chosen_long_ago_is_not_lent_the_next_items(station, tagged, cast):
    services.station_configure(device=station["device"], mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    ReaderDevice.objects.filter(pk=station["device"].pk).update(
        borrower_chosen_at=timezone.now() - timedelta(seconds=services.BORROWER_CHOICE_SECONDS + 1)
    )
    [result] = post(station, read()).json()["results"]
    assert result["outcome"] == "error" and "expired" in result["message"]
    assert not Loan.objects.exists()


def test_a_read_where_a_hand_over_waits_accepts_it_and_moves_custody(station, tagged, cast, places):
    """The item, lent to Dr Doctor, is handed on to shelf A2's station (a place): a locate read
    there is the receiver taking it; a read anywhere else is just a sighting."""
    services.media_check_out(media=tagged, borrower=cast["doctor"], actor=cast["staff"])
    offered = services.handover_offer(media=tagged, actor=cast["doctor"], to_location=places["shelf2"])
    elsewhere = ReaderDevice.objects.create(name="clinic-desk", location=places["clinic"], mode=ReaderMode.LOCATE)
    services.scan_record(device=elsewhere, event_id=uuid.uuid4(), raw_uid=tagged_uid(), read_at=timezone.now())
    offered.refresh_from_db()
    assert offered.status == "pending"

    [accepted] = post(station, read()).json()["results"]

    assert (accepted["outcome"], accepted["code"]) == ("ok", "handover_accepted")
    assert "Shelf A2" in accepted["message"]
    offered.refresh_from_db()
    event = CustodyEvent.objects.get(event_id=accepted["event_id"])
    assert offered.status == "accepted" and offered.closed_seq == event.seq == accepted["seq"]
    assert (event.kind, event.payload, event.device) == ("transferred", {"handover": offered.offered_seq}, station["device"])
    tagged.refresh_from_db()
    assert tagged.current_location == places["shelf2"]
    [later] = post(station, read()).json()["results"]
    assert later["code"] == "locate"  # accepted once; the next read is a sighting


def test_a_badge_tap_then_the_item_accepts_a_hand_over_to_that_person(station, tagged, cast):
    services.media_check_out(media=tagged, borrower=cast["doctor"], actor=cast["staff"])
    offered = services.handover_offer(media=tagged, actor=cast["doctor"], to_holder=cast["doctor2"])
    services.station_configure(device=station["device"], mode=ReaderMode.CHECK_OUT)
    Badge.objects.create(uid="0A0B0C0E", user=cast["staff"])
    Badge.objects.create(uid="0A0B0C0F", user=cast["doctor2"])
    post(station, read(uid="0A0B0C0E"))
    [refused] = post(station, read()).json()["results"]
    assert refused["code"] == "already_on_loan"  # staff is not whom it is handed to

    post(station, read(uid="0A0B0C0F"))
    [accepted] = post(station, read()).json()["results"]

    assert accepted["code"] == "handover_accepted" and "Doctor2" in accepted["message"]
    loan = Loan.objects.get(media=tagged, returned_at__isnull=True)
    assert loan.borrower == cast["doctor2"]
    offered.refresh_from_db()
    assert offered.status == "accepted"
    assert not services.scan_can_undo(ScanRecord.objects.get(event_id=accepted["event_id"]))


def tagged_uid() -> str:
    return "04A1B2C3D4E5F6"
