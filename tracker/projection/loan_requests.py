"""Loan requests and renewals: request_* and loan_renewed events → LoanRequest rows, Loan due dates.

Events name a request by its `created_seq` (the seq of its request_made event), which a rebuild
keeps, unlike the row's id. A check-out that fulfils a request names it the same way (payload
"request"); this module's checked_out handler runs the package's own first (it opens the Loan).
A return that undoes such a check-out (payload "undo_of") puts the request back to ready.
"""

from __future__ import annotations

from django.utils.dateparse import parse_date, parse_datetime

from archive.models import Patient, Study

from ..choices import EventKind, RequestStatus
from ..models import CustodyEvent, Loan, LoanRequest


def _made(event: CustodyEvent) -> None:
    payload = event.payload
    patient = study = None
    if payload.get("patient_id"):
        patient = Patient.objects.filter(patient_id=payload["patient_id"]).first()
    if payload.get("study"):
        study = Study.objects.filter(study_instance_uid=payload["study"]).first()
    LoanRequest.objects.create(
        requester_id=event.actor_id,
        patient=patient,
        study=study,
        media_id=event.media_id,
        needed_from=parse_date(payload["needed_from"]),
        needed_until=parse_date(payload["needed_until"]),
        purpose=payload["purpose"],
        destination_id=event.to_location_id,
        status=RequestStatus.PENDING,
        created_at=event.received_at,
        created_seq=event.seq,
        expires_at=parse_datetime(payload["expires_at"]) if payload.get("expires_at") else None,
    )


def _requests_of(event: CustodyEvent):
    return LoanRequest.objects.filter(created_seq=event.payload["request"])


def _approved(event: CustodyEvent) -> None:
    _requests_of(event).update(
        status=RequestStatus.APPROVED,
        media_id=event.media_id,
        decided_by_id=event.actor_id,
        decided_at=event.received_at,
    )


def _denied(event: CustodyEvent) -> None:
    _requests_of(event).update(
        status=RequestStatus.DENIED,
        decided_by_id=event.actor_id,
        decided_at=event.received_at,
        reason=event.payload["reason"],
    )


def _status(status: str):
    def handler(event: CustodyEvent) -> None:
        _requests_of(event).update(status=status)

    handler.__name__ = f"_{status}"
    return handler


def _checked_out(event: CustodyEvent) -> None:
    """After the package opened the loan: the request the check-out (or the accepted hand-over)
    served is fulfilled."""
    if event.payload.get("request") is not None:
        _requests_of(event).update(
            status=RequestStatus.FULFILLED, loan=Loan.objects.get(out_seq=event.seq)
        )


def _returned(event: CustodyEvent) -> None:
    """A station undoing the check-out that fulfilled a request: the item is back at the desk,
    so the request is ready for pick-up again, with no loan."""
    undone = event.payload.get("undo_of")
    if undone is None:
        return
    lent = CustodyEvent.objects.filter(seq=undone, kind=EventKind.CHECKED_OUT).first()
    if lent is not None and lent.payload.get("request") is not None:
        _requests_of(lent).update(status=RequestStatus.READY, loan=None)


def _renewed(event: CustodyEvent) -> None:
    Loan.objects.filter(out_seq=event.payload["loan"]).update(
        due_at=parse_datetime(event.payload["due_at"]), renewals=event.payload["renewals"]
    )


HANDLERS: dict = {
    EventKind.REQUEST_MADE: _made,
    EventKind.REQUEST_APPROVED: _approved,
    EventKind.REQUEST_DENIED: _denied,
    EventKind.REQUEST_READY: _status(RequestStatus.READY),
    EventKind.REQUEST_CANCELLED: _status(RequestStatus.CANCELLED),
    EventKind.REQUEST_EXPIRED: _status(RequestStatus.EXPIRED),
    EventKind.CHECKED_OUT: _checked_out,
    # A hand-over accepted by the person at the head of the item's queue serves their request.
    EventKind.TRANSFERRED: _checked_out,
    EventKind.RETURNED: _returned,
    EventKind.LOAN_RENEWED: _renewed,
}


def snapshot() -> dict:
    """Every request as its events make it (loans are named by the event that opened them; the
    package's "loans" set already holds due dates and renewal counts)."""
    return {
        "loan_requests": set(
            LoanRequest.objects.values_list(
                "created_seq",
                "requester_id",
                "patient_id",
                "study_id",
                "media_id",
                "needed_from",
                "needed_until",
                "purpose",
                "destination_id",
                "status",
                "created_at",
                "expires_at",
                "decided_by_id",
                "decided_at",
                "reason",
                "loan__out_seq",
            )
        )
    }


def reset() -> None:
    """Empty this module's rows before the ledger is replayed into them."""
    LoanRequest.objects.all().delete()
