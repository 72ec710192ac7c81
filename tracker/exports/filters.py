"""Which events an export covers: the auditors' question (tracker.audit.CustodyQuery, the same
query-string names as the chain page and its API), with what an export adds to it: a title, a
description in the reader's language, and a file name."""
from __future__ import annotations

import re
from datetime import date

from django.utils.translation import gettext as _

from ..audit import CustodyQuery
from ..choices import AccessSubject, EventKind
from ..exceptions import InvalidRequest, UnknownObject


class ExportFilters:
    """A valid CustodyQuery, as an export uses it."""

    def __init__(self, query: CustodyQuery):
        self.query = query
        values = query.filters()
        self.subject_kind: str = values["subject_kind"]
        self.subject: str = values["subject"]
        self.date_from: date | None = query.cleaned_data.get("from")
        self.date_to: date | None = query.cleaned_data.get("to")
        self.kinds: list[str] = values["kinds"]

    def as_dict(self) -> dict:
        """The filters as the export records them (and the access log's detail)."""
        return self.query.filters()

    def events(self):
        """The events this question covers, in seq order (tracker.audit.custody_events)."""
        return self.query.events()

    def title(self) -> str:
        if self.subject_kind == AccessSubject.EVENTS:
            return _("Custody events")
        labels = {
            AccessSubject.MEDIA: _("Custody chain of item %(name)s"),
            AccessSubject.PATIENT: _("Custody chain of patient %(name)s"),
            AccessSubject.BORROWER: _("Custody chain of borrower %(name)s"),
            AccessSubject.LOCATION: _("Custody chain of place %(name)s"),
        }
        return labels[self.subject_kind] % {"name": self.subject}

    def describe(self) -> str:
        parts = [self.title()]
        if self.date_from or self.date_to:
            parts.append(
                _("from %(start)s to %(end)s")
                % {
                    "start": self.date_from.isoformat() if self.date_from else "…",
                    "end": self.date_to.isoformat() if self.date_to else "…",
                }
            )
        if self.kinds:
            labels = ", ".join(str(EventKind(k).label) for k in self.kinds)
            parts.append(_("events: %(kinds)s") % {"kinds": labels})
        return "; ".join(parts)

    def filename(self, extension: str, day: date) -> str:
        """custody-<kind>-<subject>-<day>.<ext>, in characters any file system takes."""
        if self.subject_kind == AccessSubject.EVENTS:
            return f"custody-events-{day.isoformat()}.{extension}"
        subject = re.sub(r"[^A-Za-z0-9._-]+", "_", self.subject).strip("._")[:60] or "x"
        return f"custody-{self.subject_kind}-{subject}-{day.isoformat()}.{extension}"


def parse_filters(query) -> ExportFilters:
    """Read the question from a QueryDict; UnknownObject when the subject does not exist,
    InvalidRequest for anything else wrong (with the form's own messages)."""
    form = CustodyQuery(query)
    if form.is_valid():
        return ExportFilters(form)
    messages = " ".join(str(m) for errors in form.errors.values() for m in errors)
    if form.unknown_subject:
        raise UnknownObject(messages)
    raise InvalidRequest(messages)
