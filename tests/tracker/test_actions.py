"""The file room's page forms for the custody services (tracker/views/actions.py): register,
check out (with the request queue's refusal and its override), return, transfer, mark seen,
retire, bind and unbind a tag. Each through the Django test client as a person uses it: the
form for staff only, a success appends one ledger event and changes the item, a refusal shows
the service's message and changes nothing."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.tracker.form_errors import field_error, invalid_inputs, read, value_of
from tests.test_translations import chinese_catalogue, chinese_client, english_on, scene  # noqa: F401
from tracker import services
from tracker.choices import EventKind, MediaStatus
from tracker.models import CustodyEvent, Loan, Media, TagBinding

pytestmark = pytest.mark.django_db


def events() -> int:
    return CustodyEvent.objects.count()


def last_event() -> CustodyEvent:
    return CustodyEvent.objects.order_by("-seq").first()


def item(code: str) -> Media:
    return Media.objects.get(code=code)


@pytest.fixture
def jacket(make_media):
    return make_media("FJ-1")


@pytest.fixture
def lent(cast, jacket):
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    return jacket


FORMS = [
    "/media/new/",
    "/media/FJ-1/check-out/",
    "/media/FJ-1/return/",
    "/media/FJ-1/transfer/",
    "/media/FJ-1/seen/",
    "/media/FJ-1/retire/",
    "/media/FJ-1/tag/",
]


# --- who may use the forms ------------------------------------------------------------------------


@pytest.mark.parametrize("url", FORMS)
@pytest.mark.parametrize(
    ("who", "status"),
    [("staff", 200), ("admin", 200), ("doctor", 403), ("auditor", 403), ("nobody", 403)],
)
def test_each_form_is_for_the_file_room_and_admins_only(page_for, cast, jacket, url, who, status):
    if url.endswith("/return/"):  # an item on the shelf has nothing to return
        services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    page = page_for(who).get(url)

    assert page.status_code == status
    if status == 200:
        html = page.content.decode()
        assert 'name="csrfmiddlewaretoken"' in html
        assert "<label" in html


@pytest.mark.parametrize("url", FORMS)
def test_a_visitor_not_logged_in_is_sent_to_the_login_page(page_for, jacket, url):
    page = page_for(None).get(url)

    assert page.status_code == 302 and "/login/" in page["Location"]


@pytest.mark.parametrize("url", FORMS)
@pytest.mark.parametrize("who", ["doctor", "auditor"])
def test_a_post_by_someone_else_changes_nothing(page_for, cast, places, jacket, url, who):
    before = events()
    fields = {"code": "FJ-9", "kind": "cd", "home": "FR-A1", "borrower": "doctor", "place": "ORTHO",
              "reason": "Broken", "confirm": "yes", "uid": "04A1B2C3", "op": "bind"}

    assert page_for(who).post(url, fields).status_code == 403
    assert events() == before


def test_the_item_page_offers_the_actions_to_staff_only(page_for, jacket):
    staff_page = page_for("staff").get("/media/FJ-1/").content.decode()
    assert 'href="/media/FJ-1/check-out/"' in staff_page
    assert 'href="/media/FJ-1/retire/"' in staff_page and 'href="/media/FJ-1/tag/"' in staff_page
    assert 'href="/media/FJ-1/return/"' not in staff_page  # it is on the shelf

    for who in ("doctor", "auditor"):
        page = page_for(who).get("/media/FJ-1/")
        assert page.status_code == 200
        assert "/media/FJ-1/check-out/" not in page.content.decode()


def test_the_item_page_of_a_loan_offers_the_return(page_for, lent):
    html = page_for("staff").get("/media/FJ-1/").content.decode()

    assert 'href="/media/FJ-1/return/"' in html and 'href="/media/FJ-1/check-out/"' not in html


def test_forms_that_cannot_apply_say_why_instead(page_for, cast, jacket):
    staff = page_for("staff")
    nothing_to_return = staff.get("/media/FJ-1/return/").content.decode()
    assert "FJ-1 is on the shelf, so there is nothing to return." in nothing_to_return
    assert 'class="card action-form"' not in nothing_to_return

    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    on_loan = staff.get("/media/FJ-1/check-out/").content.decode()
    assert "FJ-1 is on loan, so it cannot be checked out again." in on_loan
    assert 'href="/media/FJ-1/return/"' in on_loan and 'class="card action-form"' not in on_loan

    services.media_return(media=jacket, actor=cast["staff"])
    services.media_retire(media=jacket, actor=cast["staff"], reason="Lost")
    for url in FORMS[1:]:
        retired = staff.get(url).content.decode()
        assert "This item is retired; nothing more can be done with it." in retired, url
        assert 'class="card action-form"' not in retired, url


# --- register -------------------------------------------------------------------------------------


def test_registering_an_item_puts_it_on_its_home_shelf(page_for, cast, places):
    before = events()

    page = page_for("staff").post(
        "/media/new/",
        {"code": " CD-77 ", "kind": "cd", "home": "FR-A2", "patient_id": "", "description": "Knee MRI"},
        follow=True,
    )

    assert page.redirect_chain == [("/media/CD-77/", 302)]
    assert "CD-77 is registered on" in page.content.decode()
    media = item("CD-77")
    assert (media.kind, media.home_location, media.description) == ("cd", places["shelf2"], "Knee MRI")
    assert events() == before + 1
    assert (last_event().kind, last_event().actor) == (EventKind.MEDIA_REGISTERED, cast["staff"])


def test_registering_a_code_twice_shows_the_conflict_and_adds_nothing(page_for, jacket):
    before = events()

    page = page_for("staff").post("/media/new/", {"code": "FJ-1", "kind": "cd", "home": "FR-A2"})

    assert page.status_code == 409
    html = page.content.decode()
    assert "Media FJ-1 is already registered." in html and 'role="alert"' in html
    assert 'value="FJ-1"' in html  # what was typed is kept
    assert events() == before
    assert Media.objects.count() == 1


def test_registering_with_an_unknown_patient_is_refused(page_for, places):
    page = page_for("staff").post(
        "/media/new/", {"code": "FJ-2", "kind": "film_jacket", "home": "FR-A1", "patient_id": "P-404"}
    )

    assert page.status_code == 400
    assert "No patient has the ID P-404." in page.content.decode()
    assert not Media.objects.filter(code="FJ-2").exists() and events() == 0


# --- check out, and the request queue -------------------------------------------------------------


def test_checking_out_lends_the_item_to_the_borrower(page_for, cast, places, jacket):
    before = events()
    due = timezone.localdate() + timedelta(days=5)

    page = page_for("staff").post(
        "/media/FJ-1/check-out/",
        {"borrower": "doctor", "destination": "ORTHO", "due": due.isoformat()},
        follow=True,
    )

    assert page.redirect_chain == [("/media/FJ-1/", 302)]
    assert f"FJ-1 is checked out to Doctor, due {due.isoformat()}." in page.content.decode()
    loan = Loan.objects.get(media=jacket, returned_at__isnull=True)
    assert loan.borrower == cast["doctor"]
    assert timezone.localtime(loan.due_at).date() == due
    assert item("FJ-1").status == MediaStatus.ON_LOAN
    assert item("FJ-1").current_location == places["clinic"]
    assert events() == before + 1 and last_event().actor == cast["staff"]


def test_checking_out_an_item_already_on_loan_is_refused(page_for, lent):
    before = events()

    page = page_for("staff").post("/media/FJ-1/check-out/", {"borrower": "doctor2"})

    assert page.status_code == 409
    assert "FJ-1 has been on loan to Doctor since" in page.content.decode()
    assert events() == before
    assert Loan.objects.get(returned_at__isnull=True).borrower.username == "doctor"


def test_a_due_date_in_the_past_is_refused(page_for, jacket):
    yesterday = timezone.localdate() - timedelta(days=1)

    page = page_for("staff").post(
        "/media/FJ-1/check-out/", {"borrower": "doctor", "due": yesterday.isoformat()}
    )

    assert page.status_code == 400
    assert "The due date cannot be in the past." in page.content.decode()
    assert not Loan.objects.exists()


def test_lending_past_a_queued_request_asks_for_a_reason_then_lends_with_it(page_for, cast, jacket):
    today = timezone.localdate()
    queued = services.loan_request_make(
        requester=cast["doctor"], media=jacket, needed_from=today,
        needed_until=today + timedelta(days=3), purpose="Tumour board",
    )
    services.loan_request_approve(request=queued, actor=cast["staff"])
    staff = page_for("staff")
    form = staff.get("/media/FJ-1/check-out/").content.decode()
    assert 'name="queue_override"' not in form  # asked for only after a refusal
    before = events()

    refused = staff.post("/media/FJ-1/check-out/", {"borrower": "doctor2"})

    assert refused.status_code == 409
    html = refused.content.decode()
    assert "FJ-1 is held for Doctor" in html and "give a reason to lend it out of turn" in html
    assert 'name="queue_override"' in html
    assert 'value="doctor2" selected' in html  # the borrower chosen stays chosen
    assert events() == before and not Loan.objects.exists()

    lent = staff.post(
        "/media/FJ-1/check-out/",
        {"borrower": "doctor2", "queue_override": "Emergency surgery"},
        follow=True,
    )

    assert lent.redirect_chain == [("/media/FJ-1/", 302)]
    assert Loan.objects.get().borrower == cast["doctor2"]
    assert events() == before + 1
    assert last_event().payload.get("queue_override") == "Emergency surgery"


# --- return ---------------------------------------------------------------------------------------


def test_the_return_form_offers_the_home_shelf_and_returns_there(page_for, cast, places, lent):
    staff = page_for("staff")
    form = staff.get("/media/FJ-1/return/").content.decode()
    assert 'value="FR-A1" selected' in form
    before = events()

    page = staff.post("/media/FJ-1/return/", {"place": "FR-A1"}, follow=True)

    assert "FJ-1 is returned to" in page.content.decode()
    media = item("FJ-1")
    assert (media.status, media.current_location, media.current_holder) == (
        MediaStatus.ON_SHELF, places["shelf"], None,
    )
    assert events() == before + 1 and last_event().kind == EventKind.RETURNED


def test_returning_an_item_on_the_shelf_is_refused(page_for, jacket):
    before = events()

    page = page_for("staff").post("/media/FJ-1/return/", {"place": "FR-A2"})

    assert page.status_code == 409
    assert "FJ-1 is not on loan: it is already on the shelf at FR-A1." in page.content.decode()
    assert events() == before


# --- transfer -------------------------------------------------------------------------------------


def test_transferring_a_loan_to_a_colleague_and_a_place(page_for, cast, places, lent):
    before = events()

    page = page_for("staff").post(
        "/media/FJ-1/transfer/", {"person": "doctor2", "place": "ORTHO"}, follow=True
    )

    assert page.redirect_chain == [("/media/FJ-1/", 302)]
    assert "FJ-1 is transferred to" in page.content.decode()
    media = item("FJ-1")
    assert (media.current_holder, media.current_location) == (cast["doctor2"], places["clinic"])
    assert events() == before + 1 and last_event().kind == EventKind.TRANSFERRED


def test_handing_an_item_on_the_shelf_to_a_person_is_refused(page_for, jacket):
    before = events()

    page = page_for("staff").post("/media/FJ-1/transfer/", {"person": "doctor"})

    assert page.status_code == 409
    assert "FJ-1 is not on loan; check it out to give it to someone." in page.content.decode()
    assert events() == before and item("FJ-1").current_holder is None


def test_a_transfer_to_nowhere_is_refused(page_for, lent):
    before = events()

    page = page_for("staff").post("/media/FJ-1/transfer/", {})

    assert page.status_code == 400
    assert "Say where the item goes" in page.content.decode()
    assert events() == before


# --- seen -----------------------------------------------------------------------------------------


def test_marking_an_item_seen_at_a_place(page_for, places, jacket):
    before = events()

    page = page_for("staff").post("/media/FJ-1/seen/", {"place": "FR-A2"}, follow=True)

    assert "FJ-1 is recorded as seen at" in page.content.decode()
    assert item("FJ-1").current_location == places["shelf2"]
    assert events() == before + 1 and last_event().kind == EventKind.SEEN


def test_marking_seen_without_a_place_is_refused(page_for, places, jacket):
    before = events()

    page = page_for("staff").post("/media/FJ-1/seen/", {"place": ""})

    assert page.status_code == 400
    assert "Choose a place." in page.content.decode()
    assert events() == before and item("FJ-1").current_location == places["shelf"]


# --- retire ---------------------------------------------------------------------------------------


def test_retiring_needs_the_confirmation_then_retires(page_for, jacket):
    staff = page_for("staff")
    before = events()

    unconfirmed = staff.post("/media/FJ-1/retire/", {"reason": "Water damage"})

    assert unconfirmed.status_code == 400
    assert "Tick the box to confirm" in unconfirmed.content.decode()
    assert events() == before and item("FJ-1").status == MediaStatus.ON_SHELF

    page = staff.post("/media/FJ-1/retire/", {"reason": "Water damage", "confirm": "yes"}, follow=True)

    assert "FJ-1 is retired: Water damage" in page.content.decode()
    assert item("FJ-1").status == MediaStatus.RETIRED
    assert events() == before + 1
    assert (last_event().kind, last_event().payload["reason"]) == (EventKind.RETIRED, "Water damage")
    assert "nothing more can be done with it" in page.content.decode()


def test_retiring_an_item_on_loan_is_refused(page_for, lent):
    before = events()

    page = page_for("staff").post("/media/FJ-1/retire/", {"reason": "Old", "confirm": "yes"})

    assert page.status_code == 409
    assert "FJ-1 is on loan; return it before retiring it." in page.content.decode()
    assert events() == before and item("FJ-1").status == MediaStatus.ON_LOAN


def test_a_retired_item_cannot_be_moved_from_a_form(page_for, cast, jacket):
    services.media_retire(media=jacket, actor=cast["staff"], reason="Lost")
    before = events()

    page = page_for("staff").post("/media/FJ-1/seen/", {"place": "FR-A2"})

    assert page.status_code == 409
    assert "FJ-1 is retired and cannot be moved." in page.content.decode()
    assert events() == before


# --- tags -----------------------------------------------------------------------------------------


def test_binding_a_uid_typed_in_a_reader_format_then_unbinding_it(page_for, cast, jacket):
    staff = page_for("staff")
    before = events()

    bound = staff.post(
        "/media/FJ-1/tag/",
        {"op": "bind", "uid": "c3:b2:a1:04", "format": "hex_reversed"},
        follow=True,
    )

    assert "Tag 04A1B2C3 is bound to FJ-1." in bound.content.decode()
    binding = TagBinding.objects.get(media=jacket, unbound_at__isnull=True)
    assert binding.tag.uid == "04A1B2C3"
    assert events() == before + 1 and last_event().kind == EventKind.TAG_BOUND
    form = staff.get("/media/FJ-1/tag/").content.decode()
    assert 'value="unbind"' in form and "04A1B2C3" in form

    missing_reason = staff.post("/media/FJ-1/tag/", {"op": "unbind", "reason": ""})
    assert missing_reason.status_code == 400
    assert "Give a reason for unbinding the tag." in missing_reason.content.decode()
    assert events() == before + 1

    unbound = staff.post("/media/FJ-1/tag/", {"op": "unbind", "reason": "Tag cracked"}, follow=True)

    assert "Tag 04A1B2C3 is unbound from FJ-1." in unbound.content.decode()
    assert not TagBinding.objects.filter(media=jacket, unbound_at__isnull=True).exists()
    assert events() == before + 2
    assert (last_event().kind, last_event().payload["reason"]) == (EventKind.TAG_UNBOUND, "Tag cracked")


def test_binding_a_tag_that_is_on_another_item_is_refused(page_for, cast, make_media, jacket):
    other = make_media("FJ-2")
    services.tag_bind(uid="04A1B2C3", media=other, actor=cast["staff"])
    before = events()

    page = page_for("staff").post("/media/FJ-1/tag/", {"op": "bind", "uid": "04 A1 B2 C3", "format": "hex"})

    assert page.status_code == 409
    assert "Tag 04A1B2C3 is already on FJ-2; unbind it there first." in page.content.decode()
    assert events() == before
    assert not TagBinding.objects.filter(media=jacket).exists()


def test_a_uid_that_is_not_one_is_refused(page_for, jacket):
    page = page_for("staff").post("/media/FJ-1/tag/", {"op": "bind", "uid": "hello", "format": "hex"})

    assert page.status_code == 400
    assert 'role="alert"' in page.content.decode()
    assert not TagBinding.objects.exists()


# --- a refusal beside the field it concerns -------------------------------------------------------


def alert(html: str) -> str:
    return read(html).text.get("action-error", "").strip()


def test_registering_marks_the_field_each_refusal_concerns_and_keeps_what_was_typed(page_for, jacket):
    staff = page_for("staff")
    typed = {"code": "FJ-1", "kind": "cd", "home": "FR-A2", "patient_id": "", "description": "Knee"}

    duplicate = staff.post("/media/new/", typed).content.decode()
    assert field_error(duplicate, "act-code") == "Error: Media FJ-1 is already registered."
    assert invalid_inputs(duplicate) == ["act-code"]
    assert "Media FJ-1 is already registered." not in alert(duplicate)  # beside the field only
    assert "Nothing was changed." in alert(duplicate)
    assert (value_of(duplicate, "act-code"), value_of(duplicate, "act-kind"),
            value_of(duplicate, "act-home"), value_of(duplicate, "act-description")) == (
        "FJ-1", ["cd"], ["FR-A2"], "Knee"
    )

    cases = [
        ({"patient_id": "P-404", "code": "FJ-2"}, "act-patient", "No patient has the ID P-404."),
        ({"home": "NOWHERE", "code": "FJ-2"}, "act-home", "There is no active place with the code NOWHERE."),
        ({"kind": "scroll", "code": "FJ-2"}, "act-kind", "“scroll” is not a kind of media."),
        ({"code": "a/b"}, "act-code", "cannot contain a slash"),
        ({"code": "FJ-2", "description": "x" * 201}, "act-description", "at most 200 characters"),
    ]
    for change, input_id, message in cases:
        html = staff.post("/media/new/", {**typed, **change}).content.decode()
        assert message in field_error(html, input_id), change
        assert invalid_inputs(html) == [input_id], change
    assert value_of(html, "act-description") == "x" * 201
    assert Media.objects.count() == 1


def test_checking_out_marks_the_borrower_the_due_date_or_the_reason_to_jump_the_queue(
    page_for, cast, jacket
):
    staff = page_for("staff")
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()

    past = staff.post("/media/FJ-1/check-out/", {"borrower": "doctor", "due": yesterday}).content.decode()
    assert field_error(past, "act-due") == "Error: The due date cannot be in the past."
    assert read(past).attrs["act-due"]["aria-describedby"] == "act-due-hint act-due-error"
    assert (value_of(past, "act-due"), value_of(past, "act-borrower")) == (yesterday, ["doctor"])

    stranger = staff.post("/media/FJ-1/check-out/", {"borrower": "mallory"}).content.decode()
    assert "mallory is not an active clinician" in field_error(stranger, "act-borrower")
    bad_day = staff.post("/media/FJ-1/check-out/", {"borrower": "doctor", "due": "soon"}).content.decode()
    assert "YYYY-MM-DD" in field_error(bad_day, "act-due")
    nowhere = staff.post("/media/FJ-1/check-out/", {"borrower": "doctor", "destination": "MOON"})
    assert "MOON" in field_error(nowhere.content.decode(), "act-destination")

    today = timezone.localdate()
    queued = services.loan_request_make(
        requester=cast["doctor"], media=jacket, needed_from=today, needed_until=today, purpose="Board"
    )
    services.loan_request_approve(request=queued, actor=cast["staff"])
    jumped = staff.post("/media/FJ-1/check-out/", {"borrower": "doctor2"}).content.decode()
    assert "give a reason to lend it out of turn" in field_error(jumped, "act-override")
    assert read(jumped).attrs["act-override"]["aria-describedby"] == "act-override-hint act-override-error"
    assert not Loan.objects.exists()


def test_an_item_already_on_loan_concerns_no_field_and_stays_in_the_alert(page_for, lent):
    page = page_for("staff").post("/media/FJ-1/check-out/", {"borrower": "doctor2"})

    html = page.content.decode()
    assert page.status_code == 409
    assert "FJ-1 has been on loan to Doctor since" in alert(html)
    assert read(html).attrs["action-error"]["role"] == "alert"
    assert invalid_inputs(html) == []


def test_return_seen_and_transfer_mark_the_place_or_the_person(page_for, cast, jacket):
    staff = page_for("staff")
    unseen = staff.post("/media/FJ-1/seen/", {"place": ""}).content.decode()
    assert field_error(unseen, "act-place") == "Error: Choose a place."

    to_someone = staff.post("/media/FJ-1/transfer/", {"person": "doctor", "place": "ORTHO"}).content.decode()
    assert "FJ-1 is not on loan; check it out" in field_error(to_someone, "act-person")
    assert invalid_inputs(to_someone) == ["act-person"]
    assert (value_of(to_someone, "act-person"), value_of(to_someone, "act-place")) == (["doctor"], ["ORTHO"])

    nowhere = staff.post("/media/FJ-1/transfer/", {}).content.decode()
    assert "Say where the item goes" in alert(nowhere) and invalid_inputs(nowhere) == []

    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    back = staff.post("/media/FJ-1/return/", {"place": "ATTIC"}).content.decode()
    assert "There is no active place with the code ATTIC." in field_error(back, "act-place")
    assert read(back).attrs["act-place"]["aria-describedby"] == "act-place-hint act-place-error"
    assert item("FJ-1").status == MediaStatus.ON_LOAN


def test_retiring_marks_the_confirmation_or_the_reason_and_keeps_both(page_for, jacket):
    staff = page_for("staff")

    unticked = staff.post("/media/FJ-1/retire/", {"reason": "Water damage"}).content.decode()
    assert "Tick the box to confirm" in field_error(unticked, "act-confirm")
    assert value_of(unticked, "act-reason") == "Water damage"

    no_reason = staff.post("/media/FJ-1/retire/", {"reason": " ", "confirm": "yes"}).content.decode()
    assert "Give a reason for retiring FJ-1." in field_error(no_reason, "act-reason")
    assert value_of(no_reason, "act-confirm") == "checked"
    assert item("FJ-1").status == MediaStatus.ON_SHELF


def test_binding_marks_the_uid_or_its_format_and_unbinding_the_reason(page_for, cast, make_media, jacket):
    staff = page_for("staff")
    not_a_uid = staff.post("/media/FJ-1/tag/", {"op": "bind", "uid": "hello", "format": "hex"}).content.decode()
    assert field_error(not_a_uid, "act-uid") and value_of(not_a_uid, "act-uid") == "hello"
    assert read(not_a_uid).attrs["act-uid"]["aria-describedby"] == "act-uid-hint act-uid-error"

    bad_format = staff.post("/media/FJ-1/tag/", {"op": "bind", "uid": "04A1", "format": "morse"})
    assert "Choose the format" in field_error(bad_format.content.decode(), "act-format")

    services.tag_bind(uid="04A1B2C3", media=make_media("FJ-2"), actor=cast["staff"])
    elsewhere = staff.post("/media/FJ-1/tag/", {"op": "bind", "uid": "04 A1 B2 C3", "format": "hex"})
    html = elsewhere.content.decode()
    assert elsewhere.status_code == 409
    assert "Tag 04A1B2C3 is already on FJ-2" in field_error(html, "act-uid")
    assert value_of(html, "act-uid") == "04 A1 B2 C3"

    services.tag_bind(uid="04A1B2C4", media=jacket, actor=cast["staff"])
    unbind = staff.post("/media/FJ-1/tag/", {"op": "unbind", "reason": ""}).content.decode()
    assert field_error(unbind, "act-reason") == "Error: Give a reason for unbinding the tag."
    assert not TagBinding.objects.filter(media__code="FJ-2", unbound_at__isnull=False).exists()


# --- in Simplified Chinese ------------------------------------------------------------------------



@pytest.mark.usefixtures("scene")
def test_every_form_and_its_refusal_is_in_chinese():
    staff = get_user_model().objects.get(username="wangfang")
    browser = chinese_client(staff)
    english = {}
    for url in [form.replace("FJ-1", "J-1") for form in FORMS]:
        page = browser.get(url)
        assert page.status_code == 200, url
        if found := english_on(page.content.decode()):
            english[url] = found
    refusals = [
        browser.post("/media/new/", {"code": "J-1", "kind": "cd", "home": "FR-A1"}),
        browser.post("/media/J-1/retire/", {"reason": "坏了"}),
        browser.post("/media/J-1/check-out/", {"borrower": "", "due": "2000-01-01"}),
    ]
    assert "请选择人员。" in refusals[2].content.decode()  # the catalogue really is in use
    for number, page in enumerate(refusals):
        assert page.status_code in (400, 409)
        if found := english_on(page.content.decode()):
            english[f"refusal {number}"] = found
    item_page = browser.get("/media/J-1/").content.decode()
    assert "/media/J-1/transfer/" in item_page
    if found := english_on(item_page):
        english["/media/J-1/"] = found

    assert not english, f"English on the Chinese forms: {english}"


def test_the_staff_home_page_links_to_registering(page_for, places):
    assert 'href="/media/new/"' in page_for("staff").get("/home/").content.decode()
    assert 'href="/media/new/"' not in page_for("doctor").get("/home/").content.decode()
