"""Roles are Django groups (tracker.choices.Role). Views declare which roles may read and which
may write; querysets are narrowed per role in tracker.selectors."""
from django.conf import settings
from django.shortcuts import resolve_url
from django.utils.translation import gettext_lazy as _
from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .choices import Role

STAFF_ROLES = frozenset({Role.FILE_ROOM, Role.ADMIN})
READ_ALL_ROLES = frozenset({Role.FILE_ROOM, Role.AUDITOR, Role.ADMIN})
EVERY_ROLE = frozenset(Role.values)


def roles_of(user) -> frozenset[str]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return frozenset()
    cached = getattr(user, "_filmroom_roles", None)
    if cached is None:
        names = set(user.groups.values_list("name", flat=True)) & set(Role.values)
        if user.is_superuser:
            names.add(Role.ADMIN)
        cached = frozenset(names)
        user._filmroom_roles = cached
    return cached


def has_role(user, roles) -> bool:
    return bool(roles_of(user) & set(roles))


class LoginSessionAuthentication(SessionAuthentication):
    """The browser's login session, as for the pages (CSRF-checked on writes).

    DRF answers 403 to a request without credentials unless the first authenticator names a
    challenge; naming one makes "not logged in" a 401, distinct from "your role may not"."""

    def authenticate_header(self, request) -> str:
        return f'Session realm="Filmroom", login="{resolve_url(settings.LOGIN_URL)}"'


class LoginSessionScheme(SessionScheme):
    """Describe LoginSessionAuthentication in the OpenAPI schema as the session cookie."""

    target_class = LoginSessionAuthentication


class RoleRequired(BasePermission):
    """Reads need one of `view.read_roles`; anything else needs one of `view.write_roles`."""

    message = _("Your role does not allow this. Ask an administrator if you need it.")

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False
        roles = view.read_roles if request.method in SAFE_METHODS else view.write_roles
        return has_role(request.user, roles)
