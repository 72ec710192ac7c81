"""Proving the ledger intact: recompute the chain, then check it against signed checkpoints."""
from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection

from ..exceptions import InvalidRequest
from ..models import CustodyEvent, LedgerCheckpoint
from .body import (
    _BODY_JSON,
    _SAFE_INT,
    BODY_FIELDS,
    GENESIS_HASH,
    _OffShape,
    _payload,
    _quoted,
    body_json,
)
from .checkpoints import parse_checkpoint, signing_key


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
