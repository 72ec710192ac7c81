"""Flags and reminders: the sweep that finds overdue, stuck and unseen items, and reminders to borrowers.

A flag is raised by one `flag_raised` event and cleared by one `flag_cleared` event; at most one
flag of a kind is open on an item (a database constraint). The sweep works on sets (a few queries
whatever the size of the file room) and still appends one event per flag it raises or clears.

What each kind means (the conditions the sweep checks at `now`):
- overdue: the item has an open loan due before `now`. Clears when it is returned or renewed
  past `now`; handing it to a colleague keeps the due date, so the flag stays.
- in_transit: the item is with a courier (in transit) and was last seen more than
  FLAG_TRANSIT_HOURS ago. Clears when it arrives or is seen again.
- not_seen: the item is on its shelf (as the ledger has it) but no reader has seen it there for
  FLAG_NOT_SEEN_DAYS. Items on loan, in transit, missing or retired are never "not seen": their
  own flags cover them. Clears when a reader sees it or it moves.
- inventory_missing: raised by an inventory that expected the item and did not read it. Clears
  when the item turns up: seen, returned or moved after the flag was raised.

Reminders go to the borrower of an overdue loan at most once every REMINDER_EVERY_DAYS (a manual
one counts too); each is a Reminder row and a `reminder_sent` event. Mails name the item by its
code, never the patient.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from .. import ledger, projection
from ..choices import EventKind, FlagKind, MediaStatus
from ..exceptions import InvalidRequest, NotOnLoan
from ..ledger import EventRequest
from ..models import CustodyEvent, Flag, Loan, Media, Reminder
from .custody import User, _record

__all__ = [
    "flag_clear",
    "flag_raise",
]

# Defaults; a site changes them in settings (FLAG_TRANSIT_HOURS, FLAG_NOT_SEEN_DAYS,
# REMINDER_EVERY_DAYS), read at each call so tests and a running loop see a change.
TRANSIT_HOURS = 48
NOT_SEEN_DAYS = 365
REMINDER_EVERY_DAYS = 3
# Flags raised or cleared per transaction: the ledger lock is held for one batch at a time, so
# stations keep scanning while a first sweep over a large file room raises its flags.
BATCH = 500


def transit_limit() -> timedelta:
    return timedelta(hours=int(getattr(settings, "FLAG_TRANSIT_HOURS", TRANSIT_HOURS)))


def not_seen_limit() -> timedelta:
    return timedelta(days=int(getattr(settings, "FLAG_NOT_SEEN_DAYS", NOT_SEEN_DAYS)))


def reminder_interval() -> timedelta:
    return timedelta(days=int(getattr(settings, "REMINDER_EVERY_DAYS", REMINDER_EVERY_DAYS)))


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def _flag_payload(*, kind: str, details: dict | None, loan: Loan | None, now: datetime) -> dict:
    # A loan is named by the seq of the event that opened it: loan ids change when the
    # projection is rebuilt, that seq never does.
    payload = {"kind": str(kind), "details": details or {}, "at": ledger.format_time(now)}
    if loan is not None:
        payload["loan_seq"] = loan.out_seq
    return payload


# --- raising and clearing one flag --------------------------------------------------------------


@transaction.atomic
def flag_raise(
    *,
    media: Media,
    kind: str,
    actor: User | None = None,
    details: dict | None = None,
    loan: Loan | None = None,
    now: datetime | None = None,
    event_id=None,
) -> Flag:
    """Raise a flag of `kind` on an item (one `flag_raised` event). An open flag of that kind is
    returned as it is: raising twice adds nothing."""
    if kind not in FlagKind.values:
        raise InvalidRequest(_("“%(kind)s” is not a kind of flag.") % {"kind": kind})
    request = EventRequest(
        EventKind.FLAG_RAISED, media=media, actor=actor, event_id=event_id, asked={"kind": str(kind)}
    )
    if prior := ledger.replayed(request):
        return Flag.objects.get(raised_seq=prior.seq)
    open_flag = Flag.objects.filter(media=media, kind=kind, cleared_at__isnull=True).first()
    if open_flag is not None:
        return open_flag
    payload = _flag_payload(kind=kind, details=details, loan=loan, now=_now(now))
    event = _record(request, payload=payload)
    return Flag.objects.get(raised_seq=event.seq)


@transaction.atomic
def flag_clear(
    *, flag: Flag, actor: User | None = None, reason: str, now: datetime | None = None, event_id=None
) -> Flag:
    """Clear an open flag (one `flag_cleared` event naming the event that raised it); a flag
    already cleared is returned as it is."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(_("Say why the flag on %(code)s is cleared.") % {"code": flag.media.code})
    request = EventRequest(
        EventKind.FLAG_CLEARED, media=flag.media, actor=actor, event_id=event_id,
        asked={"flag_seq": flag.raised_seq},
    )
    if ledger.replayed(request):
        return Flag.objects.get(pk=flag.pk)
    flag = Flag.objects.get(pk=flag.pk)
    if flag.cleared_at is not None:
        return flag
    payload = {
        "kind": flag.kind, "flag_seq": flag.raised_seq, "reason": reason,
        "at": ledger.format_time(_now(now)),
    }
    _record(request, payload=payload)
    return Flag.objects.get(pk=flag.pk)
