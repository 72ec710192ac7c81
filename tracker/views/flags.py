"""Pages: flags and the staff dashboard.

`dashboard` shows the counts the file room looks at first; `flag-list` the flags themselves
(open by default, by kind), each overdue one with a button that e-mails the borrower now.
Staff, auditors and admins read them; only the file room and admins send reminders and clear a
flag by hand (`flag-clear`, with a reason kept in the ledger). Clinicians see their own loans and
reminders elsewhere and get 403 here."""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from .. import selectors, services
from ..choices import FlagKind
from ..exceptions import DomainError
from ..permissions import READ_ALL_ROLES, STAFF_ROLES, has_role
from ..exceptions import InvalidRequest
from ..models import CustodyEvent
from ..services.flags import dashboard_counts, flag_clear, flag_list


def _readers_only(user) -> None:
    if not has_role(user, READ_ALL_ROLES):
        raise PermissionDenied


@login_required
def dashboard(request):
    _readers_only(request.user)
    counts = dashboard_counts()
    kinds = [(kind, label, counts["flags"][kind]) for kind, label in FlagKind.choices]
    return render(request, "tracker/flags/dashboard.html", {"counts": counts, "kinds": kinds})


@login_required
def flags(request):
    _readers_only(request.user)
    kind = request.GET.get("kind", "")
    state = request.GET.get("state", "open")
    found = flag_list(user=request.user)
    if kind in FlagKind.values:
        found = found.filter(kind=kind)
    if state == "open":
        found = found.filter(cleared_at__isnull=True)
    elif state == "cleared":
        found = found.filter(cleared_at__isnull=False)
    page = Paginator(found, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "tracker/flags/list.html",
        {
            "page": page, "kind": kind, "state": state, "kinds": FlagKind.choices,
            "may_remind": has_role(request.user, STAFF_ROLES),
        },
    )


REASON_MAX_LENGTH = 300  # as the API's


@login_required
@require_http_methods(["GET", "POST"])
def flag_clear_page(request, pk: int):
    """Clear one flag by hand (file room and admins): the item, the kind, when it was raised, and
    the reason asked for; the sweep clears most flags itself, this is for the rest."""
    if not has_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    flag = get_object_or_404(flag_list(user=request.user), pk=pk)
    form = {"reason": request.POST.get("reason", "").strip()}
    context = {"flag": flag, "form": form, "errors": {}}
    if flag.cleared_at is not None:  # by the sweep or by someone else meanwhile: say how
        cleared = CustodyEvent.objects.filter(seq=flag.cleared_seq).select_related("actor").first()
        context["cleared"] = cleared
        return render(request, "tracker/flags/clear.html", context)
    if request.method != "POST":
        return render(request, "tracker/flags/clear.html", context)
    try:
        if len(form["reason"]) > REASON_MAX_LENGTH:
            raise InvalidRequest(_("Keep the reason under 300 characters."))
        flag_clear(flag=flag, actor=request.user, reason=form["reason"])
    except DomainError as error:  # both refusals concern the reason
        context["errors"]["reason"] = error.message
        return render(request, "tracker/flags/clear.html", context, status=400)
    messages.success(
        request,
        _("%(code)s: the flag “%(kind)s” is cleared.")
        % {"kind": flag.get_kind_display(), "code": flag.media.code},
    )
    return redirect("flag-list")


@login_required
@require_POST
def loan_remind(request, pk: int):
    if not has_role(request.user, STAFF_ROLES):
        raise PermissionDenied
    loan = selectors.loan_list(user=request.user).filter(pk=pk).first()
    if loan is None:
        raise Http404(_("There is no loan %(id)s that you may see.") % {"id": pk})
    try:
        reminder = services.loan_remind(loan=loan, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("Reminder about %(code)s sent to %(to)s.") % {"code": loan.media.code, "to": reminder.sent_to},
        )
    target = request.POST.get("next", "")
    safe = target.startswith("/") and not target.startswith("//")
    return redirect(target if safe else reverse("flag-list"))


# Mounted at the site root by tracker/urls.py.
urlpatterns: list = [
    path("dashboard/", dashboard, name="dashboard"),
    path("flags/", flags, name="flag-list"),
    path("flags/<int:pk>/clear/", flag_clear_page, name="flag-clear"),
    path("loans/<int:pk>/remind/", loan_remind, name="loan-remind"),
]
