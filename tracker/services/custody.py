"""Custody services: each is one transaction that checks the file room's rules, appends exactly
one ledger event and applies it to the projection. They raise tracker.exceptions errors.

Every service takes an optional `event_id` (the idempotency key): the same id asked again with
the same details returns the original result; with different details it raises EventConflict.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import ledger, projection
from ..choices import EventKind, MediaKind, MediaStatus
from ..exceptions import (
    AlreadyOnLoan,
    DuplicateCode,
    InvalidRequest,
    MediaAlreadyTagged,
    MediaRetired,
    NotOnLoan,
    TagBoundElsewhere,
    TagNotBound,
    UnknownTag,
)
from ..ledger import EventRequest, Read
from ..models import (
    CustodyEvent,
    Loan,
    Location,
    Media,
    ReaderDevice,
    Tag,
    TagBinding,
)
from ..tags import (
    UidError,
    normalise_uid,
)

User = AbstractBaseUser

# Refusals a station meets often: raised with DomainError.said, so a refused read keeps its msgid
# and arguments and each person reading the station's page sees it in their own language.
TAG_UNBOUND = gettext_noop("Tag %(uid)s is not bound to any media. Bind it to a jacket or disc first.")
RETIRED = gettext_noop("%(code)s is retired and cannot be moved.")
ON_LOAN_TO = gettext_noop("%(code)s has been on loan to %(name)s since %(since)s.")
ON_LOAN = gettext_noop("%(code)s is already on loan.")
ACCOUNT_DISABLED = gettext_noop("%(name)s's account is disabled.")
RETURN_ON_SHELF = gettext_noop("%(code)s is not on loan: it is already on the shelf at %(place)s.")
TRANSFER_NOT_ON_LOAN = gettext_noop("%(code)s is not on loan; check it out to give it to someone.")



def _record(
    request: EventRequest, *, from_location=None, payload: dict | None = None, media: Media | None = None
) -> CustodyEvent:
    """Append the event and apply it; `media` is the item as just read under its row lock."""
    event = ledger.append(request, from_location=from_location, payload=payload)
    projection.apply(event, media=media)
    return event


def _with_undo(payload: dict, undo_of: int | None) -> dict:
    return {**payload, "undo_of": undo_of} if undo_of is not None else payload


def _locked(media: Media) -> Media:
    """Re-read the item under a row lock so concurrent services on it run one at a time.

    A plain statement: every station read runs it, and the ORM's select_for_update().get()
    took three times as long to build as to run. SQLite has no row locks; its transactions hold
    the database's write lock from BEGIN IMMEDIATE."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    found = list(Media.objects.raw(f"SELECT * FROM {Media._meta.db_table} WHERE id = %s{lock}", [media.pk]))
    if not found:
        raise Media.DoesNotExist(f"No media with id {media.pk}.")
    locked = found[0]
    if locked.status == MediaStatus.RETIRED:
        raise MediaRetired.said(RETIRED, code=locked.code)
    return locked


def _place_of(media: Media) -> Location | None:
    """The item's current place as the ledger records it (its key; nothing is read)."""
    return Location(pk=media.current_location_id) if media.current_location_id else None


def _open_loan(media: Media) -> Loan | None:
    """The item's open loan: it may be on loan and with a courier (in transit) at once."""
    return Loan.objects.select_related("borrower").filter(media=media, returned_at__isnull=True).first()


def _name(user) -> str:
    return user.get_full_name() or user.get_username()


def _signature_asked(signature: bytes | None) -> dict:
    """The payload a signed check-out or return records (and a replay must ask again)."""
    if signature is None:
        return {}
    from .signatures import signature_digest  # it imports this module

    return {"signature": signature_digest(signature)}


def _signature_checked(signature: bytes | None) -> None:
    if signature is not None:
        from .signatures import signature_check

        signature_check(signature)


def _signature_keep(event: CustodyEvent, signature: bytes | None, signed_by: str) -> None:
    if signature is not None:
        from .signatures import signature_keep

        signature_keep(event_seq=event.seq, image=signature, signed_by=signed_by)


def loan_due_at(
    *, media: Media, destination: Location | None, start: datetime, borrower: User | None = None
) -> datetime:
    """Due date from the most specific loan policy for this kind of item, destination and
    borrower's role (loan_requests.loan_policy_for names the order in which rules win)."""
    from .loan_requests import loan_policy_for  # it imports this module

    best = loan_policy_for(media=media, destination=destination, borrower=borrower)
    days = best.loan_days if best else settings.DEFAULT_LOAN_DAYS
    return start + timedelta(days=days)


@transaction.atomic
def media_register(
    *,
    code: str,
    kind: str,
    home_location: Location,
    actor: User,
    patient=None,
    description: str = "",
    device: ReaderDevice | None = None,
    event_id=None,
) -> Media:
    """Register a jacket, disc or stick on its home shelf. The code is the item's name in every
    address (/media/CODE/, /api/v1/media/CODE/, the QR on its label), so it must be one path
    segment: at most 32 characters, no slash, backslash or control character, not "." or ".."
    (browsers fold those away), and not a word the site uses for its own pages ("new")."""
    code = (code or "").strip()
    _media_code_checked(code)
    if kind not in MediaKind.values:
        raise InvalidRequest(_("“%(kind)s” is not a kind of media.") % {"kind": kind})
    prior_media = Media.objects.filter(code=code).first()
    request = EventRequest(
        EventKind.MEDIA_REGISTERED,
        media=prior_media,
        actor=actor,
        device=device,
        to_location=home_location,
        event_id=event_id,
    )
    if ledger.replayed(request):
        return prior_media
    if prior_media is not None:
        raise DuplicateCode(_("Media %(code)s is already registered.") % {"code": code})
    media = Media.objects.create(
        code=code, kind=kind, home_location=home_location, patient=patient, description=description
    )
    request.media = media
    _record(request, payload={"code": code, "kind": kind, "home_location": home_location.code})
    media.refresh_from_db()
    return media


# Item addresses the site keeps for its own pages: /media/new/ registers an item.
RESERVED_CODES = frozenset({"new"})
CODE_MAX_LENGTH = 32


def _media_code_checked(code: str) -> None:
    if not code:
        raise InvalidRequest(_("A media code is required."))
    if len(code) > CODE_MAX_LENGTH:
        raise InvalidRequest(
            _("A media code has at most %(max)d characters; “%(code)s” has %(length)d.")
            % {"max": CODE_MAX_LENGTH, "code": code, "length": len(code)}
        )
    if any(c in "/\\" or not c.isprintable() for c in code) or code in {".", ".."}:
        raise InvalidRequest(
            _("A media code cannot contain a slash, a backslash or a control character, "
              "nor be “.” or “..”: it is part of the item's address.")
        )
    if code.casefold() in RESERVED_CODES:
        raise InvalidRequest(
            _("“%(code)s” is kept for the site's own pages; choose another media code.")
            % {"code": code}
        )


def _canonical_uid(uid: str) -> str:
    try:
        return normalise_uid(uid)
    except UidError as exc:
        raise InvalidRequest(str(exc)) from exc


def unknown_tag(uid: str) -> UnknownTag:
    """The refusal for a tag bound to nothing (`uid` canonical), as every caller words it."""
    return UnknownTag.said(TAG_UNBOUND, details={"uid": uid}, uid=uid)


def tag_for(uid: str) -> Tag:
    """The registered tag with this UID (any reader format accepted); UnknownTag otherwise."""
    canonical = _canonical_uid(uid)
    tag = Tag.objects.filter(uid=canonical).first()
    if tag is None:
        raise unknown_tag(canonical)
    return tag


def media_for_tag(uid: str) -> Media:
    """The item a tag is on now (any reader format accepted); UnknownTag otherwise."""
    canonical = _canonical_uid(uid)
    binding = (  # one query: this runs for every read at every station
        TagBinding.objects.select_related("media")
        .filter(tag__uid=canonical, unbound_at__isnull=True)
        .first()
    )
    if binding is None:
        raise unknown_tag(canonical)
    return binding.media


@transaction.atomic
def tag_bind(
    *,
    uid: str,
    media: Media,
    actor: User,
    technology: str | None = None,
    device: ReaderDevice | None = None,
    event_id=None,
    read: Read | None = None,
) -> TagBinding:
    """Bind a tag to an item (the tag is created on first use)."""
    canonical = _canonical_uid(uid)
    read = Read(canonical, read.device_time, read.device_counter) if read else Read(canonical)
    request = EventRequest(
        EventKind.TAG_BOUND, media=media, actor=actor, device=device, event_id=event_id, read=read
    )
    if prior := ledger.replayed(request):
        return TagBinding.objects.get(bound_seq=prior.seq)
    media = _locked(media)
    tag, _created = Tag.objects.get_or_create(
        uid=canonical, defaults={"technology": technology} if technology else {}
    )
    active = TagBinding.objects.select_related("media").filter(tag=tag, unbound_at__isnull=True).first()
    if active is not None:
        raise TagBoundElsewhere(
            _("Tag %(uid)s is already on %(code)s; unbind it there first.")
            % {"uid": canonical, "code": active.media.code},
            uid=canonical,
            media=active.media.code,
        )
    current = TagBinding.objects.select_related("tag").filter(media=media, unbound_at__isnull=True).first()
    if current is not None:
        raise MediaAlreadyTagged(
            _("%(code)s already carries tag %(uid)s; unbind it before binding another.")
            % {"code": media.code, "uid": current.tag.uid},
            media=media.code,
            uid=current.tag.uid,
        )
    event = _record(request)
    return TagBinding.objects.get(bound_seq=event.seq)


@transaction.atomic
def tag_unbind(
    *, uid: str, actor: User, device: ReaderDevice | None = None, event_id=None, reason: str = ""
) -> TagBinding:
    """Take a tag off the item it is on (the binding stays in history)."""
    tag = tag_for(uid)
    binding = TagBinding.objects.filter(tag=tag, unbound_at__isnull=True).first()
    # A retried unbind finds the tag already off: it names the item it was last on.
    last = binding or TagBinding.objects.filter(tag=tag).order_by("-bound_at", "-pk").first()
    media = last.media if last else None
    request = EventRequest(
        EventKind.TAG_UNBOUND, media=media, actor=actor, device=device, event_id=event_id,
        read=Read(tag.uid), asked={"reason": reason} if reason else {},
    )
    if prior := ledger.replayed(request):
        return TagBinding.objects.get(unbound_seq=prior.seq)
    if binding is None:
        raise TagNotBound(_("Tag %(uid)s is not bound to any media.") % {"uid": tag.uid}, uid=tag.uid)
    _locked(media)
    event = _record(request, payload={"reason": reason} if reason else None)
    return TagBinding.objects.get(unbound_seq=event.seq)


@transaction.atomic
def media_check_out(
    *,
    media: Media,
    borrower: User,
    actor: User,
    due_at: datetime | None = None,
    destination: Location | None = None,
    device: ReaderDevice | None = None,
    event_id=None,
    read: Read | None = None,
    undo_of: int | None = None,
    request=None,
    queue_override: str = "",
    signature: bytes | None = None,
    signed_by: str = "",
) -> Loan:
    """Lend an item to a borrower until `due_at` (default: the loan policy).
    `undo_of` names the event this one compensates (station undo). The item's request queue is
    honoured (loan_requests.check_out_claims): `request` names the request this lends it for
    (else the borrower's own request at the head of the queue is), and `queue_override` is
    staff's reason for lending past someone else's queued request. `signature` is a PNG the
    borrower drew (signed by `signed_by`, default the borrower): its SHA-256 goes in the event."""
    signed = _signature_asked(signature)
    asked = {"due_at": ledger.format_time(due_at)} if due_at else {}
    loan_request, request = request, EventRequest(
        EventKind.CHECKED_OUT,
        media=media,
        actor=actor,
        device=device,
        to_location=destination,
        holder=borrower,
        event_id=event_id,
        read=read or Read(),
        asked={**asked, **signed},
    )
    if prior := ledger.replayed(request):
        return Loan.objects.get(out_seq=prior.seq)
    media = _locked(media)
    if not borrower.is_active:
        raise InvalidRequest.said(ACCOUNT_DISABLED, name=_name(borrower))
    _signature_checked(signature)
    loan = _open_loan(media)
    if loan is not None:  # on loan, or on loan and with a courier (in transit)
        raise AlreadyOnLoan.said(
            ON_LOAN_TO,
            details={"media": media.code, "borrower": loan.borrower.get_username()},
            code=media.code,
            name=_name(loan.borrower),
            since=timezone.localtime(loan.out_at).strftime("%Y-%m-%d %H:%M"),
        )
    claims = {}
    if undo_of is None:  # an undone return puts the item back with its borrower, queue or not
        from .loan_requests import check_out_claims  # it imports this module

        claims = check_out_claims(
            media=media, borrower=borrower, request=loan_request, queue_override=queue_override
        )
    due_at = due_at or loan_due_at(
        media=media, destination=destination, start=timezone.now(), borrower=borrower
    )
    payload = _with_undo({"due_at": ledger.format_time(due_at), **claims, **signed}, undo_of)
    try:
        with transaction.atomic():
            event = _record(request, from_location=_place_of(media), payload=payload, media=media)
    except IntegrityError as exc:  # the one-open-loan constraint, should a rule above be bypassed
        raise AlreadyOnLoan.said(ON_LOAN, code=media.code) from exc
    _signature_keep(event, signature, signed_by or _name(borrower))
    return Loan.objects.get(out_seq=event.seq)


@transaction.atomic
def media_return(
    *,
    media: Media,
    actor: User,
    location: Location | None = None,
    device: ReaderDevice | None = None,
    event_id=None,
    read: Read | None = None,
    undo_of: int | None = None,
    signature: bytes | None = None,
    signed_by: str = "",
) -> Media:
    """Take an item back into the file room (its home shelf unless `location` is given).
    `signature` is a PNG drawn by whoever brings it back (`signed_by`): its SHA-256 goes in the
    event."""
    location = location or media.home_location
    signed = _signature_asked(signature)
    request = EventRequest(
        EventKind.RETURNED,
        media=media,
        actor=actor,
        device=device,
        to_location=location,
        event_id=event_id,
        read=read or Read(),
        asked=signed,
    )
    if ledger.replayed(request):
        return Media.objects.get(pk=media.pk)
    media = _locked(media)
    if media.status == MediaStatus.ON_SHELF:
        place = media.current_location.code if media.current_location else "?"
        raise NotOnLoan.said(RETURN_ON_SHELF, details={"media": media.code}, code=media.code, place=place)
    _signature_checked(signature)
    event = _record(
        request, from_location=_place_of(media), payload=_with_undo(signed, undo_of), media=media
    )
    _signature_keep(event, signature, signed_by)
    return media


@transaction.atomic
def media_transfer(
    *,
    media: Media,
    actor: User,
    to_location: Location | None = None,
    to_holder: User | None = None,
    device: ReaderDevice | None = None,
    event_id=None,
    read: Read | None = None,
    undo_of: int | None = None,
) -> Media:
    """Move an item to another place or hand it to another person.

    Handing it to a person moves the open loan to them (same due date); an item on the shelf
    must be checked out rather than handed over. A move to a transit location (a courier)
    puts the item in transit until it is seen or returned."""
    if to_location is None and to_holder is None:
        raise InvalidRequest(_("Say where the item goes: a location, a person, or both."))
    request = EventRequest(
        EventKind.TRANSFERRED,
        media=media,
        actor=actor,
        device=device,
        to_location=to_location,
        holder=to_holder,
        event_id=event_id,
        read=read or Read(),
    )
    if ledger.replayed(request):
        return Media.objects.get(pk=media.pk)
    media = _locked(media)
    if to_holder is not None:
        if _open_loan(media) is None:
            raise NotOnLoan.said(TRANSFER_NOT_ON_LOAN, details={"media": media.code}, code=media.code)
        if not to_holder.is_active:
            raise InvalidRequest.said(ACCOUNT_DISABLED, name=_name(to_holder))
    _record(request, from_location=_place_of(media), payload=_with_undo({}, undo_of), media=media)
    return media


@transaction.atomic
def media_seen(
    *,
    media: Media,
    location: Location,
    actor: User | None = None,
    device: ReaderDevice | None = None,
    event_id=None,
    read: Read | None = None,
) -> Media:
    """Record that an item was read at a location (an item flagged missing is found again)."""
    return media_seen_within(
        media=media, location=location, actor=actor, device=device, event_id=event_id, read=read
    )


def media_seen_within(
    *,
    media: Media,
    location: Location,
    actor: User | None = None,
    device: ReaderDevice | None = None,
    event_id=None,
    read: Read | None = None,
) -> Media:
    """media_seen() inside the caller's transaction, without a savepoint of its own: for a station
    read, which records its scan in the same transaction (two statements fewer per read). It
    refuses (MediaRetired) before it writes anything, so the caller may record the refusal."""
    if not connection.in_atomic_block:
        raise RuntimeError("media_seen_within() runs inside the caller's transaction.")
    request = EventRequest(
        EventKind.SEEN,
        media=media,
        actor=actor,
        device=device,
        to_location=location,
        event_id=event_id,
        read=read or Read(),
    )
    if ledger.replayed(request):
        return Media.objects.get(pk=media.pk)
    media = _locked(media)
    _record(request, from_location=_place_of(media), media=media)
    return media


@transaction.atomic
def media_retire(
    *, media: Media, actor: User, reason: str, device: ReaderDevice | None = None, event_id=None
) -> Media:
    """Take an item out of circulation for good (it stays in history)."""
    request = EventRequest(
        EventKind.RETIRED, media=media, actor=actor, device=device, event_id=event_id,
        asked={"reason": (reason or "").strip()},
    )
    if ledger.replayed(request):
        return Media.objects.get(pk=media.pk)
    media = _locked(media)
    if _open_loan(media) is not None:
        raise AlreadyOnLoan(
            _("%(code)s is on loan; return it before retiring it.") % {"code": media.code},
            media=media.code,
        )
    if not (reason or "").strip():
        raise InvalidRequest(_("Give a reason for retiring %(code)s.") % {"code": media.code})
    _record(request, from_location=_place_of(media), payload={"reason": reason.strip()})
    return Media.objects.get(pk=media.pk)

