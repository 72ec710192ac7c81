"""Reading the stored ledger: rows as the ORM reads them (the exact path), and chunks of raw
columns made into bodies in Python where every value has its usual form (tracker/ledger/verify.py
uses this when it cannot use the stored bodies)."""
from __future__ import annotations

import hashlib
import json
import re
from collections import deque
from collections.abc import Iterator
from datetime import datetime, timezone

from django.db import connection

from ..models import CustodyEvent
from .body import _BODY_JSON, _SAFE_INT, BODY_FIELDS, _OffShape, _payload, _quoted


def ledger_rows(chunk_size: int = 5000) -> Iterator[dict]:
    return CustodyEvent.objects.order_by("seq").values(*BODY_FIELDS).iterator(chunk_size=chunk_size)


def rows_in(seqs: list[int]) -> Iterator[dict]:
    """ledger_rows() of these seqs only."""
    return CustodyEvent.objects.filter(seq__in=seqs).order_by("seq").values(*BODY_FIELDS).iterator()


def rows_from(first: int, last: int | None = None) -> Iterator[dict]:
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


class PostgresColumns:
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


class SQLiteColumns:
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


TABLE_READERS = {"postgresql": PostgresColumns, "sqlite": SQLiteColumns}


def walk_columns(chain, chunk_rows: int) -> None:
    """Check the stored ledger for `chain`: chunks whose values all have their usual form are
    checked column-wise straight from the database cursor (several times faster than ORM rows);
    any other chunk is read again through the ORM and walked row by row."""
    reader = TABLE_READERS.get(connection.vendor)
    if reader is None or not reader.applies():
        chain.walk(ledger_rows())
        return
    start = -(2**63)  # every stored seq, as ledger_rows() reads them
    while True:
        try:
            with connection.cursor() as cursor:
                cursor.execute(reader.sql, [start, chunk_rows])
                rows = cursor.fetchall()
        except Exception:  # a value the driver cannot even read: the ORM meets it too
            chain.walk(rows_from(start))
            return
        if not rows:
            return
        first, last = rows[0][0], rows[-1][0]
        if not _checked_in_columns(chain, rows, reader):
            if not chain.walk(rows_from(first, last)):
                return
        start = last + 1

def _checked_in_columns(chain, rows: list[tuple], columns) -> bool:
    """True when every row of the chunk is good (the state moves past it); False when the
    chunk holds anything unusual or bad, the state untouched."""
    try:
        (seqs, ids, kinds, media, tags, actors, devices, froms, tos, holders, device_times,
         counters, received, payloads, prevs, hashes) = zip(*rows)
        n = len(seqs)
        if (
            seqs != tuple(range(chain.expected, chain.expected + n))
            or prevs[0] != chain.prev
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
        sha256, digest, digests = hashlib.sha256, chain.prev_digest, []
        for body in bodies:
            digest = sha256(digest + body.encode()).digest()
            digests.append(digest)
        if set(map(len, hashes)) != {64} or b"".join(digests).hex() != "".join(hashes):
            return False
    except Exception:  # off the usual form: the caller walks these rows one by one
        return False
    for seq in [s for s in chain.wanted if chain.expected <= s < chain.expected + n]:
        chain.result.hash_at[seq] = hashes[seq - chain.expected]
    chain.expected, chain.prev, chain.prev_digest = chain.expected + n, hashes[-1], digest
    return True
