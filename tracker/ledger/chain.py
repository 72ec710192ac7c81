"""Appending to the ledger: the lock, idempotent replays, and the one INSERT per event.

`seq` is gap-free: it is assigned while holding a lock that lives in the database — a
transaction-scoped advisory lock on PostgreSQL, the database write lock on SQLite (Filmroom opens
SQLite transactions with BEGIN IMMEDIATE) — so any number of app servers can append."""
from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import rfc8785
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import signals
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext as _

from ..exceptions import EventConflict, InvalidRequest
from ..models import CustodyEvent
from .body import GENESIS_HASH, body_json

# Arbitrary constant naming the ledger's PostgreSQL advisory lock ("FILMROOM" in ASCII, trimmed).
ADVISORY_LOCK_KEY = 0x46494C4D524F4F
# What a caller asked for: a replayed event_id must ask for exactly this again.
REQUEST_FIELDS = (
    "kind",
    "media_id",
    "tag_uid",
    "actor_id",
    "device_id",
    "to_location_id",
    "holder_id",
    "device_time",
    "device_counter",
)


@dataclass(frozen=True)
class Read:
    """A tag read as the station reported it: the UID and the device's own clock and counter."""

    uid: str = ""
    device_time: datetime | None = None
    device_counter: int | None = None


@dataclass
class EventRequest:
    """What a service is about to record; the ledger adds seq, derived fields and hashes."""

    kind: str
    media: object = None
    actor: object = None
    device: object = None
    to_location: object = None
    holder: object = None
    event_id: uuid.UUID | str | None = None
    read: Read = field(default_factory=Read)
    # Payload values the caller chose (an explicit due date, a reason): a replay must ask the
    # same. Values the service derives (a due date from the loan policy) are not compared.
    asked: dict = field(default_factory=dict)

    def fields(self) -> dict:
        return {
            "kind": str(self.kind),
            "media_id": _pk(self.media),
            "tag_uid": self.read.uid or "",
            "actor_id": _pk(self.actor),
            "device_id": _pk(self.device),
            "to_location_id": _pk(self.to_location),
            "holder_id": _pk(self.holder),
            "device_time": self.read.device_time,
            "device_counter": self.read.device_counter,
        }


def _pk(obj) -> int | None:
    return None if obj is None else obj.pk





def lock() -> None:
    """Take the ledger lock for the rest of the current transaction (serialises appends)."""
    if not connection.in_atomic_block:
        raise RuntimeError("The ledger lock is only taken inside transaction.atomic().")
    if connection.vendor == "postgresql" and not _lock_taken():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
        transaction.on_commit(_lock_mark)
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


def _lock_mark() -> None:
    """Left among the transaction's on-commit hooks while it holds the advisory lock.

    Django drops the hooks of a savepoint rolled back and all of them when the transaction
    ends, exactly when PostgreSQL releases the lock, so replayed() then append() in one
    transaction ask the server for it once (appends are serialised; each round trip counts)."""


class _VouchedNew:
    """On-commit marker: this transaction's caller found `event_id` unused moments ago."""

    def __init__(self, event_id):
        self.event_id = str(event_id)

    def __call__(self) -> None:
        pass


def vouch_new(event_id) -> None:
    """Tell replayed() that the caller has just looked `event_id` up and found it unused (a
    station read checked against its scan records), so it skips its own look-up for the rest of
    this transaction. A racing twin is still stopped by the UNIQUE constraint on event_id."""
    if not connection.in_atomic_block:
        raise RuntimeError("vouch_new() only holds inside transaction.atomic().")
    transaction.on_commit(_VouchedNew(event_id))


def _marks(db, kind: type) -> Iterator:
    """This transaction's on-commit marks of one kind, newest first (a savepoint rolled back has
    taken its own with it)."""
    return (hook[1] for hook in reversed(db.run_on_commit) if isinstance(hook[1], kind))


def _vouched_new(event_id) -> bool:
    wanted = str(event_id)
    return any(mark.event_id == wanted for mark in _marks(connection, _VouchedNew))


def _lock_taken() -> bool:
    return any(hook[1] is _lock_mark for hook in connection.run_on_commit)

def replayed(request: EventRequest) -> CustodyEvent | None:
    """The event already recorded under request.event_id, or None; raises EventConflict when the
    stored event does not match what is asked now. Takes the ledger lock first, so a concurrent
    duplicate waits for the original and then sees it."""
    lock()
    if request.event_id is None or _vouched_new(request.event_id) or not _event_id_stored(request.event_id):
        return None
    prior = CustodyEvent.objects.filter(event_id=request.event_id).first()
    if prior is None:
        return None
    asked = request.fields()
    stored = {name: getattr(prior, name) for name in REQUEST_FIELDS}
    differing = [name for name in REQUEST_FIELDS if asked[name] != stored[name]]
    differing += [name for name, value in request.asked.items() if prior.payload.get(name) != value]
    if differing:
        raise EventConflict(
            _("Event %(id)s was already recorded with different details.")
            % {"id": request.event_id},
            event_id=str(request.event_id),
            seq=prior.seq,
            fields=sorted(differing),
        )
    return prior


def append(
    request: EventRequest,
    *,
    from_location=None,
    payload: dict | None = None,
    received_at: datetime | None = None,
) -> CustodyEvent:
    """Append one event to the chain inside the caller's transaction and return it.

    The caller must have called `replayed()` in the same transaction (which takes the lock and
    handles an event_id seen before)."""
    if not connection.in_atomic_block:
        raise RuntimeError("ledger.append() must run inside the caller's transaction.")
    lock()
    payload = _checked_payload(payload or {})
    db = connections[DEFAULT_DB_ALIAS]  # the wrapper itself: the proxy costs on every attribute
    last = _last_appended(db)
    head = (last.seq, last.hash) if last is not None else _head(db)
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    fields = request.fields()
    row = {
        **fields,
        "seq": seq,
        "event_id": uuid.UUID(str(request.event_id)) if request.event_id else uuid.uuid4(),
        "from_location_id": _pk(from_location),
        "received_at": received_at or dj_timezone.now(),
        "payload": payload,
    }
    row["prev_hash"] = prev_hash
    row["hash"] = hashlib.sha256(bytes.fromhex(prev_hash) + body_json(row)).hexdigest()
    event = CustodyEvent(*(row[f.attname] for f in _EVENT_FIELDS))
    _insert(db, event)
    transaction.on_commit(_Appended(event), using=db.alias)
    return event


class _Appended:
    """Left among the transaction's on-commit hooks by each append, like _lock_mark: while the
    transaction holds the ledger lock the newest one is the head of the chain, and a savepoint
    rolled back takes its appends' marks with it, exactly as it takes their rows."""

    def __init__(self, event: CustodyEvent):
        self.event = event

    def __call__(self) -> None:
        pass


def _last_appended(db) -> CustodyEvent | None:
    return next((mark.event for mark in _marks(db, _Appended)), None)


def recorded(event_id) -> CustodyEvent:
    """The event appended under `event_id`: from this transaction's own appends when it is one of
    them (no query), else from the table."""
    db = connections[DEFAULT_DB_ALIAS]
    wanted = str(event_id)
    for mark in _marks(db, _Appended):
        if str(mark.event.event_id) == wanted:
            return mark.event
    return CustodyEvent.objects.get(event_id=event_id)


# Appends run one after another under the ledger lock, so each query's cost is paid in series by
# every app server; these three skip the ORM's query building (several times the query itself).
# The columns append() writes: not `body`, which the database generates (and which comes last,
# so that CustodyEvent(*values) fills the others by position).
_EVENT_FIELDS = [f for f in CustodyEvent._meta.concrete_fields if not f.generated]
assert list(CustodyEvent._meta.concrete_fields[: len(_EVENT_FIELDS)]) == _EVENT_FIELDS
_TABLE = CustodyEvent._meta.db_table


def _event_id_stored(event_id) -> bool:
    db = connections[DEFAULT_DB_ALIAS]
    value = CustodyEvent._meta.get_field("event_id").get_db_prep_value(event_id, db)
    with db.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_TABLE} WHERE event_id = %s", [value])
        return cursor.fetchone() is not None


def _head(db) -> tuple[int, str] | None:
    with db.cursor() as cursor:
        cursor.execute(f"SELECT seq, hash FROM {_TABLE} ORDER BY seq DESC LIMIT 1")
        return cursor.fetchone()


def _insert(db, event: CustodyEvent) -> None:
    """event.save() for a new event (force_insert, signals sent), as one plain INSERT."""
    values = []
    for f, plain in _EVENT_COLUMNS:
        value = getattr(event, f.attname)
        # Django's preparation returns None, an int for an integer column and a str for a
        # text column unchanged; only the others (times, UUID, JSON) need it.
        plain_value = value is None or type(value) is plain
        values.append(value if plain_value else f.get_db_prep_save(value, db))
    signals.pre_save.send(
        CustodyEvent, instance=event, raw=False, using=db.alias, update_fields=None
    )
    with db.cursor() as cursor:
        cursor.execute(_INSERT_SQL, values)
    event._state.adding, event._state.db = False, db.alias
    signals.post_save.send(
        CustodyEvent, instance=event, created=True, raw=False, using=db.alias, update_fields=None
    )


def _plain_type(f) -> type | None:
    kind = (f.target_field if f.is_relation else f).get_internal_type()
    if kind in {"AutoField", "BigAutoField", "IntegerField", "BigIntegerField"}:
        return int
    return str if kind == "CharField" else None


_EVENT_COLUMNS = [(f, _plain_type(f)) for f in _EVENT_FIELDS]
_INSERT_SQL = "INSERT INTO %s (%s) VALUES (%s)" % (
    _TABLE, ", ".join(f.column for f in _EVENT_FIELDS), ", ".join(["%s"] * len(_EVENT_FIELDS))
)


def _checked_payload(payload: dict) -> dict:
    if type(payload) is dict and not payload:
        return {}
    try:
        text = json.dumps(payload, allow_nan=False)
        rfc8785.dumps(payload)
    except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
        raise InvalidRequest(_("Event details cannot be recorded: %(e)s") % {"e": exc}) from exc
    if any(isinstance(v, float) for v in _leaves(payload)):
        raise InvalidRequest(_("Event details must not contain fractional numbers."))
    # Keys in RFC 8785 order (UTF-16 code units): on SQLite the database writes the body of a
    # payload of three members only when they are stored in that order (tracker/event_body_sql.py).
    return dict(sorted(json.loads(text).items(), key=lambda item: item[0].encode("utf-16-be")))


def _leaves(value) -> Iterator:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


