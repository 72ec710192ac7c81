"""Flags: raised and cleared one event each, by the services an inventory calls and by the sweep."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tracker import projection, services
from tracker.choices import EventKind, FlagKind
from tracker.exceptions import InvalidRequest
from tracker.models import CustodyEvent, Flag


def events(kind=None):
    found = CustodyEvent.objects.all()
    return (found.filter(kind=kind) if kind else found).count()


def test_it_raises_a_flag_with_one_event_and_raising_again_adds_nothing(make_media, cast):
    media = make_media("FJ-1")
    now = timezone.now()
    flag = services.flag_raise(
        media=media, kind=FlagKind.INVENTORY_MISSING, actor=cast["staff"],
        details={"inventory": 7}, now=now,
    )
    again = services.flag_raise(media=media, kind=FlagKind.INVENTORY_MISSING, actor=cast["staff"], now=now)
    assert again.pk == flag.pk
    assert (flag.kind, flag.media, flag.details, flag.raised_at) == (
        FlagKind.INVENTORY_MISSING, media, {"inventory": 7}, now
    )
    assert flag.cleared_at is None
    event = CustodyEvent.objects.get(kind=EventKind.FLAG_RAISED)
    assert event.seq == flag.raised_seq and event.media == media and event.actor == cast["staff"]
    assert event.payload["kind"] == FlagKind.INVENTORY_MISSING


def test_it_clears_a_flag_with_its_own_event_once(make_media, cast):
    media = make_media("FJ-1")
    flag = services.flag_raise(media=media, kind=FlagKind.INVENTORY_MISSING, actor=cast["staff"])
    later = timezone.now() + timedelta(hours=2)
    cleared = services.flag_clear(flag=flag, actor=cast["staff"], reason="found on shelf A2", now=later)
    services.flag_clear(flag=flag, actor=cast["staff"], reason="found again")
    assert (cleared.cleared_at, cleared.cleared_seq) == (later, events())
    assert events(EventKind.FLAG_CLEARED) == 1
    event = CustodyEvent.objects.get(kind=EventKind.FLAG_CLEARED)
    assert event.payload["flag_seq"] == flag.raised_seq and event.payload["reason"] == "found on shelf A2"
    # A new flag of the same kind may be raised once the old one is cleared.
    fresh = services.flag_raise(media=media, kind=FlagKind.INVENTORY_MISSING, actor=cast["staff"])
    assert fresh.pk != flag.pk and Flag.objects.filter(media=media).count() == 2


def test_it_refuses_an_unknown_kind_and_a_clear_without_reason(make_media, cast):
    media = make_media("FJ-1")
    with pytest.raises(InvalidRequest):
        services.flag_raise(media=media, kind="lost_in_space", actor=cast["staff"])
    flag = services.flag_raise(media=media, kind=FlagKind.NOT_SEEN)
    with pytest.raises(InvalidRequest):
        services.flag_clear(flag=flag, actor=cast["staff"], reason="  ")
    assert events(EventKind.FLAG_CLEARED) == 0


def test_flags_rebuild_from_the_ledger(make_media, cast, places):
    media = make_media("FJ-1")
    loan = services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    overdue = services.flag_raise(media=media, kind=FlagKind.OVERDUE, loan=loan, details={"x": 1})
    services.flag_raise(media=make_media("FJ-2"), kind=FlagKind.NOT_SEEN)
    services.flag_clear(flag=overdue, reason="returned")
    assert projection.rebuild(check_only=True) == []
    assert Flag.objects.get(pk=overdue.pk).loan == loan
