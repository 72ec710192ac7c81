"""Signatures drawn at check-out and return (issue 6, point 4): stored with the event that they
sign or added right after a station read, each bound into the ledger by its SHA-256."""

import hashlib
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from tests.tracker.signature_images import blank, data_url, drawn, jpeg, noisy
from tracker import ledger, projection, services
from tracker.choices import EventKind, ReaderMode
from tracker.exceptions import Conflict, EventConflict, InvalidRequest, NotAllowed, UnknownObject
from tracker.models import CustodyEvent, ReaderDevice, Signature

pytestmark = pytest.mark.django_db


def events() -> int:
    return CustodyEvent.objects.count()


def sha(image: bytes) -> str:
    return hashlib.sha256(image).hexdigest()


@pytest.fixture
def jacket(make_media):
    return make_media("FJ-1")


def test_a_check_out_signed_at_the_desk_records_the_images_hash_in_its_event(cast, jacket):
    image = drawn()

    loan = services.media_check_out(
        media=jacket, borrower=cast["doctor"], actor=cast["staff"], signature=image
    )

    event = CustodyEvent.objects.get(seq=loan.out_seq)
    signature = Signature.objects.get(event_seq=loan.out_seq)
    assert event.payload["signature"] == sha(image) == signature.sha256
    assert bytes(signature.image) == image
    assert signature.signed_by == "Doctor"  # the borrower, unless someone else is named
    assert services.signature_intact(signature)
    assert ledger.verify_ledger().ok


def test_a_signed_return_names_who_signed(cast, jacket):
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    image = drawn(seed=2)
    before = events()

    services.media_return(
        media=jacket, actor=cast["staff"], signature=image, signed_by="Porter Lee"
    )

    event = CustodyEvent.objects.latest("seq")
    assert (events(), event.kind, event.payload) == (
        before + 1,
        EventKind.RETURNED,
        {"signature": sha(image)},
    )
    assert Signature.objects.get(event_seq=event.seq).signed_by == "Porter Lee"


def test_an_unsigned_check_out_and_return_stay_as_they_were(cast, jacket):
    loan = services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=jacket, actor=cast["staff"])

    assert "signature" not in CustodyEvent.objects.get(seq=loan.out_seq).payload
    assert CustodyEvent.objects.latest("seq").payload == {}
    assert not Signature.objects.exists()


@pytest.mark.parametrize(
    "image, message",
    [
        (jpeg(), "not a readable PNG"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "not a readable PNG"),
        (drawn()[:-30], "not a readable PNG"),  # truncated
        (b"", "empty"),
        (blank(), "blank"),
        (blank(transparent=True), "blank"),
        (drawn(2001, 300), "2001×300 pixels; at most 2000×1000"),
        (drawn(400, 1001), "at most 2000×1000"),
        (noisy(300, 300), "at most 200 kB"),
    ],
    ids=[
        "jpeg",
        "png-header-only",
        "truncated",
        "empty",
        "blank-white",
        "blank-transparent",
        "too-wide",
        "too-tall",
        "too-many-bytes",
    ],
)
def test_anything_but_a_real_drawn_png_within_the_limits_is_refused_and_nothing_is_recorded(
    cast, jacket, image, message
):
    before = events()

    with pytest.raises(InvalidRequest, match=message):
        services.media_check_out(
            media=jacket, borrower=cast["doctor"], actor=cast["staff"], signature=image
        )

    assert events() == before
    assert not Signature.objects.exists()
    jacket.refresh_from_db()
    assert jacket.status == "on_shelf"


def test_a_signature_on_transparency_and_at_the_largest_size_is_accepted(cast, jacket):
    services.media_check_out(
        media=jacket,
        borrower=cast["doctor"],
        actor=cast["staff"],
        signature=drawn(transparent=True),
    )
    services.media_return(media=jacket, actor=cast["staff"], signature=drawn(2000, 1000))

    assert Signature.objects.count() == 2


def test_a_retried_signed_check_out_is_recorded_once_and_another_image_under_its_id_conflicts(
    cast, jacket
):
    event_id = uuid.uuid4()
    first = services.media_check_out(
        media=jacket,
        borrower=cast["doctor"],
        actor=cast["staff"],
        signature=drawn(),
        event_id=event_id,
    )
    before = events()

    again = services.media_check_out(
        media=jacket,
        borrower=cast["doctor"],
        actor=cast["staff"],
        signature=drawn(),
        event_id=event_id,
    )
    assert (again.pk, events(), Signature.objects.count()) == (first.pk, before, 1)
    with pytest.raises(EventConflict) as refused:
        services.media_check_out(
            media=jacket,
            borrower=cast["doctor"],
            actor=cast["staff"],
            signature=drawn(seed=5),
            event_id=event_id,
        )
    assert refused.value.details["fields"] == ["signature"]


# --- signing after a station read --------------------------------------------------------------


@pytest.fixture
def station_check_out(cast, places, jacket):
    """A check-out read at a counter station, to sign afterwards; returns its scan record."""
    call_command(
        "register_reader", "counter-1", "--location", "FR", stdout=StringIO(), stderr=StringIO()
    )
    device = ReaderDevice.objects.get(name="counter-1")
    services.tag_bind(uid="04A1B2C3D4E5F6", media=jacket, actor=cast["staff"])
    services.station_configure(device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    record, _replayed = services.scan_record(
        device=device, event_id=uuid.uuid4(), raw_uid="04A1B2C3D4E5F6", read_at=timezone.now()
    )
    assert record.outcome == "ok", record.message
    return record


def test_a_signature_drawn_after_a_station_read_is_one_signature_added_event(
    cast, jacket, station_check_out
):
    image = drawn()
    before = events()

    signature = services.signature_add(
        event_seq=station_check_out.event_seq,
        image=image,
        actor=cast["staff"],
        signed_by="Dana Osei",
    )

    added = CustodyEvent.objects.latest("seq")
    assert events() == before + 1
    assert (added.kind, added.media_id, added.actor_id) == (
        EventKind.SIGNATURE_ADDED,
        jacket.pk,
        cast["staff"].pk,
    )
    assert added.payload == {"event": station_check_out.event_seq, "signature": sha(image)}
    assert (signature.event_seq, signature.signed_by) == (station_check_out.event_seq, "Dana Osei")
    assert services.signature_intact(signature)
    assert projection.rebuild(check_only=True) == []
    assert ledger.verify_ledger().ok


def test_an_event_is_signed_once(cast, station_check_out):
    services.signature_add(
        event_seq=station_check_out.event_seq, image=drawn(), actor=cast["staff"]
    )
    before = events()

    with pytest.raises(Conflict, match="already signed"):
        services.signature_add(
            event_seq=station_check_out.event_seq, image=drawn(seed=3), actor=cast["staff"]
        )

    assert (events(), Signature.objects.count()) == (before, 1)


def test_a_check_out_signed_with_the_action_cannot_be_signed_again(cast, jacket):
    loan = services.media_check_out(
        media=jacket, borrower=cast["doctor"], actor=cast["staff"], signature=drawn()
    )

    with pytest.raises(Conflict, match="already signed"):
        services.signature_add(event_seq=loan.out_seq, image=drawn(seed=1), actor=cast["staff"])


def test_only_check_outs_and_returns_can_be_signed(cast, jacket):
    registered = CustodyEvent.objects.get(media=jacket, kind=EventKind.MEDIA_REGISTERED)
    before = events()

    with pytest.raises(InvalidRequest, match="Only a check-out or a return can be signed"):
        services.signature_add(event_seq=registered.seq, image=drawn(), actor=cast["staff"])
    with pytest.raises(UnknownObject):
        services.signature_add(event_seq=registered.seq + 1000, image=drawn(), actor=cast["staff"])

    assert events() == before


@pytest.mark.parametrize("who", ["doctor", "auditor", "nobody"])
def test_only_the_file_room_adds_signatures(cast, station_check_out, who):
    before = events()

    with pytest.raises(NotAllowed):
        services.signature_add(
            event_seq=station_check_out.event_seq, image=drawn(), actor=cast[who]
        )

    assert events() == before


def test_a_retried_signature_is_recorded_once(cast, station_check_out):
    event_id = uuid.uuid4()
    first = services.signature_add(
        event_seq=station_check_out.event_seq, image=drawn(), actor=cast["staff"], event_id=event_id
    )
    before = events()

    again = services.signature_add(
        event_seq=station_check_out.event_seq, image=drawn(), actor=cast["staff"], event_id=event_id
    )

    assert (again.pk, events()) == (first.pk, before)
    with pytest.raises(EventConflict):
        services.signature_add(
            event_seq=station_check_out.event_seq,
            image=drawn(seed=9),
            actor=cast["staff"],
            event_id=event_id,
        )


def test_an_image_swapped_in_the_database_is_no_longer_intact(cast, jacket, station_check_out):
    loan = services.media_check_out(
        media=services.media_register(
            code="FJ-2", kind="film_jacket", home_location=jacket.home_location, actor=cast["staff"]
        ),
        borrower=cast["doctor2"],
        actor=cast["staff"],
        signature=drawn(),
    )
    services.signature_add(
        event_seq=station_check_out.event_seq, image=drawn(seed=4), actor=cast["staff"]
    )
    forged = drawn(seed=7)
    with connection.cursor() as cursor:  # Signature rows refuse ORM updates; a raw one gets through
        cursor.execute("UPDATE tracker_signature SET image = %s", [forged])

    assert not services.signature_intact(Signature.objects.get(event_seq=loan.out_seq))
    assert not services.signature_intact(
        Signature.objects.get(event_seq=station_check_out.event_seq)
    )
    # ... even when the stored hash is forged to match: the ledger's hash is the one that counts.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tracker_signature SET sha256 = %s", [sha(forged)])
    assert not services.signature_intact(Signature.objects.get(event_seq=loan.out_seq))
    checks = services.signature_checks([loan.out_seq, station_check_out.event_seq, 999])
    assert {seq: check.intact for seq, check in checks.items()} == {
        loan.out_seq: False,
        station_check_out.event_seq: False,
    }


def test_the_signature_checks_of_a_chain_say_which_events_are_signed_and_intact(cast, jacket):
    out = services.media_check_out(
        media=jacket, borrower=cast["doctor"], actor=cast["staff"], signature=drawn()
    )
    services.media_return(media=jacket, actor=cast["staff"])
    returned = CustodyEvent.objects.latest("seq").seq
    services.signature_add(event_seq=returned, image=drawn(seed=8), actor=cast["staff"])

    checks = services.signature_checks(
        CustodyEvent.objects.filter(media=jacket).values_list("seq", flat=True)
    )

    assert {seq: check.intact for seq, check in checks.items()} == {
        out.out_seq: True,
        returned: True,
    }


def test_a_data_url_is_read_as_its_png_and_anything_else_says_how_to_send_one():
    image = drawn()

    assert services.signature_from_data_url(data_url(image)) == image
    with pytest.raises(InvalidRequest, match="PNG data URL"):
        services.signature_from_data_url("data:image/jpeg;base64,AAAA")
    with pytest.raises(InvalidRequest, match="not valid base64"):
        services.signature_from_data_url("data:image/png;base64,%%%")
    with pytest.raises(InvalidRequest, match="at most 200 kB"):
        services.signature_from_data_url("data:image/png;base64," + "A" * 300_000)
