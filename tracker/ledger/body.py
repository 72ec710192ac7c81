"""An event's hashed body: its fields, their canonical form, and the chain hash.

`hash = sha256(prev_hash || canonical_json(body))`, where prev_hash is the previous event's hash
as 32 raw bytes (32 zero bytes before seq 1) and canonical_json is RFC 8785 (JCS) of the body
returned by `event_body()`. Foreign keys appear in the body as primary keys, times as UTC ISO 8601
with microseconds and a `Z`."""
from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime, timezone

import rfc8785
from django.utils import timezone as dj_timezone
from django.utils.translation import gettext as _

from ..exceptions import InvalidRequest

GENESIS_HASH = "0" * 64
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
