"""Pages: media search, a media item's custody chain, and the scan stations."""
import json
import time
import uuid

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext as _
from django.views import defaults
from django.views.decorators.http import require_POST

from .. import api, selectors, services
from ..choices import ReaderMode, Role, ScanOutcome
from ..audit import record_chain_read
from ..exceptions import DomainError, InvalidRequest, error_body
from ..models import (
    CustodyEvent,
    InventorySession,
    Location,
    Media,
    ReaderDevice,
    ScanRecord,
    Signature,
)
from ..permissions import STAFF_ROLES, has_role, roles_of
from ..services.flags import flag_list
from .handovers import handover_context

API_PREFIX = "/api/"


def roles_context(request) -> dict:
    roles = roles_of(request.user) if hasattr(request, "user") else frozenset()
    return {"user_roles": roles}


@login_required
def media_search(request):
    query = request.GET.get("q", "")
    media = selectors.media_search(user=request.user, query=query).prefetch_related("tag_bindings__tag")
    page = Paginator(media, 50).get_page(request.GET.get("page"))
    template = "tracker/_media_rows.html" if request.htmx else "tracker/media_search.html"
    return render(request, template, {"query": query, "page": page})


@login_required
def media_detail(request, code: str):
    media = get_object_or_404(selectors.media_list(user=request.user), code=code)
    chain = None
    if selectors.can_read_custody_chain(request.user):
        chain = selectors.custody_chain_for(media=media)[:500]
        record_chain_read(request, media.code)
    elif request.GET.get("chain"):
        raise PermissionDenied
    loans = selectors.loan_list(user=request.user).filter(media=media)[:20]
    return render(
        request,
        "tracker/media_detail.html",
        {"media": media, "chain": chain, "loans": loans,
         "tag": media.tag_bindings.filter(unbound_at__isnull=True).select_related("tag").first(),
         "may_request": has_role(request.user, {Role.CLINICIAN, Role.FILE_ROOM, Role.ADMIN}),
         # Open flags on the item, as the flags list would show them to this person.
         "open_flags": flag_list(user=request.user).filter(media=media, cleared_at__isnull=True)
         .order_by("raised_at"),
         "may_clear_flags": has_role(request.user, STAFF_ROLES),
         **handover_context(media, request.user)},
    )


# --- error pages (config.urls handler404 / handler500) ----------------------------------------


def page_not_found(request, exception):
    if request.path.startswith(API_PREFIX):
        return api.not_found(request)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception):
    """Django's own refusals before a view runs (too many fields, a malformed upload, a
    suspicious header): under /api/ in the API's error shape, as every other API error."""
    if request.path.startswith(API_PREFIX):
        message = _("The request could not be read: %(reason)s") % {
            "reason": _("too many fields, or a malformed body or header"),
        }
        return JsonResponse(error_body("bad_request", message), status=400)
    return defaults.bad_request(request, exception)


def server_error(request):
    if request.path.startswith(API_PREFIX):
        message = _(
            "Something went wrong on the server. Try again; if it keeps happening, tell an "
            "administrator."
        )
        return JsonResponse(error_body("server_error", message), status=500)
    return defaults.server_error(request)


# --- scan stations --------------------------------------------------------------------------

SSE_POLL_SECONDS = 0.1
SSE_HEARTBEAT_SECONDS = 5  # a closed page is noticed at the next write: keep it soon
SSE_STREAM_SECONDS = 300  # the browser reconnects; keeps a worker from being held for ever


def _station(request, name: str) -> ReaderDevice:
    if not has_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    return get_object_or_404(ReaderDevice.objects.select_related("location"), name=name, is_active=True)


def scan_payload(scan: ScanRecord) -> dict:
    """One scan as the station page shows it (the same for the live stream and the wedge form),
    its message in the active language: the viewer's."""
    media = scan.media
    return {
        "id": scan.id,
        "time": timezone.localtime(scan.received_at).strftime("%H:%M:%S"),
        "uid": scan.uid or scan.raw_uid,
        "outcome": scan.outcome,
        "code": scan.code,
        "message": scan.get_message_display(),
        "media": media.code if media else None,
        "media_url": reverse("media-detail", args=[media.code]) if media else None,
        "patient": f"{media.patient.patient_id} {media.patient.name}" if media and media.patient else "",
        "can_undo": services.scan_can_undo(scan),
        "bind_url": reverse("station-bind", args=[scan.device.name]) + f"?uid={scan.uid}"
        if scan.outcome == ScanOutcome.UNKNOWN_TAG else None,
        "sign_url": _sign_url(scan),
    }


# The station offers "Sign" on a check-out or check-in for as long as it offers Undo; the page
# then accepts the signature for a while longer, since drawing one takes the borrower a moment.
SIGN_GRACE_SECONDS = 300
SIGNABLE_MODES = (ReaderMode.CHECK_OUT, ReaderMode.CHECK_IN)


def _signable(scan: ScanRecord, *, within: float) -> bool:
    return (
        scan.outcome == ScanOutcome.OK
        and scan.code in SIGNABLE_MODES
        and scan.event_seq is not None
        and scan.undo_seq is None
        and (timezone.now() - scan.received_at).total_seconds() < within
    )


def _sign_url(scan: ScanRecord, signed: frozenset = frozenset()) -> str | None:
    if not _signable(scan, within=services.UNDO_SECONDS) or scan.event_seq in signed:
        return None
    return reverse("station-sign", args=[scan.device.name, scan.pk])


@login_required
def station(request, name: str):
    device = _station(request, name)
    scans = list(
        ScanRecord.objects.filter(device=device).select_related("media__patient", "device")[:30]
    )
    signed = frozenset(
        Signature.objects.filter(event_seq__in=[s.event_seq for s in scans if s.event_seq])
        .values_list("event_seq", flat=True)
    )
    for scan in scans:
        scan.sign_url = _sign_url(scan, signed)
    people = (
        get_user_model().objects.filter(is_active=True, groups__name__in=[Role.CLINICIAN, Role.FILE_ROOM])
        .distinct().order_by("last_name", "username")
    )
    return render(request, "tracker/station.html", {
        "device": device,
        "scans": scans,
        "last_id": scans[0].id if scans else 0,
        "modes": ReaderMode.choices,
        "people": people,
        "places": Location.objects.filter(is_active=True),
    })


@login_required
@require_POST
def station_configure(request, name: str):
    device = _station(request, name)
    User = get_user_model()

    def pick(model, field, value):
        return model.objects.filter(**{field: value}).first() if value else None

    services.station_configure(
        device=device,
        mode=request.POST.get("mode") or device.mode,
        borrower=pick(User, "username", request.POST.get("borrower")),
        destination=pick(Location, "code", request.POST.get("destination")),
        destination_holder=pick(User, "username", request.POST.get("destination_holder")),
    )
    if "inventory" in request.POST:  # where the reads go in inventory mode
        number = request.POST["inventory"].strip()
        session = InventorySession.objects.filter(pk=number).first() if number.isdigit() else None
        try:
            if number and session is None:
                raise InvalidRequest(_("There is no inventory %(id)s.") % {"id": number})
            services.inventory_station_choose(device=device, session=session)
        except DomainError as error:
            messages.error(request, error.message)
    return redirect("station", name=device.name)


@login_required
@require_POST
def station_scan(request, name: str):
    """A UID typed into the page (by a keyboard-wedge reader or by hand)."""
    device = _station(request, name)
    raw = (request.POST.get("uid") or "").strip()
    if not raw:
        return JsonResponse(error_body("invalid", gettext("Type or scan a tag UID.")), status=400)
    record, _replayed = services.scan_record(
        device=device, event_id=uuid.uuid4(), raw_uid=raw, read_at=timezone.now(), actor=request.user
    )
    return JsonResponse({"scan": scan_payload(record)})


@login_required
@require_POST
def station_undo(request, name: str):
    device = _station(request, name)
    record = get_object_or_404(ScanRecord, pk=request.POST.get("scan") or 0, device=device)
    try:
        event = services.scan_undo(record=record, actor=request.user)
    except DomainError as error:
        return JsonResponse(error_body(error.code, error.message), status=error.status)
    return JsonResponse({"undone": record.pk, "seq": event.seq})


@login_required
def station_sign(request, name: str, scan_id: int):
    """The borrower signs for a check-out (or whoever brought it back, for a check-in) on the
    station's screen right after the tap: the signature is added to that scan's ledger event."""
    device = _station(request, name)
    scan = get_object_or_404(
        ScanRecord.objects.select_related("media", "device"), pk=scan_id, device=device
    )
    event = CustodyEvent.objects.select_related("holder").filter(seq=scan.event_seq).first()
    error, status = None, 200
    if not _signable(scan, within=services.UNDO_SECONDS + SIGN_GRACE_SECONDS) or event is None:
        error, status = gettext(
            "This scan can no longer be signed: only a check-out or check-in can be, shortly after "
            "the tap and unless it was undone."
        ), 409
    elif Signature.objects.filter(event_seq=scan.event_seq).exists():
        error, status = gettext("This scan is already signed."), 409
    elif request.method == "POST":
        try:
            services.signature_add(
                event_seq=scan.event_seq,
                image=services.signature_from_data_url(request.POST.get("signature", "")),
                actor=request.user,
                signed_by=request.POST.get("signed_by", ""),
            )
        except DomainError as exc:
            error, status = exc.message, exc.status
        else:
            messages.success(
                request, gettext("Signature saved for %(code)s.") % {"code": scan.media.code}
            )
            return redirect("station", name=device.name)
    signer = ""
    if event is not None and event.holder is not None:
        signer = event.holder.get_full_name() or event.holder.get_username()
    return render(
        request,
        "tracker/station_sign.html",
        {
            "device": device,
            "scan": scan,
            "error": error,
            "can_sign": status in (200, 400),  # a refused drawing may be drawn again
            "signed_by": request.POST.get("signed_by", signer),
        },
        status=status,
    )


@login_required
def station_events(request, name: str):
    """Server-sent events: every scan recorded for this station after `after`. Read from the
    database, so a scan delivered to any app server reaches every open station page."""
    device = _station(request, name)
    # The stream is written after this view returns, maybe on another thread: in the language
    # the viewer asked for now.
    language = translation.get_language()
    try:
        after = int(request.GET.get("after") or request.headers.get("Last-Event-ID") or 0)
    except ValueError:
        after = 0

    def stream():
        last, deadline, quiet_since = after, time.monotonic() + SSE_STREAM_SECONDS, time.monotonic()
        yield "retry: 1000\n\n"
        while time.monotonic() < deadline:
            scans = list(
                ScanRecord.objects.filter(device=device, id__gt=last)
                .select_related("media__patient", "device").order_by("id")[:50]
            )
            for scan in scans:
                last = scan.id
                with translation.override(language):
                    payload = scan_payload(scan)
                yield f"id: {scan.id}\nevent: scan\ndata: {json.dumps(payload)}\n\n"
            if scans:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since > SSE_HEARTBEAT_SECONDS:
                quiet_since = time.monotonic()
                yield ": still here\n\n"
            time.sleep(SSE_POLL_SECONDS)

    response = StreamingHttpResponse(stream(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@login_required
def station_bind(request, name: str):
    """The next step for an unknown tag: put it on a jacket or disc."""
    device = _station(request, name)
    uid = request.GET.get("uid") or request.POST.get("uid", "")
    error = None
    if request.method == "POST":
        media = Media.objects.filter(code=request.POST.get("media", "").strip()).first()
        if media is None:
            error = gettext("No media with that code. Check the label, or register the item first.")
        else:
            try:
                services.tag_bind(uid=uid, media=media, actor=request.user, device=device)
                return redirect("station", name=device.name)
            except DomainError as exc:
                error = exc.message
    return render(request, "tracker/station_bind.html", {"device": device, "uid": uid, "error": error})


def tag_landing(request):
    """A phone tapping an NTAG 424 DNA tag opens /t/?e=..&c=.. (or ?uid=..&ctr=..&c=..): check it
    is the genuine tag and, for a logged-in user, open its item. Nothing about the patient is
    shown to someone who is not logged in."""
    params = request.GET
    try:
        tag = services.tag_verify_sun(
            c=params.get("c", ""), e=params.get("e"), uid=params.get("uid"), ctr=params.get("ctr"),
            enc=params.get("enc"),
        )
    except DomainError as error:
        return render(request, "tracker/tag_landing.html", {"error": error.message}, status=error.status)
    binding = tag.bindings.filter(unbound_at__isnull=True).select_related("media").first()
    media = binding.media if binding else None
    if media and request.user.is_authenticated:
        return redirect("media-detail", code=media.code)
    return render(request, "tracker/tag_landing.html", {"tag": tag, "media": media})
