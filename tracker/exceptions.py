"""Domain errors raised by services, and the one handler that maps every API error to
`{"error": {"code": ..., "message": ...}}` with 400/401/403/404/409."""
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DataError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DomainError(Exception):
    """A rule of the file room said no. `message` is written for the person at the counter, in
    the language active when it was raised. A refusal made with `said()` also keeps its msgid
    and arguments (`message_source`), so a record of it - a station's read, kept and shown later
    to people who read other languages - can be worded again for each of them."""

    code = "invalid"
    status = 400
    message_source: dict | None = None

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    @classmethod
    def said(cls, msgid: str, /, details: dict | None = None, **args) -> "DomainError":
        """The refusal `msgid % args`, worded in the active language, remembering both. Mark the
        msgid with gettext_noop where it is written; `details` go to the API's error body."""
        from .models import message_text  # the models import this module

        source = {"msgid": msgid, "args": args}
        error = cls(message_text(source, untranslated=True) or msgid, **(details or {}))
        error.message_source = source
        return error


class InvalidRequest(DomainError):
    code = "invalid"
    status = 400


class UnknownTag(DomainError):
    code = "unknown_tag"
    status = 404


class UnknownObject(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class AlreadyOnLoan(Conflict):
    code = "already_on_loan"


class NotOnLoan(Conflict):
    code = "not_on_loan"


class MediaRetired(Conflict):
    code = "media_retired"


class TagBoundElsewhere(Conflict):
    code = "tag_bound_elsewhere"


class MediaAlreadyTagged(Conflict):
    code = "media_already_tagged"


class TagNotBound(Conflict):
    code = "tag_not_bound"


class DuplicateCode(Conflict):
    code = "duplicate_code"


class SunReplay(Conflict):
    """A SUN tag message whose counter is not above the last one accepted."""

    code = "sun_replay"


class EventConflict(Conflict):
    """The same event_id arrived again with a different body: a replay that does not match."""

    code = "event_conflict"


# --- loan requests and renewals ----------------------------------------------------------------


class NotAllowed(DomainError):
    """The person may not do this to this request, loan or signature (not theirs, not staff)."""

    code = "permission_denied"
    status = 403


class RequestClosed(Conflict):
    """The request is no longer in a state that allows this (denied, cancelled, lent...)."""

    code = "request_closed"


class QueueAhead(Conflict):
    """Someone else's request comes first in the item's queue."""

    code = "queue_ahead"


class RenewalRefused(Conflict):
    code = "renewal_refused"


def error_body(code: str, message: str, **details) -> dict:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"error": error}


def api_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, **exc.details), status=exc.status)
    if isinstance(exc, DataError):  # a value the database refuses to store or compare with
        message = _(
            "A value in the request cannot be stored or looked up: it is out of range or holds a "
            "character the database refuses (such as NUL)."
        )
        return Response(error_body("invalid", message), status=400)
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf.ValidationError):
        body = error_body("invalid", _("Some fields are not valid."), fields=response.data)
    elif isinstance(exc, drf.NotAuthenticated):
        body = error_body(
            "not_authenticated", _("You are not logged in. Log in to Filmroom and try again.")
        )
    else:
        code = exc.get_codes() if isinstance(exc, drf.APIException) else "error"
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        body = error_body(code if isinstance(code, str) else "error", str(detail))
    response.data = body
    return response
