"""Flags and reminders: flag_raised / flag_cleared / reminder_sent events → Flag and Reminder rows.

Loans are named in payloads by `loan_seq`, the seq of the event that opened them (their ids
change across a rebuild); times by the payload's `at`, the clock of the sweep or service that
decided (so a sweep run with a frozen clock records the time it judged by)."""
from __future__ import annotations

import json

from django.utils.dateparse import parse_datetime

from ..choices import EventKind
from ..models import CustodyEvent, Flag, Loan, Reminder


def _at(event: CustodyEvent):
    at = event.payload.get("at")
    return parse_datetime(at) if at else event.received_at


def _loan_id(loan_seq: int | None) -> int | None:
    if loan_seq is None:
        return None
    return Loan.objects.filter(out_seq=loan_seq).values_list("pk", flat=True).first()


def flag_row(event: CustodyEvent, loan_id: int | None = None) -> Flag:
    """The Flag a `flag_raised` event opens (unsaved): the sweep creates many at once with it."""
    payload = event.payload
    if loan_id is None:
        loan_id = _loan_id(payload.get("loan_seq"))
    return Flag(
        media_id=event.media_id,
        kind=payload["kind"],
        loan_id=loan_id,
        raised_at=_at(event),
        raised_seq=event.seq,
        details=payload.get("details") or {},
    )


def _flag_raised(event: CustodyEvent) -> None:
    flag_row(event).save(force_insert=True)


def _flag_cleared(event: CustodyEvent) -> None:
    Flag.objects.filter(raised_seq=event.payload["flag_seq"], cleared_at__isnull=True).update(
        cleared_at=_at(event), cleared_seq=event.seq
    )


def reminder_row(event: CustodyEvent, loan_id: int | None = None) -> Reminder:
    payload = event.payload
    return Reminder(
        loan_id=loan_id if loan_id is not None else _loan_id(payload["loan_seq"]),
        sent_at=_at(event),
        sent_to=payload["to"],
        sent_by_id=event.actor_id,
        seq=event.seq,
    )


def _reminder_sent(event: CustodyEvent) -> None:
    reminder_row(event).save(force_insert=True)


HANDLERS: dict = {
    EventKind.FLAG_RAISED: _flag_raised,
    EventKind.FLAG_CLEARED: _flag_cleared,
    EventKind.REMINDER_SENT: _reminder_sent,
}


def snapshot() -> dict:
    return {
        "flags": {
            (media_id, kind, loan_seq, raised_at, raised_seq, cleared_at, cleared_seq,
             json.dumps(details, sort_keys=True))
            for media_id, kind, loan_seq, raised_at, raised_seq, cleared_at, cleared_seq, details
            in Flag.objects.values_list(
                "media_id", "kind", "loan__out_seq", "raised_at", "raised_seq", "cleared_at",
                "cleared_seq", "details",
            )
        },
        "reminders": set(
            Reminder.objects.values_list("loan__out_seq", "sent_at", "sent_to", "sent_by_id", "seq")
        ),
    }


def reset() -> None:
    """Empty this module's rows before the ledger is replayed into them."""
    Reminder.objects.all().delete()
    Flag.objects.all().delete()
