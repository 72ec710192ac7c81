"""Hand-overs: handover_* events and transfers that accept them → Handover rows (being built)."""

from __future__ import annotations

HANDLERS: dict = {}


def snapshot() -> dict:
    return {}


def reset() -> None:
    """Empty this module's rows before the ledger is replayed into them."""
