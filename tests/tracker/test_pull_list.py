"""The pull list (issue 6, point 2): a day's approved requests shelf by shelf in walking order, on
screen and as a printable A4 PDF, read back here with pypdf."""

import re
import subprocess
import sys
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone
from django.utils.translation.reloader import translation_file_changed
from pypdf import PdfReader

from archive.models import Patient
from tests.conftest import make_user
from tracker import services
from tracker.choices import LocationKind, Role
from tracker.models import Location

pytestmark = pytest.mark.django_db


@pytest.fixture
def page_for(cast):
    def login(name: str | None, language: str | None = None) -> Client:
        client = Client(headers={"accept-language": language} if language else {})
        if name:
            client.force_login(cast[name])
        return client

    return login


@pytest.fixture
def walk(places):
    """Shelves whose walking order is not their codes' order, in two rooms:
    FR (order 0): FR-A2 (order 1), then FR-A1 (order 2); ARCH (order 10): ARCH-1."""
    places["shelf"].shelf_order, places["shelf2"].shelf_order = 2, 1
    places["shelf"].save()
    places["shelf2"].save()
    archive = Location.objects.create(
        code="ARCH", name="Archive basement", kind=LocationKind.ROOM, shelf_order=10
    )
    basement = Location.objects.create(
        code="ARCH-1", name="Basement bay 1", kind=LocationKind.SHELF, parent=archive, shelf_order=0
    )
    return {
        "FR-A1": places["shelf"],
        "FR-A2": places["shelf2"],
        "ARCH-1": basement,
        "ARCH": archive,
    }


def asked(requester, media, *, starts=0, days=2, staff=None, **extra):
    """A request for `media` needed from today + `starts` for `days` days, approved by `staff`."""
    today = timezone.localdate()
    made = services.loan_request_make(
        requester=requester,
        media=media,
        purpose="Follow-up",
        needed_from=today + timedelta(days=starts),
        needed_until=today + timedelta(days=starts + days),
        **extra,
    )
    return services.loan_request_approve(request=made, actor=staff) if staff else made


@pytest.fixture
def day_of_requests(cast, walk, make_media, places):
    """Approved requests due today on three shelves, and requests the list must leave out."""
    staff, doctor, doctor2 = cast["staff"], cast["doctor"], cast["doctor2"]
    patient = Patient.objects.create(patient_id="MRN-77", name="Zhang^Wei")
    items = {
        code: make_media(code, home_location=walk[shelf], patient=patient)
        for code, shelf in [
            ("J-A1", "FR-A1"),
            ("J-A2a", "FR-A2"),
            ("J-A2b", "FR-A2"),
            ("J-ARCH", "ARCH-1"),
            ("J-LATER", "FR-A1"),
            ("J-PENDING", "FR-A1"),
            ("J-READY", "FR-A1"),
            ("J-TODAY", "FR-A1"),
        ]
    }
    asked(doctor, items["J-A1"], staff=staff, destination=places["clinic"])
    asked(doctor2, items["J-A1"], staff=staff)  # second in J-A1's queue
    asked(doctor, items["J-A2a"], staff=staff)
    asked(doctor2, items["J-A2b"], staff=staff)
    asked(doctor, items["J-ARCH"], staff=staff)
    asked(doctor, items["J-LATER"], starts=3, staff=staff)  # needed from in three days
    asked(doctor, items["J-PENDING"])  # nobody approved it
    services.loan_request_ready(
        request=asked(doctor, items["J-READY"], staff=staff), actor=staff
    )  # pulled
    asked(doctor, items["J-TODAY"], days=0, staff=staff)  # needed today only
    return items


def shelf_codes(shelves):
    return [shelf.location.code for shelf in shelves]


def test_the_days_requests_come_shelf_by_shelf_in_walking_order(day_of_requests, cast):
    shelves = services.pull_list(day=timezone.localdate())

    assert shelf_codes(shelves) == ["FR-A2", "FR-A1", "ARCH-1"]
    assert [[r.media.code for r in shelf.requests] for shelf in shelves] == [
        ["J-A2a", "J-A2b"],
        ["J-A1", "J-TODAY"],
        ["J-ARCH"],
    ]
    first_a1 = shelves[1].requests[0]
    assert (first_a1.requester, [r.requester for r in first_a1.also]) == (
        cast["doctor"],
        [cast["doctor2"]],
    )
    assert [p.code for p in shelves[2].path] == ["ARCH", "ARCH-1"]


def test_another_day_lists_what_is_needed_then_and_no_request_past_its_last_day(day_of_requests):
    def codes(days_ahead: int) -> set[str]:
        shelves = services.pull_list(day=timezone.localdate() + timedelta(days=days_ahead))
        return {r.media.code for shelf in shelves for r in shelf.requests}

    assert codes(2) == {"J-A1", "J-A2a", "J-A2b", "J-ARCH"}  # J-TODAY was for today only
    assert codes(3) == {"J-LATER"}  # the others were needed until the day before


def test_an_item_away_on_loan_is_listed_under_its_home_shelf_with_where_it_is(
    day_of_requests, cast
):
    away = day_of_requests["J-ARCH"]
    services.media_check_out(
        media=away, borrower=cast["doctor2"], actor=cast["staff"], queue_override="ED case"
    )

    shelves = services.pull_list(day=timezone.localdate())

    assert shelf_codes(shelves)[-1] == "ARCH-1"
    assert shelves[-1].requests[0].media.status == "on_loan"


def test_a_file_room_may_ask_for_its_own_shelves_only(day_of_requests, walk):
    assert shelf_codes(services.pull_list(day=timezone.localdate(), within=walk["ARCH"])) == [
        "ARCH-1"
    ]


# --- on screen ------------------------------------------------------------------------------------


def test_the_page_shows_each_shelf_in_order_with_its_items(page_for, day_of_requests):
    response = page_for("staff").get("/requests/pull-list/")

    html = response.content.decode()
    assert response.status_code == 200
    positions = [html.index(f'id="shelf-{code}"') for code in ("FR-A2", "FR-A1", "ARCH-1")]
    assert positions == sorted(positions)
    assert (
        positions[0]
        < html.index("J-A2a")
        < html.index("J-A2b")
        < positions[1]
        < html.index("J-A1")
        < positions[2]
    )
    assert "J-LATER" not in html and "J-PENDING" not in html and "J-READY" not in html
    assert "MRN-77" in html and "Zhang" not in html  # the patient's ID, as on the queue page
    assert f"/requests/pull-list.pdf?day={timezone.localdate().isoformat()}" in html


def test_the_page_for_another_day_and_a_day_it_cannot_read(page_for, day_of_requests):
    later = (timezone.localdate() + timedelta(days=3)).isoformat()
    staff = page_for("staff")

    assert "J-LATER" in staff.get("/requests/pull-list/", {"day": later}).content.decode()
    wrong = staff.get("/requests/pull-list/", {"day": "24/11/2026"}).content.decode()
    assert "Give the day as YYYY-MM-DD; showing today." in wrong and "J-A1" in wrong


@pytest.mark.parametrize(
    "who, status",
    [("staff", 200), ("admin", 200), ("auditor", 200), ("doctor", 403), ("nobody", 403)],
)
@pytest.mark.parametrize("path", ["/requests/pull-list/", "/requests/pull-list.pdf"])
def test_the_file_room_and_auditors_read_the_pull_list_and_nobody_else(
    page_for, cast, path, who, status
):
    assert page_for(who).get(path).status_code == status


def test_someone_not_logged_in_is_sent_to_log_in(page_for):
    response = page_for(None).get("/requests/pull-list.pdf")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


# --- printed ------------------------------------------------------------------------------------


def pdf_text(response) -> tuple[list[str], int]:
    reader = PdfReader(BytesIO(response.content))
    return [page.extract_text() for page in reader.pages], len(reader.pages)


def test_the_pdf_lists_the_shelves_in_order_with_their_items(page_for, day_of_requests):
    day = timezone.localdate().isoformat()

    response = page_for("staff").get("/requests/pull-list.pdf", {"day": day})

    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'inline; filename="pull-list-{day}.pdf"'
    pages, count = pdf_text(response)
    text = "\n".join(pages)
    assert count == 1 and "Page 1 of 1" in text
    assert f"Pull list for {day}" in text and "File room: File room, Archive basement" in text
    assert "5 items on 3 shelves" in text and "Printed " in text
    order = [
        text.index(marker)
        for marker in (
            "Shelf FR-A2",
            "J-A2a",
            "J-A2b",
            "Shelf FR-A1",
            "J-A1",
            "J-TODAY",
            "Shelf ARCH-1",
            "J-ARCH",
        )
    ]
    assert order == sorted(order)
    assert "J-LATER" not in text and "J-PENDING" not in text and "J-READY" not in text
    assert "MRN-77" in text and "Zhang" not in text
    assert re.search(r"then\s+Doctor2", text)  # J-A1's second request, under the first


def test_the_pdf_of_a_file_room_heads_its_pages_with_its_name(page_for, day_of_requests):
    response = page_for("auditor").get("/requests/pull-list.pdf", {"room": "ARCH"})

    text = "\n".join(pdf_text(response)[0])
    assert "File room: Archive basement" in text and "1 items on 1 shelves" in text
    assert "J-ARCH" in text and "J-A1" not in text


@pytest.fixture
def compiled_messages():
    """The Simplified Chinese catalogue, compiled if it is missing or older than its .po (the
    *.mo files are built, not committed)."""
    po = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
        done = subprocess.run(
            [sys.executable, "manage.py", "compilemessages", "--ignore=.venv", "-v0"],
            cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, f"compilemessages failed: {done.stdout}{done.stderr}"
        translation_file_changed(sender=None, file_path=mo)
    return mo


def test_the_pdf_prints_in_simplified_chinese(
    page_for, cast, day_of_requests, walk, compiled_messages
):
    chen = make_user("chen", Role.CLINICIAN, last_name="陈")
    chen.first_name = "伟"
    chen.save()
    asked(chen, day_of_requests["J-A2a"], staff=cast["staff"])

    response = page_for("staff", language="zh-hans").get("/requests/pull-list.pdf")

    assert response.status_code == 200
    text = "\n".join(pdf_text(response)[0])
    for header in (
        "架位",
        "病历号",
        "介质",
        "申请人",
        "目的地",
    ):  # Shelf, Patient ID, Item, Asked by, Destination
        assert header in text, header
    assert "伟" in text and "陈" in text  # a Chinese name prints too
    assert "J-A2a" in text and "MRN-77" in text


def test_a_long_pull_list_runs_over_pages_that_say_how_many_there_are(
    page_for, cast, walk, make_media
):
    for n in range(60):
        asked(
            cast["doctor"],
            make_media(f"J-{n:03d}", home_location=walk["FR-A1"]),
            staff=cast["staff"],
        )

    pages, count = pdf_text(page_for("staff").get("/requests/pull-list.pdf"))

    assert count >= 2
    for number, text in enumerate(pages, start=1):
        assert f"Page {number} of {count}" in text
        assert "Pull list for" in text  # the header is on every page
        assert "Patient ID" in text  # ... and the table's heading row
    everything = "\n".join(pages)
    assert all(f"J-{n:03d}" in everything for n in range(60))


def test_an_empty_day_prints_a_page_that_says_so(page_for, places):
    text = "\n".join(pdf_text(page_for("staff").get("/requests/pull-list.pdf"))[0])
    assert "Nothing to pull for this day." in text and "0 items on 0 shelves" in text


def test_a_pdf_for_a_day_it_cannot_read_is_refused_with_the_reason(page_for, places):
    response = page_for("staff").get("/requests/pull-list.pdf", {"day": "tomorrow"})
    assert response.status_code == 400 and "YYYY-MM-DD" in response.content.decode()
