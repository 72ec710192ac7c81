"""Pages: the file room's forms for the custody services (issue 7, point 3).

Register an item (`/media/new/`), and for one item: check it out, take it back, transfer it,
record it seen at a place, retire it, bind or unbind its tag (`/media/<code>/<action>/`). Staff
(file_room, admin) only. Every form posts to the service (one ledger event, actor = the person
logged in); a refusal re-shows the form as typed with the message beside the field it concerns,
or at the top when it concerns the form as a whole (400, or 409 for a conflict), and nothing
changes; success goes back to the item's page with a message (POST-redirect-GET)."""

from __future__ import annotations

from datetime import date, datetime, time

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext as _

from archive.models import Patient

from .. import services
from ..choices import LocationKind, MediaKind, Role, UidFormat
from ..exceptions import (
    AlreadyOnLoan,
    DomainError,
    DuplicateCode,
    InvalidRequest,
    NotOnLoan,
    QueueAhead,
    TagBoundElsewhere,
)
from ..models import Location, Media, TagBinding
from ..permissions import STAFF_ROLES, has_role
from ..tags import UidError, normalise_uid
from .refusals import FieldRefused, refusal

# Reader formats a person may type a UID in (Wiegand-26 keeps no UID, so it is not offered).
TYPED_FORMATS = [(value, label) for value, label in UidFormat.choices if value != UidFormat.WIEGAND_26]


def _staff_only(view):
    """Login first (anonymous → the login page), then file_room or admin (else 403)."""

    @login_required
    def wrapped(request, *args, **kwargs):
        if not has_role(request.user, STAFF_ROLES):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return wrapped


def _name(user) -> str:
    return user.get_full_name() or user.get_username()


def _places(*, transit: bool = False):
    places = Location.objects.filter(is_active=True).order_by("code")
    return places if transit else places.exclude(kind=LocationKind.TRANSIT)


def _people():
    """Who may borrow or hold an item: active clinicians and file-room staff."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=[Role.CLINICIAN, Role.FILE_ROOM])
        .distinct()
        .order_by("first_name", "last_name", "username")
    )


def _place(
    form: dict, field: str, *, required: bool, transit: bool = False
) -> Location | None:
    code = form[field]
    if not code:
        if required:
            raise FieldRefused(field, _("Choose a place."))
        return None
    found = _places(transit=transit).filter(code=code).first()
    if found is None:
        raise FieldRefused(
            field, _("There is no active place with the code %(code)s.") % {"code": code}
        )
    return found


def _person(form: dict, field: str, *, required: bool):
    username = form[field]
    if not username:
        if required:
            raise FieldRefused(field, _("Choose a person."))
        return None
    found = _people().filter(username=username).first()
    if found is None:
        raise FieldRefused(
            field,
            _("%(name)s is not an active clinician or file-room member.") % {"name": username},
        )
    return found


def _due(form: dict, field: str) -> datetime | None:
    """The end of the day chosen (local time), or None for the loan policy's date."""
    text = form[field]
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise FieldRefused(field, _("Give the due date as YYYY-MM-DD.")) from None
    if day < timezone.localdate():
        raise FieldRefused(field, _("The due date cannot be in the past."))
    return timezone.make_aware(datetime.combine(day, time(23, 59)))


def _form(request, *names: str) -> dict:
    source = request.POST if request.method == "POST" else request.GET
    return {name: source.get(name, "").strip() for name in names}


def _refused(
    request,
    template: str,
    context: dict,
    error: DomainError,
    fields: dict[type, str | None] | None = None,
):
    """The form again as typed, the message beside the field it concerns (`fields` names the
    field of a service's error by its class) or at the top; 409 for a conflict, else 400."""
    context.update(refusal(error, fields))
    return render(request, template, context, status=409 if error.status == 409 else 400)


def _item_page(request, media: Media, message: str):
    messages.success(request, message)
    return redirect("media-detail", code=media.code)


@_staff_only
def media_new(request):
    """Register a jacket, disc or stick on its home shelf."""
    form = _form(request, "code", "kind", "home", "patient_id", "description")
    context = {
        "form": form,
        "kinds": MediaKind.choices,
        "places": _places(),
    }
    template = "tracker/actions/register.html"
    if request.method != "POST":
        return render(request, template, context)
    try:
        if form["kind"] not in MediaKind.values:
            raise FieldRefused(
                "kind", _("“%(kind)s” is not a kind of media.") % {"kind": form["kind"]}
            )
        home = _place(form, "home", required=True)
        patient = None
        if form["patient_id"]:
            patient = Patient.objects.filter(patient_id=form["patient_id"]).first()
            if patient is None:
                raise FieldRefused(
                    "patient_id",
                    _("No patient has the ID %(id)s. Register the patient first.")
                    % {"id": form["patient_id"]},
                )
        if len(form["description"]) > 200:
            raise FieldRefused("description", _("The description is at most 200 characters."))
        media = services.media_register(
            code=form["code"],
            kind=form["kind"],
            home_location=home,
            actor=request.user,
            patient=patient,
            description=form["description"],
        )
    except DomainError as error:
        # With the kind checked above, what the service refuses in its input is the code.
        fields = {InvalidRequest: "code", DuplicateCode: "code"}
        return _refused(request, template, context, error, fields)
    return _item_page(
        request, media, _("%(code)s is registered on %(place)s.") % {"code": media.code, "place": home}
    )


def _item(code: str) -> Media:
    return get_object_or_404(
        Media.objects.select_related("home_location", "current_location", "current_holder"), code=code
    )


@_staff_only
def media_check_out(request, code: str):
    """Lend the item; a queued request for someone else needs a reason to lend out of turn."""
    media = _item(code)
    form = _form(request, "borrower", "destination", "due", "queue_override")
    context = {
        "media": media,
        "form": form,
        "people": _people(),
        "places": _places(),
        "ask_override": bool(form["queue_override"]),
    }
    template = "tracker/actions/check_out.html"
    if request.method != "POST":
        return render(request, template, context)
    try:
        borrower = _person(form, "borrower", required=True)
        loan = services.media_check_out(
            media=media,
            borrower=borrower,
            actor=request.user,
            destination=_place(form, "destination", required=False),
            due_at=_due(form, "due"),
            queue_override=form["queue_override"],
        )
    except QueueAhead as error:  # the reason it asks for goes in the field it brings up
        context["ask_override"] = True
        return _refused(request, template, context, error, {QueueAhead: "queue_override"})
    except DomainError as error:
        # The item on loan or retired concerns no field; an account disabled is the borrower's.
        fields = {AlreadyOnLoan: None, InvalidRequest: "borrower"}
        return _refused(request, template, context, error, fields)
    return _item_page(
        request,
        media,
        _("%(code)s is checked out to %(name)s, due %(due)s.")
        % {
            "code": media.code,
            "name": _name(borrower),
            "due": timezone.localtime(loan.due_at).strftime("%Y-%m-%d"),
        },
    )


@_staff_only
def media_return(request, code: str):
    """Take the item back (to its home shelf unless another place is chosen)."""
    media = _item(code)
    form = _form(request, "place")
    if not form["place"]:
        form["place"] = media.home_location.code
    context = {"media": media, "form": form, "places": _places()}
    template = "tracker/actions/return.html"
    if request.method != "POST":
        return render(request, template, context)
    try:
        place = _place(form, "place", required=True)
        services.media_return(media=media, actor=request.user, location=place)
    except DomainError as error:
        return _refused(request, template, context, error)
    return _item_page(
        request, media, _("%(code)s is returned to %(place)s.") % {"code": media.code, "place": place}
    )


@_staff_only
def media_transfer(request, code: str):
    """Move the item to a place, hand it (its loan) to a person, or both."""
    media = _item(code)
    form = _form(request, "place", "person")
    context = {
        "media": media,
        "form": form,
        "people": _people(),
        "places": _places(transit=True),
    }
    template = "tracker/actions/transfer.html"
    if request.method != "POST":
        return render(request, template, context)
    try:
        place = _place(form, "place", required=False, transit=True)
        person = _person(form, "person", required=False)
        services.media_transfer(media=media, actor=request.user, to_location=place, to_holder=person)
    except DomainError as error:
        # Neither a place nor a person is the form's fault as a whole; a person who cannot take
        # it (nothing on loan to hand on, an account disabled) is the person field's.
        fields = {NotOnLoan: "person", InvalidRequest: "person"} if form["person"] else {}
        return _refused(request, template, context, error, fields)
    where = ", ".join(str(part) for part in (place, person and _name(person)) if part)
    return _item_page(
        request, media, _("%(code)s is transferred to %(where)s.") % {"code": media.code, "where": where}
    )


@_staff_only
def media_seen(request, code: str):
    """Record that the item was seen at a place (an item flagged missing is found again)."""
    media = _item(code)
    form = _form(request, "place")
    context = {"media": media, "form": form, "places": _places()}
    template = "tracker/actions/seen.html"
    if request.method != "POST":
        return render(request, template, context)
    try:
        place = _place(form, "place", required=True)
        services.media_seen(media=media, location=place, actor=request.user)
    except DomainError as error:
        return _refused(request, template, context, error)
    return _item_page(
        request,
        media,
        _("%(code)s is recorded as seen at %(place)s.") % {"code": media.code, "place": place},
    )


@_staff_only
def media_retire(request, code: str):
    """Take the item out of circulation for good, with a reason and a confirmation."""
    media = _item(code)
    form = _form(request, "reason", "confirm")
    context = {"media": media, "form": form}
    template = "tracker/actions/retire.html"
    if request.method != "POST":
        return render(request, template, context)
    try:
        if form["confirm"] != "yes":
            raise FieldRefused(
                "confirm",
                _("Tick the box to confirm that %(code)s leaves circulation for good.")
                % {"code": media.code},
            )
        services.media_retire(media=media, actor=request.user, reason=form["reason"])
    except DomainError as error:
        # On loan concerns the item; the service's other refusal is a missing reason.
        fields = {AlreadyOnLoan: None, InvalidRequest: "reason"}
        return _refused(request, template, context, error, fields)
    return _item_page(
        request, media, _("%(code)s is retired: %(reason)s") % {"code": media.code, "reason": form["reason"]}
    )


@_staff_only
def media_tag(request, code: str):
    """Bind a tag (its UID typed in any reader format), or unbind the current one with a reason."""
    media = _item(code)
    form = _form(request, "op", "uid", "format", "reason")
    form["format"] = form["format"] or UidFormat.HEX
    current = TagBinding.objects.filter(media=media, unbound_at__isnull=True).select_related("tag").first()
    context = {"media": media, "form": form, "current": current, "formats": TYPED_FORMATS}
    template = "tracker/actions/tag.html"
    if request.method != "POST":
        return render(request, template, context)
    try:
        if form["op"] == "unbind":
            if current is None:
                raise InvalidRequest(_("%(code)s carries no tag to unbind.") % {"code": media.code})
            if not form["reason"]:
                raise FieldRefused("reason", _("Give a reason for unbinding the tag."))
            services.tag_unbind(uid=current.tag.uid, actor=request.user, reason=form["reason"])
            message = _("Tag %(uid)s is unbound from %(code)s.") % {
                "uid": current.tag.uid, "code": media.code
            }
        else:
            if form["format"] not in dict(TYPED_FORMATS):
                raise FieldRefused("format", _("Choose the format the UID is written in."))
            try:
                uid = normalise_uid(form["uid"], fmt=form["format"])
            except UidError as exc:
                raise FieldRefused("uid", str(exc)) from exc
            binding = services.tag_bind(uid=uid, media=media, actor=request.user)
            message = _("Tag %(uid)s is bound to %(code)s.") % {"uid": binding.tag.uid, "code": media.code}
    except DomainError as error:
        # A tag on another item is the UID's fault; this item already tagged is the item's.
        fields = {TagBoundElsewhere: "uid"} if form["op"] != "unbind" else {}
        return _refused(request, template, context, error, fields)
    return _item_page(request, media, message)


# Mounted at the site root by tracker/urls.py, before the item's page (so /media/new/ is not an
# item called "new").
urlpatterns: list = [
    path("media/new/", media_new, name="media-new"),
    path("media/<str:code>/check-out/", media_check_out, name="media-check-out"),
    path("media/<str:code>/return/", media_return, name="media-return"),
    path("media/<str:code>/transfer/", media_transfer, name="media-transfer"),
    path("media/<str:code>/seen/", media_seen, name="media-seen"),
    path("media/<str:code>/retire/", media_retire, name="media-retire"),
    path("media/<str:code>/tag/", media_tag, name="media-tag"),
]
