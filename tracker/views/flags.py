"""Pages: flags and the staff dashboard."""
from __future__ import annotations

# Mounted at the site root by tracker/urls.py.
urlpatterns: list = []
