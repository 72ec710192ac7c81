from django.contrib import admin

from tracker.admin import ReadOnlyAdmin

from .models import (
    DiscManifest,
    DiscVerification,
    ManifestEntry,
    Patient,
    RetentionRule,
    Series,
    Study,
)


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ["patient_id", "name", "birth_date", "sex"]
    search_fields = ["patient_id", "name"]


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ["study_instance_uid", "patient", "study_date", "accession_number", "modalities"]
    search_fields = ["study_instance_uid", "accession_number", "patient__patient_id"]


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    list_display = ["series_instance_uid", "study", "modality", "series_number", "instance_count"]


class ManifestEntryInline(admin.TabularInline):
    model = ManifestEntry
    extra = 0
    can_delete = False
    readonly_fields = ["path", "size", "sha256", "sop_instance_uid", "transfer_syntax_uid"]


@admin.register(DiscManifest)
class DiscManifestAdmin(ReadOnlyAdmin):
    """A manifest is the reference a returned disc is checked against: never edited by hand."""

    list_display = ["media", "created_at", "file_count", "total_bytes"]
    inlines = [ManifestEntryInline]


@admin.register(DiscVerification)
class DiscVerificationAdmin(ReadOnlyAdmin):
    list_display = ["media", "verified_at", "verdict", "files_checked"]
    list_filter = ["verdict"]


@admin.register(RetentionRule)
class RetentionRuleAdmin(admin.ModelAdmin):
    list_display = [
        "name", "media_kind", "modality", "retain_years", "minor_until_age", "keep_until_age"
    ]
