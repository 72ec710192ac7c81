"""Pages: loan requests (clinicians ask, staff decide) and the queue."""
from __future__ import annotations

# Mounted at the site root by tracker/urls.py.
urlpatterns: list = []
