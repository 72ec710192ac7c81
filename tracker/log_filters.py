"""Keeping patient data out of the application logs.

Filmroom's own log messages name rows and tags, never patients. What could still carry a
patient's name or ID into a log are the addresses Django logs: the development server's access
line ("GET /?q=Zhang Wei HTTP/1.1") and the warnings of django.request / django.security
("Not Found: /patients/P123456/"). `NoPatientData` rewrites those to the URL's route
(`/patients/<str:patient_id>/`) without its query string, before any handler writes them.
Third-party loggers that print DICOM identifiers at INFO (pynetdicom) are kept at WARNING in
settings.LOGGING."""
from __future__ import annotations

import logging
import re

from django.urls import Resolver404, resolve

_REQUEST_LINE = re.compile(r"^(?P<method>[A-Z]+) (?P<target>\S+)(?P<rest> HTTP/[0-9.]+)?$")


def route_of(path: str) -> str:
    """The URL pattern a path matched (`/media/<str:code>/`), or "<unknown address>"."""
    path = path.split("?", 1)[0]
    try:
        match = resolve(path)
    except Resolver404:
        return "<unknown address>"
    except Exception:  # noqa: BLE001 — a log line must never fail
        return "<unknown address>"
    return "/" + match.route


class NoPatientData(logging.Filter):
    """Replaces request addresses in log records by their routes (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if request is not None and isinstance(record.args, tuple):
            path = getattr(request, "path", None)
            record.args = tuple(route_of(a) if isinstance(a, str) and a == path else a for a in record.args)
        if record.name == "django.server" and isinstance(record.args, tuple) and record.args:
            line = record.args[0]
            match = _REQUEST_LINE.match(line) if isinstance(line, str) else None
            if match:
                rest = match["rest"] or ""
                record.args = (f"{match['method']} {route_of(match['target'])}{rest}", *record.args[1:])
        return True
