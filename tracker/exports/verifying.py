"""Verifying a CSV export offline: structure, each row's hash, links, trailer, header,
checkpoint, and the signature over every byte (see the package docstring for what that proves)."""
from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import re
import uuid
from dataclasses import dataclass, field

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils.translation import gettext as _

from .. import ledger
from .format import (
    BOM,
    COLUMNS,
    FORMAT,
    HASH,
    HEADER_KEYS,
    INT,
    INT_FIELDS,
    SEQ,
    SIGNATURE_CONTEXT,
    SIGNATURE_ROW,
    TIME,
    TRAILER_KEYS,
    VERSION,
)
from .writing import Range


class ExportBroken(Exception):
    """The export fails a check; `row` (1-based among the events) and `seq` say where."""

    def __init__(self, reason: str, *, row: int | None = None, seq: int | None = None):
        super().__init__(reason)
        self.reason, self.row, self.seq = reason, row, seq


@dataclass
class ExportCheck:
    ok: bool
    reason: str = ""
    row: int | None = None
    seq: int | None = None
    rows: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    contiguous: bool = False
    from_genesis: bool = False
    ledger_size: int | None = None
    checkpoint_size: int | None = None
    checkpoint_in_rows: bool = False
    generated_at: str = ""
    generated_by: str = ""
    filters: dict = field(default_factory=dict)
    origin: str = ""
    key_id: str = ""

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def verify_csv(data: bytes, public_key: Ed25519PublicKey) -> ExportCheck:
    """Check an exported CSV against the ledger's public key; never raises for bad content."""
    try:
        return _verify(data, public_key)
    except ExportBroken as exc:
        return ExportCheck(ok=False, reason=exc.reason, row=exc.row, seq=exc.seq)


def _verify(data: bytes, public_key: Ed25519PublicKey) -> ExportCheck:
    magic = (BOM + f"#{FORMAT},").encode()
    if not data.startswith(magic):
        raise ExportBroken(_(
            "This is not a Filmroom export: it does not start with a BOM and “#filmroom-export”."
        ))
    cut = data.rfind(b"\r\n#signature,")
    if cut < 0 or not SIGNATURE_ROW.fullmatch(data, cut + 2):
        raise ExportBroken(_(
            "The export's last row is not its signature (“#signature,” and 88 base64 "
            "characters): it was cut short or altered."
        ))
    signed, signature_text = data[: cut + 2], SIGNATURE_ROW.fullmatch(data, cut + 2).group(1)
    signature = base64.b64decode(signature_text, validate=True)
    if base64.b64encode(signature) != signature_text:  # unused bits set: not the signature written
        raise ExportBroken(_("The signature row was altered."))
    try:
        text = signed[len(BOM.encode()):].decode("utf-8")
        table = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (UnicodeDecodeError, csv.Error) as exc:
        message = _("The export cannot be read as UTF-8 CSV: %(error)s") % {"error": exc}
        raise ExportBroken(message) from None
    header, titles, events, trailer = _sections(table)
    origin, key_hex = header["origin"], header["key_id"]
    expected_key = ledger.key_id(origin, public_key).hex()
    if key_hex != expected_key:
        raise ExportBroken(
            _(
                "The export says it was signed by key %(theirs)s of %(origin)s, not by the key "
                "given (%(ours)s)."
            ) % {"theirs": key_hex, "origin": origin, "ours": expected_key}
        )
    if titles is None or len(titles) != len(COLUMNS):
        raise ExportBroken(_("The column titles row is missing or has the wrong number of cells."))
    check = ExportCheck(ok=True, origin=origin, key_id=key_hex)
    hashes = _check_rows(events)
    _check_trailer(trailer, hashes, check)
    _check_header(header, check, hashes, public_key)
    try:
        public_key.verify(signature, SIGNATURE_CONTEXT + hashlib.sha256(signed).digest())
    except InvalidSignature:
        raise ExportBroken(
            _(
                "The signature does not match the file: something in it was changed after it "
                "was exported (every row and header field is signed)."
            )
        ) from None
    return check


def _sections(table: list[list[str]]):
    header: dict[str, str] = {}
    index = 0
    while index < len(table) and table[index][:1] and table[index][0].startswith("#"):
        row = table[index]
        key = row[0][1:]
        if key == "columns":
            if tuple(row[1:]) != COLUMNS:
                raise ExportBroken(
                    _("The export's columns are not those of format version %(v)s.") % {"v": VERSION}
                )
            header[key] = ""
        elif len(row) != 3:
            raise ExportBroken(_("Header row “%(key)s” should have 3 cells.") % {"key": row[0]})
        else:
            header[key] = row[1]
        if key not in HEADER_KEYS or list(header) != list(HEADER_KEYS[: len(header)]):
            raise ExportBroken(
                _("Header row “%(key)s” is unknown, repeated or out of place.") % {"key": row[0]}
            )
        index += 1
    if list(header) != list(HEADER_KEYS):
        raise ExportBroken(_("The export's header is incomplete."))
    if header[FORMAT] != VERSION:
        raise ExportBroken(
            _("Format version %(v)s is not one this program reads.") % {"v": header[FORMAT]}
        )
    titles = table[index] if index < len(table) else None
    index += 1
    events = []
    while index < len(table) and not (table[index][:1] and table[index][0].startswith("#")):
        events.append(table[index])
        index += 1
    trailer = {}
    for row in table[index:]:
        key = row[0][1:] if row else ""
        if len(row) != 3 or key not in TRAILER_KEYS or key in trailer:
            raise ExportBroken(
                _("Trailer row “%(key)s” is unknown, repeated or malformed.")
                % {"key": row[0] if row else ""}
            )
        trailer[key] = row[1]
    if list(trailer) != list(TRAILER_KEYS):
        raise ExportBroken(_("The export's trailer (rows, first and last event) is incomplete."))
    return header, titles, events, trailer


def _check_rows(events: list[list[str]]) -> dict[int, str]:
    """Recompute each row's hash from its fields; check consecutive seqs link. Returns seq→hash."""
    position = {name: i for i, name in enumerate(COLUMNS)}
    hashes: dict[int, str] = {}
    previous_seq = previous_hash = None
    for number, cells in enumerate(events, start=1):
        if len(cells) != len(COLUMNS):
            raise ExportBroken(
                _("Row %(row)d has %(n)d cells, not %(m)d.")
                % {"row": number, "n": len(cells), "m": len(COLUMNS)},
                row=number,
            )
        value = {name: cells[i] for name, i in position.items()}
        seq = _seq(value["seq"], number)
        if previous_seq is not None and seq <= previous_seq:
            raise ExportBroken(
                _(
                    "Row %(row)d (seq %(seq)d) comes after seq %(prev)d: rows are out of order "
                    "or repeated."
                ) % {"row": number, "seq": seq, "prev": previous_seq},
                row=number, seq=seq,
            )
        body, prev_hash, hash_ = _body(value, number, seq)
        if seq == 1 and prev_hash != ledger.GENESIS_HASH:
            raise ExportBroken(
                _("Row %(row)d (seq 1) does not start from the genesis hash.") % {"row": number},
                row=number, seq=seq,
            )
        try:
            content = ledger.canonical_body(body)
        except (TypeError, ValueError, rfc8785.CanonicalizationError) as exc:
            raise ExportBroken(
                _("Row %(row)d (seq %(seq)d) cannot be hashed: %(error)s")
                % {"row": number, "seq": seq, "error": exc},
                row=number, seq=seq,
            ) from None
        digest = hashlib.sha256(bytes.fromhex(prev_hash) + content).hexdigest()
        if digest != hash_:
            raise ExportBroken(
                _("Row %(row)d (seq %(seq)d) was altered: its hash does not match its content.")
                % {"row": number, "seq": seq},
                row=number, seq=seq,
            )
        if previous_seq == seq - 1 and prev_hash != previous_hash:
            raise ExportBroken(
                _("Row %(row)d (seq %(seq)d) does not link to seq %(prev)d in the row before it.")
                % {"row": number, "seq": seq, "prev": previous_seq},
                row=number, seq=seq,
            )
        hashes[seq] = hash_
        previous_seq, previous_hash = seq, hash_
    return hashes


def _seq(text: str, number: int) -> int:
    if not SEQ.fullmatch(text):
        raise ExportBroken(
            _("Row %(row)d: “%(seq)s” is not a seq.") % {"row": number, "seq": text}, row=number
        )
    return int(text)


def _body(value: dict, number: int, seq: int) -> tuple[dict, str, str]:
    """The hashed body from a row's machine columns, each checked for its stored form."""

    def bad(name: str):
        return ExportBroken(
            _("Row %(row)d (seq %(seq)d): the “%(field)s” field is not in its exported form.")
            % {"row": number, "seq": seq, "field": name}, row=number, seq=seq,
        )

    ints = {}
    for name in INT_FIELDS:
        text = value[name]
        if text and not INT.fullmatch(text):
            raise bad(name)
        ints[name] = int(text) if text else None
    times = {}
    for name in ("device_time", "received_at"):
        text = value[name]
        if (text or name == "received_at") and not TIME.fullmatch(text):
            raise bad(name)
        times[name] = text or None
    try:
        event_id = str(uuid.UUID(value["event_id"]))
    except ValueError:
        raise bad("event_id") from None
    if event_id != value["event_id"]:
        raise bad("event_id")
    try:
        payload = json.loads(value["payload"])
    except ValueError:
        raise bad("payload") from None
    for name in ("prev_hash", "hash"):
        if not HASH.fullmatch(value[name]):
            raise bad(name)
    body = {
        "seq": seq, "event_id": event_id, "kind": value["kind"], "media": ints["media_id"],
        "tag_uid": value["tag_uid"], "actor": ints["actor_id"], "device": ints["device_id"],
        "from_location": ints["from_location_id"], "to_location": ints["to_location_id"],
        "holder": ints["holder_id"], "device_time": times["device_time"],
        "device_counter": ints["device_counter"], "received_at": times["received_at"],
        "payload": payload,
    }
    return body, value["prev_hash"], value["hash"]


def _check_trailer(trailer: dict, hashes: dict[int, str], check: ExportCheck) -> None:
    found = Range()
    for seq in hashes:
        found.add(seq, hashes[seq])
    expected = dict(zip(TRAILER_KEYS, [row[1] for row in found.trailer()]))
    for key in TRAILER_KEYS:
        if trailer[key] != expected[key]:
            raise ExportBroken(
                _(
                    "The export's trailer says %(key)s is “%(theirs)s”, but its rows give "
                    "“%(ours)s”: rows were added or dropped."
                ) % {"key": key, "theirs": trailer[key], "ours": expected[key]}
            )
    check.rows, check.first_seq, check.last_seq = found.rows, found.first_seq, found.last_seq
    check.contiguous = found.contiguous
    check.from_genesis = found.contiguous and found.first_seq == 1


def _check_header(
    header: dict, check: ExportCheck, hashes: dict[int, str], key: Ed25519PublicKey
) -> None:
    def number(name: str, *, empty: bool = False) -> int | None:
        text = header[name]
        if empty and text == "":
            return None
        if not re.fullmatch(r"0|[1-9][0-9]*", text):
            raise ExportBroken(_("Header field “%(key)s” is not a number.") % {"key": name})
        return int(text)

    try:
        check.filters = json.loads(header["filters"])
    except ValueError:
        raise ExportBroken(_("The export's filters are not JSON.")) from None
    if not TIME.fullmatch(header["generated_at"]):
        raise ExportBroken(_("The export's time is not in its exported form."))
    check.generated_at, check.generated_by = header["generated_at"], header["generated_by"]
    size = check.ledger_size = number("ledger_size")
    if check.last_seq is not None and check.last_seq > size:
        raise ExportBroken(
            _("The export holds seq %(seq)d but says the ledger had only %(size)d events.")
            % {"seq": check.last_seq, "size": size}
        )
    if not HASH.fullmatch(header["ledger_head_hash"]):
        raise ExportBroken(_("The ledger head hash in the header is not a hash."))
    if size in hashes and hashes[size] != header["ledger_head_hash"]:
        raise ExportBroken(
            _("Seq %(seq)d differs from the ledger head the export names.") % {"seq": size},
            seq=size,
        )
    note, checkpoint_size = header["checkpoint_note"], number("checkpoint_size", empty=True)
    if not note:
        if checkpoint_size is not None or header["checkpoint_hash"]:
            raise ExportBroken(_("The header names a checkpoint but holds no checkpoint note."))
        return
    try:
        size_signed, hash_signed = ledger.parse_checkpoint(note, key)
    except (ValueError, IndexError) as exc:
        message = _("The checkpoint in the export cannot be trusted: %(error)s") % {"error": exc}
        raise ExportBroken(message) from None
    if not note.startswith(header["origin"] + "\n"):
        raise ExportBroken(_("The checkpoint is for another ledger than the export's."))
    if checkpoint_size != size_signed or header["checkpoint_hash"] != hash_signed:
        raise ExportBroken(_("The checkpoint's size or hash differs from its signed note."))
    if size_signed > size:
        raise ExportBroken(_(
            "The checkpoint covers more events than the ledger held when the export was made."
        ))
    check.checkpoint_size = size_signed
    if size_signed in hashes:
        if hashes[size_signed] != hash_signed:
            raise ExportBroken(
                _(
                    "Seq %(seq)d differs from the signed checkpoint at %(seq)d: the ledger was "
                    "rewritten before this export."
                ) % {"seq": size_signed},
                seq=size_signed,
            )
        check.checkpoint_in_rows = True
