"""The agent's outbox: reads are durable, ordered, counted, and leave only when acknowledged."""
import ast
import json
import subprocess
import sys
from pathlib import Path

from agent.outbox import Outbox

ROOT = Path(__file__).resolve().parents[2]


def test_it_keeps_reads_in_order_with_a_rising_counter(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    reads = [outbox.put(f"04AA{n:010X}") for n in range(5)]
    assert [r.counter for r in reads] == [1, 2, 3, 4, 5]
    assert [r.uid for r in outbox.peek(10)] == [r.uid for r in reads]
    assert len({r.event_id for r in reads}) == 5


def test_acknowledged_reads_leave_and_the_rest_stay(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    reads = [outbox.put(f"04BB{n:010X}") for n in range(4)]
    outbox.ack([reads[0].id, reads[1].id])
    assert [r.event_id for r in outbox.peek(10)] == [reads[2].event_id, reads[3].event_id]
    assert outbox.status()["last_delivery"] is not None


def test_reads_survive_reopening_and_the_counter_continues(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path)
    stored = first.put("04CC000000000001", state={"sim_position": 7})
    first.close()
    again = Outbox(path)
    assert [r.event_id for r in again.peek(10)] == [stored.event_id]
    assert again.get_state("sim_position") == "7"
    assert again.put("04CC000000000002").counter == 2


def test_a_refused_read_is_kept_aside_with_its_reason_not_dropped(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    read = outbox.put("not-a-uid")
    outbox.reject(read, "invalid: not a hex tag UID")
    assert outbox.queued() == 0
    assert outbox.status()["rejected"] == 1
    row = outbox.db.execute("SELECT uid, reason FROM rejected").fetchone()
    assert row == ("not-a-uid", "invalid: not a hex tag UID")


def test_the_alarm_rises_near_the_cap_and_nothing_is_dropped(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3", cap=100)
    for n in range(95):
        outbox.put(f"04DD{n:010X}")
    status = outbox.status()
    assert status["alarm"] is True and status["queued"] == 95
    for n in range(20):  # past the cap: still stored
        outbox.put(f"04DE{n:010X}")
    assert outbox.queued() == 115


def test_status_command_prints_the_queue_as_json(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    Outbox(path).put("04EE000000000001")
    out = subprocess.run(
        [sys.executable, "-m", "agent", "status", "--outbox", str(path)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout
    status = json.loads(out)
    assert status["queued"] == 1 and status["device_counter"] == 1 and status["alarm"] is False


def test_the_agent_imports_nothing_from_django_or_the_apps():
    for path in (ROOT / "agent").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in {"django", "rest_framework", "tracker", "archive", "config"}, (
                    f"{path.relative_to(ROOT)} imports {name}"
                )
