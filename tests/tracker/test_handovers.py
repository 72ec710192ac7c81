"""Hand-overs (issue 6, point 4): a borrower hands an item on to a colleague or a place, and
custody moves only when the receiver accepts; a declined or cancelled hand-over changes nothing."""

import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.conftest import make_user
from tracker import ledger, projection, services
from tracker.choices import EventKind, HandoverStatus, MediaStatus, ReaderMode
from tracker.exceptions import Conflict, EventConflict, InvalidRequest, NotOnLoan
from tracker.ledger import Read
from tracker.models import CustodyEvent, Handover, Loan, LoanRequest, ReaderDevice, Transfer
from tracker.projection.handovers import SUPERSEDED_BY_RETURN, SUPERSEDED_BY_TRANSFER
from tracker.services.handovers import HandoverClosed
from tracker.services.loan_requests import NotAllowed, QueueAhead

pytestmark = pytest.mark.django_db


def events() -> int:
    return CustodyEvent.objects.count()


def custody(media) -> tuple:
    """What a user relies on about where an item is and who answers for it."""
    media.refresh_from_db()
    loan = Loan.objects.get(media=media, returned_at__isnull=True)
    return (
        media.status,
        media.current_holder_id,
        media.current_location_id,
        loan.pk,
        loan.borrower_id,
        loan.due_at,
        loan.renewals,
    )


@pytest.fixture
def lent(cast, make_media, places):
    """FJ-1 on loan to doctor at Orthopaedics, due in 10 days."""
    jacket = make_media("FJ-1")
    services.media_check_out(
        media=jacket,
        borrower=cast["doctor"],
        actor=cast["staff"],
        destination=places["clinic"],
        due_at=timezone.now() + timedelta(days=10),
    )
    jacket.refresh_from_db()
    return jacket


@pytest.fixture
def make_user_in(db):
    """make_user_in(username, role, **fields) → one more person (the cast has one of each)."""
    return make_user


def offer_to_doctor2(lent, cast, **kwargs):
    return services.handover_offer(
        media=lent, actor=cast["doctor"], to_holder=cast["doctor2"], **kwargs
    )


def rebuilds_cleanly():
    assert ledger.verify_ledger().ok
    assert projection.rebuild(check_only=True) == []


# --- custody moves only on acceptance ------------------------------------------------------------


def test_an_offer_is_pending_and_moves_nothing_until_the_receiver_accepts(lent, cast):
    before = custody(lent)
    count = events()

    handover = offer_to_doctor2(lent, cast, note="For the fracture clinic")

    assert events() == count + 1
    event = CustodyEvent.objects.get(seq=handover.offered_seq)
    assert event.kind == EventKind.HANDOVER_OFFERED
    assert (event.actor, event.holder, event.to_location) == (cast["doctor"], cast["doctor2"], None)
    loan = Loan.objects.get(media=lent, returned_at__isnull=True)
    assert event.payload == {"loan": loan.out_seq, "note": "For the fracture clinic"}
    assert (handover.status, handover.from_holder, handover.to_holder, handover.loan) == (
        HandoverStatus.PENDING,
        cast["doctor"],
        cast["doctor2"],
        loan,
    )
    assert custody(lent) == before  # still doctor's

    accepted = services.handover_accept(handover=handover, actor=cast["doctor2"])

    assert events() == count + 2
    accept = CustodyEvent.objects.get(seq=accepted.closed_seq)
    assert accept.kind == EventKind.TRANSFERRED
    assert accept.payload == {"handover": handover.offered_seq}
    assert (accept.holder, accept.actor) == (cast["doctor2"], cast["doctor2"])
    assert (accepted.status, accepted.closed_by) == (HandoverStatus.ACCEPTED, cast["doctor2"])
    status, holder, _place, loan_id, borrower, due_at, renewals = custody(lent)
    assert (status, holder, borrower) == (
        MediaStatus.ON_LOAN,
        cast["doctor2"].pk,
        cast["doctor2"].pk,
    )
    assert loan_id != before[3]  # the loan moved to doctor2 ...
    assert (due_at, renewals) == (before[5], before[6])  # ... keeping its due date and renewals
    transfer = Transfer.objects.get(seq=accept.seq)
    assert (transfer.from_holder, transfer.to_holder) == (cast["doctor"], cast["doctor2"])
    rebuilds_cleanly()


def test_a_declined_hand_over_leaves_custody_unchanged(lent, cast):
    before = custody(lent)
    handover = offer_to_doctor2(lent, cast)

    declined = services.handover_decline(
        handover=handover, actor=cast["doctor2"], reason="I am on leave next week"
    )

    assert (declined.status, declined.reason, declined.closed_by) == (
        HandoverStatus.DECLINED,
        "I am on leave next week",
        cast["doctor2"],
    )
    event = CustodyEvent.objects.get(seq=declined.closed_seq)
    assert (event.kind, event.payload) == (
        EventKind.HANDOVER_DECLINED,
        {"handover": handover.offered_seq, "reason": "I am on leave next week"},
    )
    assert custody(lent) == before
    with pytest.raises(HandoverClosed, match="declined; it cannot be accepted"):
        services.handover_accept(handover=declined, actor=cast["doctor2"])
    assert custody(lent) == before
    # The item may be offered again once the first offer is closed.
    again = offer_to_doctor2(lent, cast)
    assert again.status == HandoverStatus.PENDING
    rebuilds_cleanly()


def test_a_cancelled_hand_over_leaves_custody_unchanged(lent, cast):
    before = custody(lent)
    handover = offer_to_doctor2(lent, cast)

    cancelled = services.handover_cancel(handover=handover, actor=cast["doctor"])

    assert (cancelled.status, cancelled.closed_by) == (HandoverStatus.CANCELLED, cast["doctor"])
    assert CustodyEvent.objects.get(seq=cancelled.closed_seq).payload == {
        "handover": handover.offered_seq
    }
    assert custody(lent) == before
    with pytest.raises(HandoverClosed):
        services.handover_decline(handover=cancelled, actor=cast["doctor2"], reason="x")
    with pytest.raises(HandoverClosed):
        services.handover_cancel(handover=cancelled, actor=cast["doctor"])
    rebuilds_cleanly()


def test_a_hand_over_to_a_place_is_accepted_by_staff_and_keeps_the_borrower(lent, cast, places):
    handover = services.handover_offer(
        media=lent, actor=cast["doctor"], to_location=places["external"]
    )
    assert (handover.to_holder, handover.to_location) == (None, places["external"])

    with pytest.raises(NotAllowed, match="Only the file room or a reader at City General"):
        services.handover_accept(handover=handover, actor=cast["doctor2"])
    with pytest.raises(NotAllowed):
        services.handover_accept(handover=handover, actor=cast["doctor"])
    accepted = services.handover_accept(handover=handover, actor=cast["staff"])

    lent.refresh_from_db()
    assert accepted.status == HandoverStatus.ACCEPTED
    assert (lent.current_location, lent.current_holder, lent.status) == (
        places["external"],
        cast["doctor"],
        MediaStatus.ON_LOAN,
    )
    rebuilds_cleanly()


# --- who may do what ------------------------------------------------------------------------------


def test_only_the_borrower_or_staff_may_offer(lent, cast, places):
    for who in ("doctor2", "auditor", "nobody"):
        with pytest.raises(NotAllowed, match="Only Doctor, who has FJ-1 on loan"):
            services.handover_offer(media=lent, actor=cast[who], to_location=places["external"])
    by_staff = services.handover_offer(media=lent, actor=cast["staff"], to_holder=cast["doctor2"])
    assert (by_staff.offered_by, by_staff.from_holder) == (cast["staff"], cast["doctor"])


def test_clinicians_cannot_act_on_other_peoples_hand_overs(lent, cast, make_user_in):
    third = make_user_in("doctor3", "clinician")
    handover = offer_to_doctor2(lent, cast)
    count = events()

    with pytest.raises(NotAllowed):
        services.handover_accept(handover=handover, actor=third)
    with pytest.raises(NotAllowed):
        services.handover_accept(handover=handover, actor=cast["doctor"])  # the giver
    with pytest.raises(NotAllowed):
        services.handover_accept(handover=handover, actor=cast["auditor"])
    with pytest.raises(NotAllowed):
        services.handover_decline(handover=handover, actor=third, reason="not mine")
    with pytest.raises(NotAllowed):
        services.handover_decline(handover=handover, actor=cast["doctor"], reason="changed my mind")
    with pytest.raises(NotAllowed):
        services.handover_cancel(handover=handover, actor=third)
    with pytest.raises(NotAllowed):
        services.handover_cancel(handover=handover, actor=cast["doctor2"])  # the receiver declines
    assert events() == count
    assert Handover.objects.get(pk=handover.pk).status == HandoverStatus.PENDING


def test_staff_may_accept_decline_and_cancel_for_others(lent, cast):
    first = offer_to_doctor2(lent, cast)
    assert (
        services.handover_cancel(handover=first, actor=cast["staff"]).status
        == HandoverStatus.CANCELLED
    )
    second = offer_to_doctor2(lent, cast)
    declined = services.handover_decline(
        handover=second, actor=cast["admin"], reason="Doctor2 is away"
    )
    assert (declined.status, declined.closed_by) == (HandoverStatus.DECLINED, cast["admin"])
    third = offer_to_doctor2(lent, cast)
    accepted = services.handover_accept(handover=third, actor=cast["staff"])
    assert accepted.status == HandoverStatus.ACCEPTED
    assert custody(lent)[1] == cast["doctor2"].pk


def test_declining_needs_a_reason(lent, cast):
    handover = offer_to_doctor2(lent, cast)
    count = events()
    with pytest.raises(InvalidRequest, match="Give a reason for declining; Doctor will read it"):
        services.handover_decline(handover=handover, actor=cast["doctor2"], reason="  ")
    with pytest.raises(InvalidRequest, match="under 300"):
        services.handover_decline(handover=handover, actor=cast["doctor2"], reason="x" * 301)
    assert events() == count


# --- what may be offered -------------------------------------------------------------------------


def test_only_an_item_on_loan_can_be_handed_on(cast, make_media, places):
    shelved = make_media("FJ-2")
    with pytest.raises(NotOnLoan, match="FJ-2 is not on loan.*check it out instead"):
        services.handover_offer(media=shelved, actor=cast["staff"], to_holder=cast["doctor"])
    assert not Handover.objects.exists()


def test_exactly_one_receiver_who_is_someone_else_and_active(lent, cast, places, make_user_in):
    gone = make_user_in("gone", "clinician", is_active=False)
    count = events()
    cases = [
        ({}, "choose exactly one"),
        ({"to_holder": cast["doctor2"], "to_location": places["external"]}, "choose exactly one"),
        ({"to_holder": cast["doctor"]}, "Doctor already has FJ-1 on loan"),
        ({"to_holder": gone}, "account is disabled"),
        ({"to_holder": cast["auditor"]}, "Auditor cannot take items on loan"),
        ({"to_holder": cast["nobody"]}, "Nobody cannot take items on loan"),
        ({"to_location": places["courier"]}, "Courier is a courier"),
        ({"to_location": places["clinic"]}, "FJ-1 is already at Orthopaedics"),
    ]
    for kwargs, message in cases:
        with pytest.raises(InvalidRequest, match=message):
            services.handover_offer(media=lent, actor=cast["doctor"], **kwargs)
    with pytest.raises(InvalidRequest, match="under 300"):
        offer_to_doctor2(lent, cast, note="n" * 301)
    assert events() == count


def test_one_pending_hand_over_per_item_names_the_receiver(lent, cast, places):
    offer_to_doctor2(lent, cast)
    count = events()
    with pytest.raises(Conflict, match="already being handed to Doctor2 .*cancel that hand-over"):
        services.handover_offer(media=lent, actor=cast["doctor"], to_location=places["external"])
    assert events() == count


def test_the_database_refuses_a_second_pending_hand_over(lent, cast):
    first = offer_to_doctor2(lent, cast)
    with pytest.raises(IntegrityError), transaction.atomic():
        Handover.objects.create(
            media=lent,
            loan=first.loan,
            from_holder=cast["doctor"],
            to_holder=cast["staff"],
            offered_by=cast["doctor"],
            offered_at=timezone.now(),
            offered_seq=first.offered_seq + 100,
        )


def test_an_offered_item_is_still_the_borrowers_to_renew_and_return(lent, cast):
    offer_to_doctor2(lent, cast)
    loan = Loan.objects.get(media=lent, returned_at__isnull=True)
    renewed = services.loan_renew(loan=loan, actor=cast["doctor"])
    assert renewed.renewals == 1


# --- the queue ------------------------------------------------------------------------------------


@pytest.fixture
def queued_for_admin(lent, cast):
    """admin's approved request waits for FJ-1."""
    today = timezone.localdate()
    request = services.loan_request_make(
        requester=cast["admin"], media=lent, needed_from=today, needed_until=today, purpose="Audit"
    )
    return services.loan_request_approve(request=request, actor=cast["staff"])


def test_a_hand_over_cannot_dodge_the_queue(lent, cast, queued_for_admin):
    count = events()
    with pytest.raises(QueueAhead, match="FJ-1 is held for Admin .*cannot be handed to Doctor2"):
        offer_to_doctor2(lent, cast)
    # A clinician's reason does not count: skipping the queue is the file room's call.
    with pytest.raises(QueueAhead):
        offer_to_doctor2(lent, cast, queue_override="urgent")
    with pytest.raises(QueueAhead):
        services.handover_offer(media=lent, actor=cast["staff"], to_holder=cast["doctor2"])
    assert events() == count

    # To the person at the head of the queue, it may go.
    to_head = services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["admin"])
    assert "queue_override" not in CustodyEvent.objects.get(seq=to_head.offered_seq).payload


def test_a_hand_over_accepted_by_the_head_of_the_queue_serves_their_request(lent, cast, queued_for_admin):
    offered = services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["admin"])
    accepted = services.handover_accept(handover=offered, actor=cast["admin"])

    served = LoanRequest.objects.get(pk=queued_for_admin.pk)
    loan = Loan.objects.get(media=lent, returned_at__isnull=True)
    assert (served.status, served.loan, loan.borrower) == ("fulfilled", loan, cast["admin"])
    assert CustodyEvent.objects.get(seq=accepted.closed_seq).payload == {
        "handover": offered.offered_seq, "request": queued_for_admin.created_seq,
    }
    assert projection.rebuild(check_only=True) == []


def test_staff_may_hand_past_the_queue_with_a_recorded_reason(lent, cast, queued_for_admin):
    handover = services.handover_offer(
        media=lent, actor=cast["staff"], to_holder=cast["doctor2"], queue_override="Theatre at 9"
    )
    payload = CustodyEvent.objects.get(seq=handover.offered_seq).payload
    assert payload["queue_override"] == "Theatre at 9"
    assert payload["passed_over"] == queued_for_admin.created_seq


def test_a_hand_over_to_a_place_keeps_the_borrower_so_the_queue_does_not_stop_it(
    lent, cast, places, queued_for_admin
):
    handover = services.handover_offer(
        media=lent, actor=cast["doctor"], to_location=places["external"]
    )
    assert handover.status == HandoverStatus.PENDING


# --- superseded by another move -------------------------------------------------------------------


def test_a_return_while_pending_closes_the_hand_over(lent, cast):
    handover = offer_to_doctor2(lent, cast)

    services.media_return(media=lent, actor=cast["staff"])

    handover.refresh_from_db()
    returned = CustodyEvent.objects.filter(kind=EventKind.RETURNED).get()
    assert (handover.status, handover.reason, handover.closed_seq, handover.closed_by) == (
        HandoverStatus.CANCELLED,
        SUPERSEDED_BY_RETURN,
        returned.seq,
        cast["staff"],
    )
    with pytest.raises(HandoverClosed):
        services.handover_accept(handover=handover, actor=cast["doctor2"])
    lent.refresh_from_db()
    assert (lent.status, lent.current_holder) == (MediaStatus.ON_SHELF, None)
    rebuilds_cleanly()


def test_a_transfer_to_someone_else_closes_the_hand_over(lent, cast):
    handover = offer_to_doctor2(lent, cast)

    services.media_transfer(media=lent, actor=cast["staff"], to_holder=cast["admin"])

    handover.refresh_from_db()
    assert (handover.status, handover.reason) == (HandoverStatus.CANCELLED, SUPERSEDED_BY_TRANSFER)
    assert custody(lent)[1] == cast["admin"].pk
    rebuilds_cleanly()


def test_a_move_to_a_place_keeps_the_hand_over_pending(lent, cast, places):
    handover = offer_to_doctor2(lent, cast)
    services.media_transfer(media=lent, actor=cast["doctor"], to_location=places["courier"])
    handover.refresh_from_db()
    assert handover.status == HandoverStatus.PENDING
    services.handover_accept(handover=handover, actor=cast["doctor2"])
    lent.refresh_from_db()
    assert (lent.status, lent.current_holder) == (MediaStatus.ON_LOAN, cast["doctor2"])
    rebuilds_cleanly()


# --- safe retries ----------------------------------------------------------------------------------


def test_each_service_replays_by_event_id_and_refuses_a_conflicting_replay(lent, cast, places):
    ids = {
        name: uuid.uuid4() for name in ("offer", "decline", "offer2", "cancel", "offer3", "accept")
    }

    first = offer_to_doctor2(lent, cast, note="n", event_id=ids["offer"])
    assert offer_to_doctor2(lent, cast, note="n", event_id=ids["offer"]).pk == first.pk
    with pytest.raises(EventConflict):
        offer_to_doctor2(lent, cast, note="other note", event_id=ids["offer"])
    with pytest.raises(EventConflict):
        services.handover_offer(
            media=lent,
            actor=cast["doctor"],
            to_location=places["external"],
            note="n",
            event_id=ids["offer"],
        )

    services.handover_decline(
        handover=first, actor=cast["doctor2"], reason="busy", event_id=ids["decline"]
    )
    count = events()
    again = services.handover_decline(
        handover=first, actor=cast["doctor2"], reason="busy", event_id=ids["decline"]
    )
    assert (again.status, events()) == (HandoverStatus.DECLINED, count)
    with pytest.raises(EventConflict):
        services.handover_decline(
            handover=first, actor=cast["doctor2"], reason="away", event_id=ids["decline"]
        )

    second = offer_to_doctor2(lent, cast, event_id=ids["offer2"])
    services.handover_cancel(handover=second, actor=cast["doctor"], event_id=ids["cancel"])
    count = events()
    assert services.handover_cancel(
        handover=second, actor=cast["doctor"], event_id=ids["cancel"]
    ).status == (HandoverStatus.CANCELLED)
    assert events() == count
    with pytest.raises(EventConflict):
        services.handover_cancel(handover=second, actor=cast["staff"], event_id=ids["cancel"])

    third = offer_to_doctor2(lent, cast, event_id=ids["offer3"])
    services.handover_accept(handover=third, actor=cast["doctor2"], event_id=ids["accept"])
    count = events()
    replay = services.handover_accept(handover=third, actor=cast["doctor2"], event_id=ids["accept"])
    assert (replay.status, events()) == (HandoverStatus.ACCEPTED, count)
    with pytest.raises(EventConflict):
        services.handover_accept(handover=third, actor=cast["staff"], event_id=ids["accept"])
    # The id of an accepted hand-over's event cannot be reused for another hand-over either.
    with pytest.raises(EventConflict):
        services.handover_cancel(handover=third, actor=cast["doctor2"], event_id=ids["accept"])
    rebuilds_cleanly()


# --- the station hook ------------------------------------------------------------------------------


@pytest.fixture
def station(places):
    def make(mode, location="room", **kwargs):
        return ReaderDevice.objects.create(
            name=f"st-{mode}-{location}", location=places[location], mode=mode, **kwargs
        )

    return make


def test_a_check_out_station_accepts_a_hand_over_to_its_chosen_borrower(lent, cast, station):
    handover = offer_to_doctor2(lent, cast)
    counter = station(ReaderMode.CHECK_OUT)
    services.station_configure(device=counter, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor2"])

    assert services.handover_for_station_read(media=lent, device=counter, borrower=None) is None
    assert (
        services.handover_for_station_read(media=lent, device=counter, borrower=cast["admin"])
        is None
    )
    found = services.handover_for_station_read(media=lent, device=counter, borrower=cast["doctor2"])
    assert found.pk == handover.pk

    read_id = uuid.uuid4()
    read = Read("04A1B2C3D4E5F6", timezone.now(), 7)
    accepted = services.handover_accept(
        handover=found, actor=None, device=counter, event_id=read_id, read=read
    )

    event = CustodyEvent.objects.get(event_id=read_id)
    assert (event.kind, event.actor, event.device, event.holder) == (
        EventKind.TRANSFERRED,
        None,
        counter,
        cast["doctor2"],
    )
    assert (event.tag_uid, event.device_counter) == ("04A1B2C3D4E5F6", 7)
    assert (accepted.status, accepted.closed_by, accepted.closed_seq) == (
        HandoverStatus.ACCEPTED,
        None,
        event.seq,
    )
    assert custody(lent)[1] == cast["doctor2"].pk
    # The station delivering the same read again changes nothing.
    assert (
        services.handover_accept(
            handover=found, actor=None, device=counter, event_id=read_id, read=read
        ).status
        == HandoverStatus.ACCEPTED
    )
    assert CustodyEvent.objects.filter(event_id=read_id).count() == 1
    assert (
        services.handover_for_station_read(media=lent, device=counter, borrower=cast["doctor2"])
        is None
    )
    rebuilds_cleanly()


def test_a_locate_or_transfer_station_at_the_place_accepts_a_hand_over_to_it(lent, cast, station):
    handover = services.handover_offer(
        media=lent,
        actor=cast["doctor"],
        to_location=station(ReaderMode.LOCATE, "external").location,
    )
    elsewhere = station(ReaderMode.LOCATE, "shelf")
    there_inventory = station(ReaderMode.INVENTORY, "external")
    there_transfer = station(ReaderMode.TRANSFER, "external")
    there_locate = ReaderDevice.objects.get(name="st-locate-external")
    there_check_in = station(ReaderMode.CHECK_IN, "external")

    assert services.handover_for_station_read(media=lent, device=elsewhere, borrower=None) is None
    assert (
        services.handover_for_station_read(media=lent, device=there_inventory, borrower=None)
        is None
    )
    assert (
        services.handover_for_station_read(media=lent, device=there_check_in, borrower=None) is None
    )
    assert (
        services.handover_for_station_read(media=lent, device=there_transfer, borrower=None).pk
        == handover.pk
    )
    found = services.handover_for_station_read(
        media=lent, device=there_locate, borrower=cast["doctor2"]
    )
    assert found.pk == handover.pk

    with pytest.raises(NotAllowed, match="This station cannot accept"):
        services.handover_accept(
            handover=found, actor=None, device=elsewhere, event_id=uuid.uuid4()
        )
    with pytest.raises(NotAllowed):
        services.handover_accept(handover=found, actor=None, device=None)
    services.handover_accept(handover=found, actor=None, device=there_locate, event_id=uuid.uuid4())

    lent.refresh_from_db()
    assert (lent.current_location, lent.current_holder) == (there_locate.location, cast["doctor"])
    rebuilds_cleanly()


def test_a_station_does_not_accept_a_person_hand_over_for_another_borrower(lent, cast, station):
    handover = offer_to_doctor2(lent, cast)
    counter = station(ReaderMode.CHECK_OUT)
    services.station_configure(device=counter, mode=ReaderMode.CHECK_OUT, borrower=cast["admin"])
    locate = station(ReaderMode.LOCATE)

    assert services.handover_for_station_read(media=lent, device=locate, borrower=None) is None
    for device in (counter, locate):
        with pytest.raises(NotAllowed):
            services.handover_accept(
                handover=handover, actor=None, device=device, event_id=uuid.uuid4()
            )
    assert Handover.objects.get(pk=handover.pk).status == HandoverStatus.PENDING


# --- rebuild ----------------------------------------------------------------------------------------


def test_rebuild_reproduces_every_kind_of_closed_and_pending_hand_over(cast, make_media, places):
    items = [make_media(f"FJ-{n}") for n in range(5)]
    for item in items:
        services.media_check_out(media=item, borrower=cast["doctor"], actor=cast["staff"])
    to2 = [
        services.handover_offer(media=item, actor=cast["doctor"], to_holder=cast["doctor2"])
        for item in items[:4]
    ]
    services.handover_accept(handover=to2[0], actor=cast["doctor2"])
    services.handover_decline(handover=to2[1], actor=cast["doctor2"], reason="no")
    services.handover_cancel(handover=to2[2], actor=cast["doctor"])
    services.media_return(media=items[3], actor=cast["staff"])
    services.handover_offer(media=items[4], actor=cast["doctor"], to_location=places["external"])
    before = projection.snapshot()["handovers"]

    assert projection.rebuild(check_only=False) == []

    assert projection.snapshot()["handovers"] == before
    assert {h.status for h in Handover.objects.all()} == {
        HandoverStatus.ACCEPTED,
        HandoverStatus.DECLINED,
        HandoverStatus.CANCELLED,
        HandoverStatus.PENDING,
    }
    assert ledger.verify_ledger().ok


def test_rebuild_check_notices_a_hand_over_changed_behind_the_ledger(lent, cast):
    handover = offer_to_doctor2(lent, cast)
    Handover.objects.filter(pk=handover.pk).update(status=HandoverStatus.ACCEPTED)

    found = projection.rebuild(check_only=True)

    assert any(line.startswith("handovers:") for line in found)
