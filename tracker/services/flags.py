"""Flags and reminders: the sweep that finds overdue, stuck and unseen items, and reminders to borrowers."""
from __future__ import annotations

__all__: list[str] = []
