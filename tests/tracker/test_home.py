"""The home page (a dashboard per role under the search box), the one search box, and the
place and person pages, as each member of the cast sees them through the Django test client."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from archive.models import Patient, Study
from tests.conftest import TEST_PASSWORD
from tracker import services
from tracker.choices import AccessAction, AccessSubject, ReaderMode, StudySource
from tracker.models import AccessLog, CustodyEvent, ReaderDevice, ScanRecord

pytestmark = pytest.mark.django_db


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


@pytest.fixture
def scene(cast, places, make_media):
    """Ada's jacket J-1 (tagged, one CT study) on shelf A1; J-2 lent to the doctor, due
    yesterday; CD-3 lent to doctor2; CD-4 belongs on A1 but sits on A2; a request of the doctor's
    approved for today and one of doctor2's queued behind it."""
    ada = Patient.objects.create(patient_id="MRN-4711", name="Ada Lovelace")
    study = Study.objects.create(
        study_instance_uid="1.2.840.4711.1",
        patient=ada,
        accession_number="ACC-77",
        modalities="CT",
        description="CT chest",
        medical_record_locator="J-1",
    )
    j1 = make_media("J-1", patient=ada)
    services.tag_bind(uid="04A1B2C3D4E5F6", media=j1, actor=cast["staff"])
    services.media_studies_link(
        media=j1, studies=[study], source=StudySource.MANUAL, actor=cast["staff"]
    )
    j2 = make_media("J-2", patient=ada)
    services.media_check_out(
        media=j2,
        borrower=cast["doctor"],
        actor=cast["staff"],
        due_at=timezone.now() - timedelta(days=1),
    )
    cd3 = make_media("CD-3", kind="cd")
    services.media_check_out(media=cd3, borrower=cast["doctor2"], actor=cast["staff"])
    cd4 = make_media("CD-4", kind="cd")
    services.media_seen(media=cd4, location=places["shelf2"], actor=cast["staff"])
    today = timezone.localdate()
    mine = services.loan_request_make(
        requester=cast["doctor"],
        media=j1,
        needed_from=today,
        needed_until=today,
        purpose="Follow-up",
    )
    services.loan_request_approve(request=mine, actor=cast["staff"])
    theirs = services.loan_request_make(
        requester=cast["doctor2"],
        media=j1,
        needed_from=today,
        needed_until=today,
        purpose="Teaching",
    )
    services.loan_request_approve(request=theirs, actor=cast["staff"])
    return {
        "j1": j1,
        "j2": j2,
        "cd3": cd3,
        "cd4": cd4,
        "study": study,
        "mine": mine,
        "theirs": theirs,
    }


# --- who may open what ----------------------------------------------------------------------------

ROLES = [None, "nobody", "doctor", "staff", "auditor", "admin"]
EVERYONE = {"doctor", "staff", "auditor", "admin"}
READ_ALL = {"staff", "auditor", "admin"}
PAGES = [
    ("/home/", EVERYONE),
    ("/search/", EVERYONE),
    ("/search/?q=MRN-4711", EVERYONE),
    ("/locations/", EVERYONE),
    ("/locations/FR-A1/", EVERYONE),
    ("/people/doctor/", EVERYONE - {"staff"} | READ_ALL),  # the doctor themself, and readers
    ("/people/doctor2/", READ_ALL),  # never a colleague's
    ("/people/staff/", READ_ALL),
    ("/labels/", {"staff", "admin"}),
]


@pytest.mark.parametrize(
    "path, who, expected",
    [
        pytest.param(
            path,
            who,
            (302 if who is None else 200 if who in allowed else 403),
            id=f"{path} as {who}",
        )
        for path, allowed in PAGES
        for who in ROLES
    ],
)
def test_each_role_opens_only_its_pages(page_for, scene, path, who, expected):
    events = CustodyEvent.objects.count()

    response = page_for(who).get(path)

    assert response.status_code == expected
    if expected == 302:
        assert response["Location"].startswith("/login/?next=")
    assert CustodyEvent.objects.count() == events  # reading a page records nothing in the ledger


def test_a_clinician_cannot_tell_which_login_names_exist(page_for, scene):
    assert page_for("doctor").get("/people/no-such-person/").status_code == 403
    assert page_for("staff").get("/people/no-such-person/").status_code == 404
    assert page_for("doctor").get("/locations/NOWHERE/").status_code == 404


def test_logging_in_lands_on_the_home_page(cast):
    response = Client().post(
        "/login/", {"username": "doctor", "password": TEST_PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == "/home/"
    assert "tracker/home/home.html" in [t.name for t in response.templates]


def test_the_menu_links_home_for_everyone_and_labels_for_the_file_room(page_for, scene):
    doctor, staff, auditor = (
        html(page_for(n).get("/home/")) for n in ("doctor", "staff", "auditor")
    )

    assert all('href="/home/"' in page for page in (doctor, staff, auditor))
    assert 'href="/labels/"' in staff
    assert 'href="/labels/"' not in doctor and 'href="/labels/"' not in auditor


# --- dashboards -----------------------------------------------------------------------------------


def count(page: str, name: str) -> str:
    found = re.search(rf'data-count="{name}">([^<]*)<', page)
    assert found, f"no count {name}"
    return found.group(1).strip()


def test_the_file_room_sees_todays_pull_list_flags_and_requests(page_for, scene):
    services.sweep(remind=False)  # J-2 is overdue: one flag

    page = html(page_for("staff").get("/home/"))

    assert count(page, "pull_today") == "1"  # J-1, once, for the first in its queue
    assert 'href="/requests/pull-list/"' in page
    assert count(page, "open_flags") == "1" and count(page, "overdue") == "1"
    assert count(page, "loans_overdue") == "1"
    assert 'id="search-q"' in page and 'action="/search/"' in page


def test_stations_read_from_lately_are_listed_with_their_mode(page_for, scene, places):
    busy = ReaderDevice.objects.create(
        name="desk-1", location=places["room"], mode=ReaderMode.CHECK_IN
    )
    quiet = ReaderDevice.objects.create(
        name="desk-2", location=places["room"], mode=ReaderMode.LOCATE
    )
    ReaderDevice.objects.create(name="desk-3", location=places["room"], mode=ReaderMode.LOCATE)
    for device in (busy, quiet):
        services.scan_record(
            device=device, event_id=uuid.uuid4(), raw_uid="DEADBEEF", read_at=timezone.now()
        )
    ScanRecord.objects.filter(device=quiet).update(received_at=timezone.now() - timedelta(hours=1))

    page = html(page_for("staff").get("/home/"))

    assert 'data-station="desk-1"' in page and "Check in" in page
    assert 'data-station="desk-2"' not in page and 'data-station="desk-3"' not in page


def test_pending_hand_overs_show_on_the_file_rooms_dashboard(page_for, scene, cast):
    services.handover_offer(media=scene["j2"], actor=cast["doctor"], to_holder=cast["doctor2"])

    page = html(page_for("admin").get("/home/"))

    assert count(page, "handovers") == "1"
    assert 'href="/media/J-2/"' in page


def test_a_quiet_day_says_so_instead_of_showing_empty_tables(page_for, cast, places):
    staff = html(page_for("staff").get("/home/"))
    doctor = html(page_for("doctor").get("/home/"))
    auditor = html(page_for("auditor").get("/home/"))

    assert "Nothing to pull today." in staff and "No station has read a tag lately" in staff
    assert "No hand-over is waiting." in staff and "No open flags" in staff
    assert "You have no open requests." in doctor and "You have nothing on loan." in doctor
    assert "Nobody has verified the ledger here yet." in auditor
    assert "The ledger is empty" in auditor


def test_a_doctor_sees_their_requests_with_queue_place_loans_and_hand_overs(page_for, scene, cast):
    services.handover_offer(media=scene["cd3"], actor=cast["doctor2"], to_holder=cast["doctor"])

    page = html(page_for("doctor").get("/home/"))
    other = html(page_for("doctor2").get("/home/"))

    assert f'data-request="{scene["mine"].pk}"' in page and "Place in the queue: 1" in page
    assert f'data-request="{scene["theirs"].pk}"' not in page
    assert "Place in the queue: 2" in other
    assert 'data-loan="J-2"' in page and "overdue" in page
    assert 'data-loan="CD-3"' not in page  # doctor2's loan
    assert 'href="/media/CD-3/"' in page  # ... offered to the doctor as a hand-over
    assert "File room" not in page and "Ledger integrity" not in page  # no other role's dashboard


def test_an_auditor_sees_the_last_verification_and_the_latest_events(page_for, scene, cast):
    AccessLog.objects.create(
        user=cast["auditor"],
        action=AccessAction.VERIFIED,
        subject_kind=AccessSubject.LEDGER,
        detail={"scope": "all", "ok": True, "events": 9},
    )
    # A later check of a range of events is not a verification of the whole ledger.
    AccessLog.objects.create(
        user=cast["admin"],
        action=AccessAction.VERIFIED,
        subject_kind=AccessSubject.LEDGER,
        subject="3..5",
        detail={"scope": "range", "ok": False, "first_bad_seq": 4},
    )
    last = CustodyEvent.objects.order_by("-seq").first()

    page = html(page_for("auditor").get("/home/"))

    assert 'data-verification="intact"' in page and "by auditor" in page
    assert "9 events checked." in page and "First bad event" not in page
    assert count(page, "ledger_size") == str(last.seq)
    assert f"<td>{last.seq}</td>" in page
    assert "File room" not in page  # and nothing of the file room's


def test_a_failed_verification_names_the_first_bad_event(page_for, scene, cast):
    AccessLog.objects.create(
        user=cast["admin"],
        action=AccessAction.VERIFIED,
        subject_kind=AccessSubject.LEDGER,
        detail={"ok": False, "first_bad_seq": 7},
    )

    page = html(page_for("admin").get("/home/"))

    assert 'data-verification="broken"' in page and "First bad event: 7." in page
    assert "Today&#x27;s pull list" in page or "Today's pull list" in page  # admins see both


# --- search ---------------------------------------------------------------------------------------


def found(page: str, kind: str) -> list[str]:
    return re.findall(rf'data-{kind}="([^"]+)"', page)


@pytest.mark.parametrize(
    "query, media, patients, studies",
    [
        ("MRN-4711", ["J-1", "J-2"], ["MRN-4711"], ["1.2.840.4711.1"]),
        ("lovelace", ["J-1", "J-2"], ["MRN-4711"], []),
        ("04:a1:b2:c3:d4:e5:f6", ["J-1"], [], []),  # a tag UID as a reader may type it
        ("ACC-77", ["J-1"], [], ["1.2.840.4711.1"]),
        ("1.2.840.4711.1", ["J-1"], [], ["1.2.840.4711.1"]),
        ("J-1", ["J-1"], [], ["1.2.840.4711.1"]),  # the jacket number a study names
        ("CD-3", ["CD-3"], [], []),
    ],
)
def test_one_box_finds_media_patients_and_studies(page_for, scene, query, media, patients, studies):
    page = html(page_for("doctor").get("/search/", {"q": query}))

    assert found(page, "media") == media
    assert found(page, "patient") == patients
    assert found(page, "study") == studies


def test_a_clinician_sees_where_each_item_is(page_for, scene):
    page = html(page_for("doctor").get("/search/", {"q": "CD"}))

    row = re.search(r'<tr data-media="CD-4">(.*?)</tr>', page, re.S).group(1)
    assert 'href="/locations/FR-A2/"' in row and "On shelf" in row
    lent = re.search(r'<tr data-media="CD-3">(.*?)</tr>', page, re.S).group(1)
    assert "Doctor2" in lent and "On loan" in lent


def test_the_search_explains_an_empty_box_and_a_miss(page_for, scene):
    empty = html(page_for("staff").get("/search/"))
    miss = html(page_for("staff").get("/search/", {"q": "NOTHING-LIKE-THIS"}))

    assert "Type what you have" in empty
    assert "Nothing matches “NOTHING-LIKE-THIS”" in miss


def test_a_live_search_gets_the_result_groups_only(page_for, scene):
    response = page_for("staff").get("/search/", {"q": "MRN-4711"}, headers={"HX-Request": "true"})

    page = html(response)
    assert "<html" not in page and found(page, "patient") == ["MRN-4711"]


# --- places ---------------------------------------------------------------------------------------


def test_a_shelf_shows_what_is_there_what_belongs_there_and_what_is_away(page_for, scene):
    page = html(page_for("doctor").get("/locations/FR-A1/"))

    assert count(page, "here") == "1"  # J-1
    assert count(page, "home") == "4"  # J-1, J-2, CD-3, CD-4
    assert count(page, "away") == "3"
    assert 'href="/locations/FR/"' in page  # the room it is in
    assert "Recent events here" not in page  # a clinician reads no custody chains


def test_a_room_lists_the_shelves_inside_it(page_for, scene):
    page = html(page_for("staff").get("/locations/FR/"))

    assert 'href="/locations/FR-A1/"' in page and 'href="/locations/FR-A2/"' in page
    assert "No item calls this place home." in page and "Nothing is here now." in page


def test_staff_see_a_places_events_and_may_print_its_labels(page_for, scene):
    page = html(page_for("staff").get("/locations/FR-A2/"))

    assert "Recent events here" in page and 'href="/media/CD-4/"' in page
    assert "/labels/?what=locations&amp;codes=FR-A2" in page


def test_an_auditor_reading_a_places_events_is_in_the_access_log(page_for, scene, cast):
    html(page_for("auditor").get("/locations/FR-A2/"))
    html(page_for("staff").get("/locations/FR-A2/"))

    logged = AccessLog.objects.get()
    assert (logged.user, logged.action, logged.subject_kind, logged.subject) == (
        cast["auditor"],
        AccessAction.VIEWED,
        AccessSubject.LOCATION,
        "FR-A2",
    )


def test_the_places_list_shows_the_tree(page_for, scene):
    page = html(page_for("doctor").get("/locations/"))

    codes = re.findall(r'href="/locations/([^/]+)/"', page)
    assert codes.index("FR") < codes.index("FR-A1") < codes.index("FR-A2")
    assert 'class="depth-1"' in page


# --- people ---------------------------------------------------------------------------------------


def test_a_doctor_sees_their_own_page(page_for, scene):
    page = html(page_for("doctor").get("/people/doctor/"))

    assert 'data-loan="J-2"' in page and "overdue" in page
    assert f'data-request="{scene["mine"].pk}"' in page and "Place in the queue: 1" in page
    assert "Recent events" not in page and "Print a badge label" not in page


def test_staff_see_a_borrowers_loans_requests_and_hand_overs(page_for, scene, cast):
    services.handover_offer(media=scene["cd3"], actor=cast["doctor2"], to_holder=cast["doctor"])

    page = html(page_for("staff").get("/people/doctor2/"))

    assert 'data-loan="CD-3"' in page and 'data-loan="J-2"' not in page
    assert f'data-request="{scene["theirs"].pk}"' in page and "Place in the queue: 2" in page
    assert "Hand-overs" in page and 'href="/media/CD-3/"' in page
    assert "Recent events" in page and "/labels/?what=badges&amp;codes=doctor2" in page


def test_an_auditor_reading_a_borrower_is_in_the_access_log(page_for, scene, cast):
    html(page_for("auditor").get("/people/doctor/"))

    logged = AccessLog.objects.get()
    assert (logged.subject_kind, logged.subject) == (AccessSubject.BORROWER, "doctor")


# --- accessibility basics -------------------------------------------------------------------------


class FormFields(HTMLParser):
    """Inputs a person fills in, the labels that name them, and the headings."""

    def __init__(self):
        super().__init__()
        self.fields, self.labelled, self.headings = [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in {"input", "select", "textarea"} and attrs.get("type") not in {"hidden", "submit"}:
            self.fields.append(attrs)
        elif tag == "label" and attrs.get("for"):
            self.labelled.add(attrs["for"])
        elif re.fullmatch(r"h[1-6]", tag):
            self.headings.append(tag)


@pytest.mark.parametrize(
    "path",
    [
        "/home/",
        "/search/?q=MRN-4711",
        "/locations/",
        "/locations/FR-A1/",
        "/people/doctor/",
        "/labels/",
    ],
)
def test_every_field_has_a_label_and_every_page_a_heading(page_for, scene, path):
    parser = FormFields()
    parser.feed(html(page_for("admin").get(path)))

    unlabelled = [
        f for f in parser.fields if f.get("id") not in parser.labelled and not f.get("aria-label")
    ]
    assert not unlabelled, unlabelled
    assert parser.headings and parser.headings[0] == "h1" and parser.headings.count("h1") == 1
