"""Pages: the home page (`home`, /home/: the search box, then a dashboard for each of the
person's roles), the one search box over media, patients and studies (`search`), places
(`location-list`, `location-detail`) and people (`person-detail`).

Why /home/ and not "/": "/" is the media search, and its address, name and behaviour are relied
on (links, bookmarks, the tests of that page); logging in lands here instead (LOGIN_REDIRECT_URL).

Who sees what:
- the file room and admins: open flags, today's pull list, stations read from lately, pending
  hand-overs, open inventories;
- clinicians: their open requests with their place in the queue, their loans with due dates, and
  hand-overs to or from them;
- auditors and admins: the last ledger verification, the chain's head and last signed checkpoint,
  and the latest events.
A place's page is for every role (what is there and what belongs there, as a media search
shows); its recent events only for staff, auditors and admins. A person's page is for that
person, staff, auditors and admins: a clinician never sees another clinician's loans. An
auditor opening a place's or a person's events is written to the access log."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.urls import Resolver404, path, resolve
from django.utils import timezone

from archive import selectors as archive_selectors

from .. import audit, selectors, services
from ..choices import (
    AccessAction,
    AccessSubject,
    FlagKind,
    HandoverStatus,
    InventoryStatus,
    MediaStatus,
    RequestStatus,
    Role,
)
from ..models import (
    AccessLog,
    Badge,
    CustodyEvent,
    Handover,
    InventorySession,
    LedgerCheckpoint,
    Loan,
    LoanRequest,
    Location,
    ReaderDevice,
    ScanRecord,
)
from ..permissions import EVERY_ROLE, READ_ALL_ROLES, STAFF_ROLES, has_role, roles_of
from ..services.flags import dashboard_counts

ACTIVE_STATION_MINUTES = 15  # a station read from this recently counts as in use
RECENT_EVENTS = 20
SEARCH_GROUP_SIZE = 20
PLACE_PAGE_SIZE = 100
OPEN_REQUESTS = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.READY)
AUDIT_PATH = "/audit/"  # the auditors' workspace, when it is installed


def _any_role(user) -> None:
    if not has_role(user, EVERY_ROLE):
        raise PermissionDenied


def _audit_url() -> str | None:
    try:
        resolve(AUDIT_PATH)
    except Resolver404:
        return None
    return AUDIT_PATH


# --- dashboards -----------------------------------------------------------------------------------


def pull_list_today(*, now=None) -> int:
    """How many items are on today's pull list (approved requests needed today, an item once)."""
    today = timezone.localdate(now or timezone.now())
    return (
        LoanRequest.objects.filter(
            status=RequestStatus.APPROVED,
            media__isnull=False,
            needed_from__lte=today,
            needed_until__gte=today,
        )
        .values("media")
        .distinct()
        .count()
    )


def active_stations(*, now=None, minutes: int = ACTIVE_STATION_MINUTES) -> list[ReaderDevice]:
    """Stations read from in the last `minutes`, most recent first, with `last_scan_at`. One look
    at each station's newest scan (by the scans' (device, -id) index), whatever the scan history."""
    since = (now or timezone.now()) - timedelta(minutes=minutes)
    newest = (
        ScanRecord.objects.filter(device=OuterRef("pk")).order_by("-id").values("received_at")[:1]
    )
    stations = (
        ReaderDevice.objects.filter(is_active=True)
        .select_related("location")
        .annotate(last_scan_at=Subquery(newest))
    )
    return sorted(
        (s for s in stations if s.last_scan_at and s.last_scan_at >= since),
        key=lambda s: s.last_scan_at,
        reverse=True,
    )


def staff_dashboard(*, now) -> dict:
    counts = dashboard_counts(now=now)
    pending = (
        Handover.objects.filter(status=HandoverStatus.PENDING)
        .select_related("media", "from_holder", "to_holder", "to_location")
        .order_by("offered_seq")
    )
    return {
        "counts": counts,
        "flag_kinds": [(kind, label, counts["flags"][kind]) for kind, label in FlagKind.choices],
        "pull_today": pull_list_today(now=now),
        "stations": active_stations(now=now),
        "station_minutes": ACTIVE_STATION_MINUTES,
        "handovers": list(pending[:10]),
        "handovers_count": pending.count(),
        "inventories": list(
            InventorySession.objects.filter(status=InventoryStatus.OPEN).select_related("scope")[
                :10
            ]
        ),
    }


def doctor_dashboard(*, user, now) -> dict:
    requests = list(
        LoanRequest.objects.filter(requester=user, status__in=OPEN_REQUESTS)
        .select_related("media", "patient", "study", "destination")
        .order_by("created_seq")
    )
    for each in requests:
        each.position = services.queue_position(each)
    loans = list(
        Loan.objects.filter(borrower=user, returned_at__isnull=True)
        .select_related("media", "destination")
        .order_by("due_at")
    )
    for loan in loans:
        loan.overdue = loan.due_at < now
    handovers = (
        Handover.objects.filter(status=HandoverStatus.PENDING)
        .filter(Q(to_holder=user) | Q(from_holder=user))
        .select_related("media", "from_holder", "to_holder", "to_location")
        .order_by("offered_seq")
    )
    return {"requests": requests, "loans": loans, "handovers": list(handovers)}


def last_verification() -> dict | None:
    """The newest verification of the whole ledger: the access log's "verified" row about the
    ledger with no range named (tracker.audit writes it, its verdict in `detail`: ok,
    first_bad_seq, reason, events). Read defensively: a verdict it does not state is not shown."""
    row = (
        AccessLog.objects.filter(
            action=AccessAction.VERIFIED, subject_kind=AccessSubject.LEDGER, subject=""
        )
        .select_related("user")
        .first()
    )
    if row is None:
        return None
    detail = row.detail if isinstance(row.detail, dict) else {}
    return {
        "row": row,
        "intact": detail["ok"] if isinstance(detail.get("ok"), bool) else None,
        "first_bad_seq": detail.get("first_bad_seq"),
        "reason": str(detail.get("reason") or ""),
        "events": detail.get("events"),
    }


def audit_dashboard() -> dict:
    return {
        "verification": last_verification(),
        "head": CustodyEvent.objects.order_by("-seq").only("seq", "received_at").first(),
        "checkpoint": LedgerCheckpoint.objects.order_by("-size").first(),
        "audit_url": _audit_url(),
        "events": list(
            CustodyEvent.objects.select_related(
                "media", "actor", "from_location", "to_location", "holder"
            ).order_by("-seq")[:RECENT_EVENTS]
        ),
    }


@login_required
def home(request):
    """The search box, then the dashboard of each role the person has."""
    user = request.user
    _any_role(user)
    now = timezone.now()
    roles = roles_of(user)
    context = {"now": now}
    if has_role(user, STAFF_ROLES):
        context["staff"] = staff_dashboard(now=now)
    if Role.CLINICIAN in roles:
        context["doctor"] = doctor_dashboard(user=user, now=now)
    if has_role(user, {Role.AUDITOR, Role.ADMIN}):
        context["audit"] = audit_dashboard()
    return render(request, "tracker/home/home.html", context)


# --- search ---------------------------------------------------------------------------------------


def study_search(*, user, query: str):
    """Studies by accession number, Study Instance UID, the patient's ID, or the jacket number
    a study names ((0010,1090) Medical Record Locator)."""
    return (
        archive_selectors.study_list(user=user)
        .filter(
            Q(accession_number__iexact=query)
            | Q(study_instance_uid=query)
            | Q(patient__patient_id__iexact=query)
            | Q(medical_record_locator__iexact=query)
        )
        .prefetch_related("media")
    )


def _group(queryset) -> dict:
    rows = list(queryset[: SEARCH_GROUP_SIZE + 1])
    return {"rows": rows[:SEARCH_GROUP_SIZE], "more": len(rows) > SEARCH_GROUP_SIZE}


@login_required
def search(request):
    """One box: media (code, patient, tag UID in any reader's format, accession, study UID),
    patients (ID or name) and studies, each group linking to its pages."""
    _any_role(request.user)
    query = " ".join(request.GET.get("q", "").split())[:200]
    groups = None
    if query:
        media = selectors.media_search(user=request.user, query=query).order_by("code")
        groups = {
            "media": _group(media),
            "patients": _group(archive_selectors.patient_search(user=request.user, query=query)),
            "studies": _group(study_search(user=request.user, query=query)),
        }
        groups["media"]["whereabouts"] = archive_selectors.media_whereabouts(
            user=request.user, media=groups["media"]["rows"]
        )
        groups["empty"] = not any(groups[g]["rows"] for g in ("media", "patients", "studies"))
    template = "tracker/home/_search_results.html" if request.htmx else "tracker/home/search.html"
    return render(request, template, {"query": query, "groups": groups})


# --- places ---------------------------------------------------------------------------------------


_ITEMS_THERE = Count("present_media", filter=~Q(present_media__status=MediaStatus.RETIRED))


def _path_to(place: Location) -> list[Location]:
    """The places `place` is inside, outermost first (stops at a loop an admin made)."""
    path, seen, parent = [], {place.pk}, place.parent
    while parent is not None and parent.pk not in seen:
        seen.add(parent.pk)
        path.append(parent)
        parent = parent.parent
    return path[::-1]


@login_required
def location_list(request):
    """Every place as a tree, with how many items are there now."""
    _any_role(request.user)
    # A query that groups ignores the model's default order: walking order is asked for.
    places = list(Location.objects.annotate(here=_ITEMS_THERE).order_by("shelf_order", "code"))
    children: dict[int | None, list[Location]] = {}
    for place in places:
        children.setdefault(place.parent_id, []).append(place)
    rows, seen = [], set()

    def walk(place: Location, depth: int) -> None:
        if place.pk in seen:
            return
        seen.add(place.pk)
        place.depth = min(depth, 5)  # indentation steps the stylesheet has
        rows.append(place)
        for child in children.get(place.pk, []):
            walk(child, depth + 1)

    for top in children.get(None, []):
        walk(top, 0)
    for place in places:  # anything left is inside a loop: list it rather than hide it
        walk(place, 0)
    return render(request, "tracker/home/location_list.html", {"places": rows})


@login_required
def location_detail(request, code: str):
    """What is at a place now, what belongs there (and where it is), the places inside it, and
    its recent events for those who read custody chains."""
    user = request.user
    _any_role(user)
    place = get_object_or_404(Location.objects.select_related("parent"), code=code)
    media = selectors.media_list(user=user).order_by("code")
    here = Paginator(
        media.filter(current_location=place).exclude(status=MediaStatus.RETIRED), PLACE_PAGE_SIZE
    )
    home = Paginator(
        media.filter(home_location=place).exclude(status=MediaStatus.RETIRED), PLACE_PAGE_SIZE
    )
    here_page, home_page = (
        here.get_page(request.GET.get("here")),
        home.get_page(request.GET.get("home")),
    )
    events = None
    if selectors.can_read_custody_chain(user):
        events = list(audit.custody_events(location=place).order_by("-seq")[:RECENT_EVENTS])
        if Role.AUDITOR in roles_of(user):
            audit.record_access(
                user=user,
                action=AccessAction.VIEWED,
                subject_kind=AccessSubject.LOCATION,
                subject=place.code,
                detail={"events": len(events)},
                path=request.get_full_path(),
            )
    return render(
        request,
        "tracker/home/location_detail.html",
        {
            "place": place,
            "path": _path_to(place),
            "children": place.children.annotate(here=_ITEMS_THERE).order_by("shelf_order", "code"),
            "here_page": here_page,
            "here": archive_selectors.media_whereabouts(user=user, media=here_page.object_list),
            "home_page": home_page,
            "home": archive_selectors.media_whereabouts(user=user, media=home_page.object_list),
            "away": media.filter(home_location=place)
            .exclude(Q(current_location=place) | Q(status=MediaStatus.RETIRED))
            .count(),
            "events": events,
            "may_print": has_role(user, STAFF_ROLES),
        },
    )


# --- people ---------------------------------------------------------------------------------------


@login_required
def person_detail(request, username: str):
    """A borrower's open loans, requests and hand-overs: for that person, staff, auditors and
    admins only (a clinician may not look at a colleague's)."""
    user = request.user
    _any_role(user)
    person = get_user_model().objects.filter(username=username).first()
    reads_all = has_role(user, READ_ALL_ROLES)
    if person is None:
        if reads_all:
            raise Http404
        raise PermissionDenied  # nobody learns from a clinician's 404 which names exist
    if person.pk != user.pk and not reads_all:
        raise PermissionDenied
    loans = Loan.objects.filter(borrower=person).select_related("media", "destination")
    names = dict(Role.choices)
    events = None
    if reads_all:
        events = list(audit.custody_events(borrower=person).order_by("-seq")[:RECENT_EVENTS])
        if Role.AUDITOR in roles_of(user) and person.pk != user.pk:
            audit.record_access(
                user=user,
                action=AccessAction.VIEWED,
                subject_kind=AccessSubject.BORROWER,
                subject=person.get_username(),
                detail={"events": len(events)},
                path=request.get_full_path(),
            )
    now = timezone.now()
    open_loans = list(loans.filter(returned_at__isnull=True).order_by("due_at"))
    for loan in open_loans:
        loan.overdue = loan.due_at < now
    requests = list(
        LoanRequest.objects.filter(requester=person)
        .select_related("media", "patient", "study", "destination")
        .order_by("-created_seq")[:30]
    )
    for each in requests:
        each.position = services.queue_position(each) if each.status in OPEN_REQUESTS else None
    return render(
        request,
        "tracker/home/person_detail.html",
        {
            "person": person,
            "is_self": person.pk == user.pk,
            "roles": [names[r] for r in Role.values if r in roles_of(person)],
            "open_loans": open_loans,
            "past_loans": list(
                loans.filter(returned_at__isnull=False).order_by("-returned_at")[:10]
            ),
            "requests": requests,
            "handovers": list(
                Handover.objects.filter(Q(to_holder=person) | Q(from_holder=person))
                .select_related("media", "from_holder", "to_holder", "to_location")
                .order_by("-offered_seq")[:20]
            ),
            "badges": list(Badge.objects.filter(user=person)) if reads_all else [],
            "events": events,
            "may_print": has_role(user, STAFF_ROLES),
        },
    )


# Mounted at the site root by tracker/urls.py.
urlpatterns: list = [
    path("home/", home, name="home"),
    path("search/", search, name="search"),
    path("locations/", location_list, name="location-list"),
    path("locations/<str:code>/", location_detail, name="location-detail"),
    path("people/<str:username>/", person_detail, name="person-detail"),
]
