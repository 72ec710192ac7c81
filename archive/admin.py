from django.contrib import admin

from .models import DiscManifest, ManifestEntry, Patient, Series, Study


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
class DiscManifestAdmin(admin.ModelAdmin):
    list_display = ["media", "created_at", "file_count", "total_bytes"]
    inlines = [ManifestEntryInline]
