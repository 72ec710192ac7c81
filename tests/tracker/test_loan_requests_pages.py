"""The pages: a clinician's "My requests" and the file room's request queue."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from archive.models import Patient
from tracker import services
from tracker.choices import RequestStatus
from tests.test_translations import chinese_catalogue, chinese_client, english_on, scene  # noqa: F401
from tests.tracker.form_errors import field_error, invalid_inputs, read, value_of
from tracker.models import CustodyEvent, LoanRequest

pytestmark = pytest.mark.django_db


def ask_form(**changes) -> dict:
    today = timezone.localdate()
    form = {
        "media": "FJ-1",
        "patient": "",
        "study": "",
        "needed_from": str(today),
        "needed_until": str(today + timedelta(days=2)),
        "purpose": "Fracture follow-up",
        "destination": "ORTHO",
    }
    return {**form, **changes}


def test_a_clinician_asks_for_an_item_and_sees_its_status_and_place_in_the_queue(
    page_for, cast, make_media
):
    jacket = make_media("FJ-1")
    earlier = services.loan_request_make(
        requester=cast["doctor2"],
        media=jacket,
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )
    services.loan_request_approve(request=earlier, actor=cast["staff"])
    doctor = page_for("doctor")

    response = doctor.post("/requests/new/", ask_form(), follow=True)
    made = LoanRequest.objects.get(requester=cast["doctor"])
    services.loan_request_approve(request=made, actor=cast["staff"])
    html = doctor.get("/requests/").content.decode()

    assert f"Request {made.pk} sent to the file room." in response.content.decode()
    assert (made.destination.code, made.purpose) == ("ORTHO", "Fracture follow-up")
    assert "Approved (queued)" in html and "Place in the queue: 2" in html
    assert "x</td>" not in html  # doctor2's request is not shown to doctor


def test_a_refused_request_says_why_and_keeps_what_was_typed(page_for, make_media):
    make_media("FJ-1")
    yesterday = str(timezone.localdate() - timedelta(days=1))

    response = page_for("doctor").post(
        "/requests/new/", ask_form(needed_from=yesterday, needed_until=yesterday), follow=True
    )

    html = response.content.decode()
    assert "has already passed" in html
    assert 'value="Fracture follow-up"' in html
    assert not LoanRequest.objects.exists()


def test_a_clinician_cancels_a_request_and_renews_a_loan(page_for, cast, make_media):
    jacket, disc = make_media("FJ-1"), make_media("CD-1")
    request = services.loan_request_make(
        requester=cast["doctor"],
        media=jacket,
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )
    loan = services.media_check_out(media=disc, borrower=cast["doctor"], actor=cast["staff"])
    doctor = page_for("doctor")

    doctor.post(f"/requests/{request.pk}/cancel/")
    response = doctor.post(f"/loans/{loan.pk}/renew/", follow=True)

    assert LoanRequest.objects.get(pk=request.pk).status == RequestStatus.CANCELLED
    assert "Loan of CD-1 renewed." in response.content.decode()
    loan.refresh_from_db()
    assert loan.renewals == 1


def test_a_clinician_cannot_cancel_a_colleagues_request_or_reach_the_queue(
    page_for, cast, make_media
):
    request = services.loan_request_make(
        requester=cast["doctor2"],
        media=make_media("FJ-1"),
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )
    doctor = page_for("doctor")

    assert doctor.post(f"/requests/{request.pk}/cancel/").status_code == 404
    assert doctor.get("/requests/queue/").status_code == 403
    assert doctor.post(f"/requests/{request.pk}/approve/").status_code == 403
    assert LoanRequest.objects.get(pk=request.pk).status == RequestStatus.PENDING


def test_anonymous_visitors_are_sent_to_log_in(page_for):
    for path in ("/requests/", "/requests/queue/"):
        response = page_for(None).get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_an_auditor_reads_the_queue_but_cannot_decide(page_for, cast, make_media):
    request = services.loan_request_make(
        requester=cast["doctor"],
        media=make_media("FJ-1"),
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )
    auditor = page_for("auditor")

    html = auditor.get("/requests/queue/").content.decode()

    assert f"/requests/{request.pk}/approve/" not in html and "FJ-1" in html
    assert auditor.post(f"/requests/{request.pk}/deny/", {"reason": "no"}).status_code == 403
    assert auditor.post("/requests/new/", ask_form()).status_code == 403


def test_staff_approve_deny_with_a_reason_and_mark_ready_from_the_queue(page_for, cast, make_media):
    patient = Patient.objects.create(patient_id="MRN-1")
    jacket = make_media("FJ-1", patient=patient)
    today = timezone.localdate()
    for_patient = services.loan_request_make(
        requester=cast["doctor"],
        patient=patient,
        purpose="Clinic",
        needed_from=today,
        needed_until=today,
    )
    other = services.loan_request_make(
        requester=cast["doctor2"],
        media=make_media("CD-9"),
        purpose="x",
        needed_from=today,
        needed_until=today,
    )
    staff = page_for("staff")

    assert "Item to lend" in staff.get("/requests/queue/").content.decode()
    staff.post(f"/requests/{for_patient.pk}/approve/", {"media": "FJ-1"})
    no_reason = staff.post(
        f"/requests/{other.pk}/deny/", {"reason": ""}, follow=True
    ).content.decode()
    staff.post(f"/requests/{other.pk}/deny/", {"reason": "Disc cracked"})
    pull_list = staff.get("/requests/queue/").content.decode()
    staff.post(f"/requests/{for_patient.pk}/ready/")

    assert "Give a reason for denying request" in no_reason
    assert "Pulled: mark ready" in pull_list and "FJ-1" in pull_list
    assert LoanRequest.objects.get(pk=for_patient.pk).status == RequestStatus.READY
    assert LoanRequest.objects.get(pk=other.pk).reason == "Disc cracked"
    assert "Ready for pick-up" in staff.get("/requests/queue/").content.decode()
    assert CustodyEvent.objects.filter(media=jacket, kind="request_ready").count() == 1


def test_staff_hand_over_a_ready_item_from_the_queue(page_for, cast, make_media):
    jacket = make_media("FJ-1")
    request = services.loan_request_make(
        requester=cast["doctor"],
        media=jacket,
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )
    services.loan_request_approve(request=request, actor=cast["staff"])
    services.loan_request_ready(request=request, actor=cast["staff"])

    response = page_for("staff").post(f"/requests/{request.pk}/check-out/", follow=True)

    assert "FJ-1 lent to Doctor." in response.content.decode()
    jacket.refresh_from_db()
    assert jacket.current_holder == cast["doctor"]
    assert LoanRequest.objects.get(pk=request.pk).status == RequestStatus.FULFILLED
    assert page_for("doctor").post(f"/requests/{request.pk}/check-out/").status_code == 403


# --- a refusal beside the field it concerns -------------------------------------------------------


def test_a_refused_request_marks_each_field_it_concerns_and_keeps_what_was_typed(page_for, make_media):
    make_media("FJ-1")
    doctor = page_for("doctor")

    unknown = doctor.post(
        "/requests/new/", ask_form(media="FJ-404", study="1.2.3", destination="MOON", needed_from="soon")
    )

    assert unknown.status_code == 400
    html = unknown.content.decode()
    assert "No media has the code FJ-404." in field_error(html, "rq-media")
    assert "No study has the UID 1.2.3." in field_error(html, "rq-study")
    assert "MOON" in field_error(html, "rq-destination")
    assert "YYYY-MM-DD" in field_error(html, "rq-from")
    assert sorted(invalid_inputs(html)) == ["rq-destination", "rq-from", "rq-media", "rq-study"]
    assert (value_of(html, "rq-media"), value_of(html, "rq-study"), value_of(html, "rq-purpose")) == (
        "FJ-404", "1.2.3", "Fracture follow-up"
    )
    yesterday = str(timezone.localdate() - timedelta(days=1))
    passed = doctor.post(
        "/requests/new/", ask_form(needed_from=yesterday, needed_until=yesterday)
    ).content.decode()
    assert "has already passed" in field_error(passed, "rq-until")
    assert invalid_inputs(passed) == ["rq-until"]
    no_purpose = doctor.post("/requests/new/", ask_form(purpose="  ")).content.decode()
    assert field_error(no_purpose, "rq-purpose") == (
        "Error: Say what the media are needed for (the purpose)."
    )
    assert not LoanRequest.objects.exists()


def test_a_request_refused_as_a_whole_says_so_in_the_alert(page_for, cast, make_media):
    make_media("FJ-1")
    doctor = page_for("doctor")

    nothing = doctor.post("/requests/new/", ask_form(media="")).content.decode()
    assert "Say what you need" in read(nothing).text["request-error"]
    assert read(nothing).attrs["request-error"]["role"] == "alert"
    assert invalid_inputs(nothing) == []

    doctor.post("/requests/new/", ask_form())
    twice = doctor.post("/requests/new/", ask_form()).content.decode()
    assert "You already asked for FJ-1" in field_error(twice, "rq-media")
    assert LoanRequest.objects.count() == 1


def test_a_refused_approval_or_denial_is_shown_on_its_row(page_for, cast, make_media):
    patient = Patient.objects.create(patient_id="MRN-1")
    make_media("FJ-1", patient=patient)
    make_media("FJ-9")
    today = timezone.localdate()
    for_patient = services.loan_request_make(
        requester=cast["doctor"], patient=patient, purpose="Clinic", needed_from=today, needed_until=today
    )
    staff = page_for("staff")

    unknown = staff.post(f"/requests/{for_patient.pk}/approve/", {"media": "FJ-404"})
    wrong = staff.post(f"/requests/{for_patient.pk}/approve/", {"media": "FJ-9"})
    no_reason = staff.post(f"/requests/{for_patient.pk}/deny/", {"reason": " "})

    assert unknown.status_code == wrong.status_code == no_reason.status_code == 400
    media_id, reason_id = f"approve-media-{for_patient.pk}", f"deny-reason-{for_patient.pk}"
    html = unknown.content.decode()
    assert "No media has the code FJ-404." in field_error(html, media_id)
    assert value_of(html, media_id) == "FJ-404" and invalid_inputs(html) == [media_id]
    assert "FJ-9 is not the requested patient's" in field_error(wrong.content.decode(), media_id)
    html = no_reason.content.decode()
    assert "Give a reason for denying request" in field_error(html, reason_id)
    assert invalid_inputs(html) == [reason_id]
    assert LoanRequest.objects.get(pk=for_patient.pk).status == RequestStatus.PENDING

    services.loan_request_cancel(request=for_patient, actor=cast["doctor"])
    closed = staff.post(f"/requests/{for_patient.pk}/deny/", {"reason": "Too late"})
    assert closed.status_code == 409
    html = closed.content.decode()
    assert "cannot be denied" in read(html).text["decision-error"]
    assert read(html).attrs["decision-error"]["role"] == "alert"


@pytest.mark.usefixtures("scene")
def test_refusals_beside_their_fields_are_in_chinese():
    doctor = chinese_client(get_user_model().objects.get(username="lidoc"))
    staff = chinese_client(get_user_model().objects.get(username="wangfang"))
    pending = services.loan_request_make(
        requester=get_user_model().objects.get(username="chendoc"),
        patient=Patient.objects.get(patient_id="MRN-4711"),
        purpose="复诊",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )

    asked = doctor.post("/requests/new/", ask_form(media="J-404", purpose="")).content.decode()
    approved = staff.post(f"/requests/{pending.pk}/approve/", {"media": "J-404"}).content.decode()

    assert "J-404" in field_error(asked, "rq-media")
    assert "J-404" in field_error(approved, f"approve-media-{pending.pk}")
    english = {name: found for name, html in (("ask", asked), ("approve", approved))
               if (found := english_on(html))}
    assert not english, f"English on the Chinese pages: {english}"
