"""PcscReader against a real pcscd, vsmartcard's virtual reader and the tag emulator process."""

import io
import random
import statistics
import threading
import time

import pytest
from smartcard.scard import SCARD_STATE_PRESENT

from agent.readers.pcsc import PcscReader

from .conftest import VPCD_READER, VirtualTag, wait_until


@pytest.fixture
def reader(pcscd, run_reader):
    running = run_reader(lambda log: PcscReader("Virtual PCD 00 00", log=log))
    wait_until(lambda: running.backend.connected, 10, f"PcscReader to connect to {VPCD_READER!r}")
    return running


def test_it_reads_the_uid_of_a_tag_placed_on_the_reader(virtual_tag, reader, uids):
    virtual_tag.insert(uids[0])

    assert reader.next_uid() == uids[0]
    assert reader.logged[0] == (
        "reader",
        {"reader": "pcsc", "status": "connected", "name": VPCD_READER},
    )


def test_it_reads_a_tag_lying_on_the_reader_once_however_long_it_stays(virtual_tag, reader, uids):
    virtual_tag.insert(uids[0])
    assert reader.next_uid() == uids[0]

    # pcscd asks the tag for its ATR about every 400 ms: let it look five more times.
    seen = virtual_tag.polls()
    wait_until(lambda: virtual_tag.polls() >= seen + 5, 10, "five more presence polls by pcscd")

    assert reader.taps.empty()


def test_it_reads_the_next_tag_after_one_is_taken_off(virtual_tag, reader, uids):
    virtual_tag.insert(uids[0])
    assert reader.next_uid() == uids[0]

    virtual_tag.remove()
    virtual_tag.wait_until_empty()
    virtual_tag.insert(uids[1])

    assert reader.next_uid() == uids[1]


def test_it_reads_the_same_tag_again_when_it_is_tapped_twice(virtual_tag, reader, uids):
    virtual_tag.insert(uids[0])
    assert reader.next_uid() == uids[0]
    virtual_tag.remove()
    virtual_tag.wait_until_empty()

    virtual_tag.insert(uids[0])

    assert reader.next_uid() == uids[0]


def test_it_reads_both_tags_of_a_fast_swap(virtual_tag, reader, uids):
    virtual_tag.insert(uids[0])
    assert reader.next_uid() == uids[0]

    virtual_tag.send(f"swap {uids[1]}")

    assert reader.next_uid() == uids[1]


def test_it_reads_both_tags_when_the_swap_happens_while_it_is_not_looking(virtual_tag, uids):
    """Same ATR before and after, and pcscd never reported the empty reader to this reader: only
    the event counter shows that another tag is there (a reader comparing ATRs misses it)."""
    stop = threading.Event()
    taps = PcscReader(VPCD_READER).taps(stop)
    virtual_tag.insert(uids[0])
    assert next(taps).uid == uids[0]
    counter = (
        virtual_tag.wait_for_reader(lambda state: state & SCARD_STATE_PRESENT, "the first tag")
        >> 16
    )

    # The generator is suspended after its yield: it does not look until asked for the next tap.
    virtual_tag.send(f"swap {uids[1]}")
    virtual_tag.wait_for_reader(
        lambda state: state >> 16 >= counter + 2 and state & SCARD_STATE_PRESENT,
        "the second tag (two more card events)",
    )

    assert next(taps).uid == uids[1]
    stop.set()
    taps.close()


def test_it_keeps_reading_after_a_tag_is_taken_away_in_the_middle_of_a_read(
    virtual_tag, reader, uids
):
    virtual_tag.send(f"tap-drop {uids[0]}")
    virtual_tag.expect("dropped")
    virtual_tag.wait_until_empty()

    virtual_tag.insert(uids[1])

    assert reader.next_uid() == uids[1]
    assert reader.thread.is_alive()
    errors = [fields["message"] for event, fields in reader.logged if event == "error"]
    assert errors and "tap it again" in errors[0]


def test_it_reads_a_tag_within_half_a_second_of_the_tap_at_the_median(
    virtual_tag, reader, uids, capsys
):
    # Real hands tap at any moment of pcscd's ~400 ms presence poll; a test that inserts right
    # after pcscd saw the reader empty always lands just after a poll (the worst case). So each
    # tap waits a random part of a poll first: this shapes the workload, it synchronises nothing.
    spread, pause = random.Random(213), threading.Event()
    latencies, own = [], []
    for uid in uids[:12]:
        pause.wait(spread.uniform(0.0, 0.4))
        tapped_at = time.monotonic()
        virtual_tag.insert(uid)
        virtual_tag.wait_for_reader(lambda state: state & SCARD_STATE_PRESENT, "the tag")
        seen_at = time.monotonic()
        read, read_at = reader.next_tap()
        assert read == uid
        latencies.append(read_at - tapped_at)
        own.append(max(0.0, read_at - seen_at))
        virtual_tag.remove()
        virtual_tag.wait_until_empty()

    median = statistics.median(latencies)
    with capsys.disabled():
        print(
            f"\ntap-to-UID over {len(latencies)} taps: median {median * 1000:.0f} ms, "
            f"min {min(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
            f"after pcscd reported the tag: median {statistics.median(own) * 1000:.1f} ms"
        )
    assert median < 0.5
    assert max(latencies) < 1.0


def test_it_comes_back_when_pcscd_restarts(pcscd, vpcd_ports, reader, uids):
    if not pcscd.owned:
        pytest.fail(
            "pcscd was already running outside the tests, and this test must restart it: "
            "stop it (systemctl stop pcscd.socket pcscd) and run the tests again."
        )
    pcscd.stop()
    wait_until(lambda: not reader.backend.connected, 10, "the reader to notice pcscd is gone")

    pcscd.start()
    wait_until(lambda: reader.backend.connected, 10, "the reader to reconnect to the new pcscd")
    tag = VirtualTag(vpcd_ports)
    try:
        tag.insert(uids[0])
        assert reader.next_uid() == uids[0]
    finally:
        tag.send("remove")
        tag.wait_until_empty()
        tag.close()
    events = [(event, fields.get("status")) for event, fields in reader.logged]
    assert ("error", None) in events
    assert events[-1] == ("reader", "connected")


def test_it_puts_a_tag_tapped_at_the_agent_in_its_outbox(pcscd, virtual_tag, start_agent, uids):
    agent = start_agent("--reader", "pcsc", "--reader-name", VPCD_READER)
    agent.expect("reader", status="connected", name=VPCD_READER)

    virtual_tag.insert(uids[0])

    read = agent.expect("read", uid=uids[0])
    assert read["counter"] == 1 and read["event_id"]
    assert agent.stop() == 0
    assert agent.status()["queued"] == 1


@pytest.fixture
def test_database(django_db_setup):
    """Fail (before `committed_db` empties anything) unless Django uses the test database.
    pytest-django creates it only when some collected test asks for `db`/`transactional_db`/
    `live_server` or the django_db mark; `committed_db` alone does not count."""
    from django.db import connection

    if connection.settings_dict["NAME"] != connection.creation._get_test_db_name():
        pytest.fail(
            f"Django is on {connection.settings_dict['NAME']}, not the test database: "
            "no collected test asked pytest-django for one, and committed_db would empty it."
        )


@pytest.fixture
def locate_station(test_database, start_server):
    """A jacket on shelf FR-A1 with a bound tag, a `locate` reader registered there (its key),
    and the Filmroom server running on loopback with that data committed."""
    from django.core.management import call_command

    from tests.conftest import make_user
    from tracker import services
    from tracker.choices import LocationKind, MediaKind, Role
    from tracker.models import Location

    shelf = Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF)
    staff = make_user("staff", Role.FILE_ROOM)
    jacket = services.media_register(
        code="FJ-PCSC-1", kind=MediaKind.FILM_JACKET, home_location=shelf, actor=staff
    )
    uid = "04C0FFEE0000A1"
    services.tag_bind(uid=uid, media=jacket, actor=staff)
    key = io.StringIO()
    call_command(
        "register_reader",
        "pcsc-counter",
        "--location",
        "FR-A1",
        "--mode",
        "locate",
        stdout=key,
        stderr=io.StringIO(),
    )
    return {"url": start_server(), "key": key.getvalue().strip(), "uid": uid, "jacket": jacket}


def test_it_records_a_tag_tapped_at_a_pcsc_station_in_the_custody_ledger(
    pcscd, virtual_tag, locate_station, start_agent, capsys
):
    from tracker.models import CustodyEvent

    agent = start_agent(
        "--reader",
        "pcsc",
        "--reader-name",
        VPCD_READER,
        server=locate_station["url"],
        key=locate_station["key"],
    )
    agent.expect("reader", status="connected", name=VPCD_READER)

    tapped_at = time.monotonic()
    virtual_tag.insert(locate_station["uid"])
    read = agent.expect("read", uid=locate_station["uid"])
    agent.expect("delivered", count=1)
    delivered_at = time.monotonic()

    event = CustodyEvent.objects.get(event_id=read["event_id"])
    assert event.kind == "seen"
    assert event.media == locate_station["jacket"]
    assert event.to_location.code == "FR-A1"
    assert event.device_counter == 1
    with capsys.disabled():
        print(
            f"\ntap to ledger event through the agent: {(delivered_at - tapped_at) * 1000:.0f} ms"
        )
