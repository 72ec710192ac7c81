"""The custody ledger: a gap-free hash chain that names the first altered event, refuses
changes through the ORM and the database, answers replays idempotently, and signs checkpoints
that expose even a rewrite whose hashes were all recomputed."""
import base64
import copy
import hashlib
import random
import uuid
from contextlib import contextmanager
from datetime import timedelta
from datetime import timezone as dt_timezone
from importlib import import_module

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.conftest import make_user
from tests.tracker.signature_images import drawn
from tracker import ledger, services
from archive.models import Patient, Study
from tracker.choices import DiscVerdict, EventKind, FlagKind, LocationKind, MediaKind, MediaStatus, Role, StudySource
from tracker.exceptions import EventConflict
from tracker.ledger import EventRequest, Read
from tracker.models import (
    AppendOnlyError,
    CustodyEvent,
    Flag,
    LedgerCheckpoint,
    Loan,
    Location,
    Media,
    ReaderDevice,
)

# Every test here touches the test database, if only through the module's busy ledger: the mark
# makes pytest-django create that database even when only data-only tests are selected (it sets
# up databases just for the tests that ask for them, and would otherwise leave the real one).
pytestmark = pytest.mark.django_db

BUSY_LEDGER_SIZE = 500
# Event kinds declared for the Loans issue whose services are still being written; each leaves
# this set (and joins build_busy_ledger below) in the commit that adds its service.
NO_SERVICE_YET: set[str] = set()
TAMPERING_TRIALS = 1000


# --- helpers -----------------------------------------------------------------------------------


def count() -> int:
    return CustodyEvent.objects.count()


@contextmanager
def checks_settled():
    """PostgreSQL refuses ALTER TABLE and TRUNCATE on a table with foreign-key checks still
    pending in the transaction (Django defers them); the test's rows are not yet committed, so
    run those checks now, as a fresh transaction would have them, and defer them again after."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        try:
            yield
        finally:
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@contextmanager
def triggers_lifted():
    """Act as the database owner: lift the append-only triggers (as tests/conftest.py's
    wipe_database does), and put them back afterwards."""
    triggers = import_module("tracker.migrations.0002_ledger_append_only_triggers")
    tables = triggers.APPEND_ONLY_TABLES
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with checks_settled():
                for table in tables:
                    cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            for statement in triggers.SQLITE_DROP:
                cursor.execute(statement)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with checks_settled():
                    for table in tables:
                        cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER USER")
            else:
                for statement in triggers.SQLITE_TRIGGERS:
                    cursor.execute(statement)


def rewrite_stored_rows(rows: list[dict], *, columns: tuple[str, ...]) -> None:
    """Overwrite the stored events with `rows` (seq unchanged), for the given plain columns."""
    with connection.cursor() as cursor:
        for row in rows:
            assignments = ", ".join(f"{name} = %s" for name in columns)
            cursor.execute(
                f"UPDATE tracker_custodyevent SET {assignments} WHERE seq = %s",
                [row[name] for name in columns] + [row["seq"]],
            )


def rehash_from(rows: list[dict], start_index: int) -> None:
    """Recompute prev_hash and hash from rows[start_index] on, as a careful forger would."""
    prev = rows[start_index - 1]["hash"] if start_index else ledger.GENESIS_HASH
    for row in rows[start_index:]:
        row["prev_hash"] = prev
        row["hash"] = prev = ledger.chain_hash(prev, ledger.event_body(row))


def other_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# --- a busy day's ledger, built once with the real services ------------------------------------


def build_busy_ledger(size: int) -> None:
    """Register, tag, lend, hand over, move, see, return and retire until `size` events exist."""
    rng = random.Random(20261124)
    staff = make_user("ledger-staff", Role.FILE_ROOM)
    doctors = [
        make_user(f"ledger-doctor{n}", Role.CLINICIAN, email=f"doctor{n}@hospital.example")
        for n in range(3)
    ]
    room = Location.objects.create(code="L-FR", name="File room", kind=LocationKind.ROOM)
    shelves = [
        Location.objects.create(
            code=f"L-A{n}", name=f"Shelf {n}", kind=LocationKind.SHELF, parent=room
        )
        for n in range(3)
    ]
    clinic = Location.objects.create(
        code="L-ORTHO", name="Orthopaedics", kind=LocationKind.DEPARTMENT
    )
    courier = Location.objects.create(code="L-COURIER", name="Courier", kind=LocationKind.TRANSIT)
    reader = ReaderDevice.objects.create(name="ledger-desk", location=room)
    counter = iter(range(1, 10**6))

    def read(uid: str = "") -> Read:
        return Read(uid, timezone.now() - timedelta(seconds=rng.randrange(3600)), next(counter))

    items = []
    for n in range(20):
        item = services.media_register(
            code=f"L-{n:03d}", kind=rng.choice(MediaKind.values), home_location=rng.choice(shelves),
            actor=staff,
        )
        uid = f"04{n:012X}"
        services.tag_bind(uid=uid, media=item, actor=staff, device=reader, read=read(uid))
        items.append((item, uid))
    spare_tags = iter(f"05{n:012X}" for n in range(10**6))
    patient = Patient.objects.create(patient_id="L-MRN-1")
    studies = [
        Study.objects.create(study_instance_uid=f"1.2.826.0.1.3680043.10.1124.9{n}", patient=patient)
        for n in range(3)
    ]

    def unlink_one(item):
        """Unlink a study the item holds (one is linked first if it holds none: the service
        refuses to unlink what was never linked)."""
        held = list(item.studies.order_by("study_instance_uid")[:1])
        if not held:
            services.media_studies_link(media=item, studies=studies[:1], actor=staff, source=StudySource.MANUAL)
            held = studies[:1]
        services.media_studies_unlink(media=item, studies=held, actor=staff, reason="wrong patient's study")

    catalogue = [
        lambda item: services.media_studies_link(
            media=item, studies=rng.sample(studies, 2), actor=staff, source=StudySource.PACS
        ),
        unlink_one,
        lambda item: services.media_disc_imported(
            media=item, manifest_id=rng.randrange(1, 99), studies=studies, actor=staff,
            summary={"files": 301, "bytes": 158_000_000, "problems": 0},
        ),
        lambda item: services.media_disc_verified(
            media=item, manifest_id=rng.randrange(1, 99), verdict=rng.choice(DiscVerdict.values),
            summary={"missing": 0, "changed": 1, "extra": 0}, actor=staff,
        ),
    ]
    # Requests and renewals (issue 6): one item's queue played through once, on an item the
    # random moves below never touch, so its holds cannot refuse their check-outs.
    held = services.media_register(
        code="L-HELD", kind=MediaKind.FILM_JACKET, home_location=shelves[0], actor=staff
    )
    today = timezone.localdate()
    ask = dict(needed_from=today, needed_until=today + timedelta(days=3), purpose="ortho follow-up")
    first = services.loan_request_make(requester=doctors[0], media=held, **ask)
    services.loan_request_approve(request=first, actor=staff)
    services.loan_request_ready(request=first, actor=staff)
    loan = services.media_check_out(media=held, borrower=doctors[0], actor=staff, request=first)
    services.loan_renew(loan=loan, actor=doctors[0])
    # Signed afterwards at the counter, offered on and declined, offered again and withdrawn.
    services.signature_add(event_seq=loan.out_seq, image=drawn(), actor=staff, signed_by="Dr Zero")
    declined = services.handover_offer(media=held, actor=doctors[0], to_holder=doctors[1])
    services.handover_decline(handover=declined, actor=doctors[1], reason="not my patient")
    withdrawn = services.handover_offer(media=held, actor=doctors[0], to_holder=doctors[2])
    services.handover_cancel(handover=withdrawn, actor=doctors[0])
    services.loan_request_deny(
        request=services.loan_request_make(requester=doctors[1], media=held, **ask),
        actor=staff, reason="needed for the tumour board",
    )
    services.loan_request_cancel(
        request=services.loan_request_make(requester=doctors[2], media=held, **ask), actor=doctors[2]
    )
    services.loan_request_make(requester=doctors[1], patient=patient, **{**ask, "needed_until": today})
    services.loan_requests_expire(now=timezone.now() + timedelta(days=2))
    services.media_return(media=held, actor=staff)
    # A shelf inventory (issue 6), once: two of the shelf's items and one of another shelf read,
    # with a tag bound to nothing; closing records them seen and flags the shelf's others.
    shelf_items = [(item, uid) for item, uid in items if item.home_location_id == shelves[1].pk]
    other = next(uid for item, uid in items if item.home_location_id != shelves[1].pk)
    inventory = services.inventory_start(scope=shelves[1], actor=staff)
    services.inventory_record_reads(
        session=inventory, uids=[uid for _item, uid in shelf_items[:2]] + [other, "05FFFFFFFFFFFF"]
    )
    services.inventory_close(session=inventory, actor=staff)
    services.inventory_cancel(session=services.inventory_start(scope=room, actor=staff), actor=staff)
    while count() < size:
        item, uid = rng.choice(items)
        item = Media.objects.get(pk=item.pk)
        roll = rng.random()
        if roll < 0.04:
            rng.choice(catalogue)(item)
            continue
        if roll < 0.06:  # flags: an open one (of any item) is cleared, else one is raised
            flag = Flag.objects.filter(cleared_at__isnull=True).first()
            if flag is not None:
                services.flag_clear(flag=flag, actor=staff, reason="turned up")
            else:
                services.flag_raise(media=item, kind=rng.choice(FlagKind.values), details={"n": 1})
            continue
        if item.status == MediaStatus.RETIRED:
            continue
        if item.status == MediaStatus.ON_LOAN:
            if roll < 0.1:
                loan = Loan.objects.get(media=item, returned_at__isnull=True)
                services.loan_remind(loan=loan, actor=staff)
            elif roll < 0.4:
                services.media_return(media=item, actor=staff, device=reader, read=read(uid))
            elif roll < 0.6:
                services.media_transfer(media=item, to_holder=rng.choice(doctors), actor=staff)
            elif roll < 0.8:
                services.media_transfer(media=item, to_location=clinic, actor=staff)
            else:
                services.media_seen(media=item, location=clinic, device=reader, read=read(uid))
        elif item.status == MediaStatus.IN_TRANSIT:
            services.media_seen(
                media=item, location=rng.choice(shelves), actor=staff, device=reader, read=read(uid)
            )
        elif roll < 0.5:
            services.media_check_out(
                media=item, borrower=rng.choice(doctors), actor=staff,
                destination=rng.choice([clinic, None]), device=reader, read=read(uid),
            )
        elif roll < 0.6:
            services.media_transfer(media=item, to_location=courier, actor=staff)
        elif roll < 0.8:
            services.media_seen(
                media=item, location=rng.choice(shelves), device=reader, read=read(uid)
            )
        elif roll < 0.95 and count() <= size - 2:
            old = uid
            services.tag_unbind(uid=old, actor=staff, reason="label peeling")
            uid = next(spare_tags)
            services.tag_bind(uid=uid, media=item, actor=staff)
            items = [(i, uid if i.pk == item.pk else u) for i, u in items]
        elif count() > size // 2:
            services.media_retire(media=item, actor=staff, reason="disc cracked")


@pytest.fixture(scope="module")
def busy_rows(django_db_setup, django_db_blocker) -> list[dict]:
    """The rows of a 500-event ledger made by the services; the database is rolled back and the
    rows are kept as plain data (each test copies what it changes)."""
    with django_db_blocker.unblock(), transaction.atomic():
        build_busy_ledger(BUSY_LEDGER_SIZE)
        rows = list(ledger.ledger_rows())
        transaction.set_rollback(True)
    return rows


# --- appending and verifying -------------------------------------------------------------------


def test_it_numbers_events_from_one_and_links_each_to_the_previous_hash(make_media, cast, places):
    media = make_media()
    services.tag_bind(uid="04A1B2C3D4E5F6", media=media, actor=cast["staff"])
    services.media_check_out(media=media, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=media, actor=cast["staff"])
    rows = list(ledger.ledger_rows())
    assert [row["seq"] for row in rows] == [1, 2, 3, 4]
    assert rows[0]["prev_hash"] == ledger.GENESIS_HASH
    for previous, row in zip(rows, rows[1:]):
        assert row["prev_hash"] == previous["hash"]
    for row in rows:
        body = ledger.event_body(row)
        assert row["hash"] == hashlib.sha256(
            bytes.fromhex(row["prev_hash"]) + rfc8785.dumps(body)
        ).hexdigest()
    result = ledger.verify_ledger()
    assert result.ok, result.reason
    assert (result.events, result.head_hash, result.first_bad_seq) == (4, rows[-1]["hash"], None)


def test_it_verifies_an_empty_ledger(db):
    result = ledger.verify_ledger()
    assert (result.ok, result.events, result.head_hash) == (True, 0, ledger.GENESIS_HASH)


def test_it_hashes_the_device_time_the_received_time_and_the_device_counter(
    make_media, cast, places
):
    media = make_media()
    device_time = timezone.now() - timedelta(minutes=5)
    services.media_seen(
        media=media, location=places["shelf2"], actor=cast["staff"],
        read=Read("04AA", device_time, 7),
    )
    row = list(ledger.ledger_rows())[-1]
    body = ledger.event_body(row)
    utc = device_time.astimezone(dt_timezone.utc)
    assert body["device_time"] == utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert body["device_counter"] == 7 and body["tag_uid"] == "04AA"
    assert body["received_at"].endswith("Z") and body["received_at"] != body["device_time"]
    assert ledger.verify_ledger().ok


def test_the_busy_ledger_is_intact_before_anyone_tampers_with_it(busy_rows):
    assert [row["seq"] for row in busy_rows] == list(range(1, BUSY_LEDGER_SIZE + 1))
    kinds = {row["kind"] for row in busy_rows}
    assert kinds == set(EventKind.values) - NO_SERVICE_YET, "the busy ledger should hold every kind of event"
    result = ledger.verify_rows(busy_rows)
    assert result.ok, result.reason
    assert result.events == BUSY_LEDGER_SIZE


# --- tampering ----------------------------------------------------------------------------------


def flipped_text(text: str, rng: random.Random) -> str:
    if not text:
        return "0"
    at = rng.randrange(len(text))
    return text[:at] + chr(ord(text[at]) ^ (1 << rng.randrange(7))) + text[at + 1:]


def flipped(value, rng: random.Random, name: str = ""):
    """The value with one bit, character or leaf changed (or set, when it was empty)."""
    if value is None and name == "device_time":
        return timezone.now()
    if value is None:
        return rng.randrange(1, 1000)
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value ^ (1 << rng.randrange(16))
    if isinstance(value, str):
        return flipped_text(value, rng)
    if isinstance(value, uuid.UUID):
        return uuid.UUID(int=value.int ^ (1 << rng.randrange(128)))
    if hasattr(value, "tzinfo"):  # a datetime
        return value + timedelta(microseconds=1 << rng.randrange(40))
    if isinstance(value, dict):
        if not value or rng.random() < 0.2:
            return {**value, flipped_text("note", rng): "added"}
        key = rng.choice(sorted(value))
        if rng.random() < 0.3:
            new_key = flipped_text(key, rng)
            return {(new_key if k == key else k): v for k, v in value.items()}
        return {**value, key: flipped(value[key], rng)}
    if isinstance(value, list):  # a payload's list (the studies a disc holds)
        if not value:
            return ["added"]
        at = rng.randrange(len(value))
        return [*value[:at], flipped(value[at], rng), *value[at + 1:]]
    raise AssertionError(f"no tampering known for {type(value)}")


def tamper(rows: list[dict], rng: random.Random) -> tuple[list[dict], int, str]:
    """A changed copy of `rows` (the original untouched), the seq verification must name, and
    what was done."""
    n = len(rows)
    forged = list(rows)
    how = rng.choices(
        ["field", "delete", "swap", "hash", "rehashed", "duplicate"], weights=[10, 2, 2, 1, 1, 1]
    )[0]
    k = rng.randrange(n)
    if how == "field":
        name = rng.choice(ledger.BODY_FIELDS)
        row = copy.deepcopy(rows[k])
        row[name] = flipped(row[name], rng, name)
        forged[k] = row
        return forged, k + 1, f"{name} of event {k + 1} changed to {row[name]!r}"
    if how == "delete":
        k = rng.randrange(n - 1)  # dropping the newest events is truncation: checkpoints catch it
        del forged[k]
        return forged, k + 1, f"event {k + 1} deleted"
    if how == "swap":
        i, j = sorted(rng.sample(range(n), 2))
        forged[i], forged[j] = forged[j], forged[i]
        return forged, i + 1, f"events {i + 1} and {j + 1} swapped"
    if how == "hash":
        row = copy.deepcopy(rows[k])
        row["hash"] = hashlib.sha256(rng.randbytes(8)).hexdigest()
        forged[k] = row
        return forged, k + 1, f"hash of event {k + 1} replaced"
    if how == "rehashed":
        # The forger changes an event and fixes its own hash, but not the next event's link.
        k = rng.randrange(n - 1)
        row = copy.deepcopy(rows[k])
        row["tag_uid"] = flipped(row["tag_uid"], rng)
        row["hash"] = ledger.chain_hash(row["prev_hash"], ledger.event_body(row))
        forged[k] = row
        return forged, k + 2, f"event {k + 1} changed with its hash recomputed"
    forged.insert(k + 1, copy.deepcopy(rows[k]))
    return forged, k + 2, f"event {k + 1} duplicated"


def test_it_names_the_first_bad_seq_for_a_thousand_random_tamperings(busy_rows):
    pristine = copy.deepcopy(busy_rows)
    rng = random.Random(8785)
    missed = []
    for trial in range(TAMPERING_TRIALS):
        forged, expected, what = tamper(busy_rows, rng)
        result = ledger.verify_rows(forged)
        if result.ok or result.first_bad_seq != expected:
            missed.append(
                f"trial {trial}: {what}: expected seq {expected}, "
                f"got ok={result.ok} first_bad_seq={result.first_bad_seq} ({result.reason})"
            )
        elif str(expected) not in result.reason:
            missed.append(f"trial {trial}: {what}: the reason does not name {expected}: "
                          f"{result.reason}")
    assert busy_rows == pristine, "the trials must have changed copies only"
    assert not missed, (
        f"{len(missed)} of {TAMPERING_TRIALS} tamperings misjudged:\n" + "\n".join(missed[:20])
    )


@pytest.mark.parametrize(
    "name", [n for n in ledger.BODY_FIELDS if n not in ("prev_hash", "hash")]
)
def test_it_catches_a_change_to_every_hashed_field(busy_rows, name):
    rng = random.Random(name)
    for k in (0, 1, len(busy_rows) // 2, len(busy_rows) - 1):
        forged = list(busy_rows)
        forged[k] = copy.deepcopy(busy_rows[k]) | {name: flipped(busy_rows[k][name], rng, name)}
        result = ledger.verify_rows(forged)
        assert (result.ok, result.first_bad_seq) == (False, k + 1), (name, k, result.reason)


def test_dropping_the_newest_events_leaves_a_chain_that_only_a_checkpoint_exposes(busy_rows):
    # Documents the limit of the chain alone; the checkpoint tests below close it.
    assert ledger.verify_rows(busy_rows[:-3]).ok


# --- a full rewrite and signed checkpoints ------------------------------------------------------


@pytest.fixture
def twelve_events(make_media, cast, places):
    """Twelve events with a signed checkpoint after event 5 and another after event 12."""
    jacket, disc = make_media("FJ-1"), make_media("CD-1", kind=MediaKind.CD)
    services.tag_bind(uid="04000000000001", media=jacket, actor=cast["staff"])
    services.tag_bind(uid="04000000000002", media=disc, actor=cast["staff"])
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    first = ledger.checkpoint()
    services.media_return(media=jacket, actor=cast["staff"])
    services.media_transfer(media=disc, to_location=places["courier"], actor=cast["staff"])
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_seen(media=disc, location=places["shelf2"], actor=cast["staff"])
    services.media_transfer(media=jacket, to_holder=cast["doctor2"], actor=cast["doctor"])
    services.media_return(media=jacket, actor=cast["staff"])
    services.media_retire(media=disc, actor=cast["staff"], reason="scratched")
    second = ledger.checkpoint()
    assert (first.size, second.size, count()) == (5, 12, 12)
    return first, second


@pytest.mark.parametrize(
    "rewritten_seq, first_bad, span",
    [(5, 1, "1..5"), (3, 1, "1..5"), (8, 6, "6..12"), (12, 6, "6..12")],
)
def test_a_rewrite_with_recomputed_hashes_is_caught_by_the_signed_checkpoint(
    twelve_events, cast, rewritten_seq, first_bad, span
):
    rows = list(ledger.ledger_rows())
    forged = copy.deepcopy(rows)
    # Pretend someone else had the item: change who the event names, then fix every later hash.
    forged[rewritten_seq - 1]["actor_id"] = cast["auditor"].pk
    rehash_from(forged, rewritten_seq - 1)
    assert ledger.verify_rows(forged).ok, "the forged chain is internally consistent"

    with triggers_lifted():
        rewrite_stored_rows(forged, columns=("actor_id", "prev_hash", "hash"))
        assert list(ledger.ledger_rows()) == forged
        assert ledger.verify_rows(ledger.ledger_rows()).ok
        result = ledger.verify_ledger()
    assert not result.ok
    assert result.first_bad_seq == first_bad
    assert f"events {span} were rewritten" in result.reason


def test_a_rewrite_is_caught_by_a_checkpoint_kept_outside_the_database(twelve_events, cast):
    first, second = twelve_events
    outside_note = second.note
    rows = copy.deepcopy(list(ledger.ledger_rows()))
    rows[7]["actor_id"] = cast["auditor"].pk
    rehash_from(rows, 7)
    with triggers_lifted():
        rewrite_stored_rows(rows, columns=("actor_id", "prev_hash", "hash"))
        # The attacker also removes the stored checkpoints; the auditor kept the note.
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM tracker_ledgercheckpoint")
    assert ledger.verify_ledger().ok, "without any checkpoint a consistent rewrite is invisible"
    result = ledger.verify_ledger(extra_notes=[outside_note])
    assert (result.ok, result.first_bad_seq) == (False, 1)
    assert "events 1..12 were rewritten" in result.reason


def test_a_ledger_truncated_below_a_checkpoint_fails(twelve_events):
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM tracker_custodyevent WHERE seq > 9")
    assert ledger.verify_rows(ledger.ledger_rows()).ok
    result = ledger.verify_ledger()
    assert (result.ok, result.first_bad_seq) == (False, 10)
    assert "covers 12 events but the ledger holds 9" in result.reason


def test_intact_checkpoints_are_counted(twelve_events):
    result = ledger.verify_ledger()
    assert result.ok, result.reason
    assert (result.events, result.checkpoints) == (12, 2)


def test_the_same_size_is_checkpointed_once(twelve_events):
    _first, second = twelve_events
    assert ledger.checkpoint().pk == second.pk
    assert LedgerCheckpoint.objects.count() == 2


def forged_signature(note: str) -> str:
    text, _sep, signature_line = note.partition("\n\n")
    dash, origin, stamp = signature_line.strip("\n").split(" ")
    blob = bytearray(base64.b64decode(stamp))
    blob[10] ^= 0x01  # inside the signature, after the 4-byte key ID
    return f"{text}\n\n{dash} {origin} {base64.b64encode(bytes(blob)).decode()}\n"


def test_a_checkpoint_with_a_forged_signature_is_rejected(twelve_events):
    _first, second = twelve_events
    forged = forged_signature(second.note)
    key = ledger.signing_key().public_key()
    with pytest.raises(ValueError, match="bad signature"):
        ledger.parse_checkpoint(forged, key)
    result = ledger.verify_ledger(extra_notes=[forged])
    assert not result.ok and "checkpoint cannot be trusted" in result.reason


def test_a_checkpoint_whose_text_was_changed_after_signing_is_rejected(twelve_events):
    _first, second = twelve_events
    origin, size, root, rest = second.note.split("\n", 3)
    lowered = "\n".join([origin, "11", root, rest])
    with pytest.raises(ValueError, match="bad signature"):
        ledger.parse_checkpoint(lowered, ledger.signing_key().public_key())
    assert not ledger.verify_ledger(extra_notes=[lowered]).ok


def test_a_checkpoint_signed_by_another_key_is_rejected(twelve_events):
    head = CustodyEvent.objects.order_by("-seq").first()
    impostor = ledger.sign_checkpoint(settings.LEDGER_ORIGIN, head.seq, head.hash, other_key())
    with pytest.raises(ValueError, match="no signature by this key"):
        ledger.parse_checkpoint(impostor, ledger.signing_key().public_key())
    result = ledger.verify_ledger(extra_notes=[impostor])
    assert not result.ok and "checkpoint cannot be trusted" in result.reason


def test_a_stored_checkpoint_signed_by_another_key_is_rejected(make_media):
    make_media()
    head = CustodyEvent.objects.get()
    key = other_key()
    note = ledger.sign_checkpoint(settings.LEDGER_ORIGIN, 1, head.hash, key)
    LedgerCheckpoint(
        size=1,
        hash=head.hash,
        key_id=ledger.key_id(settings.LEDGER_ORIGIN, key.public_key()).hex(),
        note=note,
    ).save()
    assert not ledger.verify_ledger().ok


def test_verifying_with_the_public_key_of_another_key_fails(twelve_events):
    assert ledger.verify_ledger(public_key=ledger.signing_key().public_key()).ok
    result = ledger.verify_ledger(public_key=other_key().public_key())
    assert not result.ok and "checkpoint cannot be trusted" in result.reason


def test_the_checkpoint_is_a_c2sp_signed_note(make_media):
    make_media()
    make_media()
    checkpoint = ledger.checkpoint()
    head = CustodyEvent.objects.order_by("-seq").first()
    note = checkpoint.note

    body, separator, signatures = note.partition("\n\n")
    assert separator and note.endswith("\n")
    origin, size, root = body.split("\n")
    assert origin == settings.LEDGER_ORIGIN
    assert size == "2" and checkpoint.size == 2
    assert base64.b64decode(root, validate=True) == bytes.fromhex(head.hash)
    assert checkpoint.hash == head.hash

    [signature_line] = signatures.rstrip("\n").split("\n")
    dash, signer, stamp = signature_line.split(" ")
    assert (dash, signer) == ("\u2014", origin)
    blob = base64.b64decode(stamp, validate=True)
    assert len(blob) == 4 + 64
    public_key = ledger.signing_key().public_key()
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    expected_key_id = hashlib.sha256(origin.encode() + b"\n" + b"\x01" + raw).digest()[:4]
    assert blob[:4] == expected_key_id
    assert checkpoint.key_id == expected_key_id.hex()
    public_key.verify(blob[4:], (body + "\n").encode())  # raises InvalidSignature if wrong
    with pytest.raises(InvalidSignature):
        other_key().public_key().verify(blob[4:], (body + "\n").encode())


def test_the_verifier_key_is_a_c2sp_note_verifier_key(db):
    public_key = ledger.signing_key().public_key()
    vkey = ledger.verifier_key(settings.LEDGER_ORIGIN, public_key)
    name, key_id, encoded = vkey.split("+", 2)  # base64 may itself contain "+"
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert name == settings.LEDGER_ORIGIN
    assert bytes.fromhex(key_id) == ledger.key_id(name, public_key) and len(key_id) == 8
    assert base64.b64decode(encoded) == b"\x01" + raw
    assert ledger.parse_verifier_key(vkey).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == raw


# --- append-only, in the ORM and in the database ------------------------------------------------


@pytest.fixture
def stored(make_media):
    make_media()
    make_media()
    checkpoint = ledger.checkpoint()
    return CustodyEvent.objects.get(seq=1), checkpoint


def raw_statements(table: str) -> list[str]:
    statements = [f"UPDATE {table} SET hash = 'x'", f"DELETE FROM {table}"]
    if table == "tracker_custodyevent":
        statements += [
            f"UPDATE {table} SET kind = 'returned' WHERE seq = 1",
            f"DELETE FROM {table} WHERE seq = 2",
        ]
    if connection.vendor == "postgresql":
        statements.append(f"TRUNCATE {table} CASCADE")
    return statements


@pytest.mark.parametrize("table", ["tracker_custodyevent", "tracker_ledgercheckpoint"])
def test_the_database_refuses_raw_sql_that_changes_history(stored, table):
    before_events = list(ledger.ledger_rows())
    before_notes = list(LedgerCheckpoint.objects.values_list("note", flat=True))
    for statement in raw_statements(table):
        with checks_settled(), pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(statement)
    assert list(ledger.ledger_rows()) == before_events
    assert list(LedgerCheckpoint.objects.values_list("note", flat=True)) == before_notes
    assert ledger.verify_ledger().ok


def test_the_orm_refuses_to_change_or_remove_events(stored, cast):
    event, _checkpoint = stored
    attempts = [
        lambda: CustodyEvent.objects.update(kind=EventKind.RETURNED),
        lambda: CustodyEvent.objects.filter(seq=1).update(actor=cast["doctor"]),
        lambda: CustodyEvent.objects.all().delete(),
        lambda: CustodyEvent.objects.filter(seq=2).delete(),
        lambda: CustodyEvent.objects.bulk_update([event], ["kind"]),
        lambda: event.save(),
        lambda: event.save(update_fields=["kind"]),
        lambda: event.delete(),
    ]
    event.kind = EventKind.RETURNED
    before = list(CustodyEvent.objects.values_list("seq", "kind", "actor_id", "hash"))
    for attempt in attempts:
        with pytest.raises(AppendOnlyError), transaction.atomic():
            attempt()
    assert list(CustodyEvent.objects.values_list("seq", "kind", "actor_id", "hash")) == before
    assert ledger.verify_ledger().ok


def test_the_orm_refuses_to_change_or_remove_checkpoints(stored):
    _event, checkpoint = stored
    attempts = [
        lambda: LedgerCheckpoint.objects.update(size=99),
        lambda: LedgerCheckpoint.objects.all().delete(),
        lambda: checkpoint.save(),
        lambda: checkpoint.delete(),
    ]
    checkpoint.size = 99
    for attempt in attempts:
        with pytest.raises(AppendOnlyError), transaction.atomic():
            attempt()
    assert list(LedgerCheckpoint.objects.values_list("size", flat=True)) == [2]


def test_deleting_a_media_with_history_is_refused(stored):
    from django.db.models import ProtectedError

    with pytest.raises((ProtectedError, AppendOnlyError)), transaction.atomic():
        Media.objects.get(pk=stored[0].media_id).delete()
    assert count() == 2


# --- replays ------------------------------------------------------------------------------------


def test_the_ledger_returns_the_original_event_for_a_replay(make_media, cast, places):
    media = make_media()
    event_id = uuid.uuid4()
    request = EventRequest(
        EventKind.SEEN, media=media, actor=cast["staff"], to_location=places["shelf2"],
        event_id=event_id, read=Read("04AABB", timezone.now(), 3),
    )
    with transaction.atomic():
        assert ledger.replayed(request) is None
        original = ledger.append(request)
    with transaction.atomic():
        again = ledger.replayed(
            EventRequest(
                EventKind.SEEN, media=media, actor=cast["staff"], to_location=places["shelf2"],
                event_id=str(event_id), read=request.read,
            )
        )
    assert again is not None and (again.seq, again.hash) == (original.seq, original.hash)
    assert count() == 2


def test_a_conflicting_replay_names_every_differing_field(make_media, cast, places):
    media = make_media()
    event_id = uuid.uuid4()
    read = Read("04AABB", timezone.now(), 3)
    services.media_seen(
        media=media, location=places["shelf2"], actor=cast["staff"], event_id=event_id, read=read
    )
    with pytest.raises(EventConflict) as raised:
        services.media_seen(
            media=media, location=places["clinic"], actor=cast["doctor"], event_id=event_id,
            read=Read("04AABB", read.device_time, 4),
        )
    assert raised.value.details["fields"] == ["actor_id", "device_counter", "to_location_id"]
    assert raised.value.details["seq"] == 2
    with pytest.raises(EventConflict) as raised:
        services.media_check_out(
            media=media, borrower=cast["doctor"], actor=cast["staff"], event_id=event_id
        )
    assert raised.value.details["fields"] == [
        "device_counter", "device_time", "holder_id", "kind", "tag_uid", "to_location_id"
    ]
    assert count() == 2
    assert ledger.verify_ledger().ok


def test_a_replay_that_asks_for_another_due_date_is_a_conflict(make_media, cast):
    media = make_media()
    event_id = uuid.uuid4()
    soon, later = timezone.now() + timedelta(days=7), timezone.now() + timedelta(days=30)
    loan = services.media_check_out(
        media=media, borrower=cast["doctor"], actor=cast["staff"], due_at=soon, event_id=event_id
    )
    with pytest.raises(EventConflict) as raised:
        services.media_check_out(
            media=media, borrower=cast["doctor"], actor=cast["staff"], due_at=later,
            event_id=event_id,
        )
    assert {"due_at", "payload"} & set(raised.value.details["fields"])
    loan.refresh_from_db()
    assert loan.due_at == soon and count() == 2


def replays(make_media, cast, places):
    """Each service called once, then the state moves on: name → a call to repeat."""
    jacket, disc = make_media("FJ-R"), make_media("CD-R", kind=MediaKind.CD)
    stick = make_media("USB-R", kind=MediaKind.USB)
    staff, doctor, doctor2 = cast["staff"], cast["doctor"], cast["doctor2"]
    ids = {name: uuid.uuid4() for name in (
        "register", "bind", "unbind", "check_out", "hand_over", "move", "seen", "return", "retire",
    )}
    calls = {
        "register": lambda: services.media_register(
            code="FJ-NEW", kind=MediaKind.FILM_JACKET, home_location=places["shelf"], actor=staff,
            event_id=ids["register"],
        ),
        "bind": lambda: services.tag_bind(
            uid="04C0FFEE000001", media=jacket, actor=staff, event_id=ids["bind"]
        ),
        "unbind": lambda: services.tag_unbind(
            uid="04C0FFEE000001", actor=staff, event_id=ids["unbind"]
        ),
        "check_out": lambda: services.media_check_out(
            media=disc, borrower=doctor, actor=staff, event_id=ids["check_out"]
        ),
        "hand_over": lambda: services.media_transfer(
            media=disc, to_holder=doctor2, actor=doctor, event_id=ids["hand_over"]
        ),
        "move": lambda: services.media_transfer(
            media=disc, to_location=places["clinic"], actor=doctor2, event_id=ids["move"]
        ),
        "seen": lambda: services.media_seen(
            media=disc, location=places["external"], actor=staff, event_id=ids["seen"]
        ),
        "return": lambda: services.media_return(media=disc, actor=staff, event_id=ids["return"]),
        "retire": lambda: services.media_retire(
            media=stick, actor=staff, reason="broken", event_id=ids["retire"]
        ),
    }
    return calls


@pytest.mark.parametrize(
    "name",
    ["register", "bind", "unbind", "check_out", "hand_over", "move", "seen", "return", "retire"],
)
def test_every_service_answers_a_late_replay_with_the_original_and_no_new_event(
    make_media, cast, places, name
):
    calls = replays(make_media, cast, places)
    first_results = {step: call() for step, call in calls.items()}
    events = count()
    again = calls[name]()
    assert count() == events, f"replaying {name} after the item moved on added an event"
    original = first_results[name]
    assert type(again) is type(original) and again.pk == original.pk
    assert ledger.verify_ledger().ok


def test_a_usual_ledger_is_verified_without_reading_any_event_as_an_orm_row(
    make_media, cast, places
):
    """Check-outs (due_at), undone moves (undo_of), unbinds and retirements (reason), scans with
    device times and counters: on PostgreSQL the server vouches for every one of them itself."""
    reader = ReaderDevice.objects.create(name="usual-desk", location=places["room"])
    for n in range(6):
        item = make_media()
        uid = f"04{n:012X}"
        services.tag_bind(uid=uid, media=item, actor=cast["staff"])
        services.media_check_out(
            media=item, borrower=cast["doctor"], actor=cast["staff"], device=reader,
            read=Read(uid, timezone.now() - timedelta(seconds=n), n + 1),
        )
        services.media_transfer(media=item, to_holder=cast["doctor2"], actor=cast["staff"])
        services.media_return(media=item, actor=cast["staff"], location=places["shelf2"])
        services.media_seen(media=item, location=places["shelf"], actor=cast["staff"])
        if n % 2:
            services.tag_unbind(uid=uid, actor=cast["staff"], reason="label peeling")
            services.media_retire(media=item, actor=cast["staff"], reason="disc cracked")
    payloads = list(CustodyEvent.objects.values_list("payload", flat=True))
    assert any("due_at" in p for p in payloads) and any("reason" in p for p in payloads)
    with CaptureQueriesContext(connection) as queries:
        result = ledger.verify_ledger()
    assert result.ok and result.events == count(), result.reason
    row_reads = [
        q["sql"] for q in queries.captured_queries if '"tracker_custodyevent"."payload"' in q["sql"]
    ]
    assert row_reads == []
    if connection.vendor == "postgresql":
        chain = ledger.verify._Chain()
        assert ledger.verify._PostgresLedger(chain).odd_seqs() == []
