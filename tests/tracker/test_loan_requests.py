"""Loan requests, the queue on an item, due dates by policy, and renewals (issue 6, points 1
and 3)."""

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from archive.models import Patient, Study
from tracker import projection, services
from tracker.choices import EventKind, RequestStatus, Role
from tracker.exceptions import EventConflict, InvalidRequest, NotOnLoan
from tracker.models import CustodyEvent, LoanPolicy, LoanRequest
from tracker.services.loan_requests import NotAllowed, QueueAhead, RenewalRefused, RequestClosed

pytestmark = pytest.mark.django_db


def events() -> int:
    return CustodyEvent.objects.count()


@pytest.fixture
def ask():
    """ask(who, **what) → a request for the next three days, as a clinician makes it."""
    today = timezone.localdate()

    def make(requester, **kwargs):
        kwargs.setdefault("needed_from", today)
        kwargs.setdefault("needed_until", today + timedelta(days=3))
        kwargs.setdefault("purpose", "Compare with last year's films")
        return services.loan_request_make(requester=requester, **kwargs)

    return make


def approved(request, staff, **kwargs):
    return services.loan_request_approve(request=request, actor=staff, **kwargs)


# --- the queue: two doctors, one item -------------------------------------------------------------


def test_two_doctors_asking_for_one_item_are_served_in_the_order_they_asked(cast, make_media, ask):
    staff, doctor, doctor2 = cast["staff"], cast["doctor"], cast["doctor2"]
    jacket = make_media("FJ-1")
    first = approved(ask(doctor, media=jacket), staff)
    second = approved(ask(doctor2, media=jacket), staff)

    assert [r.pk for r in services.request_queue(jacket)] == [first.pk, second.pk]
    assert (services.queue_position(first), services.queue_position(second)) == (1, 2)
    with pytest.raises(QueueAhead, match="held for Doctor .*waiting since"):
        services.media_check_out(media=jacket, borrower=doctor2, actor=staff)

    loan = services.media_check_out(media=jacket, borrower=doctor, actor=staff)
    first.refresh_from_db()
    assert (first.status, first.loan_id) == (RequestStatus.FULFILLED, loan.pk)
    assert CustodyEvent.objects.get(seq=loan.out_seq).payload["request"] == first.created_seq
    assert services.queue_position(LoanRequest.objects.get(pk=second.pk)) == 1

    services.media_return(media=jacket, actor=staff)
    assert services.next_in_queue(jacket).pk == second.pk  # offered to the second doctor
    services.loan_request_ready(request=second, actor=staff)
    services.media_check_out(media=jacket, borrower=doctor2, actor=staff, request=second)
    assert LoanRequest.objects.get(pk=second.pk).status == RequestStatus.FULFILLED
    assert services.request_queue(jacket) == []


def test_staff_may_lend_out_of_turn_only_with_a_reason_which_is_recorded(cast, make_media, ask):
    jacket = make_media("FJ-1")
    held = approved(ask(cast["doctor"], media=jacket), cast["staff"])

    loan = services.media_check_out(
        media=jacket,
        borrower=cast["doctor2"],
        actor=cast["staff"],
        queue_override="Emergency surgery",
    )

    payload = CustodyEvent.objects.get(seq=loan.out_seq).payload
    assert payload["queue_override"] == "Emergency surgery"
    assert payload["passed_over"] == held.created_seq
    assert LoanRequest.objects.get(pk=held.pk).status == RequestStatus.APPROVED  # still waiting


def test_a_ready_request_cannot_be_marked_for_someone_behind_in_the_queue(cast, make_media, ask):
    jacket = make_media("FJ-1")
    approved(ask(cast["doctor"], media=jacket), cast["staff"])
    second = approved(ask(cast["doctor2"], media=jacket), cast["staff"])

    with pytest.raises(QueueAhead, match="Doctor's request .* comes first"):
        services.loan_request_ready(request=second, actor=cast["staff"])


def test_a_patient_request_is_approved_with_one_of_the_patients_items(cast, make_media, ask):
    patient = Patient.objects.create(patient_id="MRN-7", name="Ada")
    other = Patient.objects.create(patient_id="MRN-8")
    theirs, not_theirs = make_media("FJ-7", patient=patient), make_media("FJ-8", patient=other)
    request = ask(cast["doctor"], patient=patient)

    with pytest.raises(InvalidRequest, match="choose the jacket or disc"):
        approved(request, cast["staff"])
    with pytest.raises(InvalidRequest, match="not the requested patient's"):
        approved(request, cast["staff"], media=not_theirs)
    request = approved(request, cast["staff"], media=theirs)

    assert (request.status, request.media, request.decided_by) == (
        RequestStatus.APPROVED,
        theirs,
        cast["staff"],
    )
    assert services.queue_position(request) == 1


def test_a_study_request_needs_an_item_that_holds_the_study(cast, make_media, ask):
    patient = Patient.objects.create(patient_id="MRN-7")
    study = Study.objects.create(study_instance_uid="1.2.3.4", patient=patient)
    disc, empty = make_media("CD-1", patient=patient), make_media("CD-2", patient=patient)
    services.media_studies_link(media=disc, studies=[study], actor=cast["staff"], source="manual")
    request = ask(cast["doctor"], study=study)

    with pytest.raises(InvalidRequest, match="does not hold the requested study"):
        approved(request, cast["staff"], media=empty)
    assert approved(request, cast["staff"], media=disc).media == disc


# --- making requests -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, message",
    [
        ({"media": None}, "Say what you need"),
        ({"purpose": "  "}, "purpose"),
        ({"needed_until": -1}, "before “needed from”"),
        ({"needed_from": -5, "needed_until": -2}, "has already passed"),
    ],
)
def test_a_request_needs_something_to_lend_a_purpose_and_sensible_dates(
    cast, make_media, ask, change, message
):
    today = timezone.localdate()
    kwargs = {"media": make_media("FJ-1")}
    for key, value in change.items():
        kwargs[key] = today + timedelta(days=value) if isinstance(value, int) else value
    before = events()

    with pytest.raises(InvalidRequest, match=message):
        ask(cast["doctor"], **kwargs)

    assert events() == before


def test_a_doctor_cannot_ask_twice_for_the_same_item(cast, make_media, ask):
    jacket = make_media("FJ-1")
    ask(cast["doctor"], media=jacket)

    with pytest.raises(Exception, match="You already asked for FJ-1"):
        ask(cast["doctor"], media=jacket)


# --- deciding: deny, cancel -----------------------------------------------------------------------


def test_a_denial_needs_a_reason_which_the_requester_reads(cast, make_media, ask):
    request = ask(cast["doctor"], media=make_media("FJ-1"))
    before = events()

    with pytest.raises(InvalidRequest, match="Give a reason for denying request"):
        services.loan_request_deny(request=request, actor=cast["staff"], reason="  ")
    assert events() == before

    request = services.loan_request_deny(
        request=request, actor=cast["staff"], reason="Lent to court"
    )
    assert (request.status, request.reason, request.decided_by) == (
        RequestStatus.DENIED,
        "Lent to court",
        cast["staff"],
    )
    with pytest.raises(RequestClosed, match="denied; it cannot be approved"):
        approved(request, cast["staff"])


def test_only_the_requester_or_staff_can_cancel(cast, make_media, ask):
    request = ask(cast["doctor"], media=make_media("FJ-1"))

    with pytest.raises(NotAllowed):
        services.loan_request_cancel(request=request, actor=cast["doctor2"])
    assert (
        services.loan_request_cancel(request=request, actor=cast["doctor"]).status
        == RequestStatus.CANCELLED
    )


# --- expiry -----------------------------------------------------------------------------------


def test_requests_expire_after_their_last_day_once_and_only_once(cast, make_media, ask):
    today = timezone.localdate()
    jacket = make_media("FJ-1")
    short = approved(ask(cast["doctor"], media=jacket, needed_until=today), cast["staff"])
    longer = ask(cast["doctor2"], media=jacket, needed_until=today + timedelta(days=5))
    end_of_today = short.expires_at

    assert services.loan_requests_expire(now=end_of_today - timedelta(seconds=1)) == []
    expired = services.loan_requests_expire(now=end_of_today)
    again = services.loan_requests_expire(now=end_of_today + timedelta(hours=1))

    assert [r.pk for r in expired] == [short.pk] and again == []
    assert LoanRequest.objects.get(pk=short.pk).status == RequestStatus.EXPIRED
    assert LoanRequest.objects.get(pk=longer.pk).status == RequestStatus.PENDING
    assert CustodyEvent.objects.filter(kind=EventKind.REQUEST_EXPIRED).count() == 1
    assert services.request_queue(jacket) == []  # an expired hold no longer holds the item


# --- due dates and renewals -----------------------------------------------------------------------


def test_due_dates_follow_the_borrowers_role_and_the_destination(cast, places, make_media):
    LoanPolicy.objects.create(name="anyone", loan_days=14)
    LoanPolicy.objects.create(name="clinicians", borrower_role=Role.CLINICIAN, loan_days=7)
    LoanPolicy.objects.create(name="other hospital", destination_kind="external", loan_days=30)
    LoanPolicy.objects.create(
        name="clinicians, other hospital",
        borrower_role=Role.CLINICIAN,
        destination_kind="external",
        loan_days=21,
    )
    start = timezone.now()

    def days(borrower, destination=None):
        loan = services.media_check_out(
            media=make_media(), borrower=borrower, actor=cast["staff"], destination=destination
        )
        return round((loan.due_at - start) / timedelta(days=1))

    assert days(cast["doctor"]) == 7
    assert days(cast["staff"]) == 14
    assert days(cast["staff"], places["external"]) == 30
    assert days(cast["doctor"], places["external"]) == 21  # two fields set beat one
    assert days(cast["doctor"], places["clinic"]) == 7


def test_a_role_rule_beats_a_destination_rule_of_equal_specificity(cast, places, make_media):
    LoanPolicy.objects.create(name="clinicians", borrower_role=Role.CLINICIAN, loan_days=5)
    LoanPolicy.objects.create(name="departments", destination_kind="department", loan_days=9)

    policy = services.loan_policy_for(
        media=make_media(), destination=places["clinic"], borrower=cast["doctor"]
    )

    assert policy.name == "clinicians"


def test_renewals_follow_the_policy_limit_and_count_from_the_old_due_date(cast, make_media):
    LoanPolicy.objects.create(name="short", loan_days=7, max_renewals=2)
    loan = services.media_check_out(
        media=make_media(), borrower=cast["doctor"], actor=cast["staff"]
    )
    first_due = loan.due_at

    loan = services.loan_renew(loan=loan, actor=cast["doctor"])
    assert (loan.due_at, loan.renewals) == (first_due + timedelta(days=7), 1)
    late = loan.due_at + timedelta(days=3)  # overdue: a full period from today
    loan = services.loan_renew(loan=loan, actor=cast["staff"], now=late)
    assert (loan.due_at, loan.renewals) == (late + timedelta(days=7), 2)
    before = events()
    with pytest.raises(RenewalRefused, match="renewed 2 times, the most its loan policy allows"):
        services.loan_renew(loan=loan, actor=cast["doctor"])
    assert events() == before


def test_renewal_is_refused_while_a_colleague_waits_and_says_since_when(cast, make_media, ask):
    jacket = make_media("FJ-1")
    loan = services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    waiting = ask(cast["doctor2"], media=jacket)  # pending is waiting too
    since = timezone.localtime(waiting.created_at).strftime("%Y-%m-%d %H:%M")

    with pytest.raises(
        RenewalRefused,
        match=f"A colleague is waiting for FJ-1: Doctor2 has asked for it since {since}",
    ):
        services.loan_renew(loan=loan, actor=cast["doctor"])

    services.loan_request_cancel(request=waiting, actor=cast["doctor2"])
    assert services.loan_renew(loan=loan, actor=cast["doctor"]).renewals == 1


def test_a_clinician_renews_only_their_own_loans(cast, make_media):
    loan = services.media_check_out(
        media=make_media(), borrower=cast["doctor"], actor=cast["staff"]
    )

    with pytest.raises(NotAllowed, match="only your own loans"):
        services.loan_renew(loan=loan, actor=cast["doctor2"])
    services.media_return(media=loan.media, actor=cast["staff"])
    with pytest.raises(NotOnLoan, match="was returned"):
        services.loan_renew(loan=loan, actor=cast["doctor"])


# --- replays and the rebuilt projection -----------------------------------------------------------


def test_a_replayed_event_id_returns_the_same_request_and_records_nothing(cast, make_media, ask):
    jacket = make_media("FJ-1")
    key = uuid.uuid4()
    request = ask(cast["doctor"], media=jacket, event_id=key)
    before = events()

    again = ask(cast["doctor"], media=jacket, event_id=key)
    assert again.pk == request.pk and events() == before
    with pytest.raises(EventConflict):
        ask(cast["doctor"], media=jacket, event_id=key, purpose="Something else")

    deny_key = uuid.uuid4()
    services.loan_request_deny(request=request, actor=cast["staff"], reason="No", event_id=deny_key)
    replay = services.loan_request_deny(
        request=request, actor=cast["staff"], reason="No", event_id=deny_key
    )
    assert replay.status == RequestStatus.DENIED and events() == before + 1


def test_the_projection_rebuilds_requests_and_renewals_from_the_ledger(
    cast, make_media, ask, places
):
    patient = Patient.objects.create(patient_id="MRN-1")
    jacket, disc = make_media("FJ-1", patient=patient), make_media("CD-1")
    first = approved(ask(cast["doctor"], media=jacket, destination=places["clinic"]), cast["staff"])
    services.loan_request_ready(request=first, actor=cast["staff"])
    loan = services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.loan_renew(loan=loan, actor=cast["doctor"])
    services.loan_request_deny(
        request=ask(cast["doctor2"], media=disc), actor=cast["staff"], reason="x"
    )
    approved(ask(cast["doctor2"], patient=patient), cast["staff"], media=jacket)
    services.loan_request_cancel(request=ask(cast["doctor"], media=disc), actor=cast["doctor"])
    ask(cast["doctor2"], media=disc, needed_until=timezone.localdate())
    services.loan_requests_expire(now=timezone.now() + timedelta(days=1))

    assert projection.rebuild(check_only=True) == []
    # A row changed behind the ledger's back is caught.
    LoanRequest.objects.filter(pk=first.pk).update(status=RequestStatus.READY)
    assert any("loan_requests" in line for line in projection.rebuild(check_only=True))
    call_command("rebuild_projection")
    assert projection.rebuild(check_only=True) == []
    assert LoanRequest.objects.get(created_seq=first.created_seq).status == RequestStatus.FULFILLED
