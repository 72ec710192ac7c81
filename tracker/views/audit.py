"""Pages: the auditors' workspace (auditors and admins; everyone else 403, anonymous to login).

- /audit/ — ledger integrity: the last verification (who, when, verdict), the signed
  checkpoints, "Verify now" and "Verify a range" (POST /audit/verify/), recent activity;
- /audit/chain/ — the custody chain of an item, a patient, a borrower or a place over a period,
  by kinds, newest first, 100 a page; every page shown is recorded in the access log;
- /audit/flags/ — open flags and their history as the ledger holds it (raised/cleared events);
- /audit/access-log/ — who viewed, exported or verified what.

File-room staff do not get these pages: they read an item's chain on its own page and the flags
on /flags/, and have no need for the ledger's verification or the access log (tracker.audit
AUDIT_ROLES). The home page's recent events name items, people and places but no patient, so
reading it is not recorded; the chain page, which can name a patient, always is. Reading the
access log itself is not recorded (it names subjects, not their custody data).
"""
from __future__ import annotations

from functools import wraps
from urllib.parse import urlencode

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from ..audit import (
    AUDIT_ROLES,
    RANGE_LIMIT,
    AccessLogQuery,
    CustodyQuery,
    custody_events,
    last_verification,
    ledger_size,
    ledger_verify_recorded,
    record_chain_view,
    verifications,
)
from ..choices import AccessSubject, EventKind, FlagKind
from ..exceptions import DomainError
from ..models import AccessLog, CustodyEvent, Flag, LedgerCheckpoint
from ..permissions import has_role

PAGE_SIZE = 100
# Where the exports helper serves a question's events as files (same query string as the chain).
EXPORT_PATHS = {"csv": "/audit/export.csv", "pdf": "/audit/export.pdf"}


def auditors_only(view):
    """Logged in (else to the login page) with the auditor or admin role (else 403)."""

    @login_required
    @wraps(view)
    def checked(request, *args, **kwargs):
        if not has_role(request.user, AUDIT_ROLES):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return checked


class RangeForm(forms.Form):
    first = forms.IntegerField(label=_("From event (seq)"), min_value=1)
    last = forms.IntegerField(label=_("To event (seq, included)"), min_value=1)

    def clean(self):
        data = super().clean()
        first, last = data.get("first"), data.get("last")
        if first and last and first > last:
            self.add_error("last", _("The range ends before it starts: the last event must not be below the first."))
        return data


# --- home: ledger integrity ----------------------------------------------------------------------


def _home_context(request, *, range_form: RangeForm | None = None, shown: AccessLog | None = None) -> dict:
    size = ledger_size()
    last = last_verification()
    latest_checkpoint = LedgerCheckpoint.objects.order_by("-size").first()
    if range_form is None:
        start = latest_checkpoint.size + 1 if latest_checkpoint and latest_checkpoint.size < size else 1
        range_form = RangeForm(initial={"first": start, "last": size or None})
    for name in ("first", "last"):
        range_form.fields[name].widget.attrs.update({"max": size or 1, "inputmode": "numeric"})
    return {
        "size": size,
        "last": last,
        "appended_since": size - last.detail.get("events", 0) if last and last.detail.get("ok") else None,
        "shown": shown,
        "checkpoints": LedgerCheckpoint.objects.order_by("-size")[:20],
        "checkpoint_count": LedgerCheckpoint.objects.count(),
        "range_form": range_form,
        "range_limit": RANGE_LIMIT,
        "recent_events": CustodyEvent.objects.select_related(
            "media", "actor", "holder", "from_location", "to_location", "device"
        ).order_by("-seq")[:15],
        "recent_access": AccessLog.objects.select_related("user")[:10],
        "recent_verifications": verifications()[:5],
    }


@auditors_only
def home(request):
    shown = None
    if (shown_id := request.GET.get("shown", "")).isdigit():
        shown = verifications().filter(pk=int(shown_id)).first()
    return render(request, "tracker/audit/home.html", _home_context(request, shown=shown))


@auditors_only
@require_POST
def verify(request):
    """Run a verification (the whole ledger, or the range posted as `first`/`last`), record it,
    and show its verdict: the verdict panel alone for htmx, else back to the home page."""
    range_form, error = None, None
    first = last = None
    if request.POST.get("scope") == "range":
        range_form = RangeForm(request.POST)
        if range_form.is_valid():
            first, last = range_form.cleaned_data["first"], range_form.cleaned_data["last"]
    entry = None
    if range_form is None or range_form.is_valid():
        try:
            entry = ledger_verify_recorded(user=request.user, first=first, last=last, path=request.path)
        except DomainError as exc:
            error = exc.message
    if request.htmx:
        # htmx swaps only 2xx answers by default; the panel itself says what went wrong.
        # The recent verifications list is refreshed beside it (an out-of-band swap).
        return render(
            request, "tracker/audit/_verification.html",
            {"entry": entry, "error": error, "range_form": range_form, "oob": entry is not None,
             "recent_verifications": verifications()[:5]},
        )
    if entry is None:
        context = _home_context(request, range_form=range_form)
        context["range_error"] = error
        return render(request, "tracker/audit/home.html", context, status=400)
    return redirect(f"{reverse('audit-home')}?{urlencode({'shown': entry.pk})}#verdict")


# --- a custody chain -----------------------------------------------------------------------------


@auditors_only
def chain(request):
    if not request.GET:
        return render(request, "tracker/audit/chain.html", {"form": CustodyQuery(), "asked": False})
    form = CustodyQuery(request.GET)
    if not form.is_valid():
        status = 404 if form.unknown_subject else 400
        return render(request, "tracker/audit/chain.html", {"form": form, "asked": True}, status=status)
    events = form.events().order_by("-seq")
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    record_chain_view(
        user=request.user, query=form, path=request.get_full_path(),
        page=page.number, events=page.paginator.count,
    )
    query = urlencode(form.query_items())
    return render(
        request,
        "tracker/audit/chain.html",
        {
            "form": form,
            "asked": True,
            "page": page,
            "subject": form.subject_object,
            "kind": form.kind,
            "query": query,
            "exports": {name: f"{url}?{query}" for name, url in EXPORT_PATHS.items()},
        },
    )


# --- flags ---------------------------------------------------------------------------------------


@auditors_only
def flags(request):
    kind = request.GET.get("kind", "")
    kind = kind if kind in FlagKind.values else ""
    open_flags = Flag.objects.filter(cleared_at__isnull=True).select_related(
        "media", "loan__borrower", "media__current_location"
    ).order_by("-raised_seq")
    history = custody_events(kinds=[EventKind.FLAG_RAISED, EventKind.FLAG_CLEARED]).order_by("-seq")
    if kind:
        open_flags = open_flags.filter(kind=kind)
        history = history.filter(payload__kind=kind)
    page = Paginator(history, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "tracker/audit/flags.html",
        {
            "kind": kind,
            "kinds": FlagKind.choices,
            "kind_labels": dict(FlagKind.choices),
            "open_flags": open_flags[:PAGE_SIZE],
            "open_count": open_flags.count(),
            "page": page,
        },
    )


# --- the access log ------------------------------------------------------------------------------


@auditors_only
def access_log(request):
    form = AccessLogQuery(request.GET or None)
    entries = AccessLog.objects.none()
    status = 200
    if not request.GET:
        entries = AccessLog.objects.select_related("user")
    elif form.is_valid():
        entries = form.entries()
    else:
        status = 400
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "tracker/audit/access_log.html",
        {"form": form, "page": page, "subjects": dict(AccessSubject.choices)},
        status=status,
    )


# Mounted at the site root by tracker/urls.py.
urlpatterns: list = [
    path("audit/", home, name="audit-home"),
    path("audit/verify/", verify, name="audit-verify"),
    path("audit/chain/", chain, name="audit-chain"),
    path("audit/flags/", flags, name="audit-flags"),
    path("audit/access-log/", access_log, name="audit-access-log"),
]
