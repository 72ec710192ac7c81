"""REST endpoints: loan requests, the request queue and renewals."""
from __future__ import annotations

# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = []
