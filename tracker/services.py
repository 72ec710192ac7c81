"""Custody services: each is one transaction that checks the file room's rules, appends exactly
one ledger event and applies it to the projection. They raise tracker.exceptions errors.

Every service takes an optional `event_id` (the idempotency key): the same id asked again with
the same details returns the original result; with different details it raises EventConflict.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import ledger, projection
from .choices import EventKind, MediaKind, MediaStatus, ReaderMode, ScanOutcome, TagTechnology
from .exceptions import (
    AlreadyOnLoan,
    Conflict,
    DomainError,
    EventConflict,
    DuplicateCode,
    InvalidRequest,
    MediaAlreadyTagged,
    MediaRetired,
    NotOnLoan,
    SunReplay,
    TagBoundElsewhere,
    TagNotBound,
    UnknownTag,
)
from .ledger import EventRequest, Read
from .models import (
    Badge,
    CustodyEvent,
    Loan,
    LoanPolicy,
    Location,
    Media,
    ReaderDevice,
    ScanRecord,
    Tag,
    TagBinding,
    Transfer,
)
from .tags import (
    SunError,
    SunMessage,
    UidError,
    normalise_uid,
    open_sun_key,
    seal_sun_key,
    sun_check_mac,
    sun_picc_data,
)

User = AbstractBaseUser
logger = logging.getLogger(__name__)


def _record(request: EventRequest, *, from_location=None, payload: dict | None = None) -> CustodyEvent:
    event = ledger.append(request, from_location=from_location, payload=payload)
    projection.apply(event)
    return event


def _with_undo(payload: dict, undo_of: int | None) -> dict:
    return {**payload, "undo_of": undo_of} if undo_of is not None else payload


def _locked(media: Media) -> Media:
    """Re-read the item under a row lock so concurrent services on it run one at a time."""
    locked = (
        Media.objects.select_for_update(of=("self",))
        .select_related("current_location", "current_holder")
        .get(pk=media.pk)
    )
    if locked.status == MediaStatus.RETIRED:
        raise MediaRetired(_("%(code)s is retired and cannot be moved.") % {"code": locked.code})
    return locked


def _name(user) -> str:
    return user.get_full_name() or user.get_username()


def loan_due_at(*, media: Media, destination: Location | None, start: datetime) -> datetime:
    """Due date from the most specific loan policy for this kind of item and destination."""
    policies = LoanPolicy.objects.filter(media_kind__in=[media.kind, ""])
    policies = policies.filter(destination_kind__in=[destination.kind if destination else "", ""])
    best = max(
        policies,
        key=lambda p: (bool(p.media_kind) + bool(p.destination_kind), p.pk),
        default=None,
    )
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
    """Register a jacket, disc or stick on its home shelf."""
    code = (code or "").strip()
    if not code:
        raise InvalidRequest(_("A media code is required."))
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


def tag_for(uid: str) -> Tag:
    """The registered tag with this UID (any reader format accepted); UnknownTag otherwise."""
    try:
        canonical = normalise_uid(uid)
    except UidError as exc:
        raise InvalidRequest(str(exc)) from exc
    tag = Tag.objects.filter(uid=canonical).first()
    if tag is None:
        raise UnknownTag(
            _("Tag %(uid)s is not bound to any media. Bind it to a jacket or disc first.")
            % {"uid": canonical},
            uid=canonical,
        )
    return tag


def media_for_tag(uid: str) -> Media:
    tag = tag_for(uid)
    binding = TagBinding.objects.select_related("media").filter(tag=tag, unbound_at__isnull=True).first()
    if binding is None:
        raise UnknownTag(
            _("Tag %(uid)s is not bound to any media. Bind it to a jacket or disc first.")
            % {"uid": tag.uid},
            uid=tag.uid,
        )
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
    try:
        canonical = normalise_uid(uid)
    except UidError as exc:
        raise InvalidRequest(str(exc)) from exc
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
) -> Loan:
    """Lend an item to a borrower until `due_at` (default: the loan policy).
    `undo_of` names the event this one compensates (station undo)."""
    request = EventRequest(
        EventKind.CHECKED_OUT,
        media=media,
        actor=actor,
        device=device,
        to_location=destination,
        holder=borrower,
        event_id=event_id,
        read=read or Read(),
        asked={"due_at": ledger.format_time(due_at)} if due_at else {},
    )
    if prior := ledger.replayed(request):
        return Loan.objects.get(out_seq=prior.seq)
    media = _locked(media)
    if not borrower.is_active:
        raise InvalidRequest(_("%(name)s's account is disabled.") % {"name": _name(borrower)})
    loan = Loan.objects.select_related("borrower").filter(media=media, returned_at__isnull=True).first()
    if loan is not None:  # on loan, or on loan and with a courier (in transit)
        raise AlreadyOnLoan(
            _("%(code)s has been on loan to %(name)s since %(since)s.")
            % {
                "code": media.code,
                "name": _name(loan.borrower),
                "since": timezone.localtime(loan.out_at).strftime("%Y-%m-%d %H:%M"),
            },
            media=media.code,
            borrower=loan.borrower.get_username(),
        )
    due_at = due_at or loan_due_at(media=media, destination=destination, start=timezone.now())
    payload = _with_undo({"due_at": ledger.format_time(due_at)}, undo_of)
    try:
        with transaction.atomic():
            event = _record(request, from_location=media.current_location, payload=payload)
    except IntegrityError as exc:  # the one-open-loan constraint, should a rule above be bypassed
        raise AlreadyOnLoan(_("%(code)s is already on loan.") % {"code": media.code}) from exc
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
) -> Media:
    """Take an item back into the file room (its home shelf unless `location` is given)."""
    location = location or media.home_location
    request = EventRequest(
        EventKind.RETURNED,
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
    if media.status == MediaStatus.ON_SHELF:
        raise NotOnLoan(
            _("%(code)s is not on loan: it is already on the shelf at %(place)s.")
            % {"code": media.code, "place": media.current_location.code if media.current_location else "?"},
            media=media.code,
        )
    _record(request, from_location=media.current_location, payload=_with_undo({}, undo_of))
    return Media.objects.get(pk=media.pk)


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
        if not Loan.objects.filter(media=media, returned_at__isnull=True).exists():
            raise NotOnLoan(
                _("%(code)s is not on loan; check it out to give it to someone.")
                % {"code": media.code},
                media=media.code,
            )
        if not to_holder.is_active:
            raise InvalidRequest(_("%(name)s's account is disabled.") % {"name": _name(to_holder)})
    _record(request, from_location=media.current_location, payload=_with_undo({}, undo_of))
    return Media.objects.get(pk=media.pk)


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
    _record(request, from_location=media.current_location)
    return Media.objects.get(pk=media.pk)


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
    if Loan.objects.filter(media=media, returned_at__isnull=True).exists():
        raise AlreadyOnLoan(
            _("%(code)s is on loan; return it before retiring it.") % {"code": media.code},
            media=media.code,
        )
    if not (reason or "").strip():
        raise InvalidRequest(_("Give a reason for retiring %(code)s.") % {"code": media.code})
    _record(request, from_location=media.current_location, payload={"reason": reason.strip()})
    return Media.objects.get(pk=media.pk)


# --- reader stations ------------------------------------------------------------------------

BADGE_BORROWER_SECONDS = 120  # a tapped badge names the borrower for the taps that follow


def station_configure(
    *,
    device: ReaderDevice,
    mode: str | None = None,
    borrower: User | None = None,
    destination: Location | None = None,
    destination_holder: User | None = None,
) -> ReaderDevice:
    """What the next taps at this station mean (chosen on the station page)."""
    if mode is not None:
        if mode not in ReaderMode.values:
            raise InvalidRequest(_("“%(mode)s” is not a station mode.") % {"mode": mode})
        device.mode = mode
    device.borrower = borrower
    device.borrower_chosen_at = timezone.now() if borrower else None
    device.destination = destination
    device.destination_holder = destination_holder
    device.save(update_fields=["mode", "borrower", "borrower_chosen_at", "destination", "destination_holder"])
    return device


def _scan_conflict(record: ScanRecord, *, device, raw_uid, read_at, counter) -> bool:
    return (record.device_id, record.raw_uid, record.read_at, record.counter) != (
        device.pk, raw_uid, read_at, counter,
    )


def scan_record(
    *, device: ReaderDevice, event_id, raw_uid: str, read_at: datetime, counter: int | None = None
) -> tuple[ScanRecord, bool]:
    """Decide what one station read means from the station's mode, record it, and return
    (record, replayed). A read whose event_id was seen before returns the first record; with
    other details it raises EventConflict. Custody changes go through the services above, so the
    read's event_id becomes the ledger event's id."""
    with transaction.atomic():
        ledger.lock()  # one reader at a time per event_id, and the ledger's order
        prior = ScanRecord.objects.filter(event_id=event_id).first()
        if prior is not None:
            if _scan_conflict(prior, device=device, raw_uid=raw_uid, read_at=read_at, counter=counter):
                raise EventConflict(
                    _("Read %(id)s was already delivered with different details.") % {"id": event_id},
                    event_id=str(event_id),
                )
            return prior, True
        record = ScanRecord(
            event_id=event_id, device=device, raw_uid=raw_uid[:64], read_at=read_at, counter=counter,
            mode=device.mode,
        )
        try:
            with transaction.atomic():
                _scan_meaning(record, device=device)
        except DomainError as error:
            record.outcome = ScanOutcome.UNKNOWN_TAG if isinstance(error, UnknownTag) else ScanOutcome.ERROR
            record.code, record.message = error.code, error.message[:300]
        record.save()
        return record, False


def _scan_meaning(record: ScanRecord, *, device: ReaderDevice) -> None:
    """Fill `record` with what the read did; raise a DomainError to refuse it (nothing changes)."""
    try:
        record.uid = normalise_uid(record.raw_uid, fmt=device.uid_format)
    except UidError as exc:
        raise InvalidRequest(_("Unreadable tag: %(reason)s") % {"reason": exc}) from exc
    badge = Badge.objects.select_related("user").filter(uid=record.uid, is_active=True).first()
    if badge is not None:
        station_configure(device=device, borrower=badge.user, destination=device.destination,
                          destination_holder=device.destination_holder)
        record.outcome, record.code = ScanOutcome.BADGE, "badge"
        record.message = _("Borrower for the next check-outs: %(name)s") % {"name": _name(badge.user)}
        return
    media = media_for_tag(record.uid)
    record.media = media
    read = Read(record.uid, record.read_at, record.counter)
    common = {"media": media, "actor": None, "device": device, "event_id": record.event_id, "read": read}
    mode = device.mode
    if mode == ReaderMode.LOCATE:
        media_seen(location=device.location, **common)
        record.message = _("%(code)s seen at %(place)s") % {"code": media.code, "place": device.location.name}
    elif mode == ReaderMode.CHECK_IN:
        media.refresh_from_db()
        if media.status == MediaStatus.ON_SHELF:
            record.outcome, record.code = ScanOutcome.WARNING, "not_on_loan"
            record.message = _("%(code)s is already checked in (on the shelf at %(place)s).") % {
                "code": media.code,
                "place": media.current_location.name if media.current_location else "?",
            }
            return
        media_return(location=device.location, **common)
        record.message = _("%(code)s checked in at %(place)s") % {"code": media.code, "place": device.location.name}
    elif mode == ReaderMode.CHECK_OUT:
        borrower = _station_borrower(device)
        loan = media_check_out(borrower=borrower, destination=device.destination, **common)
        record.message = _("%(code)s checked out to %(name)s, due %(due)s") % {
            "code": media.code,
            "name": _name(borrower),
            "due": timezone.localtime(loan.due_at).strftime("%Y-%m-%d"),
        }
    elif mode == ReaderMode.TRANSFER:
        if device.destination is None and device.destination_holder is None:
            raise InvalidRequest(_("Choose where the items go on the station page first."))
        media_transfer(to_location=device.destination, to_holder=device.destination_holder, **common)
        record.message = _("%(code)s transferred") % {"code": media.code}
    else:  # inventory: reads are recorded; the inventory session decides what they mean
        record.outcome, record.code = ScanOutcome.OK, "inventory_read"
        record.message = _("%(code)s read for inventory") % {"code": media.code}
        return
    record.outcome, record.code = ScanOutcome.OK, mode
    record.event_seq = CustodyEvent.objects.only("seq").get(event_id=record.event_id).seq


def _station_borrower(device: ReaderDevice) -> User:
    if device.borrower is None:
        raise InvalidRequest(_("Choose the borrower on the station page or tap their badge first."))
    return device.borrower


UNDO_SECONDS = 120


@transaction.atomic
def scan_undo(*, record: ScanRecord, actor: User) -> CustodyEvent:
    """Undo a station's check-out, check-in or transfer shortly after it happened, by appending
    the compensating event (history is never edited). Refused when the item moved since."""
    record = ScanRecord.objects.select_for_update(of=("self",)).select_related("media").get(pk=record.pk)
    if record.undo_seq is not None:
        raise Conflict(_("This scan was already undone."))
    if record.outcome != ScanOutcome.OK or record.event_seq is None or record.code not in (
        ReaderMode.CHECK_OUT, ReaderMode.CHECK_IN, ReaderMode.TRANSFER
    ):
        raise InvalidRequest(_("Only a check-out, check-in or transfer can be undone."))
    if timezone.now() - record.received_at > timedelta(seconds=UNDO_SECONDS):
        raise Conflict(
            _("Too late to undo: it is more than %(n)d seconds old. Record the correction as a new action.")
            % {"n": UNDO_SECONDS}
        )
    event = CustodyEvent.objects.get(seq=record.event_seq)
    latest = CustodyEvent.objects.filter(media_id=event.media_id).order_by("-seq").values_list("seq", flat=True).first()
    if latest != event.seq:
        raise Conflict(_("%(code)s has moved since this scan; undo refused.") % {"code": record.media.code})
    media = record.media
    if event.kind == EventKind.CHECKED_OUT:
        media_return(media=media, actor=actor, location=event.from_location or media.home_location,
                     undo_of=event.seq)
    elif event.kind == EventKind.RETURNED:
        loan = Loan.objects.get(returned_seq=event.seq)
        media_check_out(media=media, borrower=loan.borrower, actor=actor, due_at=loan.due_at,
                        destination=loan.destination, undo_of=event.seq)
    else:
        transfer = Transfer.objects.get(seq=event.seq)
        media_transfer(media=media, actor=actor, to_location=transfer.from_location,
                       to_holder=transfer.from_holder if transfer.to_holder_id else None, undo_of=event.seq)
    undo = CustodyEvent.objects.filter(media_id=event.media_id).order_by("-seq").first()
    record.undo_seq = undo.seq
    record.save(update_fields=["undo_seq"])
    return undo


@transaction.atomic
def tag_set_sun_key(*, uid: str, key_hex: str) -> Tag:
    """Give an NTAG 424 DNA tag its SUN file-read key (stored encrypted)."""
    tag = tag_for(uid)
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise InvalidRequest(_("A SUN key is 32 hex digits.")) from None
    try:
        tag.sun_key_encrypted = seal_sun_key(key)
    except SunError as exc:
        raise InvalidRequest(str(exc)) from exc
    tag.technology = TagTechnology.NTAG424
    tag.save(update_fields=["sun_key_encrypted", "technology"])
    return tag


@transaction.atomic
def tag_verify_sun(
    *, c: str, e: str | None = None, uid: str | None = None, ctr: str | None = None, enc: str | None = None
) -> Tag:
    """Check a SUN message (`e`+`c`, or the plain mirror `uid`+`ctr`+`c`) and accept its counter.
    A counter not above the last accepted one is a replay: refused and logged."""
    try:
        if e:
            if settings.SUN_META_READ_KEY is None:
                raise SunError(_("This site has no SUN meta-read key configured."))
            message = sun_picc_data(e, settings.SUN_META_READ_KEY)
        else:
            message = SunMessage(normalise_uid(uid or ""), int(ctr or "", 16))
    except (SunError, UidError, ValueError) as exc:
        raise InvalidRequest(str(exc) or _("This is not a tag message.")) from exc
    tag = Tag.objects.select_for_update().filter(uid=message.uid).first()
    if tag is None or not tag.sun_key_encrypted:
        raise UnknownTag(_("Tag %(uid)s is not registered for authenticity checks.") % {"uid": message.uid},
                         uid=message.uid)
    try:
        sun_check_mac(message, c=c, file_key=open_sun_key(tag.sun_key_encrypted), enc=enc)
    except SunError as exc:
        logger.warning("SUN message refused for tag %s: %s", tag.uid, exc)
        raise InvalidRequest(str(exc), uid=tag.uid) from exc
    if tag.last_counter is not None and message.counter <= tag.last_counter:
        logger.warning("SUN replay refused for tag %s: counter %d, last accepted %d",
                       tag.uid, message.counter, tag.last_counter)
        raise SunReplay(
            _("This tag message was already used (counter %(counter)d). Tap the tag again.")
            % {"counter": message.counter},
            uid=tag.uid,
        )
    tag.last_counter = message.counter
    tag.save(update_fields=["last_counter"])
    return tag
