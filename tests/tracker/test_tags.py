"""Tag UID normalisation: whatever a keyboard-wedge reader types becomes the canonical UID.

Expected values are worked out by hand for two real UIDs:
- 4-byte DE AD BE EF: in-order decimal 0xDEADBEEF = 3735928559; its bytes reversed are
  EF BE AD DE = 0xEFBEADDE = 4022250974 (the 10-digit "reversed first 4 bytes" form).
- 7-byte NXP 04 A1 B2 C3 D4 E5 F6: in-order decimal 1303689068602870; byte-reversed hex
  F6E5D4C3B2A104; its reversed first four bytes C3 B2 A1 04 = 3283263748.
On a French AZERTY keyboard the unshifted digit row types & é " ' ( - è _ ç à for 1 2 3 4 5 6 7 8
9 0, so 3735928559 arrives as "è"(çé_((ç and 4022250974 as 'àééé(àçè'.
"""
import pytest

from tracker.choices import UidFormat
from tracker.tags import UidError, normalise_uid


@pytest.mark.parametrize(
    "raw",
    [
        "DEADBEEF",
        "deadbeef",
        "de:ad:be:ef",
        "DE-AD-BE-EF",
        "de ad be ef",
        "0xDEADBEEF",
        "0XdeadBEEF",
        "0x de:ad:be:ef",
        "  DE.AD.BE.EF\n",
    ],
)
def test_it_reads_a_4_byte_hex_uid_in_any_case_and_separator(raw):
    assert normalise_uid(raw) == "DEADBEEF"


@pytest.mark.parametrize("raw", ["04:a1:b2:c3:d4:e5:f6", "04-A1-B2-C3-D4-E5-F6", "04 a1 b2 c3 d4 e5 f6"])
def test_it_reads_a_7_byte_hex_uid_as_uppercase_without_separators(raw):
    assert normalise_uid(raw) == "04A1B2C3D4E5F6"


def test_it_keeps_8_and_10_byte_uids_whole():
    assert normalise_uid("e0:04:01:00:12:34:56:78") == "E004010012345678"
    assert normalise_uid("0102030405060708090a") == "0102030405060708090A"


@pytest.mark.parametrize(
    "raw, expected",
    [("EFBEADDE", "DEADBEEF"), ("ef:be:ad:de", "DEADBEEF"), ("F6E5D4C3B2A104", "04A1B2C3D4E5F6")],
)
def test_it_turns_byte_reversed_hex_back_into_reading_order(raw, expected):
    assert normalise_uid(raw, fmt=UidFormat.HEX_REVERSED) == expected


@pytest.mark.parametrize(
    "raw, byte_length, expected",
    [
        ("3735928559", None, "DEADBEEF"),
        ("3735928559", 4, "DEADBEEF"),
        ("1303689068602870", None, "04A1B2C3D4E5F6"),
        ("1303689068602870", 7, "04A1B2C3D4E5F6"),
        # Leading zero bytes vanish from a decimal number: the byte length puts them back.
        ("1", 4, "00000001"),
        ("78187493530", 7, "0000123456789A"),
        # Without a length, the shortest UID size that holds the number: 8 bytes for ISO 15693.
        ("16142028064219747960", None, "E004010012345678"),
    ],
)
def test_it_reads_decimal_in_byte_order(raw, byte_length, expected):
    assert normalise_uid(raw, fmt=UidFormat.DECIMAL, byte_length=byte_length) == expected


def test_it_reads_the_10_digit_decimal_of_the_reversed_first_4_bytes():
    assert normalise_uid("4022250974", fmt=UidFormat.DECIMAL_REVERSED_4) == "DEADBEEF"
    # Zero-padded to ten digits: 01 00 00 00 reversed is 1.
    assert normalise_uid("0000000001", fmt=UidFormat.DECIMAL_REVERSED_4) == "01000000"


def test_it_recovers_only_the_first_4_bytes_of_a_7_byte_uid_from_the_reversed_decimal():
    # The format itself is lossy for longer UIDs: only 04 A1 B2 C3 survive.
    assert normalise_uid("3283263748", fmt=UidFormat.DECIMAL_REVERSED_4) == "04A1B2C3"


def test_it_refuses_a_reversed_decimal_that_does_not_fit_in_4_bytes():
    with pytest.raises(UidError, match="does not fit in 4 bytes"):
        normalise_uid("4294967296", fmt=UidFormat.DECIMAL_REVERSED_4)


@pytest.mark.parametrize(
    "raw, fmt, expected",
    [
        ('"è"(çé_((ç', UidFormat.DECIMAL, "DEADBEEF"),
        ("'àééé(àçè'", UidFormat.DECIMAL_REVERSED_4, "DEADBEEF"),
        ('&"à"-_çà-_-àé_èà', UidFormat.DECIMAL, "04A1B2C3D4E5F6"),
    ],
)
def test_it_reads_decimal_digits_typed_on_an_azerty_keyboard(raw, fmt, expected):
    assert normalise_uid(raw, fmt=fmt) == expected


def test_it_maps_the_whole_azerty_digit_row():
    assert normalise_uid("&é\"'(-è_çà", fmt=UidFormat.DECIMAL) == "499602D2"  # 1234567890


def test_it_refuses_wiegand_26_because_the_uid_cannot_be_recovered():
    with pytest.raises(UidError) as refused:
        normalise_uid("12:34567", fmt=UidFormat.WIEGAND_26)
    message = str(refused.value)
    assert "Wiegand-26" in message
    assert "cannot be identified" in message
    assert "hex" in message  # what to do next


@pytest.mark.parametrize(
    "raw, fmt, says",
    [
        ("", UidFormat.HEX, "sent nothing"),
        ("   ", UidFormat.HEX, "sent nothing"),
        (None, UidFormat.HEX, "sent nothing"),
        ("hello", UidFormat.HEX, "not a tag UID"),
        ("04:A1:ZZ:C3", UidFormat.HEX, "not a tag UID"),
        ("0x", UidFormat.HEX, "not a tag UID"),
        ("DEADBEE", UidFormat.HEX, "odd number of hex digits"),
        ("04:A1:B2", UidFormat.HEX, "this read has 3"),
        ("04A1B2C3D4", UidFormat.HEX, "this read has 5"),
        ("04A1B2C3D4E5F60708090A0B", UidFormat.HEX, "this read has 12"),
        ("'àééé(àçè'", UidFormat.HEX, "AZERTY"),
        ("12a4", UidFormat.DECIMAL, "not a decimal tag number"),
        ("3735928559", UidFormat.DECIMAL, None),
        ("1" * 40, UidFormat.DECIMAL, "bytes; this read has"),
        ("3735928559", "morse", "Unknown reader output format"),
    ],
)
def test_it_refuses_what_is_not_a_tag_uid_with_a_readable_message(raw, fmt, says):
    if says is None:  # a control: the same text in the right format is fine
        assert normalise_uid(raw, fmt=fmt) == "DEADBEEF"
        return
    with pytest.raises(UidError) as refused:
        normalise_uid(raw, fmt=fmt)
    assert says in str(refused.value)


def test_it_refuses_a_decimal_that_does_not_fit_the_byte_length_given():
    with pytest.raises(UidError, match="does not fit in 4 bytes"):
        normalise_uid("1303689068602870", fmt=UidFormat.DECIMAL, byte_length=4)


def test_it_is_a_value_error_so_callers_can_treat_it_as_bad_input():
    assert issubclass(UidError, ValueError)
