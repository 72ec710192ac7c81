"""Pages and API routes of the DICOM archive (patients, studies, disc manifests, checks)."""
from django.urls import path

from . import api, views

# Pages, mounted at the site root next to tracker's. A patient ID may hold a slash (some
# hospitals print "2024/00123"), hence <path:...>.
urlpatterns = [
    path("patients/", views.patient_search, name="patient-search"),
    path("patients/<path:patient_id>/", views.patient_detail, name="patient-detail"),
    path("studies/<str:study_instance_uid>/", views.study_detail, name="study-detail"),
    path("manifests/<int:pk>/", views.manifest_detail, name="manifest-detail"),
    path("verifications/<int:pk>/", views.verification_detail, name="verification-detail"),
    path("media/<str:code>/pacs/", views.media_pacs, name="media-pacs"),
    path("media/<str:code>/studies/link/", views.media_studies_link, name="media-studies-link"),
    path("media/<str:code>/studies/unlink/", views.media_studies_unlink, name="media-studies-unlink"),
    path("retention/", views.retention_review, name="retention-review"),
]

# REST routes, mounted under /api/v1/ next to tracker's.
api_urlpatterns = [
    path("patients/", api.PatientListApi.as_view(), name="api-patient-list"),
    path("patients/<path:patient_id>/", api.PatientDetailApi.as_view(), name="api-patient-detail"),
    path("studies/", api.StudyListApi.as_view(), name="api-study-list"),
    path("studies/<str:study_instance_uid>/", api.StudyDetailApi.as_view(), name="api-study-detail"),
    path("manifests/", api.ManifestListApi.as_view(), name="api-manifest-list"),
    path("manifests/<int:pk>/", api.ManifestDetailApi.as_view(), name="api-manifest-detail"),
    path("manifests/<int:pk>/entries/", api.ManifestEntryListApi.as_view(), name="api-manifest-entries"),
    path("verifications/", api.VerificationListApi.as_view(), name="api-verification-list"),
    path("verifications/<int:pk>/", api.VerificationDetailApi.as_view(), name="api-verification-detail"),
    path("media/<str:code>/studies/link/", api.MediaStudiesLinkApi.as_view(), name="api-media-studies-link"),
    path("media/<str:code>/studies/unlink/", api.MediaStudiesUnlinkApi.as_view(), name="api-media-studies-unlink"),
    path("retention/", api.RetentionReviewApi.as_view(), name="api-retention-review"),
]
