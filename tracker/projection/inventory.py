"""Inventories: inventory_started / inventory_closed events → InventorySession rows."""
from __future__ import annotations

HANDLERS: dict = {}


def snapshot() -> dict:
    return {}


def reset() -> None:
    """Empty this module's rows before the ledger is replayed into them."""
