"""The export's layout: its columns and their titles, its header and trailer rows, and the
fixed forms of the machine fields (shared by the writer and the verifier)."""
from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _lazy

from .. import ledger

FORMAT = "filmroom-export"
VERSION = "1"
SIGNATURE_CONTEXT = b"filmroom-export/v1\x00"
BOM = "\ufeff"
PDF_MAX_ROWS = 5000

# The readable columns come first (what a person reads), then the hashed body as stored.
READABLE_COLUMNS = (
    "received_local", "kind_label", "media_code", "from_location_code", "to_location_code",
    "holder_username", "actor_username", "device_name",
)
COLUMNS = ("seq", *READABLE_COLUMNS, *[f for f in ledger.BODY_FIELDS if f != "seq"])
COLUMN_TITLES = {
    "seq": _lazy("Seq"),
    "received_local": _lazy("Received (local time)"),
    "kind_label": _lazy("Event"),
    "media_code": _lazy("Item"),
    "from_location_code": _lazy("From"),
    "to_location_code": _lazy("To"),
    "holder_username": _lazy("Holder"),
    "actor_username": _lazy("By"),
    "device_name": _lazy("Station"),
    "event_id": _lazy("Event ID"),
    "kind": _lazy("Kind (code)"),
    "media_id": _lazy("Item ID"),
    "tag_uid": _lazy("Tag UID"),
    "actor_id": _lazy("By (user ID)"),
    "device_id": _lazy("Station ID"),
    "from_location_id": _lazy("From (place ID)"),
    "to_location_id": _lazy("To (place ID)"),
    "holder_id": _lazy("Holder (user ID)"),
    "device_time": _lazy("Device time (UTC)"),
    "device_counter": _lazy("Device counter"),
    "received_at": _lazy("Received (UTC)"),
    "payload": _lazy("Details (JSON)"),
    "prev_hash": _lazy("Previous hash"),
    "hash": _lazy("Hash"),
}
# Metadata rows, in the order they appear: before the table, then after it.
HEADER_KEYS = (
    FORMAT, "title", "generated_at", "generated_by", "language", "time_zone", "filters",
    "description", "origin", "key_id", "ledger_size", "ledger_head_hash", "checkpoint_size",
    "checkpoint_hash", "checkpoint_note", "columns",
)
TRAILER_KEYS = ("rows", "first_seq", "first_hash", "last_seq", "last_hash", "contiguous")
KEY_LABELS = {
    FORMAT: _lazy("Filmroom custody export, signed (format version)"),
    "title": _lazy("Title"),
    "generated_at": _lazy("Made at (UTC)"),
    "generated_by": _lazy("Made by"),
    "language": _lazy("Language"),
    "time_zone": _lazy("Time zone of local times"),
    "filters": _lazy("Filters"),
    "description": _lazy("What it covers"),
    "origin": _lazy("Ledger"),
    "key_id": _lazy("Ledger key ID"),
    "ledger_size": _lazy("Events in the ledger when made"),
    "ledger_head_hash": _lazy("Ledger head hash when made"),
    "checkpoint_size": _lazy("Latest signed checkpoint (events)"),
    "checkpoint_hash": _lazy("Checkpoint chain hash"),
    "checkpoint_note": _lazy("Checkpoint (signed note)"),
    "rows": _lazy("Events in this export"),
    "first_seq": _lazy("First event (seq)"),
    "first_hash": _lazy("First event hash"),
    "last_seq": _lazy("Last event (seq)"),
    "last_hash": _lazy("Last event hash"),
    "contiguous": _lazy("Every event between the first and the last"),
}
VALUE_FIELDS = (
    *ledger.BODY_FIELDS, "media__code", "from_location__code", "to_location__code",
    "device__name",
)
INT_FIELDS = (
    "media_id", "actor_id", "device_id", "from_location_id", "to_location_id", "holder_id",
    "device_counter",
)
HASH = re.compile(r"[0-9a-f]{64}")
INT = re.compile(r"-?(0|[1-9][0-9]*)")
SEQ = re.compile(r"[1-9][0-9]*")
TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
SIGNATURE_ROW = re.compile(rb"#signature,([A-Za-z0-9+/]{86}==)\r\n")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe(text: str) -> str:
    """Text a spreadsheet will not run as a formula (a leading apostrophe, as Excel itself adds)."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_START) else text
