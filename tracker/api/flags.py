"""REST endpoints: flags, reminders and the staff dashboard counts."""
from __future__ import annotations

# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = []
