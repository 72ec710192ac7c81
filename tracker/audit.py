"""The auditors' side: which custody events a question covers, and the access log.

`custody_events()` is the one definition of "the custody chain of an item, a patient, a
borrower or a place over a period": the auditors' pages, their API and the exports all ask it,
so what an auditor sees on screen is what an export carries. `record_access()` writes the
access log: every auditor read of patient data, every export and every verification."""
from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from .choices import AccessAction, AccessSubject
from .models import AccessLog, CustodyEvent


def custody_events(
    *,
    media=None,
    patient=None,
    borrower=None,
    location=None,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: list[str] | None = None,
) -> QuerySet[CustodyEvent]:
    """Ledger events in seq order, narrowed by whichever of these are given:
    - media: a Media (its events);
    - patient: an archive.Patient (the events of every item that is or was theirs);
    - borrower: a user (events that handed something to them, or that they did);
    - location: a Location (events that moved something from or to it, or read there);
    - since / until: received time, `since` inclusive, `until` exclusive;
    - kinds: EventKind values."""
    events = CustodyEvent.objects.select_related(
        "media", "actor", "device", "from_location", "to_location", "holder"
    ).order_by("seq")
    if media is not None:
        events = events.filter(media=media)
    if patient is not None:
        events = events.filter(media__patient=patient)
    if borrower is not None:
        events = events.filter(Q(holder=borrower) | Q(actor=borrower))
    if location is not None:
        events = events.filter(Q(from_location=location) | Q(to_location=location))
    if since is not None:
        events = events.filter(received_at__gte=since)
    if until is not None:
        events = events.filter(received_at__lt=until)
    if kinds:
        events = events.filter(kind__in=kinds)
    return events


def record_access(
    *, user, action: str, subject_kind: str, subject: str = "", detail: dict | None = None, path: str = ""
) -> AccessLog:
    """Write one access-log row (AccessAction, AccessSubject; `subject` names which item,
    patient, borrower or place; `detail` holds the filters, the format or the range)."""
    if action not in AccessAction.values or subject_kind not in AccessSubject.values:
        raise ValueError(f"unknown access action/subject: {action}/{subject_kind}")
    return AccessLog.objects.create(
        user=user, action=action, subject_kind=subject_kind, subject=str(subject)[:100],
        detail=detail or {}, path=path[:300],
    )
