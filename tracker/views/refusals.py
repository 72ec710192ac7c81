"""A refused page form shows each message beside the field it concerns, and a message that
concerns no single field in the alert at the top (issue 7, point 3: accessible errors).

A view's own checks know their field and raise `FieldRefused`; for a service's `DomainError`
the view names the field by the error's class (`fields`, most specific class first; a class
mapped to None concerns the form as a whole, ahead of a broader class that names a field). The
template reads `errors` (field name → message) and `error` (the form as a whole); each input
whose name is in `errors` carries aria-invalid="true" and aria-describedby naming
"<input id>-error", the id tracker/_field_error.html gives the message."""

from __future__ import annotations

from ..exceptions import DomainError, InvalidRequest


class FieldRefused(InvalidRequest):
    """A view's own check of one field said no (a place, a person or a date that is not one)."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def field_of(error: DomainError, fields: dict[type, str | None] | None = None) -> str | None:
    """The form field `error` concerns, or None when it concerns the form as a whole."""
    if isinstance(error, FieldRefused):
        return error.field
    for kind, field in (fields or {}).items():
        if isinstance(error, kind):
            return field
    return None


def refusal(error: DomainError, fields: dict[type, str | None] | None = None) -> dict:
    """What the template needs to show `error`: {"errors": {field: message}, "error": ""} or
    {"errors": {}, "error": message}."""
    field = field_of(error, fields)
    if field:
        return {"errors": {field: error.message}, "error": ""}
    return {"errors": {}, "error": error.message}
