"""Making an export: the ledger's state it is answered from, the CSV (streamed from a spooled
file, signed) and the PDF."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from .. import ledger
from ..choices import EventKind
from ..exceptions import InvalidRequest
from ..models import CustodyEvent, LedgerCheckpoint
from .filters import ExportFilters
from .format import (
    BOM,
    COLUMN_TITLES,
    COLUMNS,
    FORMAT,
    HEADER_KEYS,
    INT_FIELDS,
    KEY_LABELS,
    PDF_MAX_ROWS,
    READABLE_COLUMNS,
    SIGNATURE_CONTEXT,
    TRAILER_KEYS,
    VALUE_FIELDS,
    VERSION,
    safe,
)


@dataclass
class Export:
    """An export being made: the question, and the state of the ledger it is answered from.
    `snapshot()` fixes the ledger's size first; the ledger is append-only, so the events at or
    below that size are the same however long the export takes."""

    filters: ExportFilters
    user: object
    generated_at: datetime
    ledger_size: int
    ledger_head_hash: str
    checkpoint: LedgerCheckpoint | None
    origin: str
    key: Ed25519PrivateKey

    @classmethod
    def snapshot(cls, filters: ExportFilters, *, user) -> Export:
        head = CustodyEvent.objects.order_by("-seq").values_list("seq", "hash").first()
        size, head_hash = head if head else (0, ledger.GENESIS_HASH)
        checkpoint = LedgerCheckpoint.objects.filter(size__lte=size).order_by("-size").first()
        return cls(
            filters=filters, user=user, generated_at=timezone.now(), ledger_size=size,
            ledger_head_hash=head_hash, checkpoint=checkpoint, origin=settings.LEDGER_ORIGIN,
            key=ledger.signing_key(),
        )

    @property
    def key_id(self) -> str:
        return ledger.key_id(self.origin, self.key.public_key()).hex()

    def events(self):
        return self.filters.events().filter(seq__lte=self.ledger_size)

    def rows(self) -> Iterator[dict]:
        """Each event as a mapping of COLUMNS to its text in the file ("" for a null field)."""
        username = get_user_model().USERNAME_FIELD
        fields = (*VALUE_FIELDS, f"actor__{username}", f"holder__{username}")
        for event in self.events().values(*fields).iterator(chunk_size=2000):
            yield _row(event, actor=event[f"actor__{username}"], holder=event[f"holder__{username}"])

    def header(self) -> list[list[str]]:
        checkpoint = self.checkpoint
        values = {
            FORMAT: VERSION,
            "title": safe(self.filters.title()),
            "generated_at": ledger.format_time(self.generated_at),
            "generated_by": safe(self.user.get_username()),
            "language": get_language() or settings.LANGUAGE_CODE,
            "time_zone": timezone.get_current_timezone_name(),
            "filters": rfc8785.dumps(self.filters.as_dict()).decode(),
            "description": safe(self.filters.describe()),
            "origin": self.origin,
            "key_id": self.key_id,
            "ledger_size": str(self.ledger_size),
            "ledger_head_hash": self.ledger_head_hash,
            "checkpoint_size": str(checkpoint.size) if checkpoint else "",
            "checkpoint_hash": checkpoint.hash if checkpoint else "",
            "checkpoint_note": checkpoint.note if checkpoint else "",
        }
        rows = [
            [f"#{key}", values[key], str(KEY_LABELS[key])] for key in HEADER_KEYS if key != "columns"
        ]
        rows.append(["#columns", *COLUMNS])
        rows.append([str(COLUMN_TITLES[c]) for c in COLUMNS])
        return rows

    def sign(self, digest: bytes) -> str:
        return base64.b64encode(self.key.sign(SIGNATURE_CONTEXT + digest)).decode()


@dataclass
class Range:
    """What the rows of an export turned out to be."""

    rows: int = 0
    first_seq: int | None = None
    first_hash: str = ""
    last_seq: int | None = None
    last_hash: str = ""

    def add(self, seq: int, hash_: str) -> None:
        if self.first_seq is None:
            self.first_seq, self.first_hash = seq, hash_
        self.rows += 1
        self.last_seq, self.last_hash = seq, hash_

    @property
    def contiguous(self) -> bool:
        return self.rows > 0 and self.last_seq - self.first_seq + 1 == self.rows

    def trailer(self) -> list[list[str]]:
        values = {
            "rows": str(self.rows),
            "first_seq": "" if self.first_seq is None else str(self.first_seq),
            "first_hash": self.first_hash,
            "last_seq": "" if self.last_seq is None else str(self.last_seq),
            "last_hash": self.last_hash,
            "contiguous": "yes" if self.contiguous else "no",
        }
        return [[f"#{key}", values[key], str(KEY_LABELS[key])] for key in TRAILER_KEYS]

    def as_dict(self) -> dict:
        return {
            "rows": self.rows, "first_seq": self.first_seq, "last_seq": self.last_seq,
            "first_hash": self.first_hash, "last_hash": self.last_hash,
        }


def _row(event: dict, *, actor: str | None, holder: str | None) -> dict:
    kind = event["kind"]
    received = event["received_at"]
    row = {
        "seq": str(event["seq"]),
        "received_local": timezone.localtime(received).strftime("%Y-%m-%d %H:%M:%S"),
        "kind_label": str(EventKind(kind).label) if kind in EventKind.values else kind,
        "media_code": event["media__code"] or "",
        "from_location_code": event["from_location__code"] or "",
        "to_location_code": event["to_location__code"] or "",
        "holder_username": holder or "",
        "actor_username": actor or "",
        "device_name": event["device__name"] or "",
        "event_id": str(event["event_id"]),
        "kind": kind,
        "tag_uid": event["tag_uid"],
        "device_time": ledger.format_time(event["device_time"]) or "",
        "received_at": ledger.format_time(received),
        "payload": _payload_text(event["payload"]),
        "prev_hash": event["prev_hash"],
        "hash": event["hash"],
    }
    for name in INT_FIELDS:
        row[name] = "" if event[name] is None else str(event[name])
    return row


def _row_of(event: CustodyEvent) -> dict:
    """_row() of an event read as a model object, its related rows selected."""
    values = {name: getattr(event, name) for name in ledger.BODY_FIELDS}
    related = {"media": "code", "from_location": "code", "to_location": "code", "device": "name"}
    for relation, field in related.items():
        other = getattr(event, relation)
        values[f"{relation}__{field}"] = getattr(other, field) if other else None
    return _row(
        values,
        actor=event.actor.get_username() if event.actor else None,
        holder=event.holder.get_username() if event.holder else None,
    )


def _payload_text(payload) -> str:
    try:
        return rfc8785.dumps(payload).decode()
    except Exception:  # the ledger could not have hashed it: written as is, and verification fails
        return json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)


def _csv_bytes(rows: Iterable[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


@dataclass
class CsvExport:
    """A written CSV export: `chunks()` yields its bytes; `range` says what it holds."""

    head: bytes
    body: tempfile.SpooledTemporaryFile
    tail: bytes
    range: Range

    @property
    def size(self) -> int:
        return len(self.head) + self.body.seek(0, io.SEEK_END) + len(self.tail)

    def chunks(self, chunk_size: int = 256 * 1024) -> Iterator[bytes]:
        try:
            yield self.head
            self.body.seek(0)
            while chunk := self.body.read(chunk_size):
                yield chunk
            yield self.tail
        finally:
            self.body.close()

    def read(self) -> bytes:
        return b"".join(self.chunks())


def write_csv(export: Export) -> CsvExport:
    """The table goes to a spooled file first (memory up to 16 MB, then disk), so the range in
    the trailer and the access log is what was written; the signature is computed over the
    header, the table and the trailer in file order."""
    body = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    found = Range()
    batch: list[list[str]] = []
    for row in export.rows():
        found.add(int(row["seq"]), row["hash"])
        batch.append([safe(row[c]) if c in READABLE_COLUMNS else row[c] for c in COLUMNS])
        if len(batch) >= 500:
            body.write(_csv_bytes(batch))
            batch = []
    body.write(_csv_bytes(batch))
    head = BOM.encode() + _csv_bytes(export.header())
    trailer = _csv_bytes(found.trailer())
    digest = hashlib.sha256(head)
    body.seek(0)
    while chunk := body.read(256 * 1024):
        digest.update(chunk)
    digest.update(trailer)
    tail = trailer + _csv_bytes([["#signature", export.sign(digest.digest())]])
    return CsvExport(head=head, body=body, tail=tail, range=found)


def build_pdf(export: Export) -> tuple[bytes, Range]:
    """The export as a printable document (at most PDF_MAX_ROWS events: InvalidRequest beyond)."""
    from ..event_text import describe
    from ..pdf import Column, PdfDocument, paragraph

    # One read serves the rows and their words (event_text.describe needs the related rows).
    events = list(
        export.events()
        .select_related("media", "holder", "actor", "from_location", "to_location", "device")
        [: PDF_MAX_ROWS + 1]
    )
    if len(events) > PDF_MAX_ROWS:
        raise InvalidRequest(
            _(
                "More than %(limit)d events match: narrow the period or the kinds for a PDF, "
                "or export a CSV."
            ) % {"limit": PDF_MAX_ROWS}
        )
    rows = [_row_of(event) for event in events]
    found = Range()
    for row in rows:
        found.add(int(row["seq"]), row["hash"])
    filters = export.filters
    document = PdfDocument(
        title=filters.title(),
        facts=[
            filters.describe(),
            _("%(rows)d events") % {"rows": found.rows},
            _("made by %(user)s") % {"user": export.user.get_username()},
        ],
        generated_at=export.generated_at,
        landscape_pages=True,
    )
    checkpoint = export.checkpoint
    document.heading(
        _("Range and proof"),
        note=_(
            "To check this offline, export the same filters as CSV and run "
            "“manage.py verify_export FILE --vkey KEY” with the ledger's verifier key."
        ),
    )
    facts = [
        (_("Events in this export"), str(found.rows)),
        (_("First event (seq)"), _seq_hash(found.first_seq, found.first_hash)),
        (_("Last event (seq)"), _seq_hash(found.last_seq, found.last_hash)),
        (
            _("Every event between the first and the last"),
            _("yes") if found.contiguous else _("no"),
        ),
        (
            _("Events in the ledger when made"),
            _seq_hash(export.ledger_size, export.ledger_head_hash),
        ),
        (
            _("Latest signed checkpoint"),
            _seq_hash(checkpoint.size, checkpoint.hash) if checkpoint else _("none yet"),
        ),
        (_("Ledger and key ID"), f"{export.origin} · {export.key_id}"),
        (_("Made at (UTC)"), ledger.format_time(export.generated_at)),
    ]
    document.table([Column(_("Fact"), 1), Column(_("Value"), 3)], facts)
    if checkpoint:
        document.heading(_("Checkpoint (signed note)"))
        document.paragraph(checkpoint.note.strip(), size=7)
    document.heading(_("Events"))
    columns = [
        Column(str(COLUMN_TITLES["seq"]), 0.5),
        Column(str(COLUMN_TITLES["received_local"]), 1.1),
        Column(str(COLUMN_TITLES["kind_label"]), 2.6),
        Column(str(COLUMN_TITLES["media_code"]), 0.9),
        Column(str(COLUMN_TITLES["from_location_code"]), 0.8),
        Column(str(COLUMN_TITLES["to_location_code"]), 0.8),
        Column(str(COLUMN_TITLES["actor_username"]), 0.9),
        Column(str(COLUMN_TITLES["hash"]), 2.2),
    ]
    document.table(
        columns,
        [
            [
                row["seq"], row["received_local"],
                paragraph("\n".join([row["kind_label"], *describe(event)]), size=7),
                row["media_code"], row["from_location_code"], row["to_location_code"],
                row["actor_username"], paragraph(row["hash"], size=6),
            ]
            for row, event in zip(rows, events)
        ],
    )
    if not rows:
        document.paragraph(_("No events match these filters."))
    return document.render(), found


def _seq_hash(seq, hash_: str) -> str:
    return "—" if seq is None else f"{seq} · {hash_}"
