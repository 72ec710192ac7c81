"""The scan station page in Debian's Chromium against a real server: a reader's scan appears
live, a keyboard-wedge UID is a scan, an unknown tag gets bound, a check-out is undone, and the
page speaks Simplified Chinese."""
import re
import uuid
from datetime import UTC, datetime
from io import StringIO

import httpx
import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD
from tracker import services
from tracker.choices import MediaStatus

STATION = "counter-e2e"
TAG = "04A1B2C3D4E5F6"
UNKNOWN_TAG = "04998877665544"
CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def reader_key(cast, places):
    """The station's reader, registered as an admin would; its key as the command prints it."""
    out = StringIO()
    call_command("register_reader", STATION, "--location", "FR-A2", stdout=out, stderr=StringIO())
    return out.getvalue().strip()


@pytest.fixture
def jacket(make_media, cast):
    media = make_media("FJ-700")
    services.tag_bind(uid=TAG, media=media, actor=cast["staff"])
    return media


def open_station_as_staff(page, shoot):
    """Log in through the login page the station sends a stranger to, and wait for the stream."""
    page.goto(f"/station/{STATION}/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/station/"))
    page.fill("#id_username", "staff")
    page.fill("#id_password", TEST_PASSWORD)
    shoot("login")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(rf"/station/{STATION}/$"))
    expect(page.locator("#connection")).to_have_text("Live")


def reader_posts(site: str, key: str, uid: str) -> dict:
    """What the agent does for one read: POST it to the scan API with the reader's key."""
    read = {"event_id": str(uuid.uuid4()), "uid": uid, "read_at": datetime.now(UTC).isoformat()}
    response = httpx.post(f"{site}/api/v1/scans/", json={"scans": [read]},
                          headers={"Authorization": f"Api-Key {key}"}, timeout=10)
    response.raise_for_status()
    (result,) = response.json()["results"]
    return result


def newest_row(page):
    return page.locator("#scans tr.scan").first


def test_it_shows_a_scan_from_the_reader_live_without_reloading(
    page, site, reader_key, jacket, shoot
):
    open_station_as_staff(page, shoot)
    expect(page.locator("#no-scans")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")

    result = reader_posts(site, reader_key, TAG)

    assert result["status"] == 201 and result["media"] == "FJ-700"
    row = newest_row(page)
    expect(row.locator(".media")).to_have_text("FJ-700")
    expect(row.locator(".uid")).to_have_text(TAG)
    expect(row.locator(".message")).to_have_text("FJ-700 seen at Shelf A2")
    expect(row).to_have_class(re.compile(r"\boutcome-ok\b"))
    expect(row).to_have_css("background-color", "rgb(232, 245, 236)")  # the stylesheet's green
    expect(page.locator("#no-scans")).to_be_hidden()
    assert page.evaluate("window.stillTheSamePage") is True, "the page reloaded to show the scan"
    shoot("live-scan")


def test_it_records_a_uid_typed_by_a_keyboard_wedge_reader(page, reader_key, jacket, shoot, places):
    open_station_as_staff(page, shoot)
    wedge = page.locator("#wedge-uid")
    expect(wedge).to_be_focused()  # a wedge reader types into whatever has the focus

    page.keyboard.type("04:a1:b2:c3:d4:e5:f6")
    page.keyboard.press("Enter")

    row = newest_row(page)
    expect(row.locator(".media")).to_have_text("FJ-700")
    expect(row.locator(".uid")).to_have_text(TAG)
    expect(row).to_have_class(re.compile(r"\boutcome-ok\b"))
    expect(page.locator("#scans tr.scan")).to_have_count(1)  # the live stream does not repeat it
    expect(wedge).to_have_value("")
    expect(wedge).to_be_focused()  # ready for the next tag
    shoot("wedge-scan")
    jacket.refresh_from_db()
    assert jacket.current_location == places["shelf2"]


def test_it_offers_to_bind_an_unknown_tag_and_binding_works(page, reader_key, make_media, shoot):
    make_media("FJ-701")
    open_station_as_staff(page, shoot)

    page.keyboard.type(UNKNOWN_TAG)
    page.keyboard.press("Enter")
    row = newest_row(page)
    expect(row).to_have_class(re.compile(r"\boutcome-unknown_tag\b"))
    expect(row.locator(".media")).to_have_text("")
    shoot("unknown-tag")

    row.get_by_role("link", name="Bind to media").click()
    expect(page).to_have_url(re.compile(rf"/station/{STATION}/bind/\?uid={UNKNOWN_TAG}$"))
    expect(page.locator("#uid")).to_have_value(UNKNOWN_TAG)
    page.fill("#media", "FJ-701")
    shoot("bind-form")
    page.get_by_role("button", name="Bind", exact=True).click()

    expect(page).to_have_url(re.compile(rf"/station/{STATION}/$"))
    expect(page.locator("#connection")).to_have_text("Live")
    page.keyboard.type(UNKNOWN_TAG)
    page.keyboard.press("Enter")
    row = newest_row(page)
    expect(row.locator(".media")).to_have_text("FJ-701")
    expect(row).to_have_class(re.compile(r"\boutcome-ok\b"))
    shoot("bound-tag-scanned")
    assert services.media_for_tag(UNKNOWN_TAG).code == "FJ-701"


def test_it_keeps_the_bind_link_of_an_unknown_tag_after_a_reload(page, reader_key, shoot):
    """Rows drawn by the server (after a reload) offer the same next step as rows drawn live."""
    open_station_as_staff(page, shoot)
    page.keyboard.type(UNKNOWN_TAG)
    page.keyboard.press("Enter")
    live_link = newest_row(page).get_by_role("link", name="Bind to media")
    expect(live_link).to_be_visible()
    live_href = live_link.get_attribute("href")

    page.reload()

    reloaded_link = newest_row(page).get_by_role("link", name="Bind to media")
    expect(reloaded_link).to_have_attribute("href", live_href)
    shoot("reloaded")


def test_it_checks_out_to_the_chosen_borrower_and_undoes_it(page, site, reader_key, jacket, shoot):
    open_station_as_staff(page, shoot)
    page.check("input[name=mode][value=check_out]")
    page.select_option("#borrower", "doctor")
    shoot("check-out-settings")
    page.get_by_role("button", name="Use these settings").click()
    expect(page.locator("input[name=mode][value=check_out]")).to_be_checked()
    expect(page.locator("#borrower")).to_have_value("doctor")
    expect(page.locator("#connection")).to_have_text("Live")

    reader_posts(site, reader_key, TAG)

    row = newest_row(page)
    expect(row.locator(".message")).to_have_text(
        re.compile(r"^FJ-700 checked out to Doctor, due \d{4}-\d\d-\d\d$")
    )
    expect(row).to_have_class(re.compile(r"\boutcome-ok\b"))
    jacket.refresh_from_db()
    assert (jacket.status, jacket.current_holder.username) == (MediaStatus.ON_LOAN, "doctor")
    shoot("checked-out")

    with page.expect_response(re.compile(rf"/station/{STATION}/undo/$")) as undo:
        row.get_by_role("button", name="Undo").click()
    assert undo.value.status == 200
    expect(row).to_have_class(re.compile(r"\bundone\b"))
    expect(row.locator("button.undo")).to_have_text("Undone")
    expect(row.locator("button.undo")).to_be_disabled()
    shoot("undone")
    jacket.refresh_from_db()
    assert jacket.status == MediaStatus.ON_SHELF and jacket.current_holder is None

    row.locator(".media a").click()
    expect(page.locator("h1 .status")).to_have_text("On shelf")
    shoot("item-after-undo")


def test_it_speaks_simplified_chinese_when_chosen_in_the_language_menu(
    page, reader_key, compiled_messages, shoot
):
    open_station_as_staff(page, shoot)

    page.select_option("#language", "zh-hans")

    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page).to_have_url(re.compile(rf"/station/{STATION}/$"))
    shoot("zh-hans")
    expect(page.locator("header a.brand")).to_have_text(CJK)  # the site's own frame is Chinese
    expect(page.locator("h1")).to_have_text(CJK)
    expect(page.locator("form.station-setup legend")).to_have_text(CJK)
    expect(page.locator("form.station-setup button[type=submit]")).to_have_text(CJK)
    expect(page.locator("h2")).to_have_text(CJK)
    expect(page.locator("#connection")).to_have_text(CJK)  # "Live", written by station.js
