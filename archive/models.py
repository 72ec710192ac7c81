"""The DICOM side: who the patient is, which studies exist, and what each disc held."""
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from tracker.choices import DiscVerdict, MediaKind


class Patient(models.Model):
    """A patient as the hospital identifies them: the medical record number is the key."""

    patient_id = models.CharField(_("patient ID (MRN)"), max_length=64, unique=True)
    name = models.CharField(pgettext_lazy("person", "name"), max_length=200, blank=True)
    birth_date = models.DateField(_("birth date"), null=True, blank=True)
    sex = models.CharField(_("sex"), max_length=1, blank=True)

    class Meta:
        ordering = ["patient_id"]
        verbose_name = _("patient")
        verbose_name_plural = _("patients")

    def __str__(self) -> str:
        # Patient names stay out of logs and reprs that may be logged; pages show them explicitly.
        return self.patient_id


class Study(models.Model):
    """A DICOM study, known from a disc's headers, the PACS or a person typing it in."""

    study_instance_uid = models.CharField(_("Study Instance UID"), max_length=64, unique=True)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="studies", verbose_name=_("patient")
    )
    study_date = models.DateField(_("study date"), null=True, blank=True)
    accession_number = models.CharField(_("accession number"), max_length=64, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    modalities = models.CharField(_("modalities"), max_length=64, blank=True)
    # (0010,1090) Medical Record Locator: the film jacket number on many sites.
    medical_record_locator = models.CharField(_("medical record locator"), max_length=64, blank=True)
    instance_count = models.PositiveIntegerField(_("instances"), default=0)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-study_date", "study_instance_uid"]
        verbose_name = _("study")
        verbose_name_plural = _("studies")
        indexes = [models.Index(fields=["accession_number"])]

    def __str__(self) -> str:
        return self.study_instance_uid


class Series(models.Model):
    series_instance_uid = models.CharField(_("Series Instance UID"), max_length=64, unique=True)
    study = models.ForeignKey(
        Study, on_delete=models.PROTECT, related_name="series", verbose_name=_("study")
    )
    modality = models.CharField(_("modality"), max_length=16, blank=True)
    series_number = models.IntegerField(_("series number"), null=True, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    instance_count = models.PositiveIntegerField(_("instances"), default=0)

    class Meta:
        ordering = ["study", "series_number"]
        verbose_name = _("series")
        verbose_name_plural = _("series")

    def __str__(self) -> str:
        return self.series_instance_uid


class DiscManifest(models.Model):
    """What one disc held when it was imported: the reference a returned disc is checked against."""

    media = models.ForeignKey(
        "tracker.Media", on_delete=models.PROTECT, related_name="manifests", verbose_name=_("media")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    file_count = models.PositiveIntegerField(_("files"), default=0)
    total_bytes = models.PositiveBigIntegerField(_("bytes"), default=0)
    dicomdir_sha256 = models.CharField(_("DICOMDIR SHA-256"), max_length=64, blank=True)
    pdi_report = models.JSONField(_("PDI report"), default=dict, blank=True)
    # Where the disc was read from on the importing machine (a mount point or a copied folder).
    source_path = models.CharField(_("read from"), max_length=1024, blank=True)
    # Files that could not be indexed, each {"path": ..., "reason": ...}; the rest were.
    problems = models.JSONField(_("problems"), default=list, blank=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", verbose_name=_("imported by"),
    )
    # The ledger event that recorded the import.
    event_seq = models.BigIntegerField(_("ledger event"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("disc manifest")
        verbose_name_plural = _("disc manifests")

    def __str__(self) -> str:
        return f"{self.media} @ {self.created_at:%Y-%m-%d %H:%M}"


class ManifestEntry(models.Model):
    manifest = models.ForeignKey(DiscManifest, on_delete=models.CASCADE, related_name="entries")
    path = models.CharField(_("path on disc"), max_length=512)
    size = models.PositiveBigIntegerField(_("size"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    sop_class_uid = models.CharField(max_length=64, blank=True)
    sop_instance_uid = models.CharField(max_length=64, blank=True)
    transfer_syntax_uid = models.CharField(max_length=64, blank=True)
    study_instance_uid = models.CharField(max_length=64, blank=True)
    series_instance_uid = models.CharField(max_length=64, blank=True)
    # Why a file on the disc is not (valid) DICOM, e.g. "not DICOM" or "truncated"; blank if it is.
    problem = models.CharField(_("problem"), max_length=200, blank=True)

    class Meta:
        ordering = ["manifest", "path"]
        constraints = [
            models.UniqueConstraint(fields=["manifest", "path"], name="manifest_entry_unique_path")
        ]
        verbose_name = _("manifest entry")
        verbose_name_plural = _("manifest entries")

    def __str__(self) -> str:
        return self.path


class DiscVerification(models.Model):
    """A returned disc re-hashed and compared with its manifest; the ledger holds the event."""

    manifest = models.ForeignKey(
        DiscManifest, on_delete=models.PROTECT, related_name="verifications", verbose_name=_("manifest")
    )
    media = models.ForeignKey(
        "tracker.Media", on_delete=models.PROTECT, related_name="disc_verifications",
        verbose_name=_("media"),
    )
    verified_at = models.DateTimeField(_("verified"), auto_now_add=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="+", verbose_name=_("verified by"),
    )
    verdict = models.CharField(_("result"), max_length=16, choices=DiscVerdict.choices)
    files_checked = models.PositiveIntegerField(_("files checked"), default=0)
    bytes_checked = models.PositiveBigIntegerField(_("bytes checked"), default=0)
    # Paths relative to the disc root.
    missing = models.JSONField(_("missing files"), default=list, blank=True)
    changed = models.JSONField(_("changed files"), default=list, blank=True)
    extra = models.JSONField(_("extra files"), default=list, blank=True)
    source_path = models.CharField(_("read from"), max_length=1024, blank=True)
    event_seq = models.BigIntegerField(_("ledger event"), null=True, blank=True)

    class Meta:
        ordering = ["-verified_at"]
        verbose_name = _("disc verification")
        verbose_name_plural = _("disc verifications")

    def __str__(self) -> str:
        return f"{self.media} {self.verdict} @ {self.verified_at:%Y-%m-%d %H:%M}"


class RetentionRule(models.Model):
    """How long media must be kept, per media kind and the patient's age; data, not code.

    An item is due for review when both periods have passed: `retain_years` after its newest
    study (or its registration), and, for a patient who was younger than `minor_until_age` at that
    study, until the patient reaches `keep_until_age`. The most specific matching rule wins."""

    name = models.CharField(pgettext_lazy("rule", "name"), max_length=100)
    media_kind = models.CharField(
        _("media kind"), max_length=16, choices=MediaKind.choices, blank=True,
        help_text=_("Blank: any kind."),
    )
    modality = models.CharField(
        _("modality"), max_length=16, blank=True, help_text=_("e.g. MG for mammography; blank: any.")
    )
    retain_years = models.PositiveSmallIntegerField(_("keep for (years)"))
    minor_until_age = models.PositiveSmallIntegerField(
        _("patient counts as a minor below age"), null=True, blank=True
    )
    keep_until_age = models.PositiveSmallIntegerField(
        _("keep a minor's media until age"), null=True, blank=True
    )
    note = models.CharField(_("note"), max_length=200, blank=True)

    class Meta:
        ordering = ["media_kind", "modality", "name"]
        verbose_name = _("retention rule")
        verbose_name_plural = _("retention rules")

    def __str__(self) -> str:
        return self.name
