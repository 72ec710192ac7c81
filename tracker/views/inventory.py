"""Pages: shelf inventories — start one, watch the reads come in, read the result, close it."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import services
from ..choices import InventoryStatus, LocationKind
from ..exceptions import DomainError
from ..models import InventorySession, Location
from ..permissions import READ_ALL_ROLES, STAFF_ROLES, has_role

# The live part of an open inventory's page asks for news this often.
LIVE_SECONDS = 2


def _may_read(request) -> bool:
    if not has_role(request.user, READ_ALL_ROLES):
        raise PermissionDenied
    return has_role(request.user, STAFF_ROLES)


@login_required
def inventory_list(request):
    """Inventories, newest first, and (for staff) the form that starts one."""
    may_write = _may_read(request)
    if request.method == "POST":
        if not may_write:
            raise PermissionDenied
        scope = Location.objects.filter(code=request.POST.get("scope", "")).first()
        if scope is None:
            messages.error(request, _("Choose the shelf or room to inventory."))
            return redirect("inventory-list")
        try:
            session = services.inventory_start(scope=scope, actor=request.user)
        except DomainError as error:
            messages.error(request, error.message)
            return redirect("inventory-list")
        return redirect("inventory-detail", pk=session.pk)
    sessions = InventorySession.objects.select_related("scope", "started_by")[:100]
    scopes = Location.objects.filter(
        is_active=True, kind__in=[LocationKind.SHELF, LocationKind.ROOM]
    )
    return render(request, "tracker/inventory/list.html", {
        "sessions": sessions, "scopes": scopes, "may_write": may_write,
    })


def _context(session: InventorySession) -> dict:
    if session.status == InventoryStatus.OPEN:
        result = services.inventory_result(session)
        return {"result": result, "counts": result.counts(), "closed": None}
    return {"result": None, "counts": session.result.get("counts", {}), "closed": session.result}


@login_required
def inventory_detail(request, pk: int):
    may_write = _may_read(request)
    session = get_object_or_404(InventorySession.objects.select_related("scope", "started_by", "closed_by"), pk=pk)
    return render(request, "tracker/inventory/detail.html", {
        "session": session, "may_write": may_write, "live_seconds": LIVE_SECONDS,
        "latest": session.reads.order_by("-pk")[:20], "stations": session.stations.all(),
        **_context(session),
    })


@login_required
def inventory_live(request, pk: int):
    """The part of the page that changes while tags are read (polled by the page)."""
    _may_read(request)
    session = get_object_or_404(InventorySession.objects.select_related("scope"), pk=pk)
    return render(request, "tracker/inventory/_live.html", {
        "session": session, "latest": session.reads.order_by("-pk")[:20], **_context(session),
    })


def _staff_session(request, pk: int) -> InventorySession:
    if not has_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    return get_object_or_404(InventorySession.objects.select_related("scope"), pk=pk)


@login_required
@require_POST
def inventory_reads(request, pk: int):
    """UIDs typed or pasted (a keyboard-wedge reader types one per line)."""
    session = _staff_session(request, pk)
    uids = [line.strip() for line in request.POST.get("uids", "").splitlines() if line.strip()]
    if not uids:
        messages.error(request, _("Type or scan at least one tag UID."))
        return redirect("inventory-detail", pk=pk)
    try:
        recorded = services.inventory_record_reads(session=session, uids=uids)
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("inventory-detail", pk=pk)
    messages.info(request, _("%(added)d new tags read, %(repeated)d read before.") % {
        "added": recorded.added, "repeated": recorded.repeated,
    })
    for raw, why in recorded.refused:
        messages.error(request, f"{raw}: {why}")
    return redirect("inventory-detail", pk=pk)


@login_required
@require_POST
def inventory_close(request, pk: int):
    session = _staff_session(request, pk)
    try:
        if request.POST.get("cancel"):
            services.inventory_cancel(session=session, actor=request.user, reason=request.POST.get("reason", ""))
        else:
            services.inventory_close(session=session, actor=request.user)
    except DomainError as error:
        messages.error(request, error.message)
    return redirect("inventory-detail", pk=pk)


# Mounted at the site root by tracker/urls.py.
urlpatterns: list = [
    path("inventories/", inventory_list, name="inventory-list"),
    path("inventories/<int:pk>/", inventory_detail, name="inventory-detail"),
    path("inventories/<int:pk>/live/", inventory_live, name="inventory-live"),
    path("inventories/<int:pk>/reads/", inventory_reads, name="inventory-reads"),
    path("inventories/<int:pk>/close/", inventory_close, name="inventory-close"),
]
