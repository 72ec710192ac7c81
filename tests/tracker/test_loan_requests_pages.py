"""The pages: a clinician's "My requests" and the file room's request queue."""

from datetime import timedelta

import pytest
from django.utils import timezone

from archive.models import Patient
from tracker import services
from tracker.choices import RequestStatus
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
