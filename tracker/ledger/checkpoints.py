"""Signed checkpoints: C2SP signed notes (tlog-checkpoint layout: origin, size, base64 hash)
signed with Ed25519. The "root hash" line carries the chain hash after `size` events, not a
Merkle root."""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from ..models import CustodyEvent, LedgerCheckpoint
from .body import GENESIS_HASH
from .chain import lock


def signing_key() -> Ed25519PrivateKey:
    """The checkpoint signing key; generated on first use in development only."""
    path = Path(settings.LEDGER_SIGNING_KEY_FILE)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ImproperlyConfigured(f"{path} does not hold an Ed25519 private key.")
        return key
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            f"No ledger signing key at {path}: create one (openssl genpkey -algorithm ed25519) "
            "or set FILMROOM_LEDGER_SIGNING_KEY_FILE."
        )
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(name.encode() + b"\n" + b"\x01" + raw).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """The note verifier key string `name+keyid+base64(0x01||pubkey)` an auditor keeps offline."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    encoded = base64.b64encode(b"\x01" + raw).decode()
    return f"{name}+{key_id(name, public_key).hex()}+{encoded}"


def parse_verifier_key(vkey: str) -> Ed25519PublicKey:
    name, _kid, encoded = vkey.strip().split("+", 2)
    raw = base64.b64decode(encoded)
    if raw[:1] != b"\x01" or len(raw) != 33:
        raise ValueError("not an Ed25519 note verifier key")
    return Ed25519PublicKey.from_public_bytes(raw[1:])


def checkpoint_text(origin: str, size: int, head_hash: str) -> str:
    return f"{origin}\n{size}\n{base64.b64encode(bytes.fromhex(head_hash)).decode()}\n"


def sign_checkpoint(origin: str, size: int, head_hash: str, key: Ed25519PrivateKey) -> str:
    text = checkpoint_text(origin, size, head_hash)
    signature = key.sign(text.encode())
    stamp = base64.b64encode(key_id(origin, key.public_key()) + signature).decode()
    return f"{text}\n\u2014 {origin} {stamp}\n"


def parse_checkpoint(note: str, public_key: Ed25519PublicKey) -> tuple[int, str]:
    """Return (size, chain hash hex) of a checkpoint note whose signature `public_key` made."""
    text, sep, signatures = note.partition("\n\n")
    if not sep:
        raise ValueError("not a signed note")
    text += "\n"
    lines = text.splitlines()
    if len(lines) < 3:
        raise ValueError("checkpoint body is too short")
    origin = lines[0]
    expected_id = key_id(origin, public_key)
    for line in signatures.splitlines():
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != "\u2014" or parts[1] != origin:
            continue
        blob = base64.b64decode(parts[2])
        if blob[:4] != expected_id:
            continue
        try:
            public_key.verify(blob[4:], text.encode())
        except Exception as exc:  # cryptography raises InvalidSignature
            raise ValueError(f"bad signature on checkpoint for size {lines[1]}") from exc
        return int(lines[1]), base64.b64decode(lines[2]).hex()
    raise ValueError(f"checkpoint for size {lines[1]} carries no signature by this key")


@transaction.atomic
def checkpoint() -> LedgerCheckpoint:
    """Sign the current head of the ledger and store the note (the same size twice is one)."""
    lock()
    head = CustodyEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    size, head_hash = head if head else (0, GENESIS_HASH)
    existing = LedgerCheckpoint.objects.filter(size=size).first()
    if existing:
        return existing
    key = signing_key()
    origin = settings.LEDGER_ORIGIN
    note = sign_checkpoint(origin, size, head_hash, key)
    cp = LedgerCheckpoint(size=size, hash=head_hash, key_id=key_id(origin, key.public_key()).hex(), note=note)
    cp.save()
    return cp

