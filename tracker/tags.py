"""Tag UID normalisation: every reader's output becomes the canonical uppercase hex UID.

Accepted: hex with any of `: - space .` separators, an optional 0x prefix, any case; hex that a
reader reports byte-reversed; decimal in byte order; the 10-digit decimal of the reversed first
four bytes (common on wedge readers; only a 4-byte UID survives it whole); and any decimal form
typed on a French AZERTY layout (the shifted digit row). Wiegand-26 keeps only facility and card
number, so no UID can be recovered from it: it is refused rather than guessed.
"""
import re

from django.utils.translation import gettext as _

from .choices import UidFormat

UID_LENGTHS = (4, 7, 10)  # ISO 14443 single/double/triple size; ISO 15693 UIDs are 8 bytes
VALID_LENGTHS = {4, 7, 8, 10}
_SEPARATORS = re.compile(r"[\s:.\-]")
_AZERTY_DIGITS = str.maketrans("&é\"'(-è_çà", "1234567890")


class UidError(ValueError):
    """A reader's output that cannot be turned into a tag UID."""


def normalise_uid(raw: str, *, fmt: str = UidFormat.HEX, byte_length: int | None = None) -> str:
    """Return the canonical UID (uppercase hex) for what a reader reported in format `fmt`."""
    if raw is None or not str(raw).strip():
        raise UidError(_("Empty tag read."))
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
            _("Wiegand-26 output keeps only facility and card number; set the reader to hex.")
        )
    else:
        raise UidError(_("Unknown reader output format %(fmt)s.") % {"fmt": fmt})
    if len(data) not in VALID_LENGTHS:
        raise UidError(
            _("A tag UID has 4, 7, 8 or 10 bytes; this read has %(n)d.") % {"n": len(data)}
        )
    return data.hex().upper()


def _hex_bytes(text: str) -> bytes:
    compact = _SEPARATORS.sub("", text)
    if compact[:2].lower() == "0x":
        compact = compact[2:]
    if not compact or len(compact) % 2 or not re.fullmatch(r"[0-9A-Fa-f]+", compact):
        raise UidError(_("“%(raw)s” is not a hex tag UID.") % {"raw": text[:40]})
    return bytes.fromhex(compact)


def _decimal_bytes(text: str, byte_length: int | None) -> bytes:
    digits = text.translate(_AZERTY_DIGITS)
    if not digits.isascii() or not digits.isdigit():
        raise UidError(_("“%(raw)s” is not a decimal tag number.") % {"raw": text[:40]})
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
