"""Read-side queries of the archive: patients, studies, disc manifests and checks, each narrowed
to what the asking person's role may see (the same rules as tracker.selectors). No side effects."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Prefetch, Q, QuerySet

from tracker import selectors as tracker_selectors
from tracker.models import Media

from .models import DiscManifest, DiscVerification, ManifestEntry, Patient, RetentionRule, Study
from .retention import RetentionDue, media_past_retention  # noqa: F401  (read-side entry points)


def patient_list(*, user) -> QuerySet[Patient]:
    """Every role may find patients (doctors look up a patient's jackets, discs and studies)."""
    return Patient.objects.all()


def patient_search(*, user, query: str) -> QuerySet[Patient]:
    """Patients whose ID is `query` (whole, as on a wristband) or whose name contains it."""
    patients = patient_list(user=user)
    query = (query or "").strip()
    if not query:
        return patients
    return patients.filter(Q(patient_id__iexact=query) | Q(name__icontains=query))


def study_list(
    *,
    user,
    patient_id: str = "",
    accession_number: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
) -> QuerySet[Study]:
    """Studies, optionally of one patient, one accession number and a date range (inclusive)."""
    studies = Study.objects.select_related("patient")
    if patient_id:
        studies = studies.filter(patient__patient_id=patient_id)
    if accession_number:
        studies = studies.filter(accession_number=accession_number)
    if date_from:
        studies = studies.filter(study_date__gte=date_from)
    if date_to:
        studies = studies.filter(study_date__lte=date_to)
    return studies


def manifest_list(*, user, media: Media | None = None) -> QuerySet[DiscManifest]:
    """Disc manifests, newest first: what each disc held when it was imported."""
    manifests = DiscManifest.objects.select_related("media", "imported_by")
    if media is not None:
        manifests = manifests.filter(media=media)
    return manifests


def manifest_entries(*, manifest: DiscManifest) -> QuerySet[ManifestEntry]:
    return manifest.entries.order_by("path")


def verification_list(*, user, media: Media | None = None) -> QuerySet[DiscVerification]:
    """Returned discs compared with their manifests, newest first."""
    checks = DiscVerification.objects.select_related("media", "manifest", "verified_by")
    if media is not None:
        checks = checks.filter(media=media)
    return checks.order_by("-verified_at", "-pk")


def verification_latest(*, user, media: Media) -> DiscVerification | None:
    return verification_list(user=user, media=media).first()


@dataclass(frozen=True)
class MediaWhereabouts:
    """Where an item is now, as the asking person may see it: the open loan's due date shows
    only when that person may see the loan (a clinician sees their own)."""

    media: Media
    due_at: datetime | None  # of the open loan, when the person may see that loan


def media_whereabouts(*, user, media: QuerySet[Media]) -> list[MediaWhereabouts]:
    """The given media with their open loan's due date, in two queries."""
    items = list(media)
    visible_loans = tracker_selectors.loan_list(user=user).filter(
        media__in=[item.pk for item in items], returned_at__isnull=True
    )
    due = {loan.media_id: loan.due_at for loan in visible_loans}
    return [MediaWhereabouts(media=item, due_at=due.get(item.pk)) for item in items]


def media_holding(*, user, study: Study) -> QuerySet[Media]:
    """The items that hold a study, with where each is now."""
    return tracker_selectors.media_list(user=user).filter(studies=study).order_by("code")


def media_of_patient(*, user, patient: Patient) -> QuerySet[Media]:
    """A patient's media: those registered to them and those holding one of their studies."""
    theirs = Media.objects.filter(Q(patient=patient) | Q(studies__patient=patient)).values("pk")
    return tracker_selectors.media_list(user=user).filter(pk__in=theirs).order_by("code")


def studies_of_patient(*, user, patient: Patient) -> QuerySet[Study]:
    """A patient's studies, newest first, each with the media that hold it."""
    return patient.studies.prefetch_related(
        Prefetch("media", queryset=Media.objects.order_by("code"))
    )


def retention_rule_count() -> int:
    return RetentionRule.objects.count()
