"""The custody ledger: the only writer of CustodyEvent, and the proof that history was not changed.

Each event's `hash = sha256(prev_hash || canonical_json(body))`, where prev_hash is the previous
event's hash as 32 raw bytes (32 zero bytes before seq 1) and canonical_json is RFC 8785 (JCS)
of the body returned by `event_body()`. Foreign keys appear in the body as primary keys, times as
UTC ISO 8601 with microseconds and a `Z`.

`seq` is gap-free: it is assigned while holding a lock that lives in the database — a
transaction-scoped advisory lock on PostgreSQL, the database write lock on SQLite (Filmroom opens
SQLite transactions with BEGIN IMMEDIATE) — so any number of app servers can append.

Checkpoints are C2SP signed notes (tlog-checkpoint layout: origin, size, base64 hash) signed with
Ed25519. The "root hash" line carries the chain hash after `size` events, not a Merkle root.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import signals
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext as _

from .exceptions import EventConflict, InvalidRequest
from .models import CustodyEvent, LedgerCheckpoint

GENESIS_HASH = "0" * 64
# Arbitrary constant naming the ledger's PostgreSQL advisory lock ("FILMROOM" in ASCII, trimmed).
ADVISORY_LOCK_KEY = 0x46494C4D524F4F
BODY_FIELDS = (
    "seq",
    "event_id",
    "kind",
    "media_id",
    "tag_uid",
    "actor_id",
    "device_id",
    "from_location_id",
    "to_location_id",
    "holder_id",
    "device_time",
    "device_counter",
    "received_at",
    "payload",
    "prev_hash",
    "hash",
)
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


def format_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    if dj_timezone.is_naive(value):
        raise InvalidRequest(_("Times must carry a time zone."))
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_body(row: dict) -> dict:
    """The hashed body of an event, from a mapping with the names in BODY_FIELDS."""
    return {
        "seq": row["seq"],
        "event_id": str(row["event_id"]),
        "kind": row["kind"],
        "media": row["media_id"],
        "tag_uid": row["tag_uid"],
        "actor": row["actor_id"],
        "device": row["device_id"],
        "from_location": row["from_location_id"],
        "to_location": row["to_location_id"],
        "holder": row["holder_id"],
        "device_time": format_time(row["device_time"]),
        "device_counter": row["device_counter"],
        "received_at": format_time(row["received_at"]),
        "payload": row["payload"],
    }


def chain_hash(prev_hash: str, body: dict) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_body(body)).hexdigest()


# --- RFC 8785 for the fixed body shape --------------------------------------------------------
# The rfc8785 package walks any value in pure Python; hashing is dominated by it. Events have
# one fixed shape, so the bytes are written here directly. Anything outside that shape (another
# type, an integer a double cannot hold, a naive time, a string that is not valid UTF-8, nested
# payloads) goes to rfc8785, which serialises or rejects it as before.
# tests/tracker/test_canonical.py proves both give the same bytes.

# RFC 8785 orders keys by UTF-16 code units: for these ASCII names, plain sorted order.
_BODY_JSON = (
    '{"actor":%s,"device":%s,"device_counter":%s,"device_time":%s,"event_id":%s,'
    '"from_location":%s,"holder":%s,"kind":%s,"media":%s,"payload":%s,"received_at":%s,'
    '"seq":%s,"tag_uid":%s,"to_location":%s}'
)
_BODY_KEYS = frozenset(re.findall(r'"(\w+)":', _BODY_JSON))
_SAFE_INT = 2**53 - 1  # rfc8785 refuses integers beyond what a double holds exactly
# json's C string encoder (ensure_ascii off) escapes exactly what RFC 8785 escapes, the same way.
_quoted = json.encoder.encode_basestring


class _OffShape(Exception):
    """A value the direct writer leaves to rfc8785."""


def _int(value):
    if value is None:
        return "null"
    if type(value) is int and -_SAFE_INT <= value <= _SAFE_INT:
        return value
    raise _OffShape


def _str(value) -> str:
    if value is None:
        return "null"
    if type(value) is str:
        return _quoted(value)
    raise _OffShape


def _event_id(value) -> str:
    if type(value) is uuid.UUID:
        return f'"{value}"'
    return _str(value)


def _time(value) -> str:
    """format_time(value) as a JSON string, for aware datetimes of years 1000 to 9999."""
    if value is None:
        return "null"
    if type(value) is datetime:
        offset = value.utcoffset()
        if offset is not None:  # a naive time is format_time's error to raise
            if offset:
                value = value.astimezone(timezone.utc)
            if value.year >= 1000:  # strftime("%Y") does not pad smaller years; isoformat does
                return f'"{value.isoformat(timespec="microseconds")[:26]}Z"'
    raise _OffShape


def _payload(value) -> str:
    if type(value) is not dict:
        raise _OffShape
    if not value:
        return "{}"
    members = []
    for key in sorted(value):
        if type(key) is not str or not key.isascii():  # UTF-16 order differs beyond ASCII
            raise _OffShape
        item = value[key]
        if type(item) is str:
            text = _quoted(item)
        elif type(item) is int and -_SAFE_INT <= item <= _SAFE_INT:
            text = str(item)
        elif item is None or type(item) is bool:
            text = "null" if item is None else "true" if item else "false"
        else:  # nested or unusual: the general serialiser
            return rfc8785.dumps(value).decode()
        members.append(f"{_quoted(key)}:{text}")
    return "{" + ",".join(members) + "}"


def canonical_body(body: dict) -> bytes:
    """RFC 8785 canonical JSON of an event body (as event_body() returns it)."""
    if type(body) is dict and body.keys() == _BODY_KEYS:
        try:
            return (
                _BODY_JSON
                % (
                    _int(body["actor"]), _int(body["device"]), _int(body["device_counter"]),
                    _str(body["device_time"]), _str(body["event_id"]), _int(body["from_location"]),
                    _int(body["holder"]), _str(body["kind"]), _int(body["media"]),
                    _payload(body["payload"]), _str(body["received_at"]), _int(body["seq"]),
                    _str(body["tag_uid"]), _int(body["to_location"]),
                )
            ).encode()
        except Exception:  # off the usual shape: rfc8785 serialises it, or raises its error
            pass
    return rfc8785.dumps(body)


def body_json(row) -> bytes:
    """RFC 8785 canonical JSON of event_body(row), the hashed bytes, without building the body."""
    try:
        return (
            _BODY_JSON
            % (
                _int(row["actor_id"]), _int(row["device_id"]), _int(row["device_counter"]),
                _time(row["device_time"]), _event_id(row["event_id"]),
                _int(row["from_location_id"]), _int(row["holder_id"]), _str(row["kind"]),
                _int(row["media_id"]), _payload(row["payload"]), _time(row["received_at"]),
                _int(row["seq"]), _str(row["tag_uid"]), _int(row["to_location_id"]),
            )
        ).encode()
    except Exception:  # off the usual shape: the reference path serialises it, or raises
        return rfc8785.dumps(event_body(row))


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


def _lock_taken() -> bool:
    return any(hook[1] is _lock_mark for hook in connection.run_on_commit)


def replayed(request: EventRequest) -> CustodyEvent | None:
    """The event already recorded under request.event_id, or None; raises EventConflict when the
    stored event does not match what is asked now. Takes the ledger lock first, so a concurrent
    duplicate waits for the original and then sees it."""
    lock()
    if request.event_id is None or not _event_id_stored(request.event_id):
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
    head = _head(db)
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
    return event


# Appends run one after another under the ledger lock, so each query's cost is paid in series by
# every app server; these three skip the ORM's query building (several times the query itself).
_EVENT_FIELDS = CustodyEvent._meta.concrete_fields
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
    return json.loads(text)


def _leaves(value) -> Iterator:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


# --- verification -------------------------------------------------------------------------


@dataclass
class Verification:
    ok: bool = True
    events: int = 0
    head_hash: str = GENESIS_HASH
    first_bad_seq: int | None = None
    reason: str = ""
    checkpoints: int = 0
    hash_at: dict = field(default_factory=dict, repr=False)

    def fail(self, seq: int, reason: str) -> Verification:
        self.ok, self.first_bad_seq, self.reason = False, seq, reason
        return self

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_hash": self.head_hash,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
            "checkpoints_checked": self.checkpoints,
        }


def verify_rows(rows: Iterable[dict], *, remember: Iterable[int] = ()) -> Verification:
    """Check a sequence of event rows (mappings with BODY_FIELDS), in seq order from 1.

    Names the first bad seq: a gap, a broken link to the previous hash, or a body whose hash
    does not match. `remember` lists sizes whose chain hash the caller wants (checkpoints)."""
    chain = _Chain(remember)
    chain.walk(rows)
    return chain.verdict()


def ledger_rows(chunk_size: int = 5000) -> Iterator[dict]:
    return CustodyEvent.objects.order_by("seq").values(*BODY_FIELDS).iterator(chunk_size=chunk_size)


VERIFY_CHUNK_ROWS = 20_000


class _Chain:
    """Where a verification stands: the next seq expected and the hash it must link to."""

    def __init__(self, remember: Iterable[int] = ()):
        self.result, self.wanted = Verification(), set(remember)
        self.expected, self.prev, self.prev_digest = 1, GENESIS_HASH, bytes(32)

    def verdict(self) -> Verification:
        if self.result.ok:
            self.result.events, self.result.head_hash = self.expected - 1, self.prev
        return self.result

    def walk(self, rows: Iterable) -> bool:
        """Check rows (mappings with BODY_FIELDS) one by one; False once one is bad."""
        result, wanted, sha256 = self.result, self.wanted, hashlib.sha256
        expected, prev, prev_digest = self.expected, self.prev, self.prev_digest
        for row in rows:
            seq = row["seq"]
            if seq != expected:
                result.fail(expected, f"event {expected} is missing or out of order (found {seq})")
                return False
            if row["prev_hash"] != prev:
                result.fail(seq, f"event {seq} does not link to the hash of event {seq - 1}")
                return False
            try:
                digest = sha256(prev_digest + body_json(row)).digest()
            except (TypeError, ValueError, InvalidRequest, rfc8785.CanonicalizationError) as exc:
                result.fail(seq, f"event {seq} cannot be read: {exc}")
                return False
            if digest.hex() != row["hash"]:
                result.fail(seq, f"event {seq} was altered: its hash does not match its content")
                return False
            prev, prev_digest = row["hash"], digest
            if seq in wanted:
                result.hash_at[seq] = prev
            expected += 1
        self.expected, self.prev, self.prev_digest = expected, prev, prev_digest
        return True

    def walk_table(self) -> None:
        """Check the stored ledger in seq order: chunks whose values all have their usual form
        are checked column-wise straight from the database cursor (several times faster than
        ORM rows); any other chunk is read again through the ORM and walked row by row, so the
        verdict is exactly that of walk(ledger_rows())."""
        reader = _TABLE_READERS.get(connection.vendor)
        if reader is None or not reader.applies():
            self.walk(ledger_rows())
            return
        start = -(2**63)  # every stored seq, as ledger_rows() reads them
        while True:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(reader.sql, [start, VERIFY_CHUNK_ROWS])
                    rows = cursor.fetchall()
            except Exception:  # a value the driver cannot even read: the ORM meets it too
                self.walk(_rows_from(start))
                return
            if not rows:
                return
            first, last = rows[0][0], rows[-1][0]
            if not self._checked_in_columns(rows, reader):
                if not self.walk(_rows_from(first, last)):
                    return
            start = last + 1

    def _checked_in_columns(self, rows: list[tuple], columns) -> bool:
        """True when every row of the chunk is good (the state moves past it); False when the
        chunk holds anything unusual or bad, the state untouched."""
        try:
            (seqs, ids, kinds, media, tags, actors, devices, froms, tos, holders, device_times,
             counters, received, payloads, prevs, hashes) = zip(*rows)
            n = len(seqs)
            if (
                seqs != tuple(range(self.expected, self.expected + n))
                or prevs[0] != self.prev
                or prevs[1:] != hashes[:-1]
            ):
                return False
            bodies = map(
                _BODY_COLUMNS_JSON.__mod__,
                zip(
                    _int_column(actors), _int_column(devices), _int_column(counters),
                    columns.times(device_times), columns.event_ids(ids), _int_column(froms),
                    _int_column(holders), _str_column(kinds), _int_column(media),
                    [p if p == "{}" else _payload(json.loads(p)) for p in payloads],
                    columns.times(received), _int_column(seqs), _str_column(tags),
                    _int_column(tos),
                ),
            )
            sha256, digest, digests = hashlib.sha256, self.prev_digest, []
            for body in bodies:
                digest = sha256(digest + body.encode()).digest()
                digests.append(digest)
            if set(map(len, hashes)) != {64} or b"".join(digests).hex() != "".join(hashes):
                return False
        except Exception:  # off the usual form: the caller walks these rows one by one
            return False
        for seq in [s for s in self.wanted if self.expected <= s < self.expected + n]:
            self.result.hash_at[seq] = hashes[seq - self.expected]
        self.expected, self.prev, self.prev_digest = self.expected + n, hashes[-1], digest
        return True


def _rows_from(first: int, last: int | None = None) -> Iterator[dict]:
    """ledger_rows() from seq `first` (to `last`)."""
    events = CustodyEvent.objects.filter(seq__gte=first)
    if last is not None:
        events = events.filter(seq__lte=last)
    return events.order_by("seq").values(*BODY_FIELDS).iterator(chunk_size=5000)


# A chunk of stored rows as the body template takes them: event_id, kind and tag_uid are
# quoted by the template (they are never null there), the other columns arrive as JSON text.
_BODY_COLUMNS_JSON = _BODY_JSON.replace('"event_id":%s', '"event_id":"%s"').replace(
    '"kind":%s', '"kind":"%s"').replace('"tag_uid":%s', '"tag_uid":"%s"')
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\]')


def _lines_of(pattern: str) -> re.Pattern:
    """Matches values joined by newlines when every one of them matches `pattern`."""
    return re.compile(f"{pattern}(?:\n{pattern})*")


_UUID_HEX_LINES = _lines_of("[0-9a-f]{32}")
_TIME = "[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}%s[0-9]{2}:[0-9]{2}:[0-9]{2}"
# to_char(... 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"AD') for years 1000 to 9999 AD
_PG_TIME_LINES = _lines_of(_TIME % "T" + r"\.[0-9]{6}ZAD")
# str() of a naive datetime, as Django stores it on SQLite (no fraction when it is zero)
_SQLITE_TIME_LINES = _lines_of(_TIME % " " + r"(?:\.[0-9]{6})?")


def _int_column(values: tuple) -> tuple | list:
    types = set(map(type, values))
    if types == {int}:
        present = values
    elif types == {int, type(None)}:
        present = [v for v in values if v is not None]
        values = ["null" if v is None else v for v in values]
    elif types == {type(None)}:
        return ["null"] * len(values)
    else:
        raise _OffShape
    if min(present) < -_SAFE_INT or max(present) > _SAFE_INT:
        raise _OffShape
    return values


def _str_column(values: tuple) -> tuple | list:
    """The strings' JSON escaping, without the quotes (TypeError unless all are str)."""
    if _NEEDS_ESCAPE.search("".join(values)):
        return [_quoted(v)[1:-1] for v in values]
    return values


class _PostgresColumns:
    # uuid::text is str(UUID); the times are format_time()'s text plus the era, checked below.
    sql = (
        "SELECT seq, event_id::text, kind, media_id, tag_uid, actor_id, device_id, "
        "from_location_id, to_location_id, holder_id, "
        "to_char(device_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"AD'), "
        "device_counter, "
        "to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"AD'), "
        "payload::text, prev_hash, hash "
        "FROM tracker_custodyevent WHERE seq >= %s ORDER BY seq LIMIT %s"
    )

    @staticmethod
    def applies() -> bool:
        return True

    @staticmethod
    def event_ids(values: tuple) -> tuple:
        return values

    @staticmethod
    def times(values: tuple) -> list:
        present = [v for v in values if v is not None]
        if present and not _PG_TIME_LINES.fullmatch("\n".join(present)):
            raise _OffShape
        return ["null" if v is None else f'"{v[:-2]}"' for v in values]


class _SQLiteColumns:
    # CAST keeps sqlite3's datetime converter away: the stored text is parsed once, below.
    sql = (
        "SELECT seq, event_id, kind, media_id, tag_uid, actor_id, device_id, from_location_id, "
        "to_location_id, holder_id, CAST(device_time AS TEXT), device_counter, "
        "CAST(received_at AS TEXT), payload, prev_hash, hash "
        "FROM tracker_custodyevent WHERE seq >= %s ORDER BY seq LIMIT %s"
    )

    @staticmethod
    def applies() -> bool:
        return connection.timezone is timezone.utc  # Django reads naive stored times as UTC

    @staticmethod
    def event_ids(values: tuple) -> list:
        if not _UUID_HEX_LINES.fullmatch("\n".join(values)):
            raise _OffShape
        return [f"{v[:8]}-{v[8:12]}-{v[12:16]}-{v[16:20]}-{v[20:]}" for v in values]

    @staticmethod
    def times(values: tuple) -> list:
        """Django reads this text back with fromisoformat, as UTC: when that accepts it (a real
        date and time), format_time() gives the same digits with T, a fraction and Z."""
        present = [v for v in values if v is not None]
        if present and not _SQLITE_TIME_LINES.fullmatch("\n".join(present)):
            raise _OffShape
        deque(map(datetime.fromisoformat, present), maxlen=0)  # ValueError for 2025-02-30
        return [
            "null" if v is None else f'"{v[:10]}T{v[11:]}Z"' if len(v) == 26
            else f'"{v[:10]}T{v[11:]}.000000Z"'
            for v in values
        ]


_TABLE_READERS = {"postgresql": _PostgresColumns, "sqlite": _SQLiteColumns}


def verify_ledger(*, public_key: Ed25519PublicKey | None = None, extra_notes: Iterable[str] = ()) -> Verification:
    """Verify the stored chain, then every stored checkpoint and any given checkpoint notes."""
    checkpoints = list(LedgerCheckpoint.objects.order_by("size"))
    notes = [cp.note for cp in checkpoints] + list(extra_notes)
    key = public_key or (signing_key().public_key() if notes else None)
    parsed = []
    for note in notes:
        try:
            parsed.append(parse_checkpoint(note, key))
        except ValueError as exc:
            result = Verification()
            return result.fail(1, f"checkpoint cannot be trusted: {exc}")
    chain = _Chain(remember=[size for size, _h in parsed])
    chain.walk_table()
    result = chain.verdict()
    if not result.ok:
        return result
    previous_good = 0
    for size, expected_hash in sorted(parsed):
        if size > result.events:
            return result.fail(
                result.events + 1,
                f"a signed checkpoint covers {size} events but the ledger holds {result.events}",
            )
        if size and result.hash_at.get(size) != expected_hash:
            return result.fail(
                previous_good + 1,
                f"events {previous_good + 1}..{size} were rewritten: "
                f"the chain hash at {size} differs from the signed checkpoint",
            )
        previous_good = size
        result.checkpoints += 1
    return result


# --- signed checkpoints ---------------------------------------------------------------------


def signing_key() -> Ed25519PrivateKey:
    """The checkpoint signing key; generated on first use in development only."""
    path = Path(settings.LEDGER_SIGNING_KEY_FILE)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured(f"{path} does not hold an Ed25519 private key.")
        return key
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            f"No ledger signing key at {path}: create one (openssl genpkey -algorithm ed25519) "
            "or set FILMROOM_LEDGER_SIGNING_KEY_FILE."
        )
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The note verifier key string `name+keyid+base64(0x01||pubkey)` an auditor keeps offline."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    encoded = base64.b64encode(b"\x01" + raw).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def parse_verifier_key(vkey: str) -> Ed25519PublicKey:
    name, _kid, encoded = vkey.strip().split("+", 2)
    raw = base64.b64decode(encoded)
    if raw[:1] != b"\x01" or len(raw) != 33:
        raise ValueError("not an Ed25519 note verifier key")
    return Ed25519PublicKey.from_public_bytes(raw[1:])


def checkpoint_text(origin: str, size: int, head_hash: str) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(bytes.fromhex(head_hash)).decode()}\n"


def sign_checkpoint(origin: str, size: int, head_hash: str, key: Ed25519PrivateKey) -> str:
    text = checkpoint_text(origin, size, head_hash)
    signature = key.sign(text.encode())
    stamp = base64.b64encode(key_id(origin, key.public_key()) + signature).decode()
    return f"{text}\n\u2014 {origin} {stamp}\n"


def parse_checkpoint(note: str, public_key: Ed25519PublicKey) -> tuple[int, str]:
    """Return (size, chain hash hex) of a checkpoint note whose signature `public_key` made."""
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    text += "\n"
    lines = text.splitlines()
    if len(lines) < 3:
        raise ValueError("checkpoint body is too short")
    origin = lines[0]
    expected_id = key_id(origin, public_key)
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != origin:
            continue
        blob = base64.b64decode(parts[2])
        if blob[:4] != expected_id:
            continue
        try:
            public_key.verify(blob[4:], text.encode())
        except Exception as exc:  # cryptography raises InvalidSignature
            raise ValueError(f"bad signature on checkpoint for size {lines[1]}") from exc
        return int(lines[1]), base64.b64decode(lines[2]).hex()
    raise ValueError(f"checkpoint for size {lines[1]} carries no signature by this key")


@transaction.atomic
def checkpoint() -> LedgerCheckpoint:
    """Sign the current head of the ledger and store the note (the same size twice is one)."""
    lock()
    head = CustodyEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    size, head_hash = head if head else (0, GENESIS_HASH)
    existing = LedgerCheckpoint.objects.filter(size=size).first()
    if existing:
        return existing
    key = signing_key()
    origin = settings.LEDGER_ORIGIN
    note = sign_checkpoint(origin, size, head_hash, key)
    cp = LedgerCheckpoint(size=size, hash=head_hash, key_id=key_id(origin, key.public_key()).hex(), note=note)
    cp.save()
    return cp
