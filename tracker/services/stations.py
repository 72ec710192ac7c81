"""Reader stations: what a read means at a station, undoing a station's action, and the
authenticity of NTAG 424 DNA tags (SUN messages)."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import ledger, projection
from ..choices import EventKind, MediaStatus, ReaderMode, ScanOutcome, TagTechnology
from ..exceptions import (
    Conflict,
    DomainError,
    EventConflict,
    InvalidRequest,
    SunReplay,
    UnknownTag,
)
from ..ledger import Read
from ..ledger.batch import append_many
from ..selectors import StationReadLookup, station_read_lookup
from ..models import (
    Badge,
    CustodyEvent,
    Handover,
    Loan,
    Location,
    Media,
    ReaderDevice,
    ScanRecord,
    Tag,
    TagBinding,
    Transfer,
)
from ..tags import (
    SunError,
    SunMessage,
    UidError,
    normalise_uid,
    open_sun_key,
    seal_sun_key,
    sun_check_mac,
    sun_picc_data,
)

from .custody import (
    TAG_UNBOUND,
    _name,
    media_check_out,
    media_return,
    media_seen_within,
    media_transfer,
    tag_for,
    unknown_tag,
)
from .handovers import handover_accept, handover_receiver
from .inventory import inventory_station_read

User = AbstractBaseUser
logger = logging.getLogger(__name__)


# --- reader stations ------------------------------------------------------------------------

# A borrower chosen on the page or by a badge tap stays chosen this long after the last
# check-out to them: the next doctor at the counter is not lent the previous one's items.
BORROWER_CHOICE_SECONDS = 300


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
    *,
    device: ReaderDevice,
    event_id,
    raw_uid: str,
    read_at: datetime,
    counter: int | None = None,
    actor: User | None = None,
) -> tuple[ScanRecord, bool]:
    """Decide what one station read means from the station's mode, record it, and return
    (record, replayed). A read whose event_id was seen before returns the first record; with
    other details it raises EventConflict. Custody changes go through the services above, so the
    read's event_id becomes the ledger event's id. `actor` is the person who typed the UID into
    the station page (a reader's own reads have none: the station is the device)."""
    try:
        with transaction.atomic():
            return _scan_record_once(
                device=device, event_id=event_id, raw_uid=raw_uid, read_at=read_at, counter=counter,
                actor=actor,
            )
    except IntegrityError:
        # The same read delivered twice at once (an agent retrying while its first request was
        # still running): the first one's scan record or ledger event stopped this one.
        prior = ScanRecord.objects.filter(event_id=event_id).first()
        if prior is None:
            raise
        return _replay(prior, device=device, raw_uid=raw_uid, read_at=read_at, counter=counter), True


def _replay(prior: ScanRecord, *, device, raw_uid, read_at, counter) -> ScanRecord:
    if _scan_conflict(prior, device=device, raw_uid=raw_uid, read_at=read_at, counter=counter):
        raise EventConflict(
            _("Read %(id)s was already delivered with different details.") % {"id": prior.event_id},
            event_id=str(prior.event_id),
        )
    return prior


def _scan_record_once(*, device, event_id, raw_uid, read_at, counter, actor=None) -> tuple[ScanRecord, bool]:
    record = ScanRecord(
        event_id=event_id, device=device, raw_uid=raw_uid[:64], read_at=read_at, counter=counter,
        mode=device.mode,
    )
    try:
        record.uid = normalise_uid(record.raw_uid, fmt=device.uid_format)
    except UidError as exc:
        unreadable = exc
    else:
        unreadable = None
    # Outside the ledger lock, so stations do their look-ups side by side.
    found = station_read_lookup(event_id=event_id, uid=record.uid, **_handover_receiver(device))
    if found.prior_scan_id is not None:
        prior = ScanRecord.objects.get(pk=found.prior_scan_id)
        return _replay(prior, device=device, raw_uid=raw_uid, read_at=read_at, counter=counter), True
    ledger.vouch_new(event_id)
    try:
        if unreadable is not None:
            problem = _uid_problem(record.raw_uid, device.uid_format)
            raise InvalidRequest.said(UNREADABLE, reason=problem)
        # Domain errors here are raised before anything is written, or inside a service's own
        # savepoint, so the refused read is recorded alone.
        _scan_meaning(record, device=device, found=found, actor=actor)
    except DomainError as error:
        record.outcome = ScanOutcome.UNKNOWN_TAG if isinstance(error, UnknownTag) else ScanOutcome.ERROR
        record.code = error.code
        _say_refusal(record, error)
    record.save()
    return record, False


# --- what a station says -----------------------------------------------------------------------
# A scan keeps the msgid and arguments of its message (ScanRecord.say), so the station page shows
# it in the language of whoever reads it. Refusals raised with DomainError.said carry theirs, here
# and in the services (custody.py, loan_requests.py); any other is kept as it was worded.

UNREADABLE = gettext_noop("Unreadable tag: %(reason)s")
SEEN = gettext_noop("%(code)s seen at %(place)s")
BADGE_BORROWER = gettext_noop("Borrower for the next check-outs: %(name)s")
HANDED_OVER = gettext_noop("%(code)s handed over to %(receiver)s")
ALREADY_IN = gettext_noop("%(code)s is already checked in (on the shelf at %(place)s).")
CHECKED_IN = gettext_noop("%(code)s checked in at %(place)s")
CHECKED_OUT = gettext_noop("%(code)s checked out to %(name)s, due %(due)s")
TRANSFERRED = gettext_noop("%(code)s transferred")
CHOOSE_DESTINATION = gettext_noop("Choose where the items go on the station page first.")
CHOOSE_BORROWER = gettext_noop("Choose the borrower on the station page or tap their badge first.")
BORROWER_EXPIRED = gettext_noop(
    "The borrower chosen earlier (%(name)s) has expired. Choose the borrower again or tap their badge."
)


def _uid_problem(raw_uid: str, uid_format: str) -> dict:
    """Why the reader's output is no UID, in every language of the site (tags.py words it)."""
    texts = {}
    for language, _label in settings.LANGUAGES:
        with translation.override(language):
            try:
                normalise_uid(raw_uid, fmt=uid_format)
            except UidError as problem:
                texts[language] = str(problem)
    return {"texts": texts}


def _say_refusal(record: ScanRecord, error: DomainError) -> None:
    if error.message_source is None:  # worded by a service in the language of the moment: kept
        record.message = error.message[:300]
    else:
        record.say(error.message_source["msgid"], **error.message_source["args"])


# --- a delivery of reads -----------------------------------------------------------------------

# Reads recorded per transaction at a locate station: bounds how long one delivery holds the
# ledger lock (other stations' check-outs wait for it), about 10 ms.
DELIVERY_CHUNK = 100


@dataclass(frozen=True)
class StationRead:
    """One read as a station delivered it."""

    event_id: uuid.UUID
    raw_uid: str
    read_at: datetime
    counter: int | None = None


# What scan_record_many gives for each read: (record, replayed) as scan_record returns them, or
# the DomainError scan_record raised (a replay with other details).
ReadResult = tuple[ScanRecord, bool] | DomainError


def scan_record_many(*, device: ReaderDevice, reads: list[StationRead]) -> list[ReadResult]:
    """scan_record() for each of a station's reads, in order, with the same results.

    At a locate station the reads of items on their shelf and of unknown tags are recorded
    together, DELIVERY_CHUNK to a transaction: one look-up for all of them, one row lock per
    item, one INSERT for their ledger events and one for their scan records, one UPDATE of the
    items. Every other read (a replay, a badge, an event_id twice in the delivery, an unreadable
    UID, an item on loan, missing, in transit or retired) goes through scan_record() at its place
    in the order, in the same transaction. Should a twin delivery race this one (a UNIQUE
    constraint stops it), the chunk is rolled back and recorded read by read, as scan_record
    handles that race."""
    if device.mode != ReaderMode.LOCATE or len(reads) < 2:
        return [_read_once(device, read) for read in reads]
    results: list[ReadResult] = []
    for start in range(0, len(reads), DELIVERY_CHUNK):
        chunk = reads[start:start + DELIVERY_CHUNK]
        try:
            with transaction.atomic():
                results.extend(_LocateDelivery(device, chunk).record())
        except IntegrityError:
            results.extend(_read_once(device, read) for read in chunk)
    return results


def _read_once(device: ReaderDevice, read: StationRead) -> ReadResult:
    try:
        return scan_record(
            device=device, event_id=read.event_id, raw_uid=read.raw_uid, read_at=read.read_at,
            counter=read.counter,
        )
    except DomainError as error:
        return error


class _LocateDelivery:
    """One chunk of a locate station's delivery, recorded in the caller's transaction."""

    def __init__(self, device: ReaderDevice, reads: list[StationRead]):
        self.device, self.reads = device, reads
        self.results: list[ReadResult | None] = [None] * len(reads)
        self.pending: list[tuple[int, ScanRecord, CustodyEvent | None]] = []
        self.events: list[tuple[ledger.EventRequest, int | None]] = []
        self.changed: set[int] = set()  # items a read-by-read scan_record has touched

    def record(self) -> list[ReadResult]:
        device, reads = self.device, self.reads
        uids = []
        for read in reads:
            try:
                uids.append(normalise_uid(read.raw_uid[:64], fmt=device.uid_format))
            except UidError:
                uids.append(None)
        known = {uid for uid in uids if uid}
        field = ScanRecord._meta.get_field("event_id")
        ids = [field.to_python(read.event_id) for read in reads]
        delivered = set(ScanRecord.objects.filter(event_id__in=ids).values_list("event_id", flat=True))
        badges = set(Badge.objects.filter(uid__in=known, is_active=True).values_list("uid", flat=True))
        media_of = dict(
            TagBinding.objects.filter(tag__uid__in=known, unbound_at__isnull=True)
            .values_list("tag__uid", "media_id")
        )
        ledger.lock()  # before any item's row lock, as every service takes them
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        wanted = sorted(set(media_of.values()))
        self.media = {
            m.pk: m
            for m in Media.objects.raw(
                f"SELECT * FROM {Media._meta.db_table} WHERE id IN ({', '.join(['%s'] * len(wanted))}) "
                f"ORDER BY id{lock}", wanted,
            )
        } if wanted else {}
        twice = set()
        for index, (read, uid, event_id) in enumerate(zip(reads, uids, ids)):
            media = self.media.get(media_of.get(uid))
            alone = uid is None or event_id in delivered or event_id in twice or uid in badges
            twice.add(event_id)
            if not alone and uid not in media_of:
                self._add(index, uid, unknown=True)
            elif not alone and media.status == MediaStatus.ON_SHELF and media.pk not in self.changed:
                self._add(index, uid, media=media)
            else:
                self._flush()
                self.results[index] = _read_once(device, read)
                if media is not None:
                    self.changed.add(media.pk)
        self._flush()
        return self.results

    def _add(
        self, index: int, uid: str, *, media: Media | None = None, unknown: bool = False
    ) -> None:
        read, device = self.reads[index], self.device
        record = ScanRecord(
            event_id=read.event_id, device=device, raw_uid=read.raw_uid[:64], uid=uid,
            read_at=read.read_at, counter=read.counter, mode=device.mode,
        )
        if unknown:
            record.outcome, record.code = ScanOutcome.UNKNOWN_TAG, UnknownTag.code
            record.say(TAG_UNBOUND, uid=uid)
        else:
            record.media, record.outcome, record.code = media, ScanOutcome.OK, device.mode
            record.say(SEEN, code=media.code, place=device.location.name)
            request = ledger.EventRequest(
                EventKind.SEEN, media=media, device=device, to_location=device.location,
                event_id=read.event_id, read=Read(uid, read.read_at, read.counter),
            )
            self.events.append((request, media.current_location_id))
            media.current_location_id = device.location_id  # where the next read finds it
        self.pending.append((index, record, not unknown))

    def _flush(self) -> None:
        if not self.pending:
            return
        requests, places = zip(*self.events) if self.events else ((), ())
        events = iter(append_many(list(requests), from_location_ids=list(places)))
        appended = []
        for _index, record, has_event in self.pending:
            if has_event:
                event = next(events)
                record.event_seq = event.seq
                appended.append(event)
        projection.apply_seen_together(appended, self.media)
        ScanRecord.objects.bulk_create([record for _i, record, _e in self.pending])
        for index, record, _has_event in self.pending:
            self.results[index] = (record, False)
        self.pending, self.events = [], []


def _scan_meaning(
    record: ScanRecord, *, device: ReaderDevice, found: StationReadLookup, actor: User | None = None
) -> None:
    """Fill `record` with what the read did; raise a DomainError to refuse it (nothing changes)."""
    if found.badge_user_id is not None:
        user = get_user_model().objects.get(pk=found.badge_user_id)
        station_configure(device=device, borrower=user, destination=device.destination,
                          destination_holder=device.destination_holder)
        record.outcome, record.code = ScanOutcome.BADGE, "badge"
        record.say(BADGE_BORROWER, name=_name(user))
        return
    if found.media_id is None:
        if device.mode == ReaderMode.INVENTORY:  # an unknown tag is an inventory finding too
            inventory_station_read(record, device=device, media=None)
            return
        raise unknown_tag(record.uid)
    read = Read(record.uid, record.read_at, record.counter)
    if found.handover_id is not None:
        _accept_handover(record, device=device, found=found, read=read)
        return
    common = {"actor": actor, "device": device, "event_id": record.event_id, "read": read}
    mode = device.mode
    if mode == ReaderMode.LOCATE:
        # The hot path: media_seen reads the item under its row lock; its key is all it needs.
        record.media = media_seen_within(
            media=Media(pk=found.media_id), location=device.location, **common
        )
        record.say(SEEN, code=record.media.code, place=device.location.name)
    else:
        record.media = media = Media.objects.select_related("current_location").get(pk=found.media_id)
        if not _other_mode(record, media=media, device=device, common=common):
            return
    record.outcome, record.code = ScanOutcome.OK, mode
    record.event_seq = ledger.recorded(record.event_id).seq


def _handover_receiver(device: ReaderDevice) -> dict:
    """Whom a read at this station hands an item to, if a hand-over waits for them: the chosen
    borrower at a check-out station, the station's place at a locate or transfer station."""
    if device.mode == ReaderMode.CHECK_OUT:
        return {"to_holder_id": device.borrower_id}
    if device.mode in (ReaderMode.LOCATE, ReaderMode.TRANSFER):
        return {"to_location_id": device.location_id}
    return {}


def _accept_handover(record: ScanRecord, *, device: ReaderDevice, found: StationReadLookup, read: Read) -> None:
    """The read is the receiver taking an item handed on to them (or to this place): the
    hand-over's acceptance is the custody move (handovers.handover_accept)."""
    if device.mode == ReaderMode.CHECK_OUT:
        _station_borrower(device)  # a choice made long ago accepts nothing
    handover = Handover.objects.select_related("media", "to_holder", "to_location").get(pk=found.handover_id)
    handover_accept(handover=handover, actor=None, device=device, event_id=record.event_id, read=read)
    record.media = handover.media
    record.outcome, record.code = ScanOutcome.OK, "handover_accepted"
    record.say(HANDED_OVER, code=handover.media.code, receiver=handover_receiver(handover))
    record.event_seq = ledger.recorded(record.event_id).seq


def _other_mode(record: ScanRecord, *, media: Media, device: ReaderDevice, common: dict) -> bool:
    """A read at a check-in, check-out, transfer or inventory station; False when it changed
    nothing (the record already says why)."""
    mode = device.mode
    if mode == ReaderMode.CHECK_IN:
        if media.status == MediaStatus.ON_SHELF:
            record.outcome, record.code = ScanOutcome.WARNING, "not_on_loan"
            place = media.current_location.name if media.current_location else "?"
            record.say(ALREADY_IN, code=media.code, place=place)
            return False
        media_return(media=media, location=device.location, **common)
        record.say(CHECKED_IN, code=media.code, place=device.location.name)
    elif mode == ReaderMode.CHECK_OUT:
        borrower = _station_borrower(device)
        loan = media_check_out(media=media, borrower=borrower, destination=device.destination, **common)
        due = timezone.localtime(loan.due_at).strftime("%Y-%m-%d")
        record.say(CHECKED_OUT, code=media.code, name=_name(borrower), due=due)
    elif mode == ReaderMode.TRANSFER:
        if device.destination is None and device.destination_holder is None:
            raise InvalidRequest.said(CHOOSE_DESTINATION)
        media_transfer(
            media=media, to_location=device.destination, to_holder=device.destination_holder, **common
        )
        record.say(TRANSFERRED, code=media.code)
    else:  # inventory: the read goes to the station's open inventory, which says what it is
        inventory_station_read(record, device=device, media=media)
        return False
    return True


def _station_borrower(device: ReaderDevice) -> User:
    if device.borrower is None:
        raise InvalidRequest.said(CHOOSE_BORROWER)
    if timezone.now() - device.borrower_chosen_at > timedelta(seconds=BORROWER_CHOICE_SECONDS):
        raise InvalidRequest.said(BORROWER_EXPIRED, name=_name(device.borrower))
    device.borrower_chosen_at = timezone.now()  # still at the counter: keep the choice alive
    device.save(update_fields=["borrower_chosen_at"])
    return device.borrower


UNDO_SECONDS = 120


UNDOABLE_MODES = (ReaderMode.CHECK_OUT, ReaderMode.CHECK_IN, ReaderMode.TRANSFER)


def _undoable_kind(record: ScanRecord) -> bool:
    return record.outcome == ScanOutcome.OK and record.event_seq is not None and record.code in UNDOABLE_MODES


def scan_can_undo(record: ScanRecord) -> bool:
    """Whether the station page offers Undo for this scan (scan_undo may still refuse it if the
    item has moved since)."""
    return (
        _undoable_kind(record)
        and record.undo_seq is None
        and timezone.now() - record.received_at < timedelta(seconds=UNDO_SECONDS)
    )


@transaction.atomic
def scan_undo(*, record: ScanRecord, actor: User) -> CustodyEvent:
    """Undo a station's check-out, check-in or transfer shortly after it happened, by appending
    the compensating event (history is never edited). Refused when the item moved since."""
    record = ScanRecord.objects.select_for_update(of=("self",)).select_related("media").get(pk=record.pk)
    if record.undo_seq is not None:
        raise Conflict(_("This scan was already undone."))
    if not _undoable_kind(record):
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

