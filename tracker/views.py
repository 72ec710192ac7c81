"""Pages: media search and a media item's custody chain. Later work builds the full interface."""
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from . import selectors
from .permissions import roles_of


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
