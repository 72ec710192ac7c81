"""Hand-overs: handover_* events and the transfers that accept or supersede them → Handover rows.

Events name a hand-over by its `offered_seq` (the seq of its handover_offered event), which a
rebuild keeps, unlike the row's id. Acceptance is a `transferred` event whose payload names the
hand-over; this module's transferred and returned handlers run after the package's own (the
loan has moved or closed by then). A return, or a transfer to a person that names no hand-over,
closes a pending hand-over of the item as cancelled: the loan it was offered for has ended.
"""

from __future__ import annotations

from ..choices import EventKind, HandoverStatus
from ..models import CustodyEvent, Handover, Loan

SUPERSEDED_BY_RETURN = "superseded: returned"
SUPERSEDED_BY_TRANSFER = "superseded: handed on"


def _offered(event: CustodyEvent) -> None:
    loan = Loan.objects.get(out_seq=event.payload["loan"])
    Handover.objects.create(
        media_id=event.media_id,
        loan=loan,
        from_holder_id=loan.borrower_id,
        to_holder_id=event.holder_id,
        to_location_id=event.to_location_id,
        offered_by_id=event.actor_id,
        offered_at=event.received_at,
        offered_seq=event.seq,
        note=event.payload.get("note", ""),
        status=HandoverStatus.PENDING,
    )


def _close(handovers, event: CustodyEvent, status: str, reason: str = "") -> None:
    handovers.update(
        status=status,
        closed_at=event.received_at,
        closed_seq=event.seq,
        closed_by_id=event.actor_id,
        reason=reason,
    )


def _named(event: CustodyEvent):
    return Handover.objects.filter(offered_seq=event.payload["handover"])


def _pending_of(event: CustodyEvent):
    return Handover.objects.filter(media_id=event.media_id, status=HandoverStatus.PENDING)


def _declined(event: CustodyEvent) -> None:
    _close(_named(event), event, HandoverStatus.DECLINED, event.payload["reason"])


def _cancelled(event: CustodyEvent) -> None:
    _close(_named(event), event, HandoverStatus.CANCELLED)


def _transferred(event: CustodyEvent) -> None:
    """After the package moved the item (and the loan): accepted, or superseded."""
    if event.payload.get("handover") is not None:
        _close(_named(event), event, HandoverStatus.ACCEPTED)
    elif event.holder_id is not None:  # the loan went to someone else another way
        _close(_pending_of(event), event, HandoverStatus.CANCELLED, SUPERSEDED_BY_TRANSFER)


def _returned(event: CustodyEvent) -> None:
    _close(_pending_of(event), event, HandoverStatus.CANCELLED, SUPERSEDED_BY_RETURN)


HANDLERS: dict = {
    EventKind.HANDOVER_OFFERED: _offered,
    EventKind.HANDOVER_DECLINED: _declined,
    EventKind.HANDOVER_CANCELLED: _cancelled,
    EventKind.TRANSFERRED: _transferred,
    EventKind.RETURNED: _returned,
}


def snapshot() -> dict:
    """Every hand-over as its events make it (its loan named by the event that opened it)."""
    return {
        "handovers": set(
            Handover.objects.values_list(
                "offered_seq",
                "media_id",
                "loan__out_seq",
                "from_holder_id",
                "to_holder_id",
                "to_location_id",
                "offered_by_id",
                "offered_at",
                "note",
                "status",
                "closed_at",
                "closed_seq",
                "closed_by_id",
                "reason",
            )
        )
    }


def reset() -> None:
    """Empty this module's rows before the ledger is replayed into them."""
    Handover.objects.all().delete()
