"""Pages: media search and a media item's custody chain. Later work builds the full interface."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views import defaults

from . import api, selectors
from .exceptions import error_body
from .permissions import roles_of

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
    elif request.GET.get("chain"):
        raise PermissionDenied
    loans = selectors.loan_list(user=request.user).filter(media=media)[:20]
    return render(
        request,
        "tracker/media_detail.html",
        {"media": media, "chain": chain, "loans": loans,
         "tag": media.tag_bindings.filter(unbound_at__isnull=True).select_related("tag").first()},
    )


# --- error pages (config.urls handler404 / handler500) ----------------------------------------


def page_not_found(request, exception):
    if request.path.startswith(API_PREFIX):
        return api.not_found(request)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith(API_PREFIX):
        message = _(
            "Something went wrong on the server. Try again; if it keeps happening, tell an "
            "administrator."
        )
        return JsonResponse(error_body("server_error", message), status=500)
    return defaults.server_error(request)
