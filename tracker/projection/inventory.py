"""Inventories: inventory_started / inventory_closed events → InventorySession rows.

An inventory's id is the seq of its `inventory_started` event, so a rebuild gives every session
back its id: InventoryRead rows (the tags read, which are input like ScanRecord and not rebuilt)
and reader stations (ReaderDevice.inventory) keep pointing at the right one. For the same reason
reset() does not delete sessions: it blanks what the ledger decides, and the replay fills it in
again; a row no event produces keeps started_seq 0 and shows up as a difference."""
from __future__ import annotations

import json

from django.utils.dateparse import parse_datetime

from ..choices import EventKind, InventoryStatus
from ..models import CustodyEvent, InventorySession


def _at(event: CustodyEvent):
    at = event.payload.get("at")
    return parse_datetime(at) if at else event.received_at


def _started(event: CustodyEvent) -> None:
    InventorySession.objects.update_or_create(
        pk=event.seq,
        defaults={
            "scope_id": event.to_location_id,
            "status": InventoryStatus.OPEN,
            "started_by_id": event.actor_id,
            "started_at": _at(event),
            "started_seq": event.seq,
            "closed_by_id": None,
            "closed_at": None,
            "closed_seq": None,
            "result": {},
        },
    )


def _closed(event: CustodyEvent) -> None:
    payload = event.payload
    cancelled = bool(payload.get("cancelled"))
    InventorySession.objects.filter(pk=payload["inventory"]).update(
        status=InventoryStatus.CANCELLED if cancelled else InventoryStatus.CLOSED,
        closed_by_id=event.actor_id,
        closed_at=_at(event),
        closed_seq=event.seq,
        result={k: v for k, v in payload.items() if k not in {"inventory", "at"}},
    )


HANDLERS: dict = {
    EventKind.INVENTORY_STARTED: _started,
    EventKind.INVENTORY_CLOSED: _closed,
}


def snapshot() -> dict:
    return {
        "inventories": {
            (pk, scope_id, status, started_by_id, started_at, started_seq, closed_by_id, closed_at,
             closed_seq, json.dumps(result, sort_keys=True))
            for pk, scope_id, status, started_by_id, started_at, started_seq, closed_by_id, closed_at,
            closed_seq, result in InventorySession.objects.values_list(
                "pk", "scope_id", "status", "started_by_id", "started_at", "started_seq",
                "closed_by_id", "closed_at", "closed_seq", "result",
            )
        }
    }


def reset() -> None:
    """Blank what the ledger decides about each session before the replay (rows stay: reads and
    stations refer to them)."""
    InventorySession.objects.update(
        status=InventoryStatus.OPEN, started_seq=0, closed_by=None, closed_at=None, closed_seq=None,
        result={},
    )
