"""Signatures: signature_added events (being built). Signature rows hold images, not projection
state: the ledger vouches for each image's SHA-256, and a rebuild leaves them alone."""

from __future__ import annotations

HANDLERS: dict = {}


def snapshot() -> dict:
    return {}


def reset() -> None:
    """Nothing to empty: signatures are evidence kept beside the ledger, not projected rows."""
