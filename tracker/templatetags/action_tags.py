"""{% staff_actions media %}: the item page's "Actions" box (links to the file room's forms in
tracker/views/actions.py), shown to file_room and admin only."""
from django import template

from ..permissions import STAFF_ROLES, has_role

register = template.Library()


@register.inclusion_tag("tracker/actions/_box.html", takes_context=True)
def staff_actions(context, media):
    request = context.get("request")
    user = getattr(request, "user", None)
    return {
        "show": user is not None and has_role(user, STAFF_ROLES),
        "media": media,
        "tag": context.get("tag"),
    }
