"""What the archive adds to tracker's pages (the media detail page) and small display filters."""
from django import template
from pydicom.uid import UID

from tracker.permissions import STAFF_ROLES, has_role

from .. import selectors

register = template.Library()


@register.inclusion_tag("archive/_media_archive.html", takes_context=True)
def media_archive(context, media):
    """An item's disc manifests, its latest disc check (green identical / red altered) and, for
    file-room staff, the way to link it to studies."""
    user = context["request"].user
    return {
        "media": media,
        "manifests": selectors.manifest_list(user=user, media=media)[:10],
        "latest_check": selectors.verification_latest(user=user, media=media),
        "can_link": has_role(user, STAFF_ROLES),
    }


@register.filter
def transfer_syntax_name(uid: str) -> str:
    """'1.2.840.10008.1.2.1' → 'Explicit VR Little Endian'; an unknown UID stays as it is."""
    if not uid:
        return ""
    name = UID(uid).name
    return uid if name == uid else name
