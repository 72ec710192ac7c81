"""Loan-request gaps closed in issue 6: undoing the station check-out that fulfilled a request,
the request errors living with the others, and demo users who can receive reminders."""

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from tracker import exceptions, projection, services
from tracker.choices import MediaStatus, ReaderMode, RequestStatus
from tracker.models import CustodyEvent, LoanRequest, ReaderDevice
from tracker.services import loan_requests

pytestmark = pytest.mark.django_db

UID = "04A1B2C3D4E5F6"


@pytest.fixture
def counter(places, cast):
    call_command(
        "register_reader", "counter-1", "--location", "FR", stdout=StringIO(), stderr=StringIO()
    )
    return ReaderDevice.objects.get(name="counter-1")


@pytest.fixture
def ready_request(cast, make_media):
    """A jacket with a tag, pulled for `doctor`'s approved request and waiting at the desk."""
    jacket = make_media("FJ-1")
    services.tag_bind(uid=UID, media=jacket, actor=cast["staff"])
    today = timezone.localdate()
    made = services.loan_request_make(
        requester=cast["doctor"],
        media=jacket,
        purpose="Compare",
        needed_from=today,
        needed_until=today + timedelta(days=2),
    )
    services.loan_request_approve(request=made, actor=cast["staff"])
    return services.loan_request_ready(request=made, actor=cast["staff"])


def station_read(device, uid=UID):
    record, _replayed = services.scan_record(
        device=device, event_id=uuid.uuid4(), raw_uid=uid, read_at=timezone.now()
    )
    return record


def test_undoing_the_station_check_out_that_fulfilled_a_request_makes_it_ready_again(
    counter, cast, ready_request
):
    services.station_configure(device=counter, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    record = station_read(counter)
    assert record.outcome == "ok", record.message
    lent = LoanRequest.objects.get(pk=ready_request.pk)
    assert (lent.status, lent.loan.out_seq) == (RequestStatus.FULFILLED, record.event_seq)

    services.scan_undo(record=record, actor=cast["staff"])

    back = LoanRequest.objects.get(pk=ready_request.pk)
    assert (back.status, back.loan) == (RequestStatus.READY, None)
    assert back.media.status == MediaStatus.ON_SHELF
    assert services.next_in_queue(back.media).pk == back.pk
    assert projection.rebuild(check_only=True) == []
    projection.rebuild(check_only=False)
    assert (
        LoanRequest.objects.get(created_seq=ready_request.created_seq).status == RequestStatus.READY
    )

    # The doctor then takes it after all: the same request is fulfilled by the new check-out.
    again = station_read(counter)
    assert again.outcome == "ok", again.message
    assert (
        LoanRequest.objects.get(created_seq=ready_request.created_seq).status
        == RequestStatus.FULFILLED
    )


def test_undoing_a_plain_check_out_touches_no_request(counter, cast, make_media, ready_request):
    other = make_media("FJ-2")
    services.tag_bind(uid="04FFEEDDCCBBAA", media=other, actor=cast["staff"])
    services.station_configure(device=counter, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor2"])
    record = station_read(counter, "04FFEEDDCCBBAA")

    services.scan_undo(record=record, actor=cast["staff"])

    assert LoanRequest.objects.get(pk=ready_request.pk).status == RequestStatus.READY
    assert projection.rebuild(check_only=True) == []


def test_the_request_errors_live_with_the_other_domain_errors_and_keep_their_old_names():
    for name, code, status in [
        ("NotAllowed", "permission_denied", 403),
        ("RequestClosed", "request_closed", 409),
        ("QueueAhead", "queue_ahead", 409),
        ("RenewalRefused", "renewal_refused", 409),
    ]:
        error = getattr(exceptions, name)
        assert getattr(loan_requests, name) is error
        assert getattr(services, name) is error
        assert (error.code, error.status) == (code, status)
        assert issubclass(error, exceptions.DomainError)


def test_a_refusal_raised_by_the_request_services_is_the_moved_class(
    cast, make_media, ready_request
):
    with pytest.raises(exceptions.RequestClosed):
        services.loan_request_approve(request=ready_request, actor=cast["staff"])


def test_seed_demo_gives_every_demo_user_an_address_and_keeps_one_changed_since(db):
    call_command("seed_demo", "--media", "12", stdout=StringIO())
    users = get_user_model().objects
    assert dict(users.values_list("username", "email")) == {
        "staff": "staff@filmroom.example",
        "doctor": "doctor@filmroom.example",
        "doctor2": "doctor2@filmroom.example",
        "auditor": "auditor@filmroom.example",
        "admin": "admin@filmroom.example",
    }
    events = CustodyEvent.objects.count()
    users.filter(username="doctor").update(email="dana.osei@hospital.example")

    call_command("seed_demo", "--media", "12", stdout=StringIO())

    assert users.get(username="doctor").email == "dana.osei@hospital.example"
    assert users.get(username="staff").email == "staff@filmroom.example"
    assert CustodyEvent.objects.count() == events
