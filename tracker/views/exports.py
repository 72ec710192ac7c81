"""Pages: signed exports of custody events, as files.

- /audit/export.csv — the events of an auditor's question as a signed CSV (tracker.exports:
  what it holds and what `manage.py verify_export` proves);
- /audit/export.pdf — the same events to read and print, with their hashes and the range's
  proof facts (at most tracker.exports.PDF_MAX_ROWS events).

Both take the chain page's query string (subject_kind, subject, from, to, kinds), answer with a
file to download (Content-Disposition: attachment, named by subject and day) and record the
export in the access log (action "exported"; detail: the filters, the format, the rows and the
first and last seq).

Who may export: auditors and admins, any question. File-room staff may export one item's chain
(subject_kind=media): they already read it on the item's page and through the API, and a signed
copy is what they hand over with an item or attach to an incident; a patient's, a borrower's or
a place's events across the archive, or the whole event list, stay with the auditors (403).
Clinicians and people without a role get 403; anyone not logged in goes to the login page.
"""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from ..audit import AUDIT_ROLES, record_access
from ..choices import AccessAction, AccessSubject
from ..exceptions import DomainError
from ..exports import Export, ExportFilters, Range, build_pdf, parse_filters, write_csv
from ..permissions import READ_ALL_ROLES, has_role


def _question(request) -> ExportFilters | HttpResponse:
    """The export's filters, or the page explaining what is wrong with them."""
    if not has_role(request.user, READ_ALL_ROLES):
        raise PermissionDenied
    try:
        filters = parse_filters(request.GET)
    except DomainError as exc:
        return render(
            request, "tracker/exports/error.html",
            {"message": exc.message, "query": request.GET.urlencode()}, status=exc.status,
        )
    if filters.subject_kind != AccessSubject.MEDIA and not has_role(request.user, AUDIT_ROLES):
        raise PermissionDenied
    return filters


def _recorded(request, export: Export, found: Range, file_format: str) -> None:
    filters = export.filters
    record_access(
        user=request.user, action=AccessAction.EXPORTED, subject_kind=filters.subject_kind,
        subject=filters.subject, path=request.get_full_path(),
        detail={
            "filters": filters.as_dict(), "format": file_format, "rows": found.rows,
            "first_seq": found.first_seq, "last_seq": found.last_seq,
            "ledger_size": export.ledger_size,
        },
    )


def _attachment(response, filters: ExportFilters, extension: str):
    name = filters.filename(extension, timezone.localdate())
    response["Content-Disposition"] = content_disposition_header(True, name)
    response["Cache-Control"] = "no-store"  # custody data of patients: nothing keeps a copy
    return response


@login_required
@require_GET
def export_csv(request):
    filters = _question(request)
    if isinstance(filters, HttpResponse):
        return filters
    export = Export.snapshot(filters, user=request.user)
    written = write_csv(export)
    _recorded(request, export, written.range, "csv")
    response = StreamingHttpResponse(written.chunks(), content_type="text/csv; charset=utf-8")
    response["Content-Length"] = str(written.size)
    return _attachment(response, filters, "csv")


@login_required
@require_GET
def export_pdf(request):
    filters = _question(request)
    if isinstance(filters, HttpResponse):
        return filters
    export = Export.snapshot(filters, user=request.user)
    try:
        document, found = build_pdf(export)
    except DomainError as exc:
        return render(
            request, "tracker/exports/error.html",
            {"message": exc.message, "query": request.GET.urlencode()}, status=exc.status,
        )
    _recorded(request, export, found, "pdf")
    return _attachment(HttpResponse(document, content_type="application/pdf"), filters, "pdf")


urlpatterns = [
    path("audit/export.csv", export_csv, name="audit-export-csv"),
    path("audit/export.pdf", export_pdf, name="audit-export-pdf"),
]
