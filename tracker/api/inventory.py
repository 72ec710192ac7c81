"""REST endpoints: shelf inventories and their results."""
from __future__ import annotations

# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = []
