"""The real agent process against a real Filmroom server: every read arrives exactly once, in
order, through server outages and SIGKILLs."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from agent.outbox import Outbox
from tests.conftest import free_port
from tracker import services
from tracker.models import CustodyEvent, ScanRecord

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(committed_db):
    """Everything here is really committed: the server thread and the agent process see it."""


@pytest.fixture
def reader_key(db, cast, places, tmp_path):
    out = StringIO()
    call_command("register_reader", "agent-test", "--location", "FR-A2", stdout=out, stderr=StringIO())
    path = tmp_path / "reader.key"
    path.write_text(out.getvalue())
    return path


@pytest.fixture
def tagged_uids(db, make_media, cast):
    uids = []
    for n in range(20):
        media = make_media(f"FJ-{n:03d}")
        uid = f"04A1B2C3D4{n:04X}"
        services.tag_bind(uid=uid, media=media, actor=cast["staff"])
        uids.append(uid)
    return uids


def sim_file(tmp_path, uids, count, seed=1):
    rng = random.Random(seed)
    path = tmp_path / "reads.txt"
    path.write_text("".join(rng.choice(uids) + "\n" for _ in range(count)))
    return path, path.read_text().split()


def agent(server, key, outbox, sim, *extra):
    """Start the real agent; its JSON log goes to agent.log beside the outbox (appended)."""
    log = open(Path(outbox).with_name("agent.log"), "a")  # noqa: SIM115 - the child writes to it
    return subprocess.Popen(
        [sys.executable, "-m", "agent", "--server", server, "--key-file", str(key), "--reader", "sim",
         "--outbox", str(outbox), "--sim-file", str(sim), "--batch", "100", *extra],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
    )


def logged(outbox) -> list[dict]:
    lines = Path(outbox).with_name("agent.log").read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def wait_for(condition, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def assert_every_line_arrived_once_in_order(lines):
    records = list(ScanRecord.objects.order_by("id").values_list("counter", "raw_uid"))
    assert len(records) == len(lines), f"{len(records)} scans stored for {len(lines)} reads"
    assert [counter for counter, _uid in records] == list(range(1, len(lines) + 1))
    assert [uid for _counter, uid in records] == lines
    assert CustodyEvent.objects.filter(kind="seen").count() == len(lines)


def test_it_delivers_every_read_and_logs_json_lines(start_server, reader_key, tagged_uids, tmp_path):
    url = start_server()
    sim, lines = sim_file(tmp_path, tagged_uids, 300)
    outbox = tmp_path / "outbox.sqlite3"
    assert agent(url, reader_key, outbox, sim).wait(timeout=120) == 0
    log = logged(outbox)
    reads = [entry for entry in log if entry["event"] == "read"]
    assert len(reads) == 300 and all(entry["event_id"] and entry["uid"] for entry in reads)
    assert sum(entry["count"] for entry in log if entry["event"] == "delivered") == 300
    assert_every_line_arrived_once_in_order(lines)


def test_the_outbox_keeps_reads_while_the_server_is_down_and_delivers_them_in_order(
    start_server, reader_key, tagged_uids, tmp_path
):
    port = free_port()
    outbox_path = tmp_path / "outbox.sqlite3"
    sim, lines = sim_file(tmp_path, tagged_uids, 2000, seed=2)
    process = agent(f"http://127.0.0.1:{port}", reader_key, outbox_path, sim)
    try:
        outbox = Outbox(outbox_path)
        wait_for(lambda: outbox.queued() == 2000, 60, "the outbox to hold every read")
        wait_for(lambda: "server unreachable" in (outbox.status()["last_error"] or ""), 60,
                 "the agent to report the server unreachable")
        assert ScanRecord.objects.count() == 0
        start_server(port)
        assert process.wait(timeout=120) == 0
    finally:
        process.kill()
    assert Outbox(outbox_path).queued() == 0
    assert_every_line_arrived_once_in_order(lines)


def test_an_agent_killed_at_random_moments_loses_and_repeats_nothing(
    start_server, reader_key, tagged_uids, tmp_path
):
    url = start_server()
    outbox_path = tmp_path / "outbox.sqlite3"
    total = int(os.environ.get("FILMROOM_KILL_TEST_READS", "10000"))
    sim, lines = sim_file(tmp_path, tagged_uids, total, seed=3)
    rng = random.Random(4)
    # Kill at 20 random points of the flow, measured in reads the server holds (a fixed clock
    # let a fast server finish before the 20th kill), a random moment after each point.
    points = sorted(rng.sample(range(100, total - total // 4), 20))  # the last quarter flows after
    kills = 0
    for point in points:
        process = agent(url, reader_key, outbox_path, sim)
        wait_for(lambda: process.poll() is not None or ScanRecord.objects.count() >= point, 120,
                 f"{point} reads on the server")
        try:
            process.wait(timeout=rng.uniform(0, 0.3))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
    process = agent(url, reader_key, outbox_path, sim)
    assert process.wait(timeout=600) == 0, logged(outbox_path)[-5:]
    assert kills == 20
    assert_every_line_arrived_once_in_order(lines)
