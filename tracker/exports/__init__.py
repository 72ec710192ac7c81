"""Signed exports of custody events (CSV and PDF) and their offline verification.

An export answers one auditor's question with the same query string as the auditors' chain page
(tracker.audit.CustodyQuery, so a page's export link carries its filters unchanged):
`subject_kind` (media, patient, borrower, location, or events for the whole event list) with
`subject` (item code, patient ID, username, location code), `from` and `to` (local dates, both
included) and `kinds` (repeated). The events are tracker.audit.custody_events(), bounded by the
ledger's size when the export started (the ledger is append-only, so that is a fixed snapshot).

What a CSV export holds (UTF-8 with a BOM, so Excel opens Chinese text correctly; CRLF rows):

- a block of `#key,value,label` rows: the format and its version, title, when and by whom it
  was made, the filters (as RFC 8785 JSON), the ledger's size and head hash when it was made,
  the latest signed checkpoint at or below that size (its C2SP note, whole), the key id and
  origin of the ledger key, and `#columns` naming the table's columns (fixed machine names);
- the table: one row of column titles in the exporter's language, then one row per event with
  readable columns (local time, kind, item code, places, holder, actor, station: ignored by the
  hash check) and every field of the hashed body as stored (IDs, UTC times, the payload as RFC
  8785 JSON) with prev_hash and hash;
- a trailer: number of rows, first/last seq and hash, whether the rows are contiguous in seq;
- `#signature`: Ed25519 by the ledger key over "filmroom-export/v1" NUL sha256(every byte before
  the signature row). Every byte of the file is covered: the signed bytes by the signature, the
  signature row by its exact, canonical form.

What `verify_export FILE` proves (`verify_csv()`), given the ledger's public key:
- the file is byte for byte what the Filmroom holding that key produced: no byte altered, no row
  added, dropped or moved, readable columns and header included;
- each row's hash is sha256(prev_hash || RFC 8785 body) of its own fields, so each row can be
  matched, by seq and hash, with the live ledger, a later export or a checkpoint;
- rows whose seqs follow each other link (prev_hash = the hash before); an export holding every
  event from seq 1 recomputes the chain from the genesis hash;
- the checkpoint note is signed by the same key, and when the export holds the event at the
  checkpoint's size, that event's hash is the one the checkpoint signed (for an export from seq
  1, the rows up to that size are then exactly the ledger as it was signed, even against someone
  who could rewrite the database after the checkpoint was taken).
What it does not prove: that a filtered export is complete (the events of an item are not
contiguous in the chain; the events between its rows are not in the file, so leaving one out
cannot be detected from the file alone: compare with the ledger, verify_ledger, or a full
export); anything about rows after the checkpoint beyond the export's own signature; anything
at all if the ledger key was stolen (whoever holds it can sign any export and checkpoint). The
readable columns say what the server showed when it exported (a renamed place reads differently
later); they are signed but are not part of the chain hash.

The PDF is for reading and printing: the same rows with each full hash, and the same range,
ledger head and checkpoint facts. It is not signed; verify the CSV of the same filters.
"""
from .filters import ExportFilters, parse_filters
from .format import BOM, COLUMNS, FORMAT, PDF_MAX_ROWS, SIGNATURE_CONTEXT, VERSION
from .verifying import ExportCheck, verify_csv
from .writing import CsvExport, Export, Range, build_pdf, write_csv

__all__ = [
    "BOM",
    "COLUMNS",
    "FORMAT",
    "PDF_MAX_ROWS",
    "SIGNATURE_CONTEXT",
    "VERSION",
    "CsvExport",
    "Export",
    "ExportCheck",
    "ExportFilters",
    "Range",
    "build_pdf",
    "parse_filters",
    "verify_csv",
    "write_csv",
]
