"""Pages of the DICOM archive: patients, studies, disc manifests and checks, linking an item to
studies (from the PACS or by UID), and the retention review.

Every page needs a login and a role: every role may find patients, studies and what a disc holds
(as every role may find media); linking is file-room work; the retention review is for staff,
auditors and admins (tracker.permissions).
"""
from __future__ import annotations

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from tracker import selectors as tracker_selectors
from tracker import services
from tracker.choices import StudySource
from tracker.exceptions import DomainError
from tracker.permissions import EVERY_ROLE, READ_ALL_ROLES, STAFF_ROLES, has_role

from . import pacs, selectors
from . import services as archive_services
from .models import Study

ENTRIES_PER_PAGE = 200


def _require(request, roles) -> None:
    if not has_role(request.user, roles):
        raise PermissionDenied


def _media_or_404(request, code: str):
    return get_object_or_404(tracker_selectors.media_list(user=request.user), code=code)


# --- patients and studies ----------------------------------------------------------------------


@login_required
def patient_search(request):
    _require(request, EVERY_ROLE)
    query = request.GET.get("q", "")
    patients = selectors.patient_search(user=request.user, query=query)
    page = Paginator(patients, 50).get_page(request.GET.get("page"))
    return render(request, "archive/patient_search.html", {"query": query, "page": page})


@login_required
def patient_detail(request, patient_id: str):
    """A patient: every item of theirs and where it is now, every study and which items hold it."""
    _require(request, EVERY_ROLE)
    patient = get_object_or_404(selectors.patient_list(user=request.user), patient_id=patient_id)
    media = selectors.media_of_patient(user=request.user, patient=patient)
    return render(request, "archive/patient_detail.html", {
        "patient": patient,
        "whereabouts": selectors.media_whereabouts(user=request.user, media=media),
        "studies": selectors.studies_of_patient(user=request.user, patient=patient),
    })


@login_required
def study_detail(request, study_instance_uid: str):
    _require(request, EVERY_ROLE)
    study = get_object_or_404(
        selectors.study_list(user=request.user).prefetch_related("series"),
        study_instance_uid=study_instance_uid,
    )
    media = selectors.media_holding(user=request.user, study=study)
    return render(request, "archive/study_detail.html", {
        "study": study,
        "whereabouts": selectors.media_whereabouts(user=request.user, media=media),
    })


# --- disc manifests and checks ----------------------------------------------------------------


def _texts(value) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []


def pdi_checks(report) -> list[dict]:
    """The PDI report's checks as rows a template can show, whatever shape the stored JSON has."""
    checks = report.get("checks") if isinstance(report, dict) else None
    rows = []
    for check in checks if isinstance(checks, list) else []:
        if not isinstance(check, dict):
            continue
        rows.append({
            "code": str(check.get("code", "")),
            "ok": check.get("ok"),
            "severity": str(check.get("severity", "")),
            "message": str(check.get("message", "")),
            "count": check.get("count"),
            "paths": _texts(check.get("paths")),
        })
    return rows


def pdi_profiles(profiles) -> list[dict]:
    """IHE PDI profiles as rows: archive.pdi stores {name: {"ok", "media", "failed_checks",
    "violations", "paths"}}; a plain list of names (met profiles) is read too."""
    if isinstance(profiles, list | str):
        return [{"name": str(name), "ok": True} for name in _texts(profiles) or [profiles]]
    rows = []
    for name, profile in profiles.items() if isinstance(profiles, dict) else []:
        profile = profile if isinstance(profile, dict) else {}
        rows.append({
            "name": str(name),
            "ok": profile.get("ok"),
            "media": str(profile.get("media", "")),
            "failed_checks": _texts(profile.get("failed_checks")),
            "violations": profile.get("violations"),
            "paths": _texts(profile.get("paths")),
        })
    return rows


def pdi_summary(report) -> dict:
    """The IHE PDI report (archive.pdi) read defensively: any key may be missing or malformed."""
    report = report if isinstance(report, dict) else {}
    counts = report.get("counts")
    syntaxes = report.get("transfer_syntaxes")
    return {
        "present": bool(report),
        "conformant": report.get("conformant"),
        "best_profile": report.get("best_profile") or "",
        "fileset_id": report.get("fileset_id") or "",
        "profiles": pdi_profiles(report.get("profiles") or []),
        "counts": sorted((str(k), v) for k, v in counts.items()) if isinstance(counts, dict) else [],
        "checks": pdi_checks(report),
        "transfer_syntaxes": [
            {"uid": str(uid), "name": str(info.get("name", "")), "files": info.get("files")}
            for uid, info in syntaxes.items() if isinstance(info, dict)
        ] if isinstance(syntaxes, dict) else [],
    }


@login_required
def manifest_detail(request, pk: int):
    """What a disc held when imported: its files, the import's problems and the PDI report."""
    _require(request, EVERY_ROLE)
    manifest = get_object_or_404(selectors.manifest_list(user=request.user), pk=pk)
    entries = selectors.manifest_entries(manifest=manifest)
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    problems = [p for p in manifest.problems or [] if isinstance(p, dict)]
    return render(request, "archive/manifest_detail.html", {
        "manifest": manifest,
        "page": page,
        "problems": problems,
        "pdi": pdi_summary(manifest.pdi_report),
        "checks": selectors.verification_list(user=request.user).filter(manifest=manifest)[:20],
        "can_read_chain": tracker_selectors.can_read_custody_chain(request.user),
    })


@login_required
def verification_detail(request, pk: int):
    _require(request, EVERY_ROLE)
    check = get_object_or_404(selectors.verification_list(user=request.user), pk=pk)
    return render(request, "archive/verification_detail.html", {
        "check": check, "can_read_chain": tracker_selectors.can_read_custody_chain(request.user),
    })


# --- linking an item to studies (file-room staff) ---------------------------------------------


class PacsSearchForm(forms.Form):
    """Criteria for one PACS search; archive.pacs checks them and says what is missing."""

    pacs = forms.ChoiceField(label=gettext_lazy("PACS"))
    patient_id = forms.CharField(label=gettext_lazy("Patient ID"), required=False, max_length=64)
    accession_number = forms.CharField(
        label=gettext_lazy("Accession number"), required=False, max_length=64
    )
    medical_record_locator = forms.CharField(
        label=gettext_lazy("Jacket number (Medical Record Locator)"), required=False, max_length=64
    )
    date_from = forms.DateField(label=gettext_lazy("Studies from"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=gettext_lazy("Studies until"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))

    CRITERIA = ("patient_id", "accession_number", "medical_record_locator", "date_from", "date_to")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["pacs"].choices = [(name, name) for name in pacs.pacs_names()]

    def criteria(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.CRITERIA}


_UID_SEPARATORS = re.compile(r"[\s,;]+")


class StudyLinkForm(forms.Form):
    uids = forms.CharField(
        label=gettext_lazy("Study Instance UIDs (one per line)"), widget=forms.Textarea(attrs={"rows": 3})
    )
    note = forms.CharField(label=gettext_lazy("Note"), required=False, max_length=500)

    def clean_uids(self) -> list[Study]:
        uids = list(dict.fromkeys(u for u in _UID_SEPARATORS.split(self.cleaned_data["uids"]) if u))
        if not uids:
            raise forms.ValidationError(_("Type at least one Study Instance UID."))
        studies = list(Study.objects.select_related("patient").filter(study_instance_uid__in=uids))
        unknown = sorted(set(uids) - {s.study_instance_uid for s in studies})
        if unknown:
            raise forms.ValidationError(
                _("No study has the UID %(uids)s here. Import the disc that holds it, or search the "
                  "PACS above.") % {"uids": ", ".join(unknown)}
            )
        return studies


class StudyUnlinkForm(forms.Form):
    studies = forms.MultipleChoiceField(
        label=gettext_lazy("Studies to unlink"), widget=forms.CheckboxSelectMultiple
    )
    reason = forms.CharField(label=gettext_lazy("Reason"), max_length=500)

    def __init__(self, *args, media, **kwargs):
        super().__init__(*args, **kwargs)
        self.linked = {s.study_instance_uid: s for s in media.studies.all()}
        self.fields["studies"].choices = [
            (uid, f"{uid} {study.study_date or ''} {study.modalities} {study.description}".strip())
            for uid, study in sorted(self.linked.items())
        ]

    def clean_studies(self) -> list[Study]:
        return [self.linked[uid] for uid in self.cleaned_data["studies"]]


def _pacs_search_initial(media) -> dict:
    """Prefill a search from the item: its patient's ID or, without a patient, its jacket number."""
    names = pacs.pacs_names()
    initial = {"pacs": names[0] if names else ""}
    if media.patient:
        initial["patient_id"] = media.patient.patient_id
    else:
        initial["medical_record_locator"] = media.code
    return initial


def _pacs_query(data) -> dict:
    """The search a page showed (PACS name and criteria), to repeat it when linking."""
    return {key: data[key] for key in PacsSearchForm.base_fields if data.get(key)}


def _pacs_rows(
    media, *, pacs_name: str, search: PacsSearchForm | None
) -> list[pacs.JacketCandidate]:
    """What the PACS offers for the item: the search asked for, or without one the studies
    naming its jacket number and those of its patient (archive.pacs.jacket_candidates)."""
    if search is None:
        return pacs.jacket_candidates(media, pacs=pacs_name or None)
    linked = set(media.studies.values_list("study_instance_uid", flat=True))
    code = media.code.strip().upper()
    return [
        pacs.JacketCandidate(
            study=study,
            matches_jacket=study.medical_record_locator.strip().upper() == code,
            linked=study.study_instance_uid in linked,
        )
        for study in pacs.find_studies(pacs_name, **search.criteria())
    ]


def _pacs_page(request, media, *, search=None, rows=None, query=None, pacs_error="",
               link_form=None, unlink_form=None, status=200):
    return render(request, "archive/media_pacs.html", {
        "media": media,
        "pacs_names": pacs.pacs_names(),
        "search": search or PacsSearchForm(initial=_pacs_search_initial(media)),
        "searched": search is not None,
        "rows": rows,
        "query": sorted((query or {}).items()),
        "pacs_error": pacs_error,
        "link_form": link_form or StudyLinkForm(),
        "unlink_form": unlink_form or StudyUnlinkForm(media=media),
    }, status=status)


@login_required
def media_pacs(request, code: str):
    """Find an item's studies in the PACS and link the ones it holds (film jackets hold no files,
    so the PACS is where their studies are found). Opening the page asks the PACS for the studies
    naming the jacket and those of its patient; the form searches by other criteria."""
    _require(request, STAFF_ROLES)
    media = _media_or_404(request, code)
    data = request.POST if request.method == "POST" else request.GET
    search = None
    if any(name in data for name in PacsSearchForm.CRITERIA):
        search = PacsSearchForm(data)
        if not search.is_valid():
            return _pacs_page(request, media, search=search, status=400)
    query = _pacs_query(data)
    names = pacs.pacs_names()
    if not names and search is None and request.method != "POST":
        return _pacs_page(request, media)  # says no PACS is set up; linking by UID still works
    pacs_name = search.cleaned_data["pacs"] if search else data.get("pacs") or (names[0] if names else "")
    # Linking asks the PACS again and links what it answers now: what is recorded comes from the
    # PACS, never from study details a browser sent back.
    try:
        rows = _pacs_rows(media, pacs_name=pacs_name, search=search)
    except pacs.PacsError as error:
        return _pacs_page(request, media, search=search, query=query, pacs_error=error.message,
                          status=error.status)
    if request.method != "POST":
        return _pacs_page(request, media, search=search, rows=rows, query=query)
    ticked = set(request.POST.getlist("study"))
    chosen = [row.study for row in rows if row.study.study_instance_uid in ticked]
    if not chosen:
        message = (_("The PACS no longer lists the studies you ticked. Search again.") if ticked
                   else _("Tick the studies this item holds before linking them."))
        return _pacs_page(request, media, search=search, rows=rows, query=query, pacs_error=message,
                          status=400)
    try:
        pacs.media_link_pacs_studies(media=media, found=chosen, actor=request.user)
    except DomainError as error:
        return _pacs_page(request, media, search=search, rows=rows, query=query,
                          pacs_error=error.message, status=error.status)
    messages.success(request, ngettext(
        "Linked %(count)d study from the PACS to %(code)s.",
        "Linked %(count)d studies from the PACS to %(code)s.", len(chosen),
    ) % {"count": len(chosen), "code": media.code})
    url = reverse("media-pacs", args=[media.code])
    return redirect(f"{url}?{urlencode(query)}" if query else url)


@login_required
@require_POST
def media_studies_link(request, code: str):
    """Link an item to studies Filmroom already knows, by Study Instance UID."""
    _require(request, STAFF_ROLES)
    media = _media_or_404(request, code)
    form = StudyLinkForm(request.POST)
    if not form.is_valid():
        return _pacs_page(request, media, link_form=form, status=400)
    try:
        archive_services.media_link_known_studies(
            media=media, studies=form.cleaned_data["uids"], actor=request.user,
            source=StudySource.MANUAL, note=form.cleaned_data["note"],
        )
    except DomainError as error:
        form.add_error(None, error.message)
        return _pacs_page(request, media, link_form=form, status=error.status)
    count = len(form.cleaned_data["uids"])
    messages.success(request, ngettext(
        "Linked %(count)d study to %(code)s.", "Linked %(count)d studies to %(code)s.", count
    ) % {"count": count, "code": media.code})
    return redirect("media-detail", code=media.code)


@login_required
@require_POST
def media_studies_unlink(request, code: str):
    """Record that an item does not hold studies it was linked to; the link stays in its history."""
    _require(request, STAFF_ROLES)
    media = _media_or_404(request, code)
    form = StudyUnlinkForm(request.POST, media=media)
    if not form.is_valid():
        return _pacs_page(request, media, unlink_form=form, status=400)
    try:
        services.media_studies_unlink(
            media=media, studies=form.cleaned_data["studies"], actor=request.user,
            reason=form.cleaned_data["reason"],
        )
    except DomainError as error:
        form.add_error(None, error.message)
        return _pacs_page(request, media, unlink_form=form, status=error.status)
    count = len(form.cleaned_data["studies"])
    messages.success(request, ngettext(
        "Unlinked %(count)d study from %(code)s.", "Unlinked %(count)d studies from %(code)s.", count
    ) % {"count": count, "code": media.code})
    return redirect("media-detail", code=media.code)


# --- retention review --------------------------------------------------------------------------


@login_required
def retention_review(request):
    """Media past retention under the rules, for a person to review. Nothing is disposed of here:
    retiring an item is a separate, recorded decision."""
    _require(request, READ_ALL_ROLES)
    raw, as_of, error = request.GET.get("as_of", "").strip(), None, ""
    if raw:
        try:
            as_of = forms.DateField().clean(raw)
        except forms.ValidationError:
            error = _("“%(value)s” is not a date; use YYYY-MM-DD.") % {"value": raw}
    due = selectors.media_past_retention(today=as_of)
    return render(request, "archive/retention_review.html", {
        "due": due, "as_of": as_of, "raw_as_of": raw, "error": error,
        "rule_count": selectors.retention_rule_count(),
    })
