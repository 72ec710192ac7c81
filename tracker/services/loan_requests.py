"""Loan requests and holds, renewals: clinicians ask, the file room decides, items queue.

A request names an item, a patient or a study, the dates it is needed and why. Each service
appends one ledger event (request_made/approved/denied/ready/cancelled/expired, loan_renewed);
tracker.projection.loan_requests turns them into LoanRequest rows and Loan due dates.

The rules a file room runs by, as decided here:
- Life of a request: pending → approved (the file room accepts it and names the item, for a
  patient or study request) → ready (pulled and waiting at the desk) → fulfilled (the check-out
  that lends it names it). Pending, approved or ready requests may be denied (with a reason) or
  cancelled (by the requester or staff).
- Expiry: a request not yet lent expires at the end of its `needed_until` day (local time);
  `loan_requests_expire(now=...)`, run by the sweep, records one event per request that passed it.
- The queue of an item: its approved and ready requests, ready first (it is pulled for that
  person), then in the order they were made (created_seq). A returned item is offered to the
  head of its queue (`next_in_queue`); staff mark that request ready when they pull it. Pending
  requests are not in the queue (nobody accepted them yet), but they do count as someone waiting
  when the borrower asks to renew.
- Check-outs honour the queue (`check_out_claims`, called by media_check_out): lending the item
  to the person at the head of its queue fulfils that request; lending it to anyone else while a
  request is queued is refused unless staff give a reason to skip the queue (recorded).
- Renewals: the new due date is one policy period after the later of the old due date and now
  (renewing early loses no days; renewing an overdue loan gives a full period from today).
  Refused past the policy's renewals, or while a colleague waits for the item; a clinician may
  renew only their own loans.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from archive.models import Patient, Study

from .. import ledger
from ..choices import EventKind, MediaStatus, RequestStatus
from ..exceptions import (  # the request errors are re-exported: callers import them from here
    Conflict,
    InvalidRequest,
    MediaRetired,
    NotAllowed,
    NotOnLoan,
    QueueAhead,
    RenewalRefused,
    RequestClosed,
)
from ..ledger import EventRequest
from ..models import Loan, LoanPolicy, LoanRequest, Location, Media
from ..permissions import STAFF_ROLES, has_role, roles_of
from .custody import User, _locked, _name, _record

__all__ = [
    "DEFAULT_MAX_RENEWALS",
    "NotAllowed",
    "PullShelf",
    "QueueAhead",
    "RenewalRefused",
    "RequestClosed",
    "check_out_claims",
    "loan_policy_for",
    "loan_renew",
    "loan_request_approve",
    "loan_request_cancel",
    "loan_request_deny",
    "loan_request_make",
    "loan_request_ready",
    "loan_requests_expire",
    "loan_requests_waiting",
    "next_in_queue",
    "pull_list",
    "queue_position",
    "request_queue",
]

# Renewals allowed when no loan policy matches (the LoanPolicy field's default).
DEFAULT_MAX_RENEWALS = LoanPolicy._meta.get_field("max_renewals").default
OPEN_STATUSES = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.READY)
QUEUED_STATUSES = (RequestStatus.APPROVED, RequestStatus.READY)
# How far ahead a request may be made: the file room plans weeks, not years.
MAX_DAYS_AHEAD = 366
# Said at a station too (DomainError.said keeps it for each reader's language).
HELD_FOR = gettext_noop(
    "%(code)s is held for %(name)s (request %(id)s, waiting since %(since)s). "
    "Lend it to them, or give a reason to lend it out of turn."
)


def _is_staff(user) -> bool:
    return has_role(user, STAFF_ROLES)


def _day(value: date) -> str:
    return value.isoformat()


def _when(moment: datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def _today(now: datetime | None) -> date:
    return timezone.localdate(now or timezone.now())


def expiry_for(needed_until: date) -> datetime:
    """The end of the `needed_until` day, local time: a request not lent by then is of no use."""
    return timezone.make_aware(datetime.combine(needed_until + timedelta(days=1), time.min))


# --- read side: queues and who is waiting --------------------------------------------------------


def request_queue(media: Media) -> list[LoanRequest]:
    """The item's holds in serving order: a ready request first (it is pulled for that person),
    then approved ones in the order they were made."""
    queued = LoanRequest.objects.select_related("requester").filter(
        media=media, status__in=QUEUED_STATUSES
    )
    return sorted(queued, key=lambda r: (r.status != RequestStatus.READY, r.created_seq))


def next_in_queue(media: Media) -> LoanRequest | None:
    """The request the item is offered to next (when it comes back, or now if on the shelf)."""
    queue = request_queue(media)
    return queue[0] if queue else None


def queue_position(request: LoanRequest) -> int | None:
    """1 for the head of the item's queue; None for a request not queued (pending, closed)."""
    if request.status not in QUEUED_STATUSES or request.media_id is None:
        return None
    for position, queued in enumerate(request_queue(Media(pk=request.media_id)), start=1):
        if queued.pk == request.pk:
            return position
    return None


@dataclass
class PullShelf:
    """One shelf of a pull list: where to walk, and the requests to pull there."""

    location: Location
    path: list[Location]  # from the outermost place (the file room) down to the shelf
    requests: list[LoanRequest]


def pull_list(*, day: date, within: Location | None = None) -> list[PullShelf]:
    """The approved requests to pull for `day` (needed from that day or earlier and not yet
    expired), grouped by the shelf each item is on (its home shelf while it is away), shelves in
    walking order: by shelf order and code at each level of the location tree, so a room's
    shelves stay together. `within` keeps the shelves inside one place (a file room).
    An item is listed once, for the first of its requests in the queue; the others due that
    day are in that request's `also`."""
    requests = (
        LoanRequest.objects.filter(
            status=RequestStatus.APPROVED,
            media__isnull=False,
            needed_from__lte=day,
            needed_until__gte=day,
        )
        .select_related(
            "requester", "destination", "media__patient", "media__current_location",
            "media__home_location",
        )
        .order_by("created_seq")
    )
    places = {place.pk: place for place in Location.objects.all()}

    def path_of(place: Location) -> list[Location]:
        path, seen = [], set()
        while place is not None and place.pk not in seen:  # an admin's loop must not hang us
            seen.add(place.pk)
            path.append(place)
            place = places.get(place.parent_id)
        return path[::-1]

    shelves: dict[int, PullShelf] = {}
    for request in requests:
        media = request.media
        found = media.current_location if media.status == MediaStatus.ON_SHELF else None
        place = places[(found or media.home_location).pk]
        path = path_of(place)
        if within is not None and within.pk not in {p.pk for p in path}:
            continue
        shelf = shelves.setdefault(place.pk, PullShelf(place, path, []))
        first = next((r for r in shelf.requests if r.media_id == request.media_id), None)
        if first is None:  # the item is pulled once, for the first in its queue
            request.also = []
            shelf.requests.append(request)
        else:
            first.also.append(request)
    for shelf in shelves.values():
        shelf.requests.sort(key=lambda r: r.media.code)
    return sorted(shelves.values(), key=lambda s: [(p.shelf_order, p.code) for p in s.path])


def loan_requests_waiting(*, media: Media, besides=None) -> QuerySet[LoanRequest]:
    """Open requests (pending, approved or ready) for the item from anyone but `besides`, oldest
    first: the people who are waiting for it."""
    waiting = LoanRequest.objects.select_related("requester").filter(
        media=media, status__in=OPEN_STATUSES
    )
    if besides is not None:
        waiting = waiting.exclude(requester=besides)
    return waiting.order_by("created_seq")


def loan_policy_for(
    *, media: Media, destination: Location | None, borrower=None
) -> LoanPolicy | None:
    """The loan policy for this item, destination and borrower; None when no rule matches.

    A rule matches when each field it sets fits (media kind, destination kind, one of the
    borrower's roles). The most specific rule wins: more fields set beats fewer; at an equal
    count, a rule naming the borrower's role beats one naming the destination, which beats one
    naming the kind of item; then the newest rule."""
    roles = sorted(roles_of(borrower)) if borrower is not None else []
    policies = LoanPolicy.objects.filter(
        media_kind__in=[media.kind, ""],
        destination_kind__in=[destination.kind if destination else "", ""],
        borrower_role__in=[*roles, ""],
    )
    return max(
        policies,
        key=lambda p: (
            bool(p.media_kind) + bool(p.destination_kind) + bool(p.borrower_role),
            bool(p.borrower_role),
            bool(p.destination_kind),
            bool(p.media_kind),
            p.pk,
        ),
        default=None,
    )


# --- requests ----------------------------------------------------------------------------------


def _request_locked(request: LoanRequest) -> LoanRequest:
    """The request as it stands now, locked for this transaction (decisions run one at a time)."""
    found = LoanRequest.objects.select_for_update().filter(pk=request.pk).first()
    if found is None:
        raise InvalidRequest(_("There is no loan request %(id)s.") % {"id": request.pk})
    return found


def _refuse_unless(request: LoanRequest, statuses, doing: str) -> None:
    if request.status not in statuses:
        raise RequestClosed(
            _("Request %(id)s is %(status)s; it cannot be %(doing)s.")
            % {"id": request.pk, "status": request.get_status_display().lower(), "doing": doing},
            request=request.pk,
            status=request.status,
        )


def _replayed_request(event_request: EventRequest, request: LoanRequest) -> LoanRequest | None:
    if ledger.replayed(event_request):
        return LoanRequest.objects.get(pk=request.pk)
    return None


@transaction.atomic
def loan_request_make(
    *,
    requester: User,
    needed_from: date,
    needed_until: date,
    purpose: str,
    destination: Location | None = None,
    media: Media | None = None,
    patient: Patient | None = None,
    study: Study | None = None,
    now: datetime | None = None,
    event_id=None,
) -> LoanRequest:
    """Ask the file room for an item, a patient's media or a study's, for dates and a purpose."""
    purpose = (purpose or "").strip()
    payload = {
        "needed_from": _day(needed_from),
        "needed_until": _day(needed_until),
        "purpose": purpose,
    }
    if patient is not None:
        payload["patient_id"] = patient.patient_id
    if study is not None:
        payload["study"] = study.study_instance_uid
    event_request = EventRequest(
        EventKind.REQUEST_MADE,
        media=media,
        actor=requester,
        to_location=destination,
        event_id=event_id,
        asked=payload,
    )
    if prior := ledger.replayed(event_request):
        return LoanRequest.objects.get(created_seq=prior.seq)
    if media is None and patient is None and study is None:
        raise InvalidRequest(_("Say what you need: an item's code, a patient or a study."))
    if not purpose:
        raise InvalidRequest(_("Say what the media are needed for (the purpose)."))
    if len(purpose) > 200:
        raise InvalidRequest(_("Keep the purpose under 200 characters."))
    today = _today(now)
    if needed_until < needed_from:
        raise InvalidRequest(
            _("“Needed until” (%(until)s) is before “needed from” (%(from)s).")
            % {"until": _day(needed_until), "from": _day(needed_from)}
        )
    if needed_until < today:
        raise InvalidRequest(
            _("“Needed until” (%(until)s) has already passed; choose dates from today on.")
            % {"until": _day(needed_until)}
        )
    if needed_from > today + timedelta(days=MAX_DAYS_AHEAD):
        raise InvalidRequest(_("Requests can be made at most a year ahead."))
    if not requester.is_active:
        raise InvalidRequest(_("%(name)s's account is disabled.") % {"name": _name(requester)})
    if study is not None and patient is not None and study.patient_id != patient.pk:
        raise InvalidRequest(
            _("Study %(uid)s is not patient %(patient)s's.")
            % {"uid": study.study_instance_uid, "patient": patient.patient_id}
        )
    if media is not None:
        media = _locked(media)  # refuses a retired item
        if patient is not None and media.patient_id not in (None, patient.pk):
            raise InvalidRequest(
                _("%(code)s is not patient %(patient)s's.")
                % {"code": media.code, "patient": patient.patient_id}
            )
        mine = loan_requests_waiting(media=media).filter(requester=requester).first()
        if mine is not None:
            raise Conflict(
                _("You already asked for %(code)s (request %(id)s, %(status)s).")
                % {"code": media.code, "id": mine.pk, "status": mine.get_status_display().lower()},
                request=mine.pk,
            )
    payload["expires_at"] = ledger.format_time(expiry_for(needed_until))
    event = _record(event_request, payload=payload)
    return LoanRequest.objects.get(created_seq=event.seq)


def _fits_request(request: LoanRequest, media: Media) -> None:
    """An item assigned to a patient or study request must be that patient's / hold that study."""
    if request.patient_id is not None and media.patient_id != request.patient_id:
        raise InvalidRequest(
            _("%(code)s is not the requested patient's; choose one of their jackets or discs.")
            % {"code": media.code}
        )
    if request.study_id is not None and not media.studies.filter(pk=request.study_id).exists():
        raise InvalidRequest(
            _("%(code)s does not hold the requested study; choose an item that does.")
            % {"code": media.code}
        )


@transaction.atomic
def loan_request_approve(
    *, request: LoanRequest, actor: User, media: Media | None = None, event_id=None
) -> LoanRequest:
    """Accept a pending request (staff). For a patient or study request, name the item to lend;
    the request then queues on that item."""
    media = media or (Media(pk=request.media_id) if request.media_id else None)
    event_request = EventRequest(
        EventKind.REQUEST_APPROVED,
        media=media,
        actor=actor,
        event_id=event_id,
        asked={"request": request.created_seq},
    )
    if replay := _replayed_request(event_request, request):
        return replay
    request = _request_locked(request)
    _refuse_unless(request, [RequestStatus.PENDING], _("approved"))
    if media is None:
        raise InvalidRequest(
            _("Request %(id)s names no item: choose the jacket or disc to lend.")
            % {"id": request.pk}
        )
    if request.media_id is not None and media.pk != request.media_id:
        raise InvalidRequest(
            _("Request %(id)s is for another item; approve it as asked or deny it.")
            % {"id": request.pk}
        )
    media = _locked(media)
    if request.media_id is None:
        _fits_request(request, media)
    _record(event_request, payload={"request": request.created_seq})
    return LoanRequest.objects.get(pk=request.pk)


@transaction.atomic
def loan_request_deny(
    *, request: LoanRequest, actor: User, reason: str, event_id=None
) -> LoanRequest:
    """Turn a request down (staff), saying why: the requester reads the reason."""
    reason = (reason or "").strip()
    payload = {"request": request.created_seq, "reason": reason}
    event_request = EventRequest(
        EventKind.REQUEST_DENIED,
        media=Media(pk=request.media_id) if request.media_id else None,
        actor=actor,
        event_id=event_id,
        asked=payload,
    )
    if replay := _replayed_request(event_request, request):
        return replay
    request = _request_locked(request)
    if not reason:
        raise InvalidRequest(
            _("Give a reason for denying request %(id)s; the requester will read it.")
            % {"id": request.pk}
        )
    if len(reason) > 300:
        raise InvalidRequest(_("Keep the reason under 300 characters."))
    _refuse_unless(request, OPEN_STATUSES, _("denied"))
    _record(event_request, payload=payload)
    return LoanRequest.objects.get(pk=request.pk)


@transaction.atomic
def loan_request_ready(*, request: LoanRequest, actor: User, event_id=None) -> LoanRequest:
    """The item is pulled and waiting at the desk for the requester (staff)."""
    event_request = EventRequest(
        EventKind.REQUEST_READY,
        media=Media(pk=request.media_id) if request.media_id else None,
        actor=actor,
        event_id=event_id,
        asked={"request": request.created_seq},
    )
    if replay := _replayed_request(event_request, request):
        return replay
    request = _request_locked(request)
    _refuse_unless(request, [RequestStatus.APPROVED], _("marked ready"))
    media = _locked(Media(pk=request.media_id))
    if media.status != MediaStatus.ON_SHELF:
        raise Conflict(
            _("%(code)s is %(status)s, not on the shelf: it cannot be pulled yet.")
            % {"code": media.code, "status": media.get_status_display().lower()},
            media=media.code,
        )
    head = next_in_queue(media)
    if head is not None and head.pk != request.pk:
        raise QueueAhead(
            _("%(name)s's request %(id)s (made %(since)s) comes first for %(code)s.")
            % {
                "name": _name(head.requester),
                "id": head.pk,
                "since": _when(head.created_at),
                "code": media.code,
            },
            request=head.pk,
        )
    _record(event_request, payload={"request": request.created_seq})
    return LoanRequest.objects.get(pk=request.pk)


@transaction.atomic
def loan_request_cancel(*, request: LoanRequest, actor: User, event_id=None) -> LoanRequest:
    """Withdraw a request: the requester's own, or any request for staff."""
    event_request = EventRequest(
        EventKind.REQUEST_CANCELLED,
        media=Media(pk=request.media_id) if request.media_id else None,
        actor=actor,
        event_id=event_id,
        asked={"request": request.created_seq},
    )
    if replay := _replayed_request(event_request, request):
        return replay
    request = _request_locked(request)
    if request.requester_id != actor.pk and not _is_staff(actor):
        raise NotAllowed(
            _("Only the person who made request %(id)s or the file room can cancel it.")
            % {"id": request.pk}
        )
    _refuse_unless(request, OPEN_STATUSES, _("cancelled"))
    _record(event_request, payload={"request": request.created_seq})
    return LoanRequest.objects.get(pk=request.pk)


def loan_requests_expire(*, now: datetime | None = None) -> list[LoanRequest]:
    """Record the expiry of every open request whose `needed_until` day has passed, one event
    each; running it again finds nothing new. Each expiry is its own transaction, so one
    request's trouble does not hold back the others."""
    now = now or timezone.now()
    due = LoanRequest.objects.filter(status__in=OPEN_STATUSES, expires_at__lte=now).order_by(
        "created_seq"
    )
    expired = []
    for request in due:
        with transaction.atomic():
            event_request = EventRequest(
                EventKind.REQUEST_EXPIRED,
                media=Media(pk=request.media_id) if request.media_id else None,
            )
            ledger.replayed(event_request)  # takes the ledger lock
            request = _request_locked(request)
            if request.status not in OPEN_STATUSES:
                continue  # lent or closed since the list was read
            _record(event_request, payload={"request": request.created_seq})
            expired.append(LoanRequest.objects.get(pk=request.pk))
    return expired


# --- check-outs and the queue --------------------------------------------------------------------


def check_out_claims(
    *, media: Media, borrower: User, request: LoanRequest | None, queue_override: str = ""
) -> dict:
    """What a check-out of `media` to `borrower` must record about the queue (payload keys), or
    a refusal. Called by media_check_out under the item's row lock.

    The request it fulfils is the one named, or else the head of the queue when that is the
    borrower's. Lending past someone else's queued request needs `queue_override` (a reason)."""
    head = next_in_queue(media)
    if request is not None:
        request = LoanRequest.objects.select_related("requester").get(pk=request.pk)
        if request.media_id != media.pk:
            raise InvalidRequest(
                _("Request %(id)s is not for %(code)s.") % {"id": request.pk, "code": media.code}
            )
        _refuse_unless(request, QUEUED_STATUSES, _("lent"))
        if request.requester_id != borrower.pk:
            raise InvalidRequest(
                _("Request %(id)s is %(name)s's; lend the item to them for it.")
                % {"id": request.pk, "name": _name(request.requester)}
            )
    elif head is not None and head.requester_id == borrower.pk:
        request = head
    claims = {"request": request.created_seq} if request is not None else {}
    if head is not None and (request is None or head.pk != request.pk):
        reason = (queue_override or "").strip()
        if not reason:
            raise QueueAhead.said(
                HELD_FOR,
                details={"media": media.code, "request": head.pk},
                code=media.code,
                name=_name(head.requester),
                id=head.pk,
                since=_when(head.created_at),
            )
        claims.update({"queue_override": reason, "passed_over": head.created_seq})
    return claims


# --- renewals ----------------------------------------------------------------------------------


@transaction.atomic
def loan_renew(*, loan: Loan, actor: User, now: datetime | None = None, event_id=None) -> Loan:
    """Extend a loan by one policy period (see the module's docstring for the rules)."""
    now = now or timezone.now()
    event_request = EventRequest(
        EventKind.LOAN_RENEWED,
        media=Media(pk=loan.media_id),
        actor=actor,
        holder=loan.borrower if loan.borrower_id else None,
        event_id=event_id,
        asked={"loan": loan.out_seq},
    )
    if ledger.replayed(event_request):
        return Loan.objects.get(pk=loan.pk)
    try:
        media = _locked(Media(pk=loan.media_id))
    except MediaRetired as exc:  # a retired item has no open loan to renew
        raise NotOnLoan(exc.message) from exc
    loan = Loan.objects.select_related("borrower").get(pk=loan.pk)
    if loan.borrower_id != actor.pk and not _is_staff(actor):
        raise NotAllowed(
            _("You can renew only your own loans; ask the file room to renew this one.")
        )
    if loan.returned_at is not None:
        raise NotOnLoan(
            _("%(code)s was returned on %(when)s; this loan cannot be renewed.")
            % {"code": media.code, "when": _when(loan.returned_at)},
            media=media.code,
        )
    waiting = loan_requests_waiting(media=media, besides=loan.borrower).first()
    if waiting is not None:
        raise RenewalRefused(
            _(
                "A colleague is waiting for %(code)s: %(name)s has asked for it since %(since)s. "
                "Please return it by %(due)s."
            )
            % {
                "code": media.code,
                "name": _name(waiting.requester),
                "since": _when(waiting.created_at),
                "due": _when(loan.due_at),
            },
            media=media.code,
            request=waiting.pk,
        )
    policy = loan_policy_for(media=media, destination=loan.destination, borrower=loan.borrower)
    allowed = policy.max_renewals if policy else DEFAULT_MAX_RENEWALS
    if loan.renewals >= allowed:
        raise RenewalRefused(
            _(
                "%(code)s has been renewed %(count)d times, the most its loan policy allows. "
                "Please return it by %(due)s."
            )
            % {"code": media.code, "count": loan.renewals, "due": _when(loan.due_at)},
            media=media.code,
        )
    days = policy.loan_days if policy else settings.DEFAULT_LOAN_DAYS
    due_at = max(loan.due_at, now) + timedelta(days=days)
    _record(
        event_request,
        payload={
            "loan": loan.out_seq,
            "due_at": ledger.format_time(due_at),
            "previous_due_at": ledger.format_time(loan.due_at),
            "renewals": loan.renewals + 1,
        },
    )
    return Loan.objects.get(pk=loan.pk)
