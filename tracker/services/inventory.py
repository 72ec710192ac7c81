"""Shelf inventories: read every tag on a shelf or in a room, then say what is missing, misplaced or unknown.

An inventory's scope is a Location and everything inside it (Location.parent): a shelf, a room,
or the whole file room. What the file room expects there, and what each kind of finding means:

- expected: items whose home lies within the scope and whose status is on_shelf. Items on loan,
  in transit, already missing or retired are not expected on a shelf, so an inventory never
  flags them (their own flags, from the sweep, cover them). An item whose home is on another
  shelf is never expected here: a partial inventory of one shelf marks nothing elsewhere missing.
- missing: expected and not read. Closing raises an `inventory_missing` flag on each.
- misplaced: read here but its home is outside the scope (listed with where it belongs).
- unknown: a UID read here that is bound to no item.
- found: read here while flagged missing (an open inventory_missing or not_seen flag, or status
  missing). Closing clears those flags.
- on_loan / retired: read here although the ledger has the item on loan (returned without a
  check-in?) or retired (should it be on a shelf?); listed so staff can put the record right.

Reads are input, like ScanRecord: each new UID is one InventoryRead row (the same tag read again
is the same row) and no ledger event. Closing appends `inventory_closed` with the counts and
lists, then per item: a `seen` event for every item read (so "last seen" is the inventory's
time and an item seen on the wrong shelf is recorded where it was read), a flag for each
missing item and a flag cleared for each item found. Cancelling appends `inventory_closed` with
`cancelled` and nothing per item.

Inventory ids are the seq of their `inventory_started` event, so a rebuilt projection keeps the
ids that reads and reader stations refer to.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import ledger, projection
from ..choices import EventKind, FlagKind, InventoryStatus, MediaStatus, ReaderMode, ScanOutcome, UidFormat
from ..exceptions import Conflict, InvalidRequest
from ..ledger import EventRequest
from ..models import (
    Flag,
    InventoryRead,
    InventorySession,
    Location,
    Media,
    ReaderDevice,
    ScanRecord,
    TagBinding,
)
from ..tags import UidError, normalise_uid
from .custody import User
from .flags import flag_clear, flag_raise

__all__ = [
    "InventoryLine",
    "InventoryResult",
    "ReadsRecorded",
    "inventory_cancel",
    "inventory_close",
    "inventory_record_reads",
    "inventory_result",
    "inventory_start",
    "inventory_station_choose",
    "inventory_station_read",
    "places_within",
]

# Flags that an item read by an inventory disproves.
MISSING_FLAG_KINDS = (FlagKind.INVENTORY_MISSING, FlagKind.NOT_SEEN)


@dataclass(frozen=True)
class InventoryLine:
    """One item in a result list: what it is, where it belongs, where the ledger last had it."""

    media_id: int
    code: str
    uid: str
    home: str
    home_name: str
    place: str  # the item's current location as recorded before the inventory ("" if none)


@dataclass
class InventoryResult:
    """What an inventory found, against what its scope expects (see the module docstring)."""

    expected: int = 0
    reads: int = 0
    missing: list[InventoryLine] = field(default_factory=list)
    misplaced: list[InventoryLine] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    found: list[InventoryLine] = field(default_factory=list)
    on_loan: list[InventoryLine] = field(default_factory=list)
    retired: list[InventoryLine] = field(default_factory=list)
    # Every item read (bound tag), for the per-item events at closing.
    read_items: list[InventoryLine] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "reads": self.reads,
            "missing": len(self.missing),
            "misplaced": len(self.misplaced),
            "unknown": len(self.unknown),
            "found": len(self.found),
            "on_loan": len(self.on_loan),
            "retired": len(self.retired),
        }

    def summary(self) -> dict:
        """The plain-JSON record kept in the `inventory_closed` event and InventorySession.result:
        the counts and, by code, every item in each list."""
        return {
            "counts": self.counts(),
            "missing": [line.code for line in self.missing],
            "misplaced": [[line.code, line.home] for line in self.misplaced],
            "unknown": list(self.unknown),
            "found": [line.code for line in self.found],
            "on_loan": [line.code for line in self.on_loan],
            "retired": [line.code for line in self.retired],
        }

    def as_dict(self) -> dict:
        lines = ("missing", "misplaced", "found", "on_loan", "retired")
        return {
            "counts": self.counts(),
            **{name: [asdict(line) for line in getattr(self, name)] for name in lines},
            "unknown": list(self.unknown),
        }


@dataclass(frozen=True)
class ReadsRecorded:
    """What a batch of reads added: new tags, tags already read, and UIDs that could not be read."""

    added: int
    repeated: int
    refused: list[tuple[str, str]]  # (as read, why)
    total: int  # reads in the inventory now


# --- places -----------------------------------------------------------------------------------


def places_within(scope: Location) -> dict[int, Location]:
    """The scope and every location inside it (by Location.parent), by id. Locations are few
    (shelves and rooms), so they are read at once and walked here."""
    children: dict[int | None, list[Location]] = defaultdict(list)
    for place in Location.objects.only("id", "code", "name", "parent_id", "kind"):
        children[place.parent_id].append(place)
    found = {scope.pk: scope}
    todo = [scope.pk]
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pk not in found:  # a parent loop in bad data must not hang us
                found[child.pk] = child
                todo.append(child.pk)
    return found


def _all_places() -> dict[int, Location]:
    return {place.pk: place for place in Location.objects.only("id", "code", "name")}


# --- starting, reading, the result ----------------------------------------------------------


def _open_overlapping(scope: Location) -> InventorySession | None:
    """An open inventory whose scope holds this one or lies inside it: two would flag the same
    items from different reads."""
    inside = set(places_within(scope))
    for session in InventorySession.objects.filter(status=InventoryStatus.OPEN).select_related("scope"):
        if session.scope_id in inside or scope.pk in places_within(session.scope):
            return session
    return None


@transaction.atomic
def inventory_start(
    *, scope: Location, actor: User, now: datetime | None = None, event_id=None
) -> InventorySession:
    """Open an inventory of a shelf, a room or the whole file room (one `inventory_started`)."""
    request = EventRequest(EventKind.INVENTORY_STARTED, actor=actor, to_location=scope, event_id=event_id)
    if prior := ledger.replayed(request):
        return InventorySession.objects.get(pk=prior.seq)
    if not scope.is_active:
        raise InvalidRequest(
            _("%(code)s is no longer in use; choose an active shelf or room.") % {"code": scope.code}
        )
    if (other := _open_overlapping(scope)) is not None:
        raise Conflict(
            _("Inventory %(id)s of %(code)s is still open and covers the same shelves; close or "
              "cancel it first.") % {"id": other.pk, "code": other.scope.code},
            inventory=other.pk,
        )
    payload = {"scope": scope.code, "at": ledger.format_time(now or timezone.now())}
    event = ledger.append(request, payload=payload)
    projection.apply(event)
    return InventorySession.objects.select_related("scope").get(pk=event.seq)


def _refuse_unless_open(session: InventorySession) -> None:
    if session.status != InventoryStatus.OPEN:
        raise Conflict(
            _("Inventory %(id)s of %(code)s is %(status)s; it takes no more reads and cannot be "
              "closed again. Start a new inventory to read the shelf again.")
            % {"id": session.pk, "code": session.scope.code, "status": session.get_status_display().lower()},
            inventory=session.pk,
            status=session.status,
        )


def _locked_session(session: InventorySession) -> InventorySession:
    """The session re-read under its row lock: reads and closing take turns (SQLite's
    transactions already hold the database's write lock)."""
    return InventorySession.objects.select_for_update(of=("self",)).select_related("scope").get(pk=session.pk)


@transaction.atomic
def inventory_record_reads(
    *,
    session: InventorySession,
    uids: list[str],
    device: ReaderDevice | None = None,
    read_at: datetime | None = None,
    uid_format: str = UidFormat.HEX,
) -> ReadsRecorded:
    """Add a batch of tag reads (any number; in `uid_format`) to an open inventory. A tag read
    again is the same read; a UID that cannot be read is refused alone, the rest are kept.
    No ledger event: reads are input, closing appends the events."""
    session = _locked_session(session)
    _refuse_unless_open(session)
    read_at = read_at or timezone.now()
    fresh: dict[str, None] = {}
    refused: list[tuple[str, str]] = []
    for raw in uids:
        try:
            fresh[normalise_uid(raw, fmt=uid_format)] = None
        except UidError as exc:
            refused.append((str(raw)[:64], str(exc)))
    known = set(InventoryRead.objects.filter(session=session).values_list("uid", flat=True))
    new = [uid for uid in fresh if uid not in known]
    InventoryRead.objects.bulk_create(
        [InventoryRead(session=session, uid=uid, device=device, read_at=read_at) for uid in new],
        batch_size=1000,
        ignore_conflicts=True,  # a batch delivered twice at once
    )
    return ReadsRecorded(
        added=len(new), repeated=len(uids) - len(refused) - len(new), refused=refused,
        total=len(known) + len(new),
    )


def inventory_result(session: InventorySession) -> InventoryResult:
    """Reconcile the reads so far with what the scope expects (a selector: nothing changes).

    Four queries whatever the size: locations, expected items, read tags with their items, and
    the open missing flags of the items read; the rest is set arithmetic."""
    within = places_within(session.scope)
    places = _all_places()
    active_tag = TagBinding.objects.filter(media=OuterRef("pk"), unbound_at__isnull=True).values("tag__uid")[:1]
    expected = {
        row[0]: row
        for row in Media.objects.filter(home_location_id__in=list(within), status=MediaStatus.ON_SHELF)
        .annotate(tag_uid=Subquery(active_tag))
        .values_list("pk", "code", "home_location_id", "current_location_id", "tag_uid", "status")
    }
    read_uids = list(InventoryRead.objects.filter(session=session).values_list("uid", flat=True))
    read = {
        row[0]: row
        for row in TagBinding.objects.filter(
            unbound_at__isnull=True,
            tag__uid__in=InventoryRead.objects.filter(session=session).values("uid"),
        ).values_list(
            "media_id", "media__code", "media__home_location_id", "media__current_location_id",
            "tag__uid", "media__status",
        )
    }
    flagged = set(
        Flag.objects.filter(
            cleared_at__isnull=True, kind__in=MISSING_FLAG_KINDS,
            media__tag_bindings__unbound_at__isnull=True,
            media__tag_bindings__tag__uid__in=InventoryRead.objects.filter(session=session).values("uid"),
        ).values_list("media_id", flat=True)
    )

    def line(row) -> InventoryLine:
        media_id, code, home_id, place_id, uid, _status = row
        home, place = places.get(home_id), places.get(place_id)
        return InventoryLine(
            media_id=media_id, code=code, uid=uid or "", home=home.code if home else "",
            home_name=home.name if home else "", place=place.code if place else "",
        )

    result = InventoryResult(expected=len(expected), reads=len(read_uids))
    bound_uids = set()
    for media_id, row in sorted(read.items(), key=lambda item: item[1][1]):
        bound_uids.add(row[4])
        item = line(row)
        status = row[5]
        result.read_items.append(item)
        if status == MediaStatus.RETIRED:
            result.retired.append(item)
            continue
        if media_id in flagged or status == MediaStatus.MISSING:
            result.found.append(item)
        if row[2] not in within:
            result.misplaced.append(item)
        if status == MediaStatus.ON_LOAN:
            result.on_loan.append(item)
    result.missing = [line(row) for media_id, row in sorted(expected.items(), key=lambda i: i[1][1])
                      if media_id not in read]
    result.unknown = sorted(uid for uid in read_uids if uid not in bound_uids)
    return result


# --- closing ----------------------------------------------------------------------------------


def _seen_place(item: InventoryLine, media: Media, within: dict[int, Location], scope: Location) -> Location:
    """Where the `seen` event puts an item read: where the ledger already has it when that lies
    within the scope (a room's inventory does not know the shelf, the ledger may), else the scope
    (a misplaced item is recorded where it was read)."""
    if media.current_location_id in within:
        return within[media.current_location_id]
    return scope


def _items_read(result: InventoryResult) -> dict[int, Media]:
    ids = [item.media_id for item in result.read_items]
    media: dict[int, Media] = {}
    for start in range(0, len(ids), 900):  # SQLite's limit on query parameters
        chunk = ids[start:start + 900]
        media.update((m.pk, m) for m in Media.objects.select_for_update(of=("self",)).filter(pk__in=chunk))
    return media


@transaction.atomic
def inventory_close(
    *, session: InventorySession, actor: User, now: datetime | None = None, event_id=None
) -> InventorySession:
    """Close an inventory: one `inventory_closed` event with the counts and lists, then a `seen`
    event per item read, an inventory_missing flag per missing item and a cleared flag per item
    found. Closing twice is refused."""
    request = EventRequest(
        EventKind.INVENTORY_CLOSED, actor=actor, to_location=session.scope, event_id=event_id,
        asked={"inventory": session.pk},
    )
    if ledger.replayed(request):
        return InventorySession.objects.select_related("scope").get(pk=session.pk)
    session = _locked_session(session)
    _refuse_unless_open(session)
    now = now or timezone.now()
    result = inventory_result(session)
    payload = {"inventory": session.pk, "at": ledger.format_time(now), **result.summary()}
    event = ledger.append(request, payload=payload)
    projection.apply(event)
    scope = session.scope
    within = places_within(scope)
    media = _items_read(result)
    for item in result.read_items:
        one = media[item.media_id]
        if one.status == MediaStatus.RETIRED:
            continue
        seen = EventRequest(EventKind.SEEN, media=one, actor=actor, to_location=_seen_place(item, one, within, scope))
        from_location = Location(pk=one.current_location_id) if one.current_location_id else None
        projection.apply(
            ledger.append(seen, from_location=from_location, payload={"inventory": session.pk}), media=one
        )
    reason = _("Found by inventory %(id)s of %(code)s") % {"id": session.pk, "code": scope.code}
    found_ids = [item.media_id for item in result.found]
    for flag in _open_flags(found_ids):
        flag_clear(flag=flag, actor=actor, reason=reason, now=now)
    for item in result.missing:
        flag_raise(
            media=Media(pk=item.media_id, code=item.code), kind=FlagKind.INVENTORY_MISSING, actor=actor,
            details={"inventory": session.pk, "scope": scope.code, "last_place": item.place}, now=now,
        )
    session.stations.update(inventory=None)  # the stations' next reads need a new inventory
    return InventorySession.objects.select_related("scope").get(pk=session.pk)


def _open_flags(media_ids: list[int]) -> list[Flag]:
    flags: list[Flag] = []
    for start in range(0, len(media_ids), 900):
        flags += Flag.objects.select_related("media").filter(
            media_id__in=media_ids[start:start + 900], kind__in=MISSING_FLAG_KINDS, cleared_at__isnull=True
        )
    return sorted(flags, key=lambda flag: flag.raised_seq)


@transaction.atomic
def inventory_cancel(
    *, session: InventorySession, actor: User, reason: str = "", now: datetime | None = None, event_id=None
) -> InventorySession:
    """Abandon an inventory: one `inventory_closed` event marked cancelled, nothing per item."""
    reason = (reason or "").strip()
    request = EventRequest(
        EventKind.INVENTORY_CLOSED, actor=actor, to_location=session.scope, event_id=event_id,
        asked={"inventory": session.pk, "cancelled": True},
    )
    if ledger.replayed(request):
        return InventorySession.objects.select_related("scope").get(pk=session.pk)
    session = _locked_session(session)
    _refuse_unless_open(session)
    payload = {"inventory": session.pk, "cancelled": True, "at": ledger.format_time(now or timezone.now())}
    if reason:
        payload["reason"] = reason
    projection.apply(ledger.append(request, payload=payload))
    session.stations.update(inventory=None)
    return InventorySession.objects.select_related("scope").get(pk=session.pk)


# --- reader stations in inventory mode --------------------------------------------------------


def inventory_station_choose(*, device: ReaderDevice, session: InventorySession | None) -> ReaderDevice:
    """Send this station's reads to an open inventory (or to none)."""
    if session is not None:
        _refuse_unless_open(session)
    device.inventory = session
    device.save(update_fields=["inventory"])
    return device


def inventory_station_read(record: ScanRecord, *, device: ReaderDevice, media: Media | None) -> None:
    """A read at a station in inventory mode: add it to the station's open inventory and say on
    the record what it is there (expected here, belongs elsewhere, found, unknown). Raises a DomainError
    before writing anything when the station has no open inventory."""
    session = device.inventory
    if session is None or device.mode != ReaderMode.INVENTORY:
        raise InvalidRequest(_("Choose the inventory for this station on the station page first."))
    session = InventorySession.objects.select_related("scope").get(pk=session.pk)
    _refuse_unless_open(session)
    inventory_record_reads(session=session, uids=[record.uid], device=device, read_at=record.read_at)
    record.code = "inventory_read"
    names = {"id": session.pk, "uid": record.uid}
    if media is None:
        record.outcome = ScanOutcome.UNKNOWN_TAG
        record.say(gettext_noop("Unknown tag %(uid)s: bound to no item (listed as unknown in inventory %(id)s)."), **names)
        return
    home = Location.objects.only("code", "name").get(pk=media.home_location_id)
    names.update(code=media.code, home=home.code, home_name=home.name)
    if media.status == MediaStatus.RETIRED:
        record.outcome = ScanOutcome.WARNING
        record.say(gettext_noop("%(code)s is retired: take it off the shelf."), **names)
    elif media.status == MediaStatus.MISSING or Flag.objects.filter(
        media_id=media.pk, kind__in=MISSING_FLAG_KINDS, cleared_at__isnull=True
    ).exists():
        record.outcome = ScanOutcome.WARNING
        record.say(gettext_noop("%(code)s found: it was flagged missing (home %(home)s). Closing the "
                                "inventory clears the flag."), **names)
    elif media.home_location_id in places_within(session.scope):
        record.outcome = ScanOutcome.OK
        record.say(gettext_noop("%(code)s expected here (home %(home)s)."), **names)
    else:
        record.outcome = ScanOutcome.WARNING
        record.say(gettext_noop("%(code)s belongs elsewhere: %(home)s %(home_name)s."), **names)
