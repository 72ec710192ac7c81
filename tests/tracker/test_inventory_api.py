"""Inventories over the API, on the pages and at a reader station in inventory mode: who may do
what, bulk reads by a station's key, and what the station page says about each read."""
import re
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone, translation
from rest_framework.test import APIClient

from tracker import services
from tracker.choices import EventKind, FlagKind, InventoryStatus, ReaderMode, ScanOutcome
from tracker.models import CustodyEvent, Flag, InventoryRead, InventorySession, ReaderDevice

pytestmark = pytest.mark.django_db

ROLES = [None, "nobody", "doctor", "staff", "auditor", "admin"]


@pytest.fixture
def shelf_items(cast, places, make_media):
    """FR-A1 holds J-1 and J-2 (tagged 04..01, 04..02); FR-A2 holds K-1 (tagged 04..03)."""
    items = {}
    for n, (code, shelf) in enumerate([("J-1", "shelf"), ("J-2", "shelf"), ("K-1", "shelf2")], start=1):
        items[code] = make_media(code, home_location=places[shelf])
        services.tag_bind(uid=f"04{n:012X}", media=items[code], actor=cast["staff"])
    return items


def tag(n: int) -> str:
    return f"04{n:012X}"


def expected(role, allowed, success):
    if role is None:
        return 401
    return success if role in allowed else 403


@pytest.mark.parametrize("role", ROLES)
def test_only_staff_start_read_and_close_and_staff_auditors_admins_read(client_for, shelf_items, cast, places, role):
    session = services.inventory_start(scope=places["shelf2"], actor=cast["staff"])
    client = client_for(role)
    staff = {"staff", "admin"}
    read_all = {"staff", "auditor", "admin"}
    before = CustodyEvent.objects.count()

    started = client.post("/api/v1/inventories/", {"scope": "FR-A1"}, format="json")
    listed = client.get("/api/v1/inventories/")
    shown = client.get(f"/api/v1/inventories/{session.pk}/")
    reads = client.post(f"/api/v1/inventories/{session.pk}/reads/", {"uids": [tag(3)]}, format="json")

    assert started.status_code == expected(role, staff, 201)
    assert listed.status_code == expected(role, read_all, 200)
    assert shown.status_code == expected(role, read_all, 200)
    assert reads.status_code == expected(role, staff, 200)
    if role in staff:
        assert CustodyEvent.objects.count() == before + 1
        assert client.post(f"/api/v1/inventories/{session.pk}/close/", {}, format="json").status_code == 200
        other = InventorySession.objects.get(pk=started.json()["id"])
        assert client.post(f"/api/v1/inventories/{other.pk}/cancel/", {}, format="json").status_code == 200
    else:
        assert CustodyEvent.objects.count() == before
        for action in ("close", "cancel"):
            response = client.post(f"/api/v1/inventories/{session.pk}/{action}/", {}, format="json")
            assert response.status_code == expected(role, staff, 200)
        assert not InventoryRead.objects.exists()


def test_the_result_lists_missing_misplaced_unknown_and_closing_twice_is_a_409(client_for, shelf_items):
    staff = client_for("staff")
    session = staff.post("/api/v1/inventories/", {"scope": "FR-A1"}, format="json").json()
    url = f"/api/v1/inventories/{session['id']}/"

    reads = staff.post(url + "reads/", {"uids": [tag(1), tag(3), "DE:AD:BE:EF", tag(1), "zz"]}, format="json")
    live = client_for("auditor").get(url).json()

    assert reads.json()["added"] == 3 and reads.json()["repeated"] == 1 and reads.json()["reads"] == 3
    assert reads.json()["refused"][0]["uid"] == "zz"
    assert live["status"] == "open" and live["reads"] == 3
    assert [line["code"] for line in live["live"]["missing"]] == ["J-2"]
    assert [(line["code"], line["home"]) for line in live["live"]["misplaced"]] == [("K-1", "FR-A2")]
    assert live["live"]["unknown"] == ["DEADBEEF"]

    closed = staff.post(url + "close/", {}, format="json")
    again = staff.post(url + "close/", {}, format="json")
    late = staff.post(url + "reads/", {"uids": [tag(2)]}, format="json")

    assert closed.status_code == 200 and closed.json()["result"]["counts"]["missing"] == 1
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert late.status_code == 409 and "no more reads" in late.json()["error"]["message"]
    assert client_for("auditor").get(url).json()["live"] is None


def test_an_unknown_inventory_is_a_404_in_words(client_for):
    response = client_for("staff").get("/api/v1/inventories/999/")
    assert response.status_code == 404 and "999" in response.json()["error"]["message"]


@pytest.fixture
def station(places):
    out = StringIO()
    call_command("register_reader", "shelf-reader", "--location", "FR", "--mode", "inventory",
                 stdout=out, stderr=StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {out.getvalue().strip()}")
    return {"device": ReaderDevice.objects.get(name="shelf-reader"), "client": client}


def test_a_station_key_posts_reads_only_to_the_inventory_chosen_for_it(station, shelf_items, cast, places):
    mine = services.inventory_start(scope=places["shelf"], actor=cast["staff"])
    other = services.inventory_start(scope=places["shelf2"], actor=cast["staff"])
    client = station["client"]

    refused = client.post(f"/api/v1/inventories/{mine.pk}/reads/", {"uids": [tag(1)]}, format="json")
    services.inventory_station_choose(device=station["device"], session=mine)
    accepted = client.post(f"/api/v1/inventories/{mine.pk}/reads/", {"uids": [tag(1), tag(2)]}, format="json")
    elsewhere = client.post(f"/api/v1/inventories/{other.pk}/reads/", {"uids": [tag(3)]}, format="json")
    no_close = client.post(f"/api/v1/inventories/{mine.pk}/close/", {}, format="json")

    assert refused.status_code == 403 and accepted.status_code == 200 and elsewhere.status_code == 403
    assert no_close.status_code in (401, 403)
    assert set(InventoryRead.objects.filter(session=mine).values_list("device__name", flat=True)) == {"shelf-reader"}
    assert services.inventory_result(mine).missing == []


def test_a_read_at_a_station_in_inventory_mode_goes_to_its_inventory_and_says_what_it_is(
    station, shelf_items, cast, places
):
    session = services.inventory_start(scope=places["shelf"], actor=cast["staff"])
    services.inventory_station_choose(device=station["device"], session=session)
    before = CustodyEvent.objects.count()

    def read(uid: str):
        record, _replayed = services.scan_record(
            device=ReaderDevice.objects.get(pk=station["device"].pk), event_id=uuid.uuid4(), raw_uid=uid,
            read_at=timezone.now(),
        )
        return record

    here, twice, elsewhere, unknown = read(tag(1)), read(tag(1)), read(tag(3)), read("0A0B0C0D")

    assert (here.outcome, here.message) == (ScanOutcome.OK, "J-1 expected here (home FR-A1).")
    assert twice.outcome == ScanOutcome.OK
    assert elsewhere.outcome == ScanOutcome.WARNING and "belongs elsewhere: FR-A2 Shelf A2" in elsewhere.message
    assert unknown.outcome == ScanOutcome.UNKNOWN_TAG and "Unknown tag 0A0B0C0D" in unknown.message
    assert sorted(InventoryRead.objects.filter(session=session).values_list("uid", flat=True)) == sorted(
        [tag(1), tag(3), "0A0B0C0D"]
    )
    assert CustodyEvent.objects.count() == before  # reads are input; closing appends the events
    services.flag_raise(media=shelf_items["J-2"], kind=FlagKind.INVENTORY_MISSING, actor=cast["staff"])
    found = read(tag(2))
    assert found.outcome == ScanOutcome.WARNING and found.message.startswith("J-2 found: it was flagged missing")
    # Stored in the site's language; each viewer reads them in theirs.
    with translation.override("zh-hans"):
        chinese = [r.get_message_display() for r in (here, elsewhere, unknown, found)]
    assert chinese[0].startswith("J-1") and "FR-A1" in chinese[0]
    assert "FR-A2" in chinese[1] and "0A0B0C0D" in chinese[2] and "J-2" in chinese[3]
    assert not any(english in text for text, english in zip(
        chinese, ("expected here", "belongs elsewhere", "Unknown tag", "found: it was flagged missing")
    )), chinese
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in chinese), chinese


def test_a_station_in_inventory_mode_without_an_open_inventory_refuses_the_read(station, shelf_items):
    record, _replayed = services.scan_record(
        device=station["device"], event_id=uuid.uuid4(), raw_uid=tag(1), read_at=timezone.now()
    )
    assert record.outcome == ScanOutcome.ERROR and "Choose the inventory" in record.message
    assert not InventoryRead.objects.exists()


def test_closing_frees_the_stations_that_read_into_it(station, shelf_items, cast, places):
    session = services.inventory_start(scope=places["shelf"], actor=cast["staff"])
    services.inventory_station_choose(device=station["device"], session=session)
    services.inventory_close(session=session, actor=cast["staff"])
    station["device"].refresh_from_db()
    assert station["device"].inventory is None


# --- pages --------------------------------------------------------------------------------------


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_staff_start_read_watch_and_close_an_inventory_on_the_pages(shelf_items, cast):
    staff = browser(cast["staff"])

    started = staff.post("/inventories/", {"scope": "FR-A1"})
    session = InventorySession.objects.get()
    staff.post(f"/inventories/{session.pk}/reads/", {"uids": f"{tag(1)}\n{tag(3)}\n"})
    page = staff.get(f"/inventories/{session.pk}/").content.decode()
    live = staff.get(f"/inventories/{session.pk}/live/").content.decode()
    staff.post(f"/inventories/{session.pk}/close/")
    closed = staff.get(f"/inventories/{session.pk}/").content.decode()

    assert started.status_code == 302 and started["Location"] == f"/inventories/{session.pk}/"
    assert "Close the inventory" in page and "K-1" in page and "FR-A2 Shelf A2" in page
    assert "J-2" in live and "2 tags read" in live
    session.refresh_from_db()
    assert session.status == InventoryStatus.CLOSED
    assert "Missing (flagged)" in closed and "J-2" in closed and "Close the inventory" not in closed
    assert Flag.objects.get(kind=FlagKind.INVENTORY_MISSING).media.code == "J-2"


def test_the_pages_keep_clinicians_out_and_auditors_read_only(shelf_items, cast, places):
    session = services.inventory_start(scope=places["shelf"], actor=cast["staff"])
    doctor, auditor = browser(cast["doctor"]), browser(cast["auditor"])

    assert doctor.get("/inventories/").status_code == 403
    assert doctor.get(f"/inventories/{session.pk}/").status_code == 403
    assert Client().get("/inventories/").status_code == 302
    page = auditor.get(f"/inventories/{session.pk}/").content.decode()
    assert "Close the inventory" not in page
    assert auditor.post(f"/inventories/{session.pk}/close/").status_code == 403
    assert auditor.post("/inventories/", {"scope": "FR-A1"}).status_code == 403
    assert InventorySession.objects.get().status == InventoryStatus.OPEN


def test_the_station_page_chooses_the_inventory_for_its_reads(station, shelf_items, cast, places):
    session = services.inventory_start(scope=places["shelf"], actor=cast["staff"])
    staff = browser(cast["staff"])

    staff.post("/station/shelf-reader/configure/", {"mode": ReaderMode.INVENTORY, "inventory": str(session.pk)})
    station["device"].refresh_from_db()
    assert station["device"].inventory == session
    assert f'value="{session.pk}"' in staff.get("/station/shelf-reader/").content.decode()

    staff.post("/station/shelf-reader/configure/", {"mode": ReaderMode.INVENTORY, "inventory": "4242"})
    station["device"].refresh_from_db()
    assert station["device"].inventory == session  # an unknown number changes nothing
    assert "There is no inventory 4242" in staff.get("/station/shelf-reader/").content.decode()


def test_events_carry_the_inventory(shelf_items, cast, places):
    session = services.inventory_start(scope=places["shelf"], actor=cast["staff"])
    services.inventory_close(session=session, actor=cast["staff"])
    kinds = list(CustodyEvent.objects.filter(kind__in=[EventKind.INVENTORY_STARTED, EventKind.INVENTORY_CLOSED])
                 .values_list("kind", "to_location__code"))
    assert kinds == [(EventKind.INVENTORY_STARTED, "FR-A1"), (EventKind.INVENTORY_CLOSED, "FR-A1")]
