"""Appending several events in one statement: a station's delivery of reads, recorded together.

`append_many()` gives exactly the events that calling `append()` once per request, in order,
would give (same seq, body, hashes), with one multi-row INSERT instead of one per event: under
the ledger lock every statement is paid in series by every app server. It leaves the same
on-commit marks as append(), so later appends, `recorded()` and a rolled-back savepoint treat
these events exactly like the others."""
from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import signals
from django.utils import timezone as dj_timezone

from ..models import CustodyEvent
from . import chain
from .body import GENESIS_HASH, body_json


def append_many(
    requests: list[chain.EventRequest],
    *,
    from_location_ids: list[int | None],
    received_at: datetime | None = None,
) -> list[CustodyEvent]:
    """Append one event per request, in order, inside the caller's transaction (payloads are
    empty: a read's `seen`). The caller has checked that each event_id is new, as a station does
    against its scan records; a racing twin is stopped by the UNIQUE constraint on event_id."""
    if not connection.in_atomic_block:
        raise RuntimeError("ledger.append_many() must run inside the caller's transaction.")
    if len(requests) != len(from_location_ids):
        raise ValueError("append_many() needs one from_location per request.")
    if not requests:
        return []
    chain.lock()
    db = connections[DEFAULT_DB_ALIAS]
    last = chain._last_appended(db)
    head = (last.seq, last.hash) if last is not None else chain._head(db)
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    received_at = received_at or dj_timezone.now()
    fields = chain._EVENT_FIELDS  # the columns append() writes, in its order
    events = []
    for request, from_location_id in zip(requests, from_location_ids):
        row = {
            **request.fields(),
            "seq": seq,
            "event_id": uuid.UUID(str(request.event_id)) if request.event_id else uuid.uuid4(),
            "from_location_id": from_location_id,
            "received_at": received_at,
            "payload": {},
            "prev_hash": prev_hash,
        }
        row["hash"] = prev_hash = hashlib.sha256(bytes.fromhex(prev_hash) + body_json(row)).hexdigest()
        events.append(CustodyEvent(*(row[f.attname] for f in fields)))
        seq += 1
    for event in events:
        signals.pre_save.send(CustodyEvent, instance=event, raw=False, using=db.alias, update_fields=None)
    # One INSERT for them all (on PostgreSQL Django sends the columns as arrays: a statement of
    # fixed shape, whatever the number of rows).
    CustodyEvent.objects.using(db.alias).bulk_create(events)
    for event in events:
        signals.post_save.send(
            CustodyEvent, instance=event, created=True, raw=False, using=db.alias, update_fields=None
        )
        transaction.on_commit(chain._Appended(event), using=db.alias)
    return events
