"""Read-side queries, narrowed to what the asking person's role may see. No side effects."""
from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from .choices import HandoverStatus
from .models import (
    Badge,
    CustodyEvent,
    Handover,
    Loan,
    Location,
    Media,
    ScanRecord,
    Tag,
    TagBinding,
    Transfer,
)
from .permissions import READ_ALL_ROLES, has_role
from .tags import UidError, normalise_uid


def media_list(*, user) -> QuerySet[Media]:
    """Every role may find media (doctors look up a patient's jackets and discs)."""
    return Media.objects.select_related(
        "patient", "home_location", "current_location", "current_holder"
    ).prefetch_related("studies")


def media_search(*, user, query: str) -> QuerySet[Media]:
    """Media whose code, patient, description, tag UID (as any reader prints it) or study
    matches `query`."""
    media = media_list(user=user)
    query = (query or "").strip()
    if not query:
        return media
    matches = (
        Q(code__icontains=query)
        | Q(patient__patient_id__iexact=query)
        | Q(patient__name__icontains=query)
        | Q(description__icontains=query)
        | Q(studies__accession_number__iexact=query)
        | Q(studies__study_instance_uid=query)
    )
    try:
        uid = normalise_uid(query)
    except UidError:
        uid = None
    if uid:
        matches |= Q(tag_bindings__tag__uid=uid, tag_bindings__unbound_at__isnull=True)
    # A subquery rather than .distinct(): the joins repeat rows, and a distinct queryset cannot
    # be combined with the API's other filters.
    return media.filter(pk__in=Media.objects.filter(matches).values("pk"))


def custody_chain_for(*, media: Media) -> QuerySet[CustodyEvent]:
    """The item's ledger events, newest first, with who/what/where resolved."""
    return (
        CustodyEvent.objects.filter(media=media)
        .select_related("actor", "device", "from_location", "to_location", "holder")
        .order_by("-seq")
    )


def loan_list(*, user) -> QuerySet[Loan]:
    loans = Loan.objects.select_related("media", "borrower", "destination")
    if has_role(user, READ_ALL_ROLES):
        return loans
    return loans.filter(borrower=user)


def media_overdue(*, user, now=None) -> QuerySet[Loan]:
    return loan_list(user=user).filter(returned_at__isnull=True, due_at__lt=now or timezone.now())


def transfer_list(*, user) -> QuerySet[Transfer]:
    transfers = Transfer.objects.select_related(
        "media", "from_location", "to_location", "from_holder", "to_holder"
    )
    if has_role(user, READ_ALL_ROLES):
        return transfers
    return transfers.filter(Q(from_holder=user) | Q(to_holder=user))


def location_list(*, user) -> QuerySet[Location]:
    return Location.objects.select_related("parent")


def tag_list(*, user) -> QuerySet[Tag]:
    if not has_role(user, READ_ALL_ROLES):
        return Tag.objects.none()
    return Tag.objects.prefetch_related("bindings__media")


def can_read_custody_chain(user) -> bool:
    """Staff, auditors and admins; a clinician sees where an item is, not its whole history."""
    return has_role(user, READ_ALL_ROLES)


@dataclass(frozen=True)
class StationReadLookup:
    prior_scan_id: int | None  # this read was delivered before
    badge_user_id: int | None  # the tag is someone's badge
    media_id: int | None  # the item the tag is on now
    handover_id: int | None = None  # the pending hand-over of that item this read may accept


_MEDIA_OF_TAG = (
    f"SELECT b.media_id FROM {TagBinding._meta.db_table} b JOIN {Tag._meta.db_table} t "
    "ON t.id = b.tag_id WHERE t.uid = %s AND b.unbound_at IS NULL LIMIT 1"
)
# Every read at every station runs this; one plain statement instead of four ORM queries.
_STATION_READ_SQL = (
    f"SELECT (SELECT id FROM {ScanRecord._meta.db_table} WHERE event_id = %s), "
    f"(SELECT user_id FROM {Badge._meta.db_table} WHERE uid = %s AND is_active), "
    f"({_MEDIA_OF_TAG}), "
    f"(SELECT h.id FROM {Handover._meta.db_table} h WHERE h.status = '{HandoverStatus.PENDING}' "
    f"AND h.media_id = ({_MEDIA_OF_TAG}) "
    "AND (h.to_holder_id = %s OR (h.to_holder_id IS NULL AND h.to_location_id = %s)))"
)


def station_read_lookup(
    *, event_id, uid: str, to_holder_id: int | None = None, to_location_id: int | None = None
) -> StationReadLookup:
    """What a station read needs to know before it changes anything, in one query: whether it
    was delivered before, whether its tag is a badge, which item the tag is on, and whether that
    item has a pending hand-over to this person (`to_holder_id`) or place (`to_location_id`)."""
    key = ScanRecord._meta.get_field("event_id").get_db_prep_value(event_id, connection)
    uid = uid or ""
    with connection.cursor() as cursor:
        cursor.execute(_STATION_READ_SQL, [key, uid, uid, uid, to_holder_id, to_location_id])
        return StationReadLookup(*cursor.fetchone())
