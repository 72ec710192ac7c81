"""Signatures: signature_added events. Signature rows hold images, not projection state: the
ledger vouches for each image's SHA-256 (tracker.services.signatures.signature_intact checks it),
and a rebuild leaves them alone."""

from __future__ import annotations

from ..choices import EventKind
from ..models import CustodyEvent


def _signature_added(event: CustodyEvent) -> None:
    """Nothing to project: the event binds an image's hash to the event it signs."""


HANDLERS: dict = {EventKind.SIGNATURE_ADDED: _signature_added}


def snapshot() -> dict:
    return {}


def reset() -> None:
    """Nothing to empty: signatures are evidence kept beside the ledger, not projected rows."""
