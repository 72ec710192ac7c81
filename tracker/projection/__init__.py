"""Apply one custody event to the projection rows (Media status/place/holder, Loan, TagBinding,
Transfer, study links, and through the modules of this package requests, flags and
inventories). Services call `apply()` right after `ledger.append()`; `rebuild()` replays the
whole ledger through the same function, so the two can never disagree about what an event means.

Each module of the package (loan_requests.py, flags.py, inventory.py) gives its `HANDLERS`
(event kind → function of the event), `snapshot()` (what its rows claim, as sets that compare
equal across a rebuild) and `reset()` (empties its rows before a rebuild)."""
from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils.dateparse import parse_datetime

from archive.models import Patient, Study

from ..choices import EventKind, LocationKind, MediaStatus
from ..models import CustodyEvent, Loan, Location, Media, Tag, TagBinding, Transfer


def status_after_move(location: Location | None, has_open_loan: bool) -> str:
    if location is not None and location.kind == LocationKind.TRANSIT:
        return MediaStatus.IN_TRANSIT
    return MediaStatus.ON_LOAN if has_open_loan else MediaStatus.ON_SHELF


def _due_at(event: CustodyEvent) -> datetime:
    return parse_datetime(event.payload["due_at"])


def apply(event: CustodyEvent, *, media: Media | None = None) -> None:
    """Apply one event. A service passes the item it has just read under its row lock, so the
    projection need not read it again (station reads pay for every query)."""
    handler = _HANDLERS[event.kind]
    if media is not None and media.pk == event.media_id and event.kind in _TAKES_MEDIA:
        handler(event, media)
    else:
        handler(event)
    for follower in _FOLLOWERS.get(event.kind, ()):
        follower(event)


def _media(event: CustodyEvent, media: Media | None = None) -> Media:
    if media is not None:
        return media
    return Media.objects.select_related("current_location").get(pk=event.media_id)


def _open_loan(media_id: int) -> Loan | None:
    return Loan.objects.filter(media_id=media_id, returned_at__isnull=True).first()


def _close_loan(loan: Loan | None, event: CustodyEvent) -> None:
    if loan is not None:
        loan.returned_at, loan.returned_seq = event.received_at, event.seq
        loan.save(update_fields=["returned_at", "returned_seq"])


def _open_new_loan(event: CustodyEvent, *, due_at: datetime, renewals: int = 0) -> Loan:
    return Loan.objects.create(
        media_id=event.media_id,
        borrower_id=event.holder_id,
        destination_id=event.to_location_id,
        out_at=event.received_at,
        due_at=due_at,
        out_seq=event.seq,
        renewals=renewals,
    )


def _place(media: Media, event: CustodyEvent, *, status: str, holder_id: int | None) -> None:
    media.status = status
    media.current_location_id = event.to_location_id
    media.current_holder_id = holder_id
    media.last_seen_at = event.received_at
    media.save(update_fields=["status", "current_location", "current_holder", "last_seen_at"])


def _registered(event: CustodyEvent, media: Media | None = None) -> None:
    _place(_media(event, media), event, status=MediaStatus.ON_SHELF, holder_id=None)


def _tag_bound(event: CustodyEvent) -> None:
    tag, _created = Tag.objects.get_or_create(uid=event.tag_uid)
    TagBinding.objects.create(
        tag=tag, media_id=event.media_id, bound_at=event.received_at, bound_seq=event.seq
    )


def _tag_unbound(event: CustodyEvent) -> None:
    TagBinding.objects.filter(tag__uid=event.tag_uid, unbound_at__isnull=True).update(
        unbound_at=event.received_at, unbound_seq=event.seq
    )


def _checked_out(event: CustodyEvent, media: Media | None = None) -> None:
    _open_new_loan(event, due_at=_due_at(event))
    _place(_media(event, media), event, status=MediaStatus.ON_LOAN, holder_id=event.holder_id)


def _returned(event: CustodyEvent, media: Media | None = None) -> None:
    _close_loan(_open_loan(event.media_id), event)
    _place(_media(event, media), event, status=MediaStatus.ON_SHELF, holder_id=None)


def _transferred(event: CustodyEvent, media: Media | None = None) -> None:
    media = _media(event, media)
    loan = _open_loan(event.media_id)
    Transfer.objects.create(
        media=media,
        from_location_id=event.from_location_id,
        to_location_id=event.to_location_id,
        from_holder_id=media.current_holder_id,
        to_holder_id=event.holder_id,
        at=event.received_at,
        seq=event.seq,
    )
    holder_id = media.current_holder_id
    if event.holder_id is not None:
        # Handing an item to a person moves the loan to them, keeping its due date.
        # ... and its renewals: handing an item on does not reset how often it was renewed.
        due_at = loan.due_at if loan else _due_at(event)
        renewals = loan.renewals if loan else 0
        _close_loan(loan, event)
        loan = _open_new_loan(event, due_at=due_at, renewals=renewals)
        holder_id = event.holder_id
    to_location = Location.objects.get(pk=event.to_location_id) if event.to_location_id else None
    _place(media, event, status=status_after_move(to_location, loan is not None), holder_id=holder_id)


def _seen(event: CustodyEvent, media: Media | None = None) -> None:
    media = _media(event, media)
    if media.status in (MediaStatus.MISSING, MediaStatus.IN_TRANSIT):
        location = Location.objects.get(pk=event.to_location_id)
        media.status = status_after_move(location, _open_loan(event.media_id) is not None)
    media.current_location_id = event.to_location_id
    media.last_seen_at = event.received_at
    media.save(update_fields=["status", "current_location", "last_seen_at"])


def apply_seen_together(events: list[CustodyEvent], media: dict[int, Media]) -> None:
    """apply() for `seen` events recorded together (a station's delivery: one place, one
    receive time), with `media` the items as read under their row locks. A `seen` of an item
    that is neither missing nor in transit only moves its place and last-seen time (_seen), so
    one UPDATE writes them all; any other event, or a part following `seen`, goes through
    apply() one by one, and the result is the same."""
    simple = (
        events
        and not _FOLLOWERS.get(EventKind.SEEN)
        and len({(e.to_location_id, e.received_at) for e in events}) == 1
        and all(
            e.kind == EventKind.SEEN
            and media[e.media_id].status not in (MediaStatus.MISSING, MediaStatus.IN_TRANSIT)
            for e in events
        )
    )
    if not simple:
        for event in events:
            apply(event, media=media.get(event.media_id))
        return
    place, moment = events[0].to_location_id, events[0].received_at
    Media.objects.filter(pk__in={e.media_id for e in events}).update(
        current_location_id=place, last_seen_at=moment
    )
    for event in events:
        item = media[event.media_id]
        item.current_location_id, item.last_seen_at = place, moment


def _retired(event: CustodyEvent) -> None:
    Media.objects.filter(pk=event.media_id).update(status=MediaStatus.RETIRED)


def _studies_linked(event: CustodyEvent) -> None:
    """A disc import or a link found in the PACS: the item holds these studies (and, when it had
    no patient yet, belongs to theirs)."""
    studies = Study.objects.filter(study_instance_uid__in=event.payload["studies"])
    Media.studies.through.objects.bulk_create(
        [Media.studies.through(media_id=event.media_id, study_id=s.pk) for s in studies],
        ignore_conflicts=True,
    )
    if event.payload.get("patient_id"):
        patient = Patient.objects.filter(patient_id=event.payload["patient_id"]).first()
        if patient is not None:
            Media.objects.filter(pk=event.media_id, patient__isnull=True).update(patient=patient)


def _studies_unlinked(event: CustodyEvent) -> None:
    Media.studies.through.objects.filter(
        media_id=event.media_id, study__study_instance_uid__in=event.payload["studies"]
    ).delete()


def _nothing(event: CustodyEvent) -> None:
    """Events that record a fact about an item without changing where it is (a disc check)."""


# The handlers that read the item and can take the service's locked copy instead.
_TAKES_MEDIA = {
    EventKind.MEDIA_REGISTERED, EventKind.CHECKED_OUT, EventKind.RETURNED, EventKind.TRANSFERRED,
    EventKind.SEEN,
}

_HANDLERS = {
    EventKind.MEDIA_REGISTERED: _registered,
    EventKind.TAG_BOUND: _tag_bound,
    EventKind.TAG_UNBOUND: _tag_unbound,
    EventKind.CHECKED_OUT: _checked_out,
    EventKind.RETURNED: _returned,
    EventKind.TRANSFERRED: _transferred,
    EventKind.SEEN: _seen,
    EventKind.RETIRED: _retired,
    EventKind.DISC_IMPORTED: _studies_linked,
    EventKind.STUDIES_LINKED: _studies_linked,
    EventKind.STUDIES_UNLINKED: _studies_unlinked,
    EventKind.DISC_VERIFIED: _nothing,
}


# --- rebuild ----------------------------------------------------------------------------------


def snapshot() -> dict:
    """Everything the projection claims, in a form that compares equal across a rebuild."""
    claims = {
        "media": {
            row[0]: row[1:]
            for row in Media.objects.values_list(
                "pk", "status", "current_location_id", "current_holder_id", "last_seen_at"
            )
        },
        "loans": set(
            Loan.objects.values_list(
                "media_id", "borrower_id", "destination_id", "out_at", "due_at", "returned_at",
                "out_seq", "returned_seq", "renewals",
            )
        ),
        "bindings": set(
            TagBinding.objects.values_list(
                "tag__uid", "media_id", "bound_at", "unbound_at", "bound_seq", "unbound_seq"
            )
        ),
        "studies": set(
            Media.studies.through.objects.values_list("media_id", "study__study_instance_uid")
        ),
        "transfers": set(
            Transfer.objects.values_list(
                "media_id", "from_location_id", "to_location_id", "from_holder_id",
                "to_holder_id", "at", "seq",
            )
        ),
    }
    for part in _PARTS:
        claims.update(part.snapshot())
    return claims


def differences(before: dict, after: dict, limit: int = 20) -> list[str]:
    found = []
    for media_id in sorted(set(before["media"]) | set(after["media"])):
        if before["media"].get(media_id) != after["media"].get(media_id):
            found.append(
                f"media {media_id}: stored {before['media'].get(media_id)} "
                f"but the ledger gives {after['media'].get(media_id)}"
            )
    for name in sorted(set(before) - {"media"}):
        for row in sorted(before[name] - after[name], key=str):
            found.append(f"{name}: {row} is stored but not in the ledger")
        for row in sorted(after[name] - before[name], key=str):
            found.append(f"{name}: {row} follows from the ledger but is not stored")
    return found[:limit]


def rebuild(*, check_only: bool) -> list[str]:
    """Replay the ledger into fresh projection rows; return the differences from what was stored.
    With check_only the replay is rolled back and nothing changes."""
    with transaction.atomic():
        before = snapshot()
        for part in reversed(_PARTS):  # their rows refer to loans: they go first
            part.reset()
        Loan.objects.all().delete()
        TagBinding.objects.all().delete()
        Transfer.objects.all().delete()
        Media.studies.through.objects.all().delete()
        Media.objects.update(
            status=MediaStatus.ON_SHELF, current_location=None, current_holder=None, last_seen_at=None
        )
        for event in CustodyEvent.objects.order_by("seq").iterator(chunk_size=2000):
            apply(event)
        found = differences(before, snapshot())
        if check_only:
            transaction.set_rollback(True)
    return found


# The other projections; imported last, since they may use the helpers above.
from . import flags, handovers, inventory, loan_requests, signatures  # noqa: E402

_PARTS = (loan_requests, flags, inventory, handovers, signatures)
# A part's handler for a kind the package already applies runs after it (a check-out that
# fulfils a request: the loan first, then the request); new kinds are the part's own.
_FOLLOWERS: dict = {}
for _part in _PARTS:
    for _kind, _handler in _part.HANDLERS.items():
        if _kind in _HANDLERS:
            _FOLLOWERS.setdefault(_kind, []).append(_handler)
        else:
            _HANDLERS[_kind] = _handler
