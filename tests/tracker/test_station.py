"""The scan station page: modes, wedge input, the live stream, undo and binding unknown tags."""
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from tracker import services
from tracker.choices import MediaStatus, ReaderMode
from tracker.models import CustodyEvent, ReaderDevice, ScanRecord


@pytest.fixture
def device(places):
    call_command("register_reader", "counter-1", "--location", "FR-A2", stdout=StringIO(), stderr=StringIO())
    return ReaderDevice.objects.get(name="counter-1")


@pytest.fixture
def staff_browser(cast):
    client = Client()
    client.force_login(cast["staff"])
    return client


@pytest.fixture
def tagged(make_media, cast):
    media = make_media("FJ-300")
    services.tag_bind(uid="04A1B2C3D4E5F6", media=media, actor=cast["staff"])
    return media


def test_the_station_page_is_for_file_room_staff(device, staff_browser, cast):
    assert staff_browser.get("/station/counter-1/").status_code == 200
    doctor = Client()
    doctor.force_login(cast["doctor"])
    assert doctor.get("/station/counter-1/").status_code == 403
    assert Client().get("/station/counter-1/").status_code == 302


def test_staff_choose_the_mode_borrower_and_destination(device, staff_browser, cast, places):
    response = staff_browser.post(
        "/station/counter-1/configure/",
        {"mode": "check_out", "borrower": "doctor", "destination": "ORTHO"},
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert (device.mode, device.borrower, device.destination) == ("check_out", cast["doctor"], places["clinic"])


def test_a_uid_typed_into_the_page_is_a_scan(device, staff_browser, tagged, places, cast):
    response = staff_browser.post("/station/counter-1/scan/", {"uid": "04:a1:b2:c3:d4:e5:f6"})
    scan = response.json()["scan"]
    assert scan["media"] == "FJ-300" and scan["outcome"] == "ok"
    tagged.refresh_from_db()
    assert tagged.current_location == places["shelf2"]
    # the chain names who typed it, beside the station it was typed at
    event = CustodyEvent.objects.get(media=tagged, kind="seen")
    assert (event.actor, event.device) == (cast["staff"], device)


def test_an_unknown_tag_offers_binding_and_binding_works(device, staff_browser, make_media):
    make_media("FJ-301")
    scan = staff_browser.post("/station/counter-1/scan/", {"uid": "04 99 88 77 66 55 44"}).json()["scan"]
    assert scan["outcome"] == "unknown_tag" and scan["bind_url"].endswith("?uid=04998877665544")
    response = staff_browser.post(scan["bind_url"], {"uid": "04998877665544", "media": "FJ-301"})
    assert response.status_code == 302
    assert services.media_for_tag("04998877665544").code == "FJ-301"


def test_binding_to_an_unknown_code_says_what_to_do(device, staff_browser):
    response = staff_browser.post("/station/counter-1/bind/", {"uid": "04998877665544", "media": "NOPE"})
    assert response.status_code == 200 and b"register the item first" in response.content


def test_the_live_stream_sends_each_new_scan(device, staff_browser, tagged):
    staff_browser.post("/station/counter-1/scan/", {"uid": "04A1B2C3D4E5F6"})
    scan_id = ScanRecord.objects.get().id
    response = staff_browser.get("/station/counter-1/events/?after=0")
    assert response["Content-Type"] == "text/event-stream"
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"retry:")
    event = next(chunks).decode()
    assert "event: scan" in event
    payload = json.loads(event.split("data: ", 1)[1])
    assert payload["media"] == "FJ-300" and payload["id"] == scan_id


def test_undo_from_the_page(device, staff_browser, tagged, cast):
    services.station_configure(device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    scan = staff_browser.post("/station/counter-1/scan/", {"uid": "04A1B2C3D4E5F6"}).json()["scan"]
    assert scan["can_undo"] is True
    response = staff_browser.post("/station/counter-1/undo/", {"scan": scan["id"]})
    assert response.status_code == 200
    tagged.refresh_from_db()
    assert tagged.status == MediaStatus.ON_SHELF
    again = staff_browser.post("/station/counter-1/undo/", {"scan": scan["id"]})
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
