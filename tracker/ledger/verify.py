"""Proving the ledger intact: recompute the chain, then check it against signed checkpoints."""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import DatabaseError, connection, transaction

from ..exceptions import InvalidRequest
from ..choices import EventKind
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
        if connection.vendor == "postgresql" and _PostgresLedger.applies():
            _PostgresLedger(self).walk()
            return
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


# --- PostgreSQL: every row checked by the server itself ---------------------------------------
# With the hashes stored, each row's check stands alone: row k is good when its seq is k, its
# prev_hash is the stored hash of row k-1 (genesis for row 1) and sha256(prev || body) is its
# hash. PostgreSQL can write the canonical body of a row of the usual form in SQL and hash it,
# in parallel workers; it vouches only for rows whose SQL text is, by construction, byte for byte
# what rfc8785 writes for event_body(row) (guards below). Every other row ("odd": unusual or bad)
# is read through the ORM and judged by _Chain.walk, so the verdict is exactly walk(ledger_rows()).

_UTC_TEXT = """to_char(e.{0} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
# rfc8785 refuses integers a double cannot hold; format_time() writes four-digit years only from
# 1000 (strftime leaves smaller ones unpadded), and Python has no year beyond 9999.
_INTS = ", ".join(
    f"e.{c}" for c in ("seq", "media_id", "actor_id", "device_id", "from_location_id",
                       "to_location_id", "holder_id", "device_counter")
)
_TIMES = "e.received_at, e.device_time"
# jsonb prints an object of up to three members as {"k": v, "k2": v2, "k3": v3}. Vouched for:
# ASCII word keys (their UTF-16 order is their byte order, COLLATE "C"), and values that are
# strings jsonb printed without a backslash (no quote, backslash or control character inside,
# so both sides write them as they are), integers json.loads reads as int within ±(2^53-1)
# (jsonb prints a numeric of scale 0 as plain digits), true, false or null.
_VALUE = r'(?:"[^"\\]*"|-?(?:0|[1-9][0-9]{0,14})|true|false|null)'
_KEY = r'"[A-Za-z0-9_]+"'
_PAYLOAD_SHAPE = rf"^\{{{_KEY}: {_VALUE}(?:, {_KEY}: {_VALUE}){{0,2}}\}}$"


def _payload_sql(members: int = 3) -> str:
    """The payload's RFC 8785 text: jsonb orders keys by length first, RFC 8785 by code units,
    so the members (peeled off one key at a time) are put in order here."""
    rests, keys = ["e.payload"], []
    for _n in range(members):
        keys.append(f"""split_part({rests[-1]}::text, '"', 2)""")
        rests.append(f"({rests[-1]} - {keys[-1]})")
    member = [f"""'"' || {k} || '":' || (e.payload -> {k})::text""" for k in keys]
    # Past the guards, '": ' appears once per member (no string value holds a quote).
    text = "e.payload::text"
    count = f"""(octet_length({text}) - octet_length(replace({text}, '": ', ''))) / 3"""
    cases = [
        "WHEN e.payload = '{}' THEN '{}'",
        f"""WHEN {count} = 1 THEN replace({text}, '": ', '":')""",
    ]
    for n in range(2, members + 1):
        orders = list(itertools.permutations(range(n)))
        branches = []
        for order in orders:
            text = " || ',' || ".join(member[i] for i in order)
            test = " AND ".join(
                f'{keys[a]} < {keys[b]} COLLATE "C"' for a, b in zip(order, order[1:])
            ) or "true"
            branches.append(f"WHEN {test} THEN '{{' || {text} || '}}'")
        cases.append(f"WHEN {count} = {n} THEN CASE {' '.join(branches)} END")
    return f"CASE {' '.join(cases)} END"


_PAYLOAD_JSON = _payload_sql()
# concat() skips NULLs: every nullable piece is spelled out.
_BODY_SQL = (
    """concat('{"actor":', coalesce(e.actor_id::text, 'null'),"""
    """ ',"device":', coalesce(e.device_id::text, 'null'),"""
    """ ',"device_counter":', coalesce(e.device_counter::text, 'null'),"""
    f""" ',"device_time":', coalesce('"' || {_UTC_TEXT.format("device_time")} || '"', 'null'),"""
    """ ',"event_id":"', e.event_id::text,"""
    """ '","from_location":', coalesce(e.from_location_id::text, 'null'),"""
    """ ',"holder":', coalesce(e.holder_id::text, 'null'),"""
    """ ',"kind":"', e.kind,"""
    """ '","media":', coalesce(e.media_id::text, 'null'),"""
    f""" ',"payload":', {_PAYLOAD_JSON},"""
    f""" ',"received_at":"', {_UTC_TEXT.format("received_at")},"""
    """ '","seq":', e.seq::text,"""
    """ ',"tag_uid":"', e.tag_uid,"""
    """ '","to_location":', coalesce(e.to_location_id::text, 'null'), '}')"""
)
_SAFE_KINDS = sorted(k for k in EventKind.values if re.fullmatch("[a-z_]+", k))
_USUAL = " AND ".join([
    "e.kind IN (%s)" % ", ".join(f"'{k}'" for k in _SAFE_KINDS),
    "(e.tag_uid = '' OR e.tag_uid !~ %(needs_escape)s)",
    # greatest() and least() pass over NULLs; seq and received_at are never NULL
    f"greatest({_INTS}) <= {_SAFE_INT} AND least({_INTS}) >= -{_SAFE_INT}",
    f"least({_TIMES}) >= '1000-01-01 00:00:00+00'",
    f"greatest({_TIMES}) < '10000-01-01 00:00:00+00'",
    "(e.payload = '{}' OR e.payload::text ~ %(payload_shape)s)",
])
# decode() raises on a prev_hash that is not hex; the careful variant checks it first (slower).
_LINKED = f"coalesce(e.prev_hash = p.hash, e.seq = 1 AND e.prev_hash = '{GENESIS_HASH}')"
_HEX = "e.prev_hash ~ '^[0-9a-f]{64}$'"
# The payload's text is tested for NULL (concat would skip it) though the guards never let one
# through: a body missing its payload must never be compared.
_GOOD_SQL = """CASE WHEN {usual} AND {linked}{hex} AND {payload} IS NOT NULL
    THEN encode(sha256(decode(e.prev_hash, 'hex') || convert_to({body}, 'UTF8')), 'hex') = e.hash
    ELSE false END"""
_ODD_SQL = """SELECT e.seq FROM tracker_custodyevent e
    LEFT JOIN tracker_custodyevent p ON p.seq = e.seq - 1
    WHERE NOT {good} ORDER BY e.seq"""
# RFC 8785 escapes exactly these characters; a string without them is written as it is.
_PATTERNS = {"payload_shape": _PAYLOAD_SHAPE, "needs_escape": '[\\x01-\\x1f"\\\\]'}
ODD_RUN_GAP = 2000  # odd rows closer than this are walked together: bounds the ORM reads


class _PostgresLedger:
    """Walks the ledger for a _Chain on PostgreSQL: a few queries, whatever its size."""

    # JIT would compile the long body expression in every worker: slower than interpreting it.
    settings = {
        "work_mem": "128MB", "jit": "off", "parallel_setup_cost": "100",
        "parallel_tuple_cost": "0.01",
    }

    def __init__(self, chain: _Chain):
        self.chain = chain

    @staticmethod
    def applies() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_encoding")
            return cursor.fetchone()[0] == "UTF8"  # convert_to is then the text's own bytes

    def walk(self) -> None:
        chain = self.chain
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*), min(seq), max(seq) FROM tracker_custodyevent")
            count, lowest, highest = cursor.fetchone()
        if not count:
            return
        odd = self.odd_seqs()
        if odd is None:  # the server could not judge the rows at all: the plain walk does
            chain.walk(ledger_rows())
            return
        gap = self.first_gap(count, lowest, highest)
        end = gap[0] if gap else highest + 1  # rows before `end` have seq == position
        for first, last in _runs([s for s in odd if s < end], ODD_RUN_GAP):
            chain.expected = first
            chain.prev = GENESIS_HASH if first == 1 else _hash_of(first - 1)
            chain.prev_digest = bytes.fromhex(chain.prev)  # a good row's hash: hex
            if not chain.walk(_rows_from(first, last)):
                return
        if gap:
            chain.result.fail(gap[0], f"event {gap[0]} is missing or out of order (found {gap[1]})")
            return
        wanted = [s for s in chain.wanted if 1 <= s <= highest and s not in chain.result.hash_at]
        hashes = dict(
            CustodyEvent.objects.filter(seq__in=[*wanted, highest]).values_list("seq", "hash")
        )
        chain.result.hash_at.update((s, hashes[s]) for s in wanted)
        chain.expected, chain.prev = highest + 1, hashes[highest]
        chain.prev_digest = bytes.fromhex(chain.prev)

    def odd_seqs(self) -> list[int] | None:
        """Seqs of the rows the server does not vouch for, in order; None if it cannot tell."""
        for hex_check in ("", f" AND {_HEX}"):
            good = _GOOD_SQL.format(
                usual=_USUAL, linked=_LINKED, hex=hex_check, payload=_PAYLOAD_JSON, body=_BODY_SQL
            )
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    previous = self._tune(cursor, self.settings)
                    cursor.execute(_ODD_SQL.format(good=good), _PATTERNS)
                    seqs = [seq for (seq,) in cursor.fetchall()]
                    self._tune(cursor, previous)
                    return seqs
            except DatabaseError:  # a prev_hash decode() refuses: try again, checking first
                continue
        return None

    @staticmethod
    def _tune(cursor, settings: dict) -> dict:
        """Set these for the transaction (more memory for the link join; parallel workers)."""
        cursor.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(settings)]
        )
        previous = dict(cursor.fetchall())
        for name, value in settings.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        return previous

    @staticmethod
    def first_gap(count: int, lowest: int, highest: int) -> tuple[int, int] | None:
        """(position, seq found there) of the first row whose seq is not its position."""
        if lowest != 1:
            return (1, lowest)
        if count == highest:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT min(e.seq) + 1 FROM tracker_custodyevent e WHERE e.seq >= 1 AND NOT "
                "EXISTS (SELECT 1 FROM tracker_custodyevent n WHERE n.seq = e.seq + 1)"
            )
            (missing,) = cursor.fetchone()
            cursor.execute("SELECT min(seq) FROM tracker_custodyevent WHERE seq > %s", [missing])
            (found,) = cursor.fetchone()
        return (missing, found)


def _runs(seqs: list[int], gap: int) -> Iterator[tuple[int, int]]:
    """(first, last) of runs of sorted seqs, joining runs less than `gap` apart."""
    first = last = None
    for seq in seqs:
        if first is not None and seq - last < gap:
            last = seq
            continue
        if first is not None:
            yield first, last
        first = last = seq
    if first is not None:
        yield first, last


def _hash_of(seq: int) -> str:
    return CustodyEvent.objects.filter(seq=seq).values_list("hash", flat=True).get()


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
