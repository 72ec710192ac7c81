"""The custody ledger: the only writer of CustodyEvent, and the proof that history was not changed.

- body.py: what is hashed (`event_body`, RFC 8785 canonical JSON, `chain_hash`);
- chain.py: appending (`lock`, `replayed`, `append`) under a lock held in the database;
- verify.py: `verify_rows`, `verify_ledger` (the chain, then the signed checkpoints), mostly from
  the bodies the database stores (tracker/event_body_sql.py) with stored.py (the row checks, also
  run as worker processes) and rows.py (reading rows through the ORM or as raw columns);
- checkpoints.py: Ed25519-signed C2SP notes (`checkpoint`, `parse_checkpoint`, keys).
"""

from .body import (
    _BODY_KEYS,
    BODY_FIELDS,
    GENESIS_HASH,
    body_json,
    canonical_body,
    chain_hash,
    event_body,
    format_time,
)
from .chain import (
    ADVISORY_LOCK_KEY,
    REQUEST_FIELDS,
    EventRequest,
    Read,
    append,
    lock,
    recorded,
    replayed,
    vouch_new,
)
from .checkpoints import (
    checkpoint,
    checkpoint_text,
    key_id,
    parse_checkpoint,
    parse_verifier_key,
    sign_checkpoint,
    signing_key,
    verifier_key,
)
from .verify import Verification, ledger_rows, verify_ledger, verify_rows

__all__ = [
    "_BODY_KEYS",
    "BODY_FIELDS",
    "GENESIS_HASH",
    "body_json",
    "canonical_body",
    "chain_hash",
    "event_body",
    "format_time",
    "ADVISORY_LOCK_KEY",
    "REQUEST_FIELDS",
    "EventRequest",
    "Read",
    "append",
    "lock",
    "recorded",
    "replayed",
    "vouch_new",
    "checkpoint",
    "checkpoint_text",
    "key_id",
    "parse_checkpoint",
    "parse_verifier_key",
    "sign_checkpoint",
    "signing_key",
    "verifier_key",
    "Verification",
    "ledger_rows",
    "verify_ledger",
    "verify_rows",
]
