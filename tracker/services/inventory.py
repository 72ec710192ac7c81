"""Shelf inventories: read every tag on a shelf or in a room, then say what is missing, misplaced or unknown."""
from __future__ import annotations

__all__: list[str] = []
