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
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
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
    return hashlib.sha256(bytes.fromhex(prev_hash) + rfc8785.dumps(body)).hexdigest()


def lock() -> None:
    """Take the ledger lock for the rest of the current transaction (serialises appends)."""
    if not connection.in_atomic_block:
        raise RuntimeError("The ledger lock is only taken inside transaction.atomic().")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [ADVISORY_LOCK_KEY])
    # SQLite: the transaction already holds the database write lock (BEGIN IMMEDIATE).


def replayed(request: EventRequest) -> CustodyEvent | None:
    """The event already recorded under request.event_id, or None; raises EventConflict when the
    stored event does not match what is asked now. Takes the ledger lock first, so a concurrent
    duplicate waits for the original and then sees it."""
    lock()
    if request.event_id is None:
        return None
    prior = CustodyEvent.objects.filter(event_id=request.event_id).first()
    if prior is None:
        return None
    asked = request.fields()
    stored = {name: getattr(prior, name) for name in REQUEST_FIELDS}
    if asked != stored:
        differing = sorted(name for name in REQUEST_FIELDS if asked[name] != stored[name])
        raise EventConflict(
            _("Event %(id)s was already recorded with different details.")
            % {"id": request.event_id},
            event_id=str(request.event_id),
            seq=prior.seq,
            fields=differing,
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
    head = CustodyEvent.objects.order_by("-seq").values_list("seq", "hash").first()
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
    event = CustodyEvent(**row, prev_hash=prev_hash, hash=chain_hash(prev_hash, event_body(row)))
    event.save()
    return event


def _checked_payload(payload: dict) -> dict:
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
    result = Verification()
    wanted = set(remember)
    expected, prev = 1, GENESIS_HASH
    for row in rows:
        seq = row["seq"]
        if seq != expected:
            return result.fail(expected, f"event {expected} is missing or out of order (found {seq})")
        if row["prev_hash"] != prev:
            return result.fail(seq, f"event {seq} does not link to the hash of event {seq - 1}")
        try:
            recomputed = chain_hash(prev, event_body(row))
        except (TypeError, ValueError, InvalidRequest, rfc8785.CanonicalizationError) as exc:
            return result.fail(seq, f"event {seq} cannot be read: {exc}")
        if recomputed != row["hash"]:
            return result.fail(seq, f"event {seq} was altered: its hash does not match its content")
        prev = row["hash"]
        if seq in wanted:
            result.hash_at[seq] = prev
        expected += 1
    result.events, result.head_hash = expected - 1, prev
    return result


def ledger_rows(chunk_size: int = 5000) -> Iterator[dict]:
    return CustodyEvent.objects.order_by("seq").values(*BODY_FIELDS).iterator(chunk_size=chunk_size)


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
    result = verify_rows(ledger_rows(), remember=[size for size, _h in parsed])
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
