"""Tag UID normalisation: every reader's output becomes the canonical uppercase hex UID.

Accepted: hex with any of `: - space .` separators, an optional 0x prefix, any case; hex that a
reader reports byte-reversed; decimal in byte order; the 10-digit decimal of the reversed first
four bytes (common on wedge readers; only a 4-byte UID survives it whole); and any decimal form
typed on a French AZERTY layout (the shifted digit row). Wiegand-26 keeps only facility and card
number, so no UID can be recovered from it: it is refused rather than guessed.
"""
import base64
import hmac
import re
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils.translation import gettext as _

from .choices import UidFormat

# ISO 14443 single/double/triple size (4, 7, 10) and ISO 15693 (8), shortest first: a decimal
# read without a known length takes the shortest that holds it.
UID_LENGTHS = (4, 7, 8, 10)
VALID_LENGTHS = frozenset(UID_LENGTHS)
_SEPARATORS = re.compile(r"[\s:.\-]")
_AZERTY_ROW = "&é\"'(-è_çà"
_AZERTY_DIGITS = str.maketrans(_AZERTY_ROW, "1234567890")


class UidError(ValueError):
    """A reader's output that cannot be turned into a tag UID."""


def normalise_uid(raw: str, *, fmt: str = UidFormat.HEX, byte_length: int | None = None) -> str:
    """Return the canonical UID (uppercase hex) for what a reader reported in format `fmt`."""
    if raw is None or not str(raw).strip():
        raise UidError(_("The reader sent nothing. Tap the tag again."))
    text = str(raw).strip()
    if fmt in (UidFormat.HEX, UidFormat.HEX_REVERSED):
        data = _hex_bytes(text)
        if fmt == UidFormat.HEX_REVERSED:
            data = data[::-1]
    elif fmt == UidFormat.DECIMAL:
        data = _decimal_bytes(text, byte_length)
    elif fmt == UidFormat.DECIMAL_REVERSED_4:
        data = _decimal_bytes(text, 4)[::-1]
    elif fmt == UidFormat.WIEGAND_26:
        raise UidError(
            _(
                "Wiegand-26 output keeps only a facility code and card number, not the tag's UID, "
                "so the tag cannot be identified. Set the reader to hex output."
            )
        )
    else:
        raise UidError(_("Unknown reader output format %(fmt)s.") % {"fmt": fmt})
    if len(data) not in VALID_LENGTHS:
        raise UidError(
            _(
                "A tag UID has 4, 7, 8 or 10 bytes; this read has %(n)d. Check the reader's "
                "output format."
            )
            % {"n": len(data)}
        )
    return data.hex().upper()


def _hex_bytes(text: str) -> bytes:
    compact = _SEPARATORS.sub("", text)
    if compact[:2].lower() == "0x":
        compact = compact[2:]
    if not re.fullmatch(r"[0-9A-Fa-f]+", compact):
        if any(char in _AZERTY_ROW.replace("-", "") for char in compact):
            raise UidError(
                _(
                    "“%(raw)s” looks like digits typed on a French (AZERTY) keyboard. Set the "
                    "reader to a decimal format, or the station's keyboard layout to US."
                )
                % {"raw": text[:40]}
            )
        raise UidError(
            _("“%(raw)s” is not a tag UID: expected hex digits such as 04:A1:B2:C3:D4:E5:F6.")
            % {"raw": text[:40]}
        )
    if len(compact) % 2:
        raise UidError(
            _(
                "“%(raw)s” has an odd number of hex digits (%(n)d); a byte is two digits, so part "
                "of the read is missing. Tap the tag again."
            )
            % {"raw": text[:40], "n": len(compact)}
        )
    return bytes.fromhex(compact)


def _decimal_bytes(text: str, byte_length: int | None) -> bytes:
    digits = text.translate(_AZERTY_DIGITS)
    if not digits.isascii() or not digits.isdigit():
        raise UidError(
            _("“%(raw)s” is not a decimal tag number: expected digits only.") % {"raw": text[:40]}
        )
    value = int(digits)
    if byte_length is None:
        needed = max(1, (value.bit_length() + 7) // 8)
        byte_length = next((n for n in UID_LENGTHS if n >= needed), needed)
    try:
        return value.to_bytes(byte_length, "big")
    except OverflowError:
        raise UidError(
            _("“%(raw)s” does not fit in %(n)d bytes.") % {"raw": text[:40], "n": byte_length}
        ) from None


# --- NTAG 424 DNA Secure Unique NFC (SUN) ---------------------------------------------------
# AN12196: PICC data = AES-128-CBC(zero IV) decrypt of `e` with the SDM meta-read key: a tag
# byte, the 7-byte UID and a 3-byte little-endian read counter. The session MAC key is
# AES-CMAC(file-read key, 3CC300010080 || UID || counter); the URL's `c` is the odd-indexed
# bytes of AES-CMAC(session key, message), where the message is empty, or the ASCII of the
# mirrored `enc` value followed by "&cmac=" when the tag also mirrors encrypted file data.

SV2_PREFIX = bytes.fromhex("3CC300010080")


class SunError(ValueError):
    """A SUN message that is not authentic (wrong MAC, malformed, or replayed)."""


@dataclass(frozen=True)
class SunMessage:
    uid: str
    counter: int


def _aes_cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def _hex_param(value: str, length: int, name: str) -> bytes:
    try:
        data = bytes.fromhex(value or "")
    except ValueError:
        raise SunError(_("The tag's “%(name)s” value is not hex.") % {"name": name}) from None
    if len(data) != length:
        raise SunError(_("The tag's “%(name)s” value has the wrong length.") % {"name": name})
    return data


def sun_picc_data(e: str, meta_key: bytes) -> SunMessage:
    """Decrypt the `e` (PICC data) parameter: which tag it is and its read counter."""
    decryptor = Cipher(algorithms.AES(meta_key), modes.CBC(bytes(16))).decryptor()
    plain = decryptor.update(_hex_param(e, 16, "e")) + decryptor.finalize()
    if plain[0] & 0xC0 != 0xC0 or plain[0] & 0x0F != 7:
        raise SunError(_("This tag message does not decrypt with the site's SUN key."))
    return SunMessage(plain[1:8].hex().upper(), int.from_bytes(plain[8:11], "little"))


def sun_mac(*, uid: str, counter: int, file_key: bytes, enc: str | None = None) -> str:
    session_key = _aes_cmac(file_key, SV2_PREFIX + bytes.fromhex(uid) + counter.to_bytes(3, "little"))
    message = f"{enc}&cmac=".encode() if enc else b""
    return _aes_cmac(session_key, message)[1::2].hex().upper()


def sun_check_mac(message: SunMessage, *, c: str, file_key: bytes, enc: str | None = None) -> None:
    expected = sun_mac(uid=message.uid, counter=message.counter, file_key=file_key, enc=enc)
    if not hmac.compare_digest(expected, _hex_param(c, 8, "c").hex().upper()):
        raise SunError(_("The tag's signature does not match: this is not the genuine tag."))


# Per-tag SUN file keys are stored encrypted (Fernet) under a key derived from
# FILMROOM_TAG_KEY_SECRET (default: the Django SECRET_KEY): a database dump alone cannot forge tags.


def _tag_key_cipher() -> Fernet:
    secret = (settings.TAG_KEY_SECRET or settings.SECRET_KEY).encode()
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"filmroom tag keys").derive(secret)
    return Fernet(base64.urlsafe_b64encode(derived))


def seal_sun_key(key: bytes) -> bytes:
    if len(key) != 16:
        raise SunError(_("A SUN key is 16 bytes (32 hex digits)."))
    return _tag_key_cipher().encrypt(key)


def open_sun_key(sealed: bytes) -> bytes:
    try:
        return _tag_key_cipher().decrypt(bytes(sealed))
    except InvalidToken:
        raise SunError(_("This tag's key cannot be read with the site's key secret.")) from None
