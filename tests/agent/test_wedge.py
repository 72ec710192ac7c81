"""A keyboard-wedge reader typing into the real agent: lines become reads, repeats are debounced."""
import subprocess
import sys
from pathlib import Path

from agent.outbox import Outbox
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def run_wedge(tmp_path, typed: str, *extra) -> Outbox:
    key = tmp_path / "reader.key"
    key.write_text("prefix.secret\n")
    outbox = tmp_path / "outbox.sqlite3"
    process = subprocess.run(
        [sys.executable, "-m", "agent", "--server", f"http://127.0.0.1:{free_port()}", "--key-file", str(key),
         "--reader", "wedge", "--outbox", str(outbox), *extra],
        cwd=ROOT, input=typed, capture_output=True, text=True, timeout=60,
    )
    # The server is down: the agent stores the reads and exits when its input ends.
    assert "read" in process.stdout, process.stderr
    return Outbox(outbox)


def test_each_typed_line_is_one_read_and_blank_lines_are_none(tmp_path):
    outbox = run_wedge(tmp_path, "04A1B2C3D4E5F6\n\n3735928559\n04:11:22:33:44:55:66\n", "--debounce", "0")
    assert [read.uid for read in outbox.peek(10)] == ["04A1B2C3D4E5F6", "3735928559", "04:11:22:33:44:55:66"]


def test_the_same_tag_twice_within_the_debounce_window_is_one_read(tmp_path):
    outbox = run_wedge(tmp_path, "04A1B2C3D4E5F6\n04A1B2C3D4E5F6\n04FFEEDDCCBBAA\n04A1B2C3D4E5F6\n", "--debounce", "30")
    assert [read.uid for read in outbox.peek(10)] == ["04A1B2C3D4E5F6", "04FFEEDDCCBBAA", "04A1B2C3D4E5F6"]
