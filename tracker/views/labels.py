"""Pages: printing QR labels (`labels`, /labels/) for items, a shelf's items, places and people's
badges on the label stock of tracker.labels, as a PDF to print at 100 % scale.

The form is a GET form: printing changes nothing, and a link such as
/labels/?what=shelf_items&shelf=FR-A1 (the location page has it) gives the PDF straight away.
File-room staff and admins only: auditors write nothing, and clinicians have no labels to print.
"""

from __future__ import annotations

import re

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import labels as label_sheets
from ..choices import MediaStatus, Role
from ..models import Location, Media
from ..permissions import STAFF_ROLES, has_role, roles_of

WHAT_CHOICES = [
    ("media", gettext_lazy("Items, by code")),
    ("shelf_items", gettext_lazy("Every item whose home is a shelf")),
    ("locations", gettext_lazy("Shelves and other places, by code")),
    ("badges", gettext_lazy("People's badges, by login name")),
]
SEPARATORS = re.compile(r"[\s,;]+")
DEFAULT_STOCK = "a4-3x8"


class LabelForm(forms.Form):
    what = forms.ChoiceField(
        label=gettext_lazy("Labels for"), choices=WHAT_CHOICES, widget=forms.RadioSelect
    )
    codes = forms.CharField(
        label=gettext_lazy("Codes or login names"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "autocapitalize": "off"}),
        help_text=gettext_lazy(
            "Separated by spaces, commas or new lines; a tag reader can type them."
        ),
    )
    shelf = forms.CharField(
        label=gettext_lazy("Shelf code"),
        required=False,
        max_length=32,
        help_text=gettext_lazy("For “every item whose home is a shelf”."),
    )
    inside = forms.BooleanField(
        label=gettext_lazy("Also every shelf inside the places named"),
        required=False,
    )
    stock = forms.ChoiceField(
        label=gettext_lazy("Label stock"),
        choices=label_sheets.stock_choices,
        initial=DEFAULT_STOCK,
        required=False,
        widget=forms.RadioSelect,
    )
    start = forms.IntegerField(
        label=gettext_lazy("Start at label"),
        min_value=1,
        initial=1,
        required=False,
        help_text=gettext_lazy(
            "On a partly used sheet, the first free label, counted along the rows from the "
            "top left."
        ),
    )

    def clean(self):
        data = super().clean()
        # A link may leave these out: the usual sheet, from its first label.
        if not data.get("stock") and "stock" not in self.errors:
            data["stock"] = DEFAULT_STOCK
        if data.get("start") is None and "start" not in self.errors:
            data["start"] = 1
        stock = label_sheets.STOCKS.get(data.get("stock", ""))
        if stock is not None and data.get("start") and data["start"] > stock.per_page:
            self.add_error(
                "start", _("This stock has %(n)d labels a sheet.") % {"n": stock.per_page}
            )
        what = data.get("what")
        data["code_list"] = list(
            dict.fromkeys(c for c in SEPARATORS.split(data.get("codes", "")) if c)
        )
        if what in ("media", "locations", "badges") and not data["code_list"]:
            self.add_error("codes", _("Type at least one code or login name."))
        if what == "shelf_items" and not data.get("shelf", "").strip():
            self.add_error("shelf", _("Name the shelf whose items to label."))
        return data


def _not_found(kind: str, missing: list[str]) -> str:
    shown = ", ".join(missing[:20]) + (" …" if len(missing) > 20 else "")
    return {
        "media": _("No item has the code(s) %(codes)s. Check them against the items' pages."),
        "locations": _("No place has the code(s) %(codes)s. Places are set up in the admin site."),
        "badges": _("No active person with a role has the login name(s) %(codes)s."),
    }[kind] % {"codes": shown}


def _labels_for(form: LabelForm, base_url: str) -> list[label_sheets.Label]:
    """The labels the form asks for, in the order asked; adds form errors for what is unknown."""
    data = form.cleaned_data
    what, codes = data["what"], data["code_list"]
    if what == "media":
        found = {
            m.code: m
            for m in Media.objects.filter(code__in=codes).select_related("patient", "home_location")
        }
        missing = [c for c in codes if c not in found]
        if missing:
            form.add_error("codes", _not_found("media", missing))
            return []
        items = [found[c] for c in codes]
    elif what == "shelf_items":
        shelf = Location.objects.filter(code=data["shelf"].strip()).first()
        if shelf is None:
            form.add_error("shelf", _not_found("locations", [data["shelf"].strip()]))
            return []
        items = list(
            Media.objects.filter(home_location=shelf)
            .exclude(status=MediaStatus.RETIRED)
            .select_related("patient", "home_location")
            .order_by("code")
        )
        if not items:
            form.add_error(
                "shelf",
                _("No item calls %(code)s home yet: there is nothing to label.")
                % {"code": shelf.code},
            )
            return []
    elif what == "locations":
        return _location_labels(form, codes, base_url)
    else:
        return _badge_labels(form, codes, base_url)
    show_name = settings.LABEL_SHOW_PATIENT_NAME
    return [
        label_sheets.media_label(m, base_url=base_url, show_patient_name=show_name) for m in items
    ]


def _location_labels(form: LabelForm, codes: list[str], base_url: str) -> list[label_sheets.Label]:
    found = {p.code: p for p in Location.objects.filter(code__in=codes).select_related("parent")}
    missing = [c for c in codes if c not in found]
    if missing:
        form.add_error("codes", _not_found("locations", missing))
        return []
    places = [found[c] for c in codes]
    if form.cleaned_data.get("inside"):
        places = _with_shelves_inside(places)
    return [label_sheets.shelf_label(place, base_url=base_url) for place in places]


def _with_shelves_inside(places: list[Location]) -> list[Location]:
    """Each place followed by the active shelves anywhere inside it, in walking order."""
    every = list(Location.objects.filter(is_active=True).select_related("parent"))
    children: dict[int | None, list[Location]] = {}
    for place in every:
        children.setdefault(place.parent_id, []).append(place)
    result, seen = [], set()

    def walk(place: Location, depth: int) -> None:
        if place.pk in seen or depth > 50:  # an admin's loop must not hang us
            return
        seen.add(place.pk)
        if depth == 0 or place.kind == "shelf":
            result.append(place)
        for child in sorted(children.get(place.pk, []), key=lambda p: (p.shelf_order, p.code)):
            walk(child, depth + 1)

    for place in places:
        walk(place, 0)
    return result


def _badge_labels(form: LabelForm, usernames: list[str], base_url: str) -> list[label_sheets.Label]:
    people = (
        get_user_model()
        .objects.filter(is_active=True, username__in=usernames)
        .filter(Q(groups__name__in=list(Role.values)) | Q(is_superuser=True))
        .distinct()
    )
    found = {p.get_username(): p for p in people}
    missing = [u for u in usernames if u not in found]
    if missing:
        form.add_error("codes", _not_found("badges", missing))
        return []
    names = dict(Role.choices)
    return [
        label_sheets.badge_label(
            found[u],
            base_url=base_url,
            roles=[names[r] for r in Role.values if r in roles_of(found[u])],
        )
        for u in usernames
    ]


def base_url_for(request) -> str:
    """Where the QR codes point: settings.SITE_URL, or the address this page was opened at."""
    return settings.SITE_URL or request.build_absolute_uri("/")


@login_required
def labels(request):
    """The form, or (when it names what to print) the PDF."""
    if not has_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    if "what" not in request.GET:
        form = LabelForm(initial={"what": "media", "stock": DEFAULT_STOCK, "start": 1})
        return render(
            request,
            "tracker/labels/form.html",
            {"form": form, "stocks": label_sheets.STOCKS.values()},
        )
    asked = request.GET.copy()
    asked.setdefault("stock", DEFAULT_STOCK)  # a link names only what to print
    asked.setdefault("start", "1")
    form = LabelForm(asked)
    found = _labels_for(form, base_url_for(request)) if form.is_valid() else []
    if len(found) > label_sheets.MAX_LABELS:
        form.add_error(
            None,
            _("That is %(n)d labels; print at most %(max)d at once.")
            % {"n": len(found), "max": label_sheets.MAX_LABELS},
        )
    if not form.is_valid() or not found:
        return render(
            request,
            "tracker/labels/form.html",
            {"form": form, "stocks": label_sheets.STOCKS.values()},
            status=400,
        )
    stock = label_sheets.STOCKS[form.cleaned_data["stock"]]
    document = label_sheets.labels_pdf(found, stock=stock, start=form.cleaned_data["start"])
    response = HttpResponse(document, content_type="application/pdf")
    filename = f"labels-{form.cleaned_data['what'].replace('_', '-')}-{stock.key}.pdf"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


# Mounted at the site root by tracker/urls.py.
urlpatterns: list = [
    path("labels/", labels, name="labels"),
]
