"""NfcpyReader against nfcpy's simulated reader (its `udp` driver) and a tag emulator process.

Every target type the reader asks for and no tag answers costs about a second on the udp
driver, so most tests ask only for the type they place."""

import pytest

from agent.readers.nfcpy import NfcpyReader

from .conftest import wait_until

NTAG = "04A1B2C3D4E5F6"
NTAG2 = "04F6E5D4C3B2A1"
FELICA_IDM = "0102030405060708"


@pytest.fixture
def start_reader(run_reader, nfc_port):
    def start(targets=("106A",)):
        running = run_reader(
            lambda log: NfcpyReader(f"udp:localhost:{nfc_port}", log=log, targets=targets)
        )
        wait_until(lambda: running.backend.connected, 10, "NfcpyReader to open the udp reader")
        return running

    return start


def test_it_reads_the_uid_of_an_ntag(nfc_tag, start_reader):
    nfc_tag(type2=NTAG)
    reader = start_reader()

    assert reader.next_uid(timeout=10) == NTAG
    assert reader.logged[0][0] == "reader"


def test_it_reads_the_idm_of_a_felica_card(nfc_tag, start_reader):
    nfc_tag(type3=FELICA_IDM)
    reader = start_reader(targets=("212F",))

    assert reader.next_uid(timeout=10) == FELICA_IDM


def test_it_finds_a_felica_card_among_all_the_types_it_looks_for(nfc_tag, start_reader):
    nfc_tag(type3=FELICA_IDM)
    reader = start_reader(targets=("106A", "106B", "212F"))

    assert reader.next_uid(timeout=15) == FELICA_IDM


def test_it_reads_a_tag_once_while_it_stays_and_the_next_tag_after_it_leaves(nfc_tag, start_reader):
    first = nfc_tag(type2=NTAG)
    reader = start_reader()
    assert reader.next_uid(timeout=10) == NTAG

    for _ in range(10):  # the reader keeps checking the tag is there: ten checks, no second read
        first.expect("read")
    assert reader.taps.empty()

    first.end()
    nfc_tag(type2=NTAG2)

    assert reader.next_uid(timeout=10) == NTAG2


def test_it_reports_a_reader_it_cannot_open_and_keeps_trying(run_reader):
    running = run_reader(lambda log: NfcpyReader("usb:999:999", log=log))

    wait_until(lambda: running.logged, 10, "the reader to report the missing device")
    event, fields = running.logged[0]
    assert event == "error" and "usb:999:999" in fields["message"]
    assert not running.backend.connected
    assert running.thread.is_alive()


def test_it_puts_a_tag_tapped_at_the_agent_in_its_outbox(nfc_tag, nfc_port, start_agent):
    nfc_tag(type2=NTAG)
    agent = start_agent("--reader", "nfcpy", "--nfc-device", f"udp:localhost:{nfc_port}")

    read = agent.expect("read", uid=NTAG)

    assert read["counter"] == 1
    assert agent.stop() == 0
    assert agent.status()["queued"] == 1
