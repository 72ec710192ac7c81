"""Pages and API routes of the DICOM archive (patients, studies, disc manifests, checks)."""

# Pages, mounted at the site root next to tracker's.
urlpatterns: list = []
# REST routes, mounted under /api/v1/ next to tracker's.
api_urlpatterns: list = []
