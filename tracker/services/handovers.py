"""Hand-overs: a borrower hands an item on to a colleague or a place, and custody moves only
when the receiver accepts (issue 6, point 4).

Events (tracker.projection.handovers turns them into Handover rows, named by `offered_seq`):
- `handover_offered`: media, actor = who offers, holder = the receiving person or None,
  to_location = the receiving place or None, payload {"loan": the open loan's out_seq, "note"}
  (+ "queue_override" and "passed_over" when staff hand it past someone's queued request).
- `handover_declined`: payload {"handover": offered_seq, "reason"}.
- `handover_cancelled`: payload {"handover": offered_seq}.
- Acceptance is a `transferred` event (holder = to_holder, to_location = to_location) whose
  payload is {"handover": offered_seq}: it moves custody exactly as a transfer does (the open
  loan moves to the new holder with its due date and renewals, a Transfer row is written), so
  everything keyed on transfers (sweep, flags, chain page) keeps working.

Rules, as decided:
- Offer: only for an item on an open loan; by its borrower, or by staff (file room, admin) on
  their behalf; to exactly one of a person (active, not the borrower) or a place (active, not a
  courier/transit location, not where the item is now); one pending hand-over per item.
- The queue: while someone's request for the item is queued, a hand-over to a person who is not
  at the head of the queue is refused (QueueAhead) unless staff give `queue_override` (a reason,
  recorded): the file room's queue is not dodged by passing the jacket along. It is checked
  when the hand-over is offered, not again at acceptance.
- Accept: the receiving person or staff; a hand-over to a place, staff or a station reading the
  item there (see `handover_for_station_read`; station reads have no actor, so the station's
  mode, place and chosen borrower are the permission). Decline: the receiving person or staff,
  with a reason. Cancel: whoever offered it, the borrower, or staff. Anyone else: NotAllowed.
- Custody moves only on acceptance. A declined or cancelled hand-over leaves item, loan, holder
  and due date untouched. If the loan ends or moves another way while a hand-over is pending (a
  `returned` event, a `transferred` to a person that does not name it) the projection closes the
  hand-over as cancelled ("superseded: returned" / "superseded: handed on"), so a rebuild
  reproduces it.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import ledger
from ..choices import EventKind, HandoverStatus, LocationKind, ReaderMode, Role
from ..exceptions import Conflict, InvalidRequest, NotOnLoan
from ..ledger import EventRequest, Read
from ..models import Handover, Location, Media, ReaderDevice
from ..permissions import STAFF_ROLES, has_role
from .custody import User, _locked, _name, _open_loan, _place_of, _record
from .loan_requests import NotAllowed, QueueAhead, next_in_queue

__all__ = [
    "HandoverClosed",
    "handover_accept",
    "handover_cancel",
    "handover_decline",
    "handover_for_station_read",
    "handover_offer",
    "handover_receiver",
]

MAX_TEXT = 300  # the note and the reason columns
# Who can be handed an item: someone who can then accept it (auditors write nothing).
RECEIVER_ROLES = frozenset({Role.CLINICIAN, Role.FILE_ROOM, Role.ADMIN})


class HandoverClosed(Conflict):
    """The hand-over was already accepted, declined or cancelled."""

    code = "handover_closed"


def _is_staff(user) -> bool:
    return user is not None and has_role(user, STAFF_ROLES)


def _when(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def handover_receiver(handover: Handover) -> str:
    """Who or where the item is being handed to, in words for a person."""
    if handover.to_holder_id is not None:
        return _name(handover.to_holder)
    return handover.to_location.name


def _handover_locked(handover: Handover) -> Handover:
    """The hand-over as it stands now, locked for this transaction."""
    found = (
        Handover.objects.select_for_update(of=("self",))
        .select_related("media", "to_holder", "to_location", "from_holder")
        .filter(pk=handover.pk)
        .first()
    )
    if found is None:
        raise InvalidRequest(_("There is no hand-over %(id)s.") % {"id": handover.pk})
    return found


def _refuse_unless_pending(handover: Handover, doing: str) -> None:
    if handover.status != HandoverStatus.PENDING:
        raise HandoverClosed(
            _("The hand-over of %(code)s is %(status)s; it cannot be %(doing)s.")
            % {
                "code": handover.media.code,
                "status": handover.get_status_display().lower(),
                "doing": doing,
            },
            handover=handover.pk,
            status=handover.status,
        )


def _event_request(kind: str, handover: Handover, *, actor, asked: dict, **fields) -> EventRequest:
    return EventRequest(kind, media=Media(pk=handover.media_id), actor=actor, asked=asked, **fields)


def _text(value: str, what: str) -> str:
    value = (value or "").strip()
    if len(value) > MAX_TEXT:
        raise InvalidRequest(
            _("Keep the %(what)s under %(n)d characters.") % {"what": what, "n": MAX_TEXT}
        )
    return value


# --- offering ------------------------------------------------------------------------------------


@transaction.atomic
def handover_offer(
    *,
    media: Media,
    actor: User,
    to_holder: User | None = None,
    to_location: Location | None = None,
    note: str = "",
    queue_override: str = "",
    event_id=None,
) -> Handover:
    """Offer an item on loan to a colleague or a place; custody moves when they accept."""
    note = (note or "").strip()
    request = EventRequest(
        EventKind.HANDOVER_OFFERED,
        media=media,
        actor=actor,
        to_location=to_location,
        holder=to_holder,
        event_id=event_id,
        asked={"note": note},
    )
    if prior := ledger.replayed(request):
        return Handover.objects.get(offered_seq=prior.seq)
    if actor is None:
        raise NotAllowed(_("A hand-over is offered by a person: log in first."))
    if (to_holder is None) == (to_location is None):
        raise InvalidRequest(
            _("Hand the item to one colleague or to one place: choose exactly one of them.")
        )
    note = _text(note, _("note"))
    media = _locked(media)  # refuses a retired item
    loan = _open_loan(media)
    if loan is None:
        raise NotOnLoan(
            _("%(code)s is not on loan, so there is nothing to hand on; check it out instead.")
            % {"code": media.code},
            media=media.code,
        )
    if loan.borrower_id != actor.pk and not _is_staff(actor):
        raise NotAllowed(
            _("Only %(name)s, who has %(code)s on loan, or the file room can hand it on.")
            % {"name": _name(loan.borrower), "code": media.code}
        )
    pending = (
        Handover.objects.select_related("to_holder", "to_location")
        .filter(media=media, status=HandoverStatus.PENDING)
        .first()
    )
    if pending is not None:
        raise Conflict(
            _(
                "%(code)s is already being handed to %(receiver)s (offered %(when)s). "
                "Wait for them, or cancel that hand-over first."
            )
            % {
                "code": media.code,
                "receiver": handover_receiver(pending),
                "when": _when(pending.offered_at),
            },
            media=media.code,
            handover=pending.pk,
        )
    payload = {"loan": loan.out_seq, "note": note}
    if to_holder is not None:
        payload.update(
            _person_checks(
                media=media,
                loan=loan,
                to_holder=to_holder,
                actor=actor,
                queue_override=queue_override,
            )
        )
    else:
        _place_checks(media=media, to_location=to_location)
    try:
        with transaction.atomic():
            event = _record(request, from_location=_place_of(media), payload=payload)
    except IntegrityError as exc:  # the one-pending constraint, should a rule above be bypassed
        raise Conflict(
            _("%(code)s is already being handed on.") % {"code": media.code}, media=media.code
        ) from exc
    return Handover.objects.get(offered_seq=event.seq)


def _person_checks(
    *, media: Media, loan, to_holder: User, actor: User, queue_override: str
) -> dict:
    """Refusals for a hand-over to a person; the queue claims to record (payload keys)."""
    if not to_holder.is_active:
        raise InvalidRequest(_("%(name)s's account is disabled.") % {"name": _name(to_holder)})
    if not has_role(to_holder, RECEIVER_ROLES):
        raise InvalidRequest(
            _("%(name)s cannot take items on loan (not a clinician or file-room staff).")
            % {"name": _name(to_holder)}
        )
    if to_holder.pk == loan.borrower_id:
        raise InvalidRequest(
            _("%(name)s already has %(code)s on loan.")
            % {"name": _name(to_holder), "code": media.code}
        )
    head = next_in_queue(media)
    if head is None or head.requester_id == to_holder.pk:
        return {}
    reason = _text(queue_override, _("reason")) if _is_staff(actor) else ""
    if not reason:
        raise QueueAhead(
            _(
                "%(code)s is held for %(name)s (request %(id)s, waiting since %(since)s): it "
                "cannot be handed to %(receiver)s. Return it to the file room, or ask the file "
                "room to hand it on out of turn, with a reason."
            )
            % {
                "code": media.code,
                "name": _name(head.requester),
                "id": head.pk,
                "since": _when(head.created_at),
                "receiver": _name(to_holder),
            },
            media=media.code,
            request=head.pk,
        )
    return {"queue_override": reason, "passed_over": head.created_seq}


def _place_checks(*, media: Media, to_location: Location) -> None:
    if to_location.kind == LocationKind.TRANSIT:
        raise InvalidRequest(
            _("%(place)s is a courier, which cannot accept a hand-over; record a transfer instead.")
            % {"place": to_location.name}
        )
    if not to_location.is_active:
        raise InvalidRequest(_("%(place)s is no longer in use.") % {"place": to_location.name})
    if to_location.pk == media.current_location_id:
        raise InvalidRequest(
            _("%(code)s is already at %(place)s.") % {"code": media.code, "place": to_location.name}
        )


# --- accepting -----------------------------------------------------------------------------------


def _station_accepts(handover: Handover, device: ReaderDevice | None) -> bool:
    """Whether a read at this station, by its mode, place and chosen borrower, accepts it."""
    if device is None:
        return False
    if handover.to_holder_id is not None:
        return device.mode == ReaderMode.CHECK_OUT and device.borrower_id == handover.to_holder_id
    return (
        device.mode in (ReaderMode.LOCATE, ReaderMode.TRANSFER)
        and device.location_id == handover.to_location_id
    )


def handover_for_station_read(
    *, media: Media, device: ReaderDevice, borrower: User | None
) -> Handover | None:
    """The pending hand-over a station read of `media` accepts, or None: at a check-out station,
    one to `borrower` (the station's chosen borrower or badge); at a locate or transfer station,
    one to the station's place. Reads only the item's key; one query in those modes, none in
    the others."""
    if device.mode == ReaderMode.CHECK_OUT:
        if borrower is None:
            return None
        wanted = {"to_holder_id": borrower.pk}
    elif device.mode in (ReaderMode.LOCATE, ReaderMode.TRANSFER):
        wanted = {"to_holder__isnull": True, "to_location_id": device.location_id}
    else:
        return None
    return (
        Handover.objects.select_related("to_holder", "to_location")
        .filter(media_id=media.pk, status=HandoverStatus.PENDING, **wanted)
        .first()
    )


@transaction.atomic
def handover_accept(
    *,
    handover: Handover,
    actor: User | None,
    device: ReaderDevice | None = None,
    event_id=None,
    read: Read | None = None,
) -> Handover:
    """The receiver takes the item: one `transferred` event naming the hand-over moves custody.
    `actor` None is a station read: the station's mode, place and chosen borrower must fit."""
    request = _event_request(
        EventKind.TRANSFERRED,
        handover,
        actor=actor,
        asked={"handover": handover.offered_seq},
        device=device,
        to_location=Location(pk=handover.to_location_id) if handover.to_location_id else None,
        holder=handover.to_holder if handover.to_holder_id else None,
        event_id=event_id,
        read=read or Read(),
    )
    if ledger.replayed(request):
        return Handover.objects.get(pk=handover.pk)
    handover = _handover_locked(handover)
    if actor is None:
        if not _station_accepts(handover, device):
            raise NotAllowed(
                _("This station cannot accept the hand-over of %(code)s to %(receiver)s.")
                % {"code": handover.media.code, "receiver": handover_receiver(handover)}
            )
    elif not (
        _is_staff(actor)
        or (handover.to_holder_id is not None and handover.to_holder_id == actor.pk)
    ):
        raise NotAllowed(
            _("Only %(receiver)s or the file room can accept the hand-over of %(code)s.")
            % {"receiver": handover_receiver(handover), "code": handover.media.code}
            if handover.to_holder_id is not None
            else _(
                "Only the file room or a reader at %(receiver)s can accept the hand-over of %(code)s."
            )
            % {"receiver": handover_receiver(handover), "code": handover.media.code}
        )
    _refuse_unless_pending(handover, _("accepted"))
    if handover.to_holder_id is not None and not handover.to_holder.is_active:
        raise InvalidRequest(
            _("%(name)s's account is disabled.") % {"name": _name(handover.to_holder)}
        )
    media = _locked(Media(pk=handover.media_id))
    loan = _open_loan(media)
    if loan is None or loan.pk != handover.loan_id:  # the projection closes such hand-overs
        raise HandoverClosed(
            _("%(code)s is no longer on the loan this hand-over was offered for.")
            % {"code": media.code},
            handover=handover.pk,
        )
    payload = {"handover": handover.offered_seq}
    head = next_in_queue(media) if handover.to_holder_id is not None else None
    if head is not None and head.requester_id == handover.to_holder_id:
        payload["request"] = head.created_seq  # the receiver was next in the queue: served
    _record(request, from_location=_place_of(media), payload=payload, media=media)
    return Handover.objects.get(pk=handover.pk)


# --- declining and cancelling --------------------------------------------------------------------


@transaction.atomic
def handover_decline(*, handover: Handover, actor: User, reason: str, event_id=None) -> Handover:
    """The receiver (or staff) says no, and why; the item stays with its borrower."""
    reason = (reason or "").strip()
    payload = {"handover": handover.offered_seq, "reason": reason}
    request = _event_request(
        EventKind.HANDOVER_DECLINED, handover, actor=actor, asked=payload, event_id=event_id
    )
    if ledger.replayed(request):
        return Handover.objects.get(pk=handover.pk)
    handover = _handover_locked(handover)
    is_receiver = actor is not None and handover.to_holder_id == actor.pk
    if not (is_receiver or _is_staff(actor)):
        raise NotAllowed(
            _("Only %(receiver)s or the file room can decline the hand-over of %(code)s.")
            % {"receiver": handover_receiver(handover), "code": handover.media.code}
        )
    if not reason:
        raise InvalidRequest(
            _("Give a reason for declining; %(name)s will read it.")
            % {"name": _name(handover.from_holder)}
        )
    _text(reason, _("reason"))
    _refuse_unless_pending(handover, _("declined"))
    _locked(Media(pk=handover.media_id))
    _record(request, payload=payload)
    return Handover.objects.get(pk=handover.pk)


@transaction.atomic
def handover_cancel(*, handover: Handover, actor: User, event_id=None) -> Handover:
    """Withdraw a hand-over before it is accepted (who offered it, the borrower, or staff)."""
    payload = {"handover": handover.offered_seq}
    request = _event_request(
        EventKind.HANDOVER_CANCELLED, handover, actor=actor, asked=payload, event_id=event_id
    )
    if ledger.replayed(request):
        return Handover.objects.get(pk=handover.pk)
    handover = _handover_locked(handover)
    own = actor is not None and actor.pk in (handover.offered_by_id, handover.from_holder_id)
    if not (own or _is_staff(actor)):
        raise NotAllowed(
            _("Only %(name)s, who has %(code)s on loan, or the file room can cancel its hand-over.")
            % {"name": _name(handover.from_holder), "code": handover.media.code}
        )
    _refuse_unless_pending(handover, _("cancelled"))
    _locked(Media(pk=handover.media_id))
    _record(request, payload=payload)
    return Handover.objects.get(pk=handover.pk)
