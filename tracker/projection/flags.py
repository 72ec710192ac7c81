"""Flags and reminders: flag_raised / flag_cleared / reminder_sent events → Flag and Reminder rows."""
from __future__ import annotations

HANDLERS: dict = {}


def snapshot() -> dict:
    return {}


def reset() -> None:
    """Empty this module's rows before the ledger is replayed into them."""
