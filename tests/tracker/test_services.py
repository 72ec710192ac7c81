"""The core custody services: each appends exactly one ledger event and keeps the projection."""
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from tracker import ledger, projection, services
from tracker.choices import EventKind, MediaStatus
from tracker.exceptions import (
    AlreadyOnLoan,
    DuplicateCode,
    EventConflict,
    MediaAlreadyTagged,
    MediaRetired,
    NotOnLoan,
    TagBoundElsewhere,
    UnknownTag,
)
from tracker.models import CustodyEvent, Loan, LoanPolicy


def events():
    return CustodyEvent.objects.count()


def test_it_registers_media_on_its_home_shelf(make_media, places):
    media = make_media("FJ-1")
    assert media.status == MediaStatus.ON_SHELF
    assert media.current_location == places["shelf"]
    event = CustodyEvent.objects.get()
    assert (event.kind, event.media, event.to_location) == (EventKind.MEDIA_REGISTERED, media, places["shelf"])


def test_it_refuses_a_duplicate_code(make_media):
    make_media("FJ-1")
    with pytest.raises(DuplicateCode):
        make_media("FJ-1")
    assert events() == 1


def test_it_checks_out_and_returns(make_media, cast, places):
    media = make_media()
    loan = services.media_check_out(
        media=media, borrower=cast["doctor"], actor=cast["staff"], destination=places["clinic"]
    )
    media.refresh_from_db()
    assert (media.status, media.current_holder, media.current_location) == (
        MediaStatus.ON_LOAN, cast["doctor"], places["clinic"]
    )
    assert loan.returned_at is None and loan.due_at > timezone.now()
    services.media_return(media=media, actor=cast["staff"])
    media.refresh_from_db()
    loan.refresh_from_db()
    assert media.status == MediaStatus.ON_SHELF and media.current_holder is None
    assert media.current_location == places["shelf"]
    assert loan.returned_at is not None
    assert list(CustodyEvent.objects.values_list("kind", flat=True)) == [
        EventKind.MEDIA_REGISTERED, EventKind.CHECKED_OUT, EventKind.RETURNED
    ]


def test_it_refuses_a_second_check_out_and_names_the_borrower(make_media, cast):
    media = make_media()
    services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    with pytest.raises(AlreadyOnLoan, match="on loan to Doctor since"):
        services.media_check_out(media=media, borrower=cast["doctor2"], actor=cast["staff"])
    assert events() == 2
    assert Loan.objects.filter(returned_at__isnull=True).count() == 1


def test_the_database_holds_one_open_loan_per_media_even_without_the_service(make_media, cast):
    from django.db import IntegrityError, transaction

    media = make_media()
    services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Loan.objects.create(
            media=media, borrower=cast["doctor2"], out_at=timezone.now(),
            due_at=timezone.now(), out_seq=999,
        )


def test_the_due_date_comes_from_the_most_specific_policy(make_media, cast, places):
    LoanPolicy.objects.create(name="default", loan_days=7)
    LoanPolicy.objects.create(name="external", destination_kind="external", loan_days=30)
    media = make_media()
    start = timezone.now()
    loan = services.media_check_out(
        media=media, borrower=cast["doctor"], actor=cast["staff"], destination=places["external"]
    )
    assert timedelta(days=29, hours=23) < loan.due_at - start < timedelta(days=30, minutes=1)
    services.media_return(media=media, actor=cast["staff"])
    loan = services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    assert timedelta(days=6, hours=23) < loan.due_at - start < timedelta(days=7, minutes=1)


def test_returning_an_item_on_the_shelf_is_refused(make_media, cast):
    media = make_media()
    with pytest.raises(NotOnLoan):
        services.media_return(media=media, actor=cast["staff"])
    assert events() == 1


def test_handing_over_moves_the_loan_and_keeps_the_due_date(make_media, cast):
    media = make_media()
    first = services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    services.media_transfer(media=media, to_holder=cast["doctor2"], actor=cast["doctor"])
    media.refresh_from_db()
    first.refresh_from_db()
    second = Loan.objects.get(returned_at__isnull=True)
    assert media.current_holder == cast["doctor2"] and media.status == MediaStatus.ON_LOAN
    assert first.returned_at is not None
    assert (second.borrower, second.due_at) == (cast["doctor2"], first.due_at)


def test_handing_over_an_item_on_the_shelf_is_refused(make_media, cast):
    media = make_media()
    with pytest.raises(NotOnLoan, match="check it out"):
        services.media_transfer(media=media, to_holder=cast["doctor2"], actor=cast["staff"])


def test_a_courier_puts_the_item_in_transit_until_it_is_seen(make_media, cast, places):
    media = make_media()
    services.media_transfer(media=media, to_location=places["courier"], actor=cast["staff"])
    media.refresh_from_db()
    assert media.status == MediaStatus.IN_TRANSIT
    services.media_seen(media=media, location=places["shelf2"], actor=cast["staff"])
    media.refresh_from_db()
    assert (media.status, media.current_location) == (MediaStatus.ON_SHELF, places["shelf2"])


def test_a_retired_item_cannot_move(make_media, cast):
    media = make_media()
    services.media_retire(media=media, actor=cast["staff"], reason="disc cracked")
    with pytest.raises(MediaRetired):
        services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    assert events() == 2


def test_tags_bind_once_and_unbind_into_history(make_media, cast):
    jacket, disc = make_media(), make_media()
    services.tag_bind(uid="04:a1:b2:c3:d4:e5:f6", media=jacket, actor=cast["staff"])
    assert services.media_for_tag("04A1B2C3D4E5F6") == jacket
    with pytest.raises(TagBoundElsewhere, match=jacket.code):
        services.tag_bind(uid="04a1b2c3d4e5f6", media=disc, actor=cast["staff"])
    with pytest.raises(MediaAlreadyTagged):
        services.tag_bind(uid="04 11 22 33 44 55 66", media=jacket, actor=cast["staff"])
    services.tag_unbind(uid="04A1B2C3D4E5F6", actor=cast["staff"])
    binding = services.tag_bind(uid="04A1B2C3D4E5F6", media=disc, actor=cast["staff"])
    assert binding.media == disc
    assert jacket.tag_bindings.get().unbound_at is not None


def test_an_unknown_tag_is_a_clear_error(db):
    with pytest.raises(UnknownTag, match="Bind it to a jacket or disc first"):
        services.media_for_tag("04DEADBEEF0000")


def test_the_same_event_id_twice_returns_the_original(make_media, cast):
    media = make_media()
    event_id = uuid.uuid4()
    loan = services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"], event_id=event_id)
    again = services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"], event_id=event_id)
    assert again == loan
    assert events() == 2


def test_the_same_event_id_with_other_details_is_a_conflict(make_media, cast):
    media = make_media()
    event_id = uuid.uuid4()
    services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"], event_id=event_id)
    with pytest.raises(EventConflict) as raised:
        services.media_check_out(media=media, borrower=cast["doctor2"], actor=cast["staff"], event_id=event_id)
    assert raised.value.details["fields"] == ["holder_id"]
    assert events() == 2


def test_the_ledger_and_projection_agree_after_a_busy_day(make_media, cast, places):
    items = [make_media() for _ in range(5)]
    services.media_check_out(media=items[0], borrower=cast["doctor"], actor=cast["staff"])
    services.media_transfer(media=items[0], to_holder=cast["doctor2"], actor=cast["doctor"])
    services.media_return(media=items[0], actor=cast["staff"], location=places["shelf2"])
    services.tag_bind(uid="04AABBCCDDEEFF", media=items[1], actor=cast["staff"])
    services.media_transfer(media=items[2], to_location=places["courier"], actor=cast["staff"])
    services.media_retire(media=items[3], actor=cast["staff"], reason="duplicate")
    services.media_seen(media=items[4], location=places["shelf2"], actor=cast["staff"])
    assert ledger.verify_ledger().ok
    assert projection.rebuild(check_only=True) == []


def test_handing_a_loan_on_keeps_its_renewals(make_media, cast):
    # Otherwise passing an item to a colleague and back would buy renewals past the policy's limit.
    from tracker.services.loan_requests import RenewalRefused

    media = make_media("FJ-RENEW")
    loan = services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    services.loan_renew(loan=loan, actor=cast["doctor"])  # the default policy allows one
    services.media_transfer(media=media, to_holder=cast["doctor2"], actor=cast["staff"])

    handed_on = Loan.objects.get(media=media, returned_at__isnull=True)
    assert (handed_on.borrower, handed_on.renewals) == (cast["doctor2"], 1)
    with pytest.raises(RenewalRefused):
        services.loan_renew(loan=handed_on, actor=cast["doctor2"])
    assert projection.rebuild(check_only=True) == []
