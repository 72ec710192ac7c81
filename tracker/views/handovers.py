"""Pages: hand-overs (a borrower hands an item on; the receiver accepts).

"My hand-overs" (`handover-list`): a clinician sees the pending hand-overs to them (accept or
decline) and from them (cancel), and recent closed ones; staff, auditors and admins see every
pending one. The offer form (`handover-new`, `/handovers/new/?media=CODE`, also on the item's
page) is for the borrower and staff. Every form posts, the service decides, and the page comes
back with what happened; a refused form comes back as typed with the message beside the field
it concerns (or at the top when it concerns the form as a whole). `handover_context` gives the
item's page its pending hand-over."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from .. import services
from ..api.handovers import HANDOVER_ROLES, handover_list
from ..choices import HandoverStatus, LocationKind, Role
from ..exceptions import DomainError, InvalidRequest, QueueAhead
from ..models import Handover, Loan, Location, Media
from ..permissions import EVERY_ROLE, READ_ALL_ROLES, STAFF_ROLES, has_role
from ..projection.handovers import SUPERSEDED_BY_RETURN, SUPERSEDED_BY_TRANSFER
from ..services.handovers import MAX_TEXT
from .refusals import FieldRefused, refusal

RECENT = 20  # closed hand-overs shown under the pending ones


def _is_staff(user) -> bool:
    return has_role(user, STAFF_ROLES)


def actions_for(handover: Handover, user) -> dict:
    """Which buttons this person gets (the services decide again when pressed)."""
    if handover.status != HandoverStatus.PENDING or not has_role(user, HANDOVER_ROLES):
        return {"accept": False, "decline": False, "cancel": False}
    staff = _is_staff(user)
    receiver = handover.to_holder_id is not None and handover.to_holder_id == user.pk
    giver = user.pk in (handover.from_holder_id, handover.offered_by_id)
    return {"accept": staff or receiver, "decline": staff or receiver, "cancel": staff or giver}


def reason_text(handover: Handover) -> str:
    """The reason a hand-over closed, in the reader's language for the ones the system wrote."""
    return {
        SUPERSEDED_BY_RETURN: _("The item was returned before the hand-over was accepted."),
        SUPERSEDED_BY_TRANSFER: _("The item was handed to someone else before this was accepted."),
    }.get(handover.reason, handover.reason)


def _decorated(handovers, user, refused: dict | None = None) -> list[Handover]:
    rows = list(handovers)
    for each in rows:
        each.actions = actions_for(each, user)
        each.reason_text = reason_text(each)
        each.refused = refused if refused and refused["handover"] == each.pk else None
    return rows


def _may_offer(media: Media, loan: Loan | None, user) -> bool:
    return (
        loan is not None
        and has_role(user, HANDOVER_ROLES)
        and (loan.borrower_id == user.pk or _is_staff(user))
    )


def handover_context(media: Media, user) -> dict:
    """For the item's page: its pending hand-over (if this person may see it), the buttons they
    get, and whether they may offer one."""
    pending = handover_list(user=user).filter(media=media, status=HandoverStatus.PENDING).first()
    if pending is not None:
        return {"handover": pending, "handover_rows": _decorated([pending], user)}
    loan = Loan.objects.filter(media=media, returned_at__isnull=True).first()
    return {
        "handover": None,
        "may_offer_handover": _may_offer(media, loan, user)
        and not Handover.objects.filter(media=media, status=HandoverStatus.PENDING).exists(),
    }


def _back(request, default: str):
    """Return to the page the form was on (only a path on this site)."""
    target = request.POST.get("next", "")
    return redirect(target if target.startswith("/") and not target.startswith("//") else default)


@login_required
def handover_page(request):
    """Pending hand-overs to and from this person (every pending one for staff, auditors and
    admins), then recent closed ones."""
    if not has_role(request.user, EVERY_ROLE):
        raise PermissionDenied
    return _handover_page(request)


def _handover_page(request, *, refused: dict | None = None):
    """The page; with `refused` (a hand-over's pk, its decline form as typed and the message)
    a refused decline, shown beside its reason on the hand-over's row (400)."""
    user = request.user
    visible = handover_list(user=user)
    pending = visible.filter(status=HandoverStatus.PENDING).order_by("offered_seq")
    closed = visible.exclude(status=HandoverStatus.PENDING).order_by("-closed_seq")[:RECENT]
    sees_all = has_role(user, READ_ALL_ROLES)
    context = {"sees_all": sees_all, "closed": _decorated(closed, user), "refused": refused}
    if sees_all:
        context["pending"] = _decorated(pending, user, refused)
    else:
        context["to_me"] = _decorated(pending.filter(to_holder=user), user, refused)
        context["from_me"] = _decorated(pending.exclude(to_holder=user), user, refused)
        context["lent_to_me"] = Loan.objects.filter(
            borrower=user, returned_at__isnull=True
        ).select_related("media")
    return render(request, "tracker/handovers/list.html", context, status=400 if refused else 200)


def _receivers(exclude_pk: int | None):
    """People an item may be handed to: active clinicians, file-room staff and admins."""
    roles = [Role.CLINICIAN, Role.FILE_ROOM, Role.ADMIN]
    people = (
        get_user_model()
        .objects.filter(is_active=True)
        .filter(Q(groups__name__in=roles) | Q(is_superuser=True))
        .distinct()
        .order_by("first_name", "last_name", "username")
    )
    return people.exclude(pk=exclude_pk) if exclude_pk else people


@login_required
def handover_new(request):
    """The offer form (GET ?media=CODE) and the offer itself (POST)."""
    if not has_role(request.user, HANDOVER_ROLES):
        raise PermissionDenied
    source = request.POST if request.method == "POST" else request.GET
    code = source.get("media", "").strip()
    media = Media.objects.filter(code=code).first() if code else None
    loan = (
        Loan.objects.filter(media=media, returned_at__isnull=True)
        .select_related("borrower")
        .first()
        if media
        else None
    )
    form = {name: source.get(name, "").strip() for name in ("to", "note", "queue_override")}
    refused, status = {"errors": {}, "error": ""}, 200
    if request.method == "POST" and media is None:  # the form is not shown without an item
        refused["error"] = (
            _("No media has the code %(code)s.") % {"code": code}
            if code
            else _("Say which item to hand on (its code).")
        )
        status = 400
    elif request.method == "POST":
        try:
            made = _offer(request, media=media, form=form)
        except DomainError as error:
            # A receiver the service will not take (a disabled account, a courier, someone
            # queued ahead, for a clinician) is the "to" field's; the file room's reason to go
            # past the queue is its own field's.
            fields = {
                QueueAhead: "queue_override" if _is_staff(request.user) else "to",
                InvalidRequest: "to",
            }
            refused, status = refusal(error, fields), 409 if error.status == 409 else 400
        else:
            return redirect("media-detail", code=made.media.code)
    return render(
        request,
        "tracker/handovers/new.html",
        {
            "code": code,
            "media": media,
            "loan": loan,
            "may_offer": media is not None and _may_offer(media, loan, request.user),
            "is_staff": _is_staff(request.user),
            "people": _receivers(loan.borrower_id if loan else None),
            "places": Location.objects.filter(is_active=True)
            .exclude(kind=LocationKind.TRANSIT)
            .exclude(pk=media.current_location_id if media else None),
            "form": form,
            **refused,
        },
        status=status,
    )


def _offer(request, *, media: Media, form: dict) -> Handover:
    """Run the offer for the form; a refusal raises (FieldRefused for the view's own checks)."""
    to_holder = to_location = None
    kind, _sep, value = form["to"].partition(":")
    if kind == "user":
        to_holder = get_user_model().objects.filter(username=value).first()
    elif kind == "place":
        to_location = Location.objects.filter(code=value).first()
    if to_holder is None and to_location is None:
        raise FieldRefused("to", _("Choose the colleague or the place to hand the item to."))
    for field, what in (("note", _("note")), ("queue_override", _("reason"))):
        if len(form[field]) > MAX_TEXT:
            message = _("Keep the %(what)s under %(n)d characters.") % {"what": what, "n": MAX_TEXT}
            raise FieldRefused(field, message)
    made = services.handover_offer(
        media=media,
        actor=request.user,
        to_holder=to_holder,
        to_location=to_location,
        note=form["note"],
        queue_override=form["queue_override"],
    )
    messages.success(
        request,
        _("%(code)s is offered to %(receiver)s; it stays yours until they accept.")
        % {"code": media.code, "receiver": services.handover_receiver(made)}
        if made.from_holder_id == request.user.pk
        else _("%(code)s is offered to %(receiver)s; custody moves when they accept.")
        % {"code": media.code, "receiver": services.handover_receiver(made)},
    )
    return made


def _handover_or_404(request, pk: int) -> Handover:
    found = handover_list(user=request.user).filter(pk=pk).first()
    if found is None:
        raise Http404(_("There is no hand-over %(id)s that you may see.") % {"id": pk})
    return found


def _act(request, pk: int, action, success: str):
    """Run one service for a form and say what happened."""
    if not has_role(request.user, HANDOVER_ROLES):
        raise PermissionDenied
    handover = _handover_or_404(request, pk)
    try:
        action(handover)
        receiver = services.handover_receiver(handover)
        messages.success(request, success % {"code": handover.media.code, "receiver": receiver})
    except DomainError as error:
        messages.error(request, error.message)
    return _back(request, "handover-list")


@login_required
@require_POST
def handover_accept(request, pk: int):
    return _act(
        request,
        pk,
        lambda h: services.handover_accept(handover=h, actor=request.user),
        _("Hand-over of %(code)s accepted: custody has moved to %(receiver)s."),
    )


@login_required
@require_POST
def handover_decline(request, pk: int):
    """Decline with a reason; a reason refused (none, too long) is shown beside it on the
    hand-overs page, whichever page the form was on."""
    if not has_role(request.user, HANDOVER_ROLES):
        raise PermissionDenied
    handover = _handover_or_404(request, pk)
    form = {"reason": request.POST.get("reason", "").strip()}
    try:
        services.handover_decline(handover=handover, actor=request.user, reason=form["reason"])
    except InvalidRequest as error:  # the reason's: NotAllowed and a closed hand-over are not
        refused = {"handover": pk, "form": form, **refusal(error, {InvalidRequest: "reason"})}
        return _handover_page(request, refused=refused)
    except DomainError as error:
        messages.error(request, error.message)
        return _back(request, "handover-list")
    messages.success(
        request,
        _("Hand-over of %(code)s declined; it stays with its borrower.")
        % {"code": handover.media.code, "receiver": services.handover_receiver(handover)},
    )
    return _back(request, "handover-list")


@login_required
@require_POST
def handover_cancel(request, pk: int):
    return _act(
        request,
        pk,
        lambda h: services.handover_cancel(handover=h, actor=request.user),
        _("Hand-over of %(code)s cancelled."),
    )


# Mounted at the site root by tracker/urls.py.
urlpatterns: list = [
    path("handovers/", handover_page, name="handover-list"),
    path("handovers/new/", handover_new, name="handover-new"),
    path("handovers/<int:pk>/accept/", handover_accept, name="handover-accept"),
    path("handovers/<int:pk>/decline/", handover_decline, name="handover-decline"),
    path("handovers/<int:pk>/cancel/", handover_cancel, name="handover-cancel"),
]
