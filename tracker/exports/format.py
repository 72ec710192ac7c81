"""The export's layout: its columns and their titles, its header and trailer rows, and the
fixed forms of the machine fields (shared by the writer and the verifier)."""
from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _

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
    "seq": _("Seq"),
    "received_local": _("Received (local time)"),
    "kind_label": _("Event"),
    "media_code": _("Item"),
    "from_location_code": _("From"),
    "to_location_code": _("To"),
    "holder_username": _("Holder"),
    "actor_username": _("By"),
    "device_name": _("Station"),
    "event_id": _("Event ID"),
    "kind": _("Kind (code)"),
    "media_id": _("Item ID"),
    "tag_uid": _("Tag UID"),
    "actor_id": _("By (user ID)"),
    "device_id": _("Station ID"),
    "from_location_id": _("From (place ID)"),
    "to_location_id": _("To (place ID)"),
    "holder_id": _("Holder (user ID)"),
    "device_time": _("Device time (UTC)"),
    "device_counter": _("Device counter"),
    "received_at": _("Received (UTC)"),
    "payload": _("Details (JSON)"),
    "prev_hash": _("Previous hash"),
    "hash": _("Hash"),
}
# Metadata rows, in the order they appear: before the table, then after it.
HEADER_KEYS = (
    FORMAT, "title", "generated_at", "generated_by", "language", "time_zone", "filters",
    "description", "origin", "key_id", "ledger_size", "ledger_head_hash", "checkpoint_size",
    "checkpoint_hash", "checkpoint_note", "columns",
)
TRAILER_KEYS = ("rows", "first_seq", "first_hash", "last_seq", "last_hash", "contiguous")
KEY_LABELS = {
    FORMAT: _("Filmroom custody export, signed (format version)"),
    "title": _("Title"),
    "generated_at": _("Made at (UTC)"),
    "generated_by": _("Made by"),
    "language": _("Language"),
    "time_zone": _("Time zone of local times"),
    "filters": _("Filters"),
    "description": _("What it covers"),
    "origin": _("Ledger"),
    "key_id": _("Ledger key ID"),
    "ledger_size": _("Events in the ledger when made"),
    "ledger_head_hash": _("Ledger head hash when made"),
    "checkpoint_size": _("Latest signed checkpoint (events)"),
    "checkpoint_hash": _("Checkpoint chain hash"),
    "checkpoint_note": _("Checkpoint (signed note)"),
    "rows": _("Events in this export"),
    "first_seq": _("First event (seq)"),
    "first_hash": _("First event hash"),
    "last_seq": _("Last event (seq)"),
    "last_hash": _("Last event hash"),
    "contiguous": _("Every event between the first and the last"),
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
