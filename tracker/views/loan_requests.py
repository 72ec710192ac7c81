"""Pages: loan requests (clinicians ask, staff decide) and the queue.

"My requests" (`loan-requests-mine`): anyone but an auditor asks for an item, a patient's media or
a study's, sees each request's status and place in the queue, cancels, and renews their loans.
The file room's queue (`loan-requests-queue`): pending requests to approve or deny, approved ones
by item (on the shelf: pull and mark ready; on loan: who waits), and those ready at the desk,
lent with the requester's signature if they draw one. The pull list (`loan-requests-pull-list`,
and its PDF): a day's approved requests shelf by shelf in walking order.
Every form posts, the service decides, and the page comes back with what happened; a refused
form comes back as typed, with the message beside the field it concerns (or at the top when it
concerns the form as a whole)."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from archive.models import Patient, Study

from .. import pdf, selectors, services
from ..api.loan_requests import REQUESTER_ROLES, loan_request_list
from ..choices import LocationKind, MediaStatus, RequestStatus
from ..exceptions import Conflict, DomainError, InvalidRequest
from ..models import Loan, LoanRequest, Location, Media
from ..permissions import READ_ALL_ROLES, STAFF_ROLES, has_role
from . import signatures as signatures_views
from .refusals import FieldRefused, refusal

OPEN = (RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.READY)


def _may_ask(user) -> bool:
    return has_role(user, REQUESTER_ROLES)


def _staff_only(user) -> None:
    if not has_role(user, STAFF_ROLES):
        raise PermissionDenied


def _request_or_404(request, pk: int) -> LoanRequest:
    found = loan_request_list(user=request.user).filter(pk=pk).first()
    if found is None:
        raise Http404(_("There is no loan request %(id)s that you may see.") % {"id": pk})
    return found


def _back(request, default: str):
    """Return to the page the form was on (only a path on this site)."""
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") else default)


def _parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat((value or "").strip())
    except ValueError:
        return None


ASK_FIELDS = ("media", "patient", "study", "needed_from", "needed_until", "purpose", "destination")


@login_required
def my_requests(request):
    """The requester's own requests (open first) and loans, and the form to ask for more."""
    return _my_requests_page(request)


def _my_requests_page(request, *, form: dict | None = None, refused: dict | None = None):
    """The page, with the ask form as typed and its refusal when a request was refused (400)."""
    mine = list(
        LoanRequest.objects.filter(requester=request.user)
        .select_related("media", "patient", "study", "destination", "decided_by")
        .order_by("-created_seq")[:100]
    )
    for each in mine:
        each.position = services.queue_position(each)
        each.is_open = each.status in OPEN
    loans = Loan.objects.filter(borrower=request.user, returned_at__isnull=True).select_related(
        "media", "destination"
    )
    today = timezone.localdate()
    return render(
        request,
        "tracker/loan_requests/mine.html",
        {
            "requests": mine,
            "loans": loans,
            "may_ask": _may_ask(request.user),
            "places": Location.objects.filter(is_active=True).exclude(kind="transit"),
            "form": form
            or {
                "needed_from": today.isoformat(),
                "needed_until": today.isoformat(),
                "media": request.GET.get("media", ""),
                "patient": request.GET.get("patient", ""),
            },
            **(refused or {"errors": {}, "error": ""}),
        },
        status=400 if refused else 200,
    )


@login_required
@require_POST
def request_make(request):
    if not _may_ask(request.user):
        raise PermissionDenied
    form = {name: request.POST.get(name, "").strip() for name in ASK_FIELDS}
    errors = {}  # every field the view can judge is judged at once
    media = patient = study = destination = None
    if form["media"]:
        media = Media.objects.filter(code=form["media"]).first()
        if media is None:
            errors["media"] = _("No media has the code %(code)s.") % {"code": form["media"]}
    if form["patient"]:
        patient = Patient.objects.filter(patient_id=form["patient"]).first()
        if patient is None:
            errors["patient"] = _("No patient has the ID %(id)s.") % {"id": form["patient"]}
    if form["study"]:
        study = Study.objects.filter(study_instance_uid=form["study"]).first()
        if study is None:
            errors["study"] = _("No study has the UID %(uid)s.") % {"uid": form["study"]}
    if form["destination"]:
        destination = Location.objects.filter(code=form["destination"], is_active=True).first()
        if destination is None:
            errors["destination"] = _("There is no active place with the code %(code)s.") % {
                "code": form["destination"]
            }
    needed_from, needed_until = _parse_day(form["needed_from"]), _parse_day(form["needed_until"])
    for name, day in (("needed_from", needed_from), ("needed_until", needed_until)):
        if day is None:
            errors[name] = _("Give the dates as YYYY-MM-DD.")
    if not errors:
        try:
            _ask_checked(form, needed_from, needed_until)
            made = services.loan_request_make(
                requester=request.user,
                media=media,
                patient=patient,
                study=study,
                needed_from=needed_from,
                needed_until=needed_until,
                purpose=form["purpose"],
                destination=destination,
            )
        except DomainError as error:
            # The service's other refusals (nothing named, a study of another patient, ...)
            # concern the form as a whole; asking twice for one item concerns the item.
            return _my_requests_page(
                request, form=form, refused=refusal(error, {Conflict: "media" if media else None})
            )
        messages.success(request, _("Request %(id)s sent to the file room.") % {"id": made.pk})
        return redirect("loan-requests-mine")
    return _my_requests_page(request, form=form, refused={"errors": errors, "error": ""})


def _ask_checked(form: dict, needed_from: date, needed_until: date) -> None:
    """The service's refusals of one field, checked first so the page can say which field."""
    if not form["purpose"]:
        raise FieldRefused("purpose", _("Say what the media are needed for (the purpose)."))
    if len(form["purpose"]) > 200:
        raise FieldRefused("purpose", _("Keep the purpose under 200 characters."))
    if needed_until < needed_from:
        raise FieldRefused(
            "needed_until",
            _("“Needed until” (%(until)s) is before “needed from” (%(from)s).")
            % {"until": needed_until.isoformat(), "from": needed_from.isoformat()},
        )
    if needed_until < timezone.localdate():
        raise FieldRefused(
            "needed_until",
            _("“Needed until” (%(until)s) has already passed; choose dates from today on.")
            % {"until": needed_until.isoformat()},
        )


def _act(request, action, success: str, default: str):
    """Run one service for a form and say what happened."""
    try:
        action()
        messages.success(request, success)
    except DomainError as error:
        messages.error(request, error.message)
    return _back(request, default)


@login_required
@require_POST
def request_cancel(request, pk: int):
    if not _may_ask(request.user):
        raise PermissionDenied
    loan_request = _request_or_404(request, pk)
    return _act(
        request,
        lambda: services.loan_request_cancel(request=loan_request, actor=request.user),
        _("Request %(id)s cancelled.") % {"id": pk},
        "loan-requests-mine",
    )


@login_required
@require_POST
def loan_renew(request, pk: int):
    if not _may_ask(request.user):
        raise PermissionDenied
    loan = selectors.loan_list(user=request.user).filter(pk=pk).first()
    if loan is None:
        raise Http404
    return _act(
        request,
        lambda: services.loan_renew(loan=loan, actor=request.user),
        _("Loan of %(code)s renewed.") % {"code": loan.media.code},
        "loan-requests-mine",
    )


@login_required
def queue(request):
    """The file room's worklist: decide, pull, hand over."""
    if not has_role(request.user, READ_ALL_ROLES):
        raise PermissionDenied
    return _queue_page(request)


def _queue_page(request, *, refused: dict | None = None):
    """The queue; with `refused` (the request's pk, the decision, its form as typed and where its
    message goes) a decision that was refused, shown on its row or at the top (400 or 409)."""
    open_requests = list(
        LoanRequest.objects.filter(status__in=OPEN)
        .select_related(
            "requester",
            "media__current_location",
            "media__current_holder",
            "media__home_location",
            "patient",
            "study",
            "destination",
        )
        .order_by("created_seq")
    )
    pending = [r for r in open_requests if r.status == RequestStatus.PENDING]
    for r in pending:  # a refused decision is shown on its request's row
        mine = refused if refused and refused["request"] == r.pk else None
        r.refused_approve = mine if mine and mine["decision"] == "approve" else None
        r.refused_deny = mine if mine and mine["decision"] == "deny" else None
    ready = [r for r in open_requests if r.status == RequestStatus.READY]
    by_item: dict[int, dict] = {}
    for r in open_requests:
        if r.status == RequestStatus.APPROVED:
            entry = by_item.setdefault(r.media_id, {"media": r.media, "requests": []})
            entry["requests"].append(r)
    to_pull, waiting = [], []
    for entry in by_item.values():
        entry["requests"] = [
            r for r in services.request_queue(entry["media"]) if r.status == RequestStatus.APPROVED
        ]
        head = services.next_in_queue(entry["media"])
        entry["head"] = head
        if (
            entry["media"].status == MediaStatus.ON_SHELF
            and head
            and head.status == RequestStatus.APPROVED
        ):
            to_pull.append(entry)
        else:
            entry["loan"] = (
                Loan.objects.filter(media=entry["media"], returned_at__isnull=True)
                .select_related("borrower")
                .first()
            )
            waiting.append(entry)
    to_pull.sort(
        key=lambda e: (
            e["media"].home_location.shelf_order,
            e["media"].home_location.code,
            e["media"].code,
        )
    )
    return render(
        request,
        "tracker/loan_requests/queue.html",
        {
            "pending": pending,
            "to_pull": to_pull,
            "waiting": waiting,
            "ready": ready,
            "may_decide": has_role(request.user, STAFF_ROLES),
            "refused": refused,
        },
        status=refused["status"] if refused else 200,
    )


def _decision_refused(request, pk: int, decision: str, form: dict, error: DomainError, fields):
    """The queue again with a refused approval or denial: beside its field on the request's row,
    or at the top when it concerns no field."""
    refused = {
        "request": pk,
        "decision": decision,
        "form": form,
        "status": 409 if error.status == 409 else 400,
        **refusal(error, fields),
    }
    return _queue_page(request, refused=refused)


@login_required
@require_POST
def request_approve(request, pk: int):
    _staff_only(request.user)
    loan_request = _request_or_404(request, pk)
    form = {"media": request.POST.get("media", "").strip()}
    media = None
    try:
        if form["media"]:
            media = Media.objects.filter(code=form["media"]).first()
            if media is None:
                raise FieldRefused(
                    "media", _("No media has the code %(code)s.") % {"code": form["media"]}
                )
        services.loan_request_approve(request=loan_request, actor=request.user, media=media)
    except DomainError as error:
        # A request that names no item is approved with one typed on its row: what the service
        # says against the item is said there. A request closed meanwhile concerns no field.
        fields = {InvalidRequest: "media"} if loan_request.media_id is None else {}
        return _decision_refused(request, pk, "approve", form, error, fields)
    messages.success(request, _("Request %(id)s approved.") % {"id": pk})
    return _back(request, "loan-requests-queue")


@login_required
@require_POST
def request_deny(request, pk: int):
    _staff_only(request.user)
    loan_request = _request_or_404(request, pk)
    form = {"reason": request.POST.get("reason", "").strip()}
    try:
        services.loan_request_deny(request=loan_request, actor=request.user, reason=form["reason"])
    except DomainError as error:
        # No reason or one too long is the reason's; a request closed meanwhile is no field's.
        return _decision_refused(request, pk, "deny", form, error, {InvalidRequest: "reason"})
    messages.success(request, _("Request %(id)s denied.") % {"id": pk})
    return _back(request, "loan-requests-queue")


@login_required
@require_POST
def request_ready(request, pk: int):
    _staff_only(request.user)
    loan_request = _request_or_404(request, pk)
    return _act(
        request,
        lambda: services.loan_request_ready(request=loan_request, actor=request.user),
        _("Request %(id)s is ready for pick-up.") % {"id": pk},
        "loan-requests-queue",
    )


@login_required
@require_POST
def request_check_out(request, pk: int):
    """Hand the pulled item to the requester: the check-out that fulfils the request, with the
    signature they drew on the page, if they did."""
    _staff_only(request.user)
    loan_request = _request_or_404(request, pk)
    if loan_request.media is None:
        raise Http404
    drawn = request.POST.get("signature", "").strip()
    return _act(
        request,
        lambda: services.media_check_out(
            media=loan_request.media,
            borrower=loan_request.requester,
            actor=request.user,
            destination=loan_request.destination,
            request=loan_request,
            signature=services.signature_from_data_url(drawn) if drawn else None,
        ),
        _("%(code)s lent to %(name)s.")
        % {
            "code": loan_request.media.code,
            "name": loan_request.requester.get_full_name() or loan_request.requester.get_username(),
        },
        "loan-requests-queue",
    )


def _pull_list_asked(request) -> tuple[date, Location | None, str]:
    """The day and file room a pull list is asked for (today and every room by default), and
    what was wrong with the question, if anything."""
    if not has_role(request.user, READ_ALL_ROLES):
        raise PermissionDenied
    problem = ""
    day = _parse_day(request.GET.get("day", "")) if request.GET.get("day") else None
    if day is None:
        if request.GET.get("day"):
            problem = _("Give the day as YYYY-MM-DD; showing today.")
        day = timezone.localdate()
    room = None
    if code := request.GET.get("room", "").strip():
        room = Location.objects.filter(code=code).first()
        if room is None:
            problem = _("No location has the code %(code)s; showing every file room.") % {"code": code}
    return day, room, problem


def _file_room_name(room: Location | None, shelves) -> str:
    if room is not None:
        return room.name
    names = list(dict.fromkeys(shelf.path[0].name for shelf in shelves))  # in walking order
    return ", ".join(names) if names else _("all")


@login_required
def pull_list(request):
    """The approved requests to pull for a day, shelf by shelf in walking order."""
    day, room, problem = _pull_list_asked(request)
    if problem:
        messages.error(request, problem)
    shelves = services.pull_list(day=day, within=room)
    query = {"day": day.isoformat(), **({"room": room.code} if room else {})}
    return render(
        request,
        "tracker/loan_requests/pull_list.html",
        {
            "day": day,
            "room": room,
            "rooms": Location.objects.filter(kind=LocationKind.ROOM, is_active=True),
            "shelves": shelves,
            "items": sum(len(shelf.requests) for shelf in shelves),
            "file_room": _file_room_name(room, shelves),
            "pdf_url": f"{reverse('loan-requests-pull-list-pdf')}?{urlencode(query)}",
        },
    )


@login_required
def pull_list_pdf(request):
    """The same pull list, printable: A4, a box to tick per item."""
    day, room, problem = _pull_list_asked(request)
    if problem:
        return HttpResponseBadRequest(problem, content_type="text/plain; charset=utf-8")
    shelves = services.pull_list(day=day, within=room)
    document = pdf.pull_list_pdf(shelves=shelves, day=day, file_room=_file_room_name(room, shelves))
    response = HttpResponse(document, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="pull-list-{day.isoformat()}.pdf"'
    response["Cache-Control"] = "private, no-store"
    return response


# Mounted at the site root by tracker/urls.py.
urlpatterns: list = [
    path("requests/pull-list/", pull_list, name="loan-requests-pull-list"),
    path("requests/pull-list.pdf", pull_list_pdf, name="loan-requests-pull-list-pdf"),
    path("requests/", my_requests, name="loan-requests-mine"),
    path("requests/new/", request_make, name="loan-request-make"),
    path("requests/queue/", queue, name="loan-requests-queue"),
    path("requests/<int:pk>/cancel/", request_cancel, name="loan-request-cancel"),
    path("requests/<int:pk>/approve/", request_approve, name="loan-request-approve"),
    path("requests/<int:pk>/deny/", request_deny, name="loan-request-deny"),
    path("requests/<int:pk>/ready/", request_ready, name="loan-request-ready"),
    path("requests/<int:pk>/check-out/", request_check_out, name="loan-request-check-out"),
    path("loans/<int:pk>/renew/", loan_renew, name="loan-renew"),
    # The signature pages (the image, signing at a station) ride on this module's mount.
    *signatures_views.urlpatterns,
]
