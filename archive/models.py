"""The DICOM side: who the patient is, which studies exist, and what each disc held."""
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


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
    study_instance_uid = models.CharField(_("Study Instance UID"), max_length=64, unique=True)
    patient = models.ForeignKey(
        Patient, on_delete=models.PROTECT, related_name="studies", verbose_name=_("patient")
    )
    study_date = models.DateField(_("study date"), null=True, blank=True)
    accession_number = models.CharField(_("accession number"), max_length=64, blank=True)
    description = models.CharField(_("description"), max_length=200, blank=True)
    modalities = models.CharField(_("modalities"), max_length=64, blank=True)

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

    class Meta:
        ordering = ["manifest", "path"]
        constraints = [
            models.UniqueConstraint(fields=["manifest", "path"], name="manifest_entry_unique_path")
        ]
        verbose_name = _("manifest entry")
        verbose_name_plural = _("manifest entries")

    def __str__(self) -> str:
        return self.path
