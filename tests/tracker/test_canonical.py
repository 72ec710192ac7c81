"""The ledger writes an event's canonical JSON itself, for speed; these properties hold it to the
rfc8785 package byte for byte (or to the very same error), and hold the fast reading of the
stored table to the plain row-by-row verification, whatever the rows contain."""
import hashlib
import json
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import rfc8785
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tracker import ledger, services
from tracker.choices import EventKind
from tracker.exceptions import InvalidRequest
from tracker.models import CustodyEvent

ZONES = [
    None, timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=11)),
    ZoneInfo("Europe/Berlin"), ZoneInfo("America/St_Johns"),
]
HEX = "0123456789ABCDEF"
# Quotes, backslashes, every control character, DEL, the line separators, astral characters.
TRICKY = '"\\/\x7f\u2028\u2029\ufeff\U0001f4bf' + "".join(map(chr, range(0x20)))


def texts(*, max_size=20, surrogates=True, nul=True):
    alphabet = st.characters(exclude_categories=() if surrogates else ("Cs",))
    tricky = TRICKY if nul else TRICKY.replace("\x00", "")
    if not nul:
        alphabet = alphabet.filter(lambda c: c != "\x00")
    return st.text(st.one_of(alphabet, st.sampled_from(tricky)), max_size=max_size)


def numbers():
    limit = 2**53 - 1
    return st.one_of(
        st.integers(-limit, limit), st.sampled_from([limit, -limit, limit + 1, -limit - 1]),
        st.integers(), st.booleans(),
    )


def json_values(*, floats=True, surrogates=True, nul=True):
    leaves = st.one_of(
        st.none(), st.booleans(), numbers(),
        st.floats(allow_nan=False, allow_infinity=False) if floats else st.nothing(),
        texts(surrogates=surrogates, nul=nul),
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4)
        | st.dictionaries(texts(max_size=8, surrogates=surrogates, nul=nul), inner, max_size=4),
        max_leaves=12,
    )


def payloads(*, floats=True, surrogates=True, nul=True):
    options = {"floats": floats, "surrogates": surrogates, "nul": nul}
    keys = ["due_at", "reason", "code", "kind", "Ünïcode", "\ufeff", "\U0001f4bf"]
    flat = st.dictionaries(
        st.one_of(st.sampled_from(keys), texts(surrogates=surrogates, nul=nul)),
        st.one_of(st.none(), st.booleans(), numbers(), texts(surrogates=surrogates, nul=nul)),
        max_size=4,
    )
    return st.one_of(st.just({}), flat, json_values(**options))


def times():
    return st.one_of(st.none(), st.datetimes(timezones=st.sampled_from(ZONES)))


def rows():
    """Mappings with BODY_FIELDS: mostly what append() stores, often something it never would."""
    ids = st.one_of(st.none(), numbers())
    return st.fixed_dictionaries({
        "seq": numbers(),
        "event_id": st.one_of(st.uuids(), st.uuids().map(str), texts(), st.integers()),
        "kind": st.one_of(
            st.sampled_from(EventKind.values), st.sampled_from(list(EventKind)), texts()
        ),
        "media_id": ids,
        "tag_uid": st.one_of(st.just(""), st.text(HEX, max_size=20), texts(), st.none()),
        "actor_id": ids,
        "device_id": ids,
        "from_location_id": ids,
        "to_location_id": ids,
        "holder_id": ids,
        "device_time": times(),
        "device_counter": ids,
        "received_at": st.one_of(times(), texts()),
        "payload": payloads(),
        "prev_hash": st.just(ledger.GENESIS_HASH),
        "hash": st.just(""),
    })


def outcome(write):
    """What a serialiser did: its bytes, or the error it raised (type and message)."""
    try:
        return write()
    except Exception as exc:
        return type(exc), str(exc)


@settings(max_examples=1500)
@given(rows())
def test_it_writes_an_events_hashed_bytes_exactly_as_rfc8785_does(row):
    assert outcome(lambda: ledger.body_json(row)) == outcome(
        lambda: rfc8785.dumps(ledger.event_body(row))
    )


@settings(max_examples=1500)
@given(rows(), st.sets(st.sampled_from(sorted(ledger._BODY_KEYS)), max_size=2), st.booleans())
def test_it_serialises_any_body_exactly_as_rfc8785_does(row, dropped, extra):
    try:
        body = ledger.event_body(row)
    except Exception:
        body = {name: row.get(name) for name in ledger._BODY_KEYS}
    for name in dropped:
        body.pop(name)
    if extra:
        body["note"] = "extra"
    assert outcome(lambda: ledger.canonical_body(body)) == outcome(lambda: rfc8785.dumps(body))


def test_it_orders_payload_keys_by_utf16_code_units_not_code_points():
    # U+FEFF sorts after U+1F4BF by code point, before it in UTF-16 (a surrogate pair, D83D ...).
    row = {name: None for name in ledger.BODY_FIELDS} | {
        "seq": 1, "event_id": uuid.uuid4(), "kind": "seen", "tag_uid": "",
        "received_at": datetime(2025, 5, 1, tzinfo=timezone.utc),
        "payload": {"\ufeff": 1, "\U0001f4bf": 2, "z": 3, "A": 4},
    }
    written = ledger.body_json(row)
    assert written == rfc8785.dumps(ledger.event_body(row))
    assert written.index("\U0001f4bf".encode()) < written.index("\ufeff".encode())


def test_it_hashes_a_usual_event_as_the_ledger_docstring_defines():
    row = {
        "seq": 7, "event_id": uuid.UUID("12345678-1234-4234-8234-123456789abc"),
        "kind": "checked_out", "media_id": 3, "tag_uid": "04A1B2C3D4E5F6", "actor_id": 1,
        "device_id": None, "from_location_id": 2, "to_location_id": 4, "holder_id": 5,
        "device_time": datetime(2025, 3, 1, 8, 0, 0, 0, tzinfo=ZoneInfo("Europe/Berlin")),
        "device_counter": 41, "received_at": datetime(2025, 3, 1, 7, 0, 1, 5, tzinfo=timezone.utc),
        "payload": {"due_at": "2025-03-15T07:00:01.000005Z"},
    }
    expected = (
        b'{"actor":1,"device":null,"device_counter":41,"device_time":"2025-03-01T07:00:00.000000Z",'
        b'"event_id":"12345678-1234-4234-8234-123456789abc","from_location":2,"holder":5,'
        b'"kind":"checked_out","media":3,"payload":{"due_at":"2025-03-15T07:00:01.000005Z"},'
        b'"received_at":"2025-03-01T07:00:01.000005Z","seq":7,"tag_uid":"04A1B2C3D4E5F6",'
        b'"to_location":4}'
    )
    assert ledger.body_json(row) == expected == rfc8785.dumps(ledger.event_body(row))
    prev = "ab" * 32
    assert ledger.chain_hash(prev, ledger.event_body(row)) == hashlib.sha256(
        bytes.fromhex(prev) + expected
    ).hexdigest()


# --- the stored table, read fast, against the plain row-by-row verification ----------------------


def reference_verdict(rows) -> tuple:
    """verify_rows() as first written: event_body() and the rfc8785 package, row by row."""
    expected, prev = 1, ledger.GENESIS_HASH
    for row in rows:
        seq = row["seq"]
        if seq != expected:
            return (False, expected, f"event {expected} is missing or out of order (found {seq})")
        if row["prev_hash"] != prev:
            return (False, seq, f"event {seq} does not link to the hash of event {seq - 1}")
        try:
            body = rfc8785.dumps(ledger.event_body(row))
        except (TypeError, ValueError, InvalidRequest, rfc8785.CanonicalizationError) as exc:
            return (False, seq, f"event {seq} cannot be read: {exc}")
        if hashlib.sha256(bytes.fromhex(prev) + body).hexdigest() != row["hash"]:
            return (False, seq, f"event {seq} was altered: its hash does not match its content")
        prev = row["hash"]
        expected += 1
    return (True, expected - 1, prev)


def verdict(result: ledger.Verification) -> tuple:
    if result.ok:
        return (True, result.events, result.head_hash)
    return (False, result.first_bad_seq, result.reason)


def storable_rows(usual_payloads=None):
    """Rows the database columns can hold, made and chained as append() would, though with
    values append() never makes; then perhaps one link, hash or seq spoiled."""
    big, users = 2**63 - 1, 2**31 - 1  # auth_user keeps a 32-bit id
    ids = st.one_of(st.none(), st.integers(1, 50), st.integers(-big, big))
    user_ids = st.one_of(st.none(), st.integers(1, 50), st.integers(-users, users))
    edges = [  # years strftime writes unpadded, an instant that is year 999 only in UTC, the ends
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),
        datetime(1000, 1, 1, 3, tzinfo=ZONES[2]),
        datetime(1, 1, 2, tzinfo=timezone.utc),
        datetime(9999, 12, 30, 23, 59, 59, tzinfo=timezone.utc),
        datetime(2025, 3, 1, 7, 0, 0, 0, tzinfo=timezone.utc),
    ]
    stored_times = st.one_of(
        st.sampled_from(edges),
        st.datetimes(
            min_value=datetime(1, 1, 2),
            max_value=datetime(9999, 12, 30),
            timezones=st.sampled_from(ZONES[1:]),
        ),
    )
    row = st.fixed_dictionaries({
        "event_id": st.uuids(),
        "kind": st.one_of(
            st.sampled_from(EventKind.values), texts(max_size=24, surrogates=False, nul=False)
        ),
        "media_id": ids,
        "tag_uid": st.one_of(st.text(HEX, max_size=20), texts(surrogates=False, nul=False)),
        "actor_id": user_ids,
        "device_id": ids,
        "from_location_id": ids,
        "to_location_id": ids,
        "holder_id": user_ids,
        "device_time": st.one_of(st.none(), stored_times),
        "device_counter": ids,
        "received_at": stored_times,
        "payload": st.one_of(
            st.just({}),
            payloads(floats=False, surrogates=False, nul=False).filter(lambda p: p is not None),
        ) if usual_payloads is None else usual_payloads,
    })
    spoil = st.sampled_from([None, None, "hash", "link", "seq", "padded years", "json.dumps"])
    return st.tuples(st.lists(row, min_size=1, max_size=9), spoil, st.integers(0, 8))


def near_miss(row: dict, how: str) -> bytes:
    """The body as a careless forger would write it: years zero-padded (isoformat), or keys in
    code point order and Python's number format (json.dumps): equal to RFC 8785 most of the time."""
    body = ledger.event_body(row)
    if how == "padded years":
        for name in ("device_time", "received_at"):
            if row[name] is not None:
                utc = row[name].astimezone(timezone.utc)
                body[name] = utc.isoformat(timespec="microseconds")[:26] + "Z"
        return rfc8785.dumps(body)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def store(rows: list[dict], spoil: str | None, at: int) -> None:
    at = min(at, len(rows) - 1)
    prev = ledger.GENESIS_HASH
    for seq, row in enumerate(rows, start=1):
        row.update(seq=seq, prev_hash=prev)
        try:
            if spoil in ("padded years", "json.dumps") and seq == at + 1:
                body = near_miss(row, spoil)
            else:
                body = rfc8785.dumps(ledger.event_body(row))
            row["hash"] = hashlib.sha256(bytes.fromhex(prev) + body).hexdigest()
        except (rfc8785.CanonicalizationError, UnicodeEncodeError):
            row["hash"] = hashlib.sha256(b"unreadable").hexdigest()
        prev = row["hash"]
    if spoil == "hash":
        rows[at]["hash"] = "f" * 64
    elif spoil == "link":
        rows[at]["prev_hash"] = "e" * 64
    elif spoil == "seq":
        rows[at]["seq"] += 100
    CustodyEvent.objects.bulk_create([CustodyEvent(**row) for row in rows])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(storable_rows())
def test_it_judges_any_stored_table_exactly_as_the_row_by_row_check_does(db, monkeypatch, case):
    rows, spoil, at = case
    monkeypatch.setattr(ledger.verify, "VERIFY_CHUNK_ROWS", 3)  # chunk boundaries, several per case
    with transaction.atomic():
        store(rows, spoil, at)
        try:
            stored = list(ledger.ledger_rows())
        except (ValueError, OverflowError):
            assume(False)  # a value the ORM itself cannot read back: nothing to compare
        assert verdict(ledger.verify_ledger()) == reference_verdict(stored)
        assert verdict(ledger.verify_rows(stored)) == reference_verdict(stored)
        transaction.set_rollback(True)


def test_it_reads_a_usual_ledger_straight_from_the_table(make_media, cast, places, monkeypatch):
    media = [make_media() for _ in range(3)]
    for n in range(12):
        services.media_seen(media=media[n % 3], location=places["shelf2"], actor=cast["staff"])
    services.media_check_out(media=media[0], borrower=cast["doctor"], actor=cast["staff"])
    monkeypatch.setattr(ledger.verify, "VERIFY_CHUNK_ROWS", 4)
    with CaptureQueriesContext(connection) as queries:
        result = ledger.verify_ledger()
    assert result.ok and result.events == 16
    reads = [q["sql"] for q in queries.captured_queries if "custodyevent" in q["sql"]]
    if connection.vendor == "postgresql":
        # The server judges every row: its size, the seqs it does not vouch for (none), then
        # the head hash; no event is read as a row, through the ORM or otherwise.
        assert len(reads) == 3, "\n".join(r[:300] for r in reads)
        assert "count(*)" in reads[0] and "sha256" in reads[1] and "payload" not in reads[2]
    else:
        # Four chunks and the empty read that ends them; no chunk read again through the ORM.
        assert len(reads) == 5, reads
    assert verdict(result) == reference_verdict(ledger.ledger_rows())


def usual_payloads():
    """Payloads of the forms the services write (and near them): nothing, one or two flat
    members with words, times, ids and numbers at the edges of what a double holds."""
    keys = st.sampled_from(["due_at", "reason", "undo_of", "note", "copies", "a", "zz", "A_1", "\ufeff"])
    values = st.one_of(
        st.none(), st.booleans(), st.integers(-(10**16), 10**16),
        st.sampled_from([0, 10**15 - 1, 10**15, 2**53 - 1, 2**53, -(2**53 - 1), -(2**53)]),
        st.sampled_from(["2025-03-15T07:00:01.000005Z", "Übergabe an Station 3 — 病房", "", "x, ", '"', "a\\b"]),
        texts(max_size=8, surrogates=False, nul=False),
    )
    return st.one_of(st.just({}), st.dictionaries(keys, values, min_size=1, max_size=3))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(storable_rows(usual_payloads()))
def test_it_judges_a_table_of_usual_payloads_exactly_as_the_row_by_row_check_does(
    db, monkeypatch, case
):
    rows, spoil, at = case
    monkeypatch.setattr(ledger.verify, "VERIFY_CHUNK_ROWS", 3)
    monkeypatch.setattr(ledger.verify, "ODD_RUN_GAP", 2)  # odd rows walked in several runs
    with transaction.atomic():
        store(rows, spoil, at)
        stored = list(ledger.ledger_rows())
        assert verdict(ledger.verify_ledger()) == reference_verdict(stored)
        transaction.set_rollback(True)
