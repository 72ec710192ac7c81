"""Agent memory with a 100 000-read backlog (target: RSS ≤ 60 MB), and optionally its delivery.

    .venv/bin/python bench/agent_rss.py [--reads 100000] [--seconds 20] [--deliver]

Prefills an outbox with `--reads` queued reads (the outbox's own schema, one bulk transaction;
counters 1..N, UIDs of tags the delivery server knows), then runs the real agent
(`python -m agent --reader sim --sim-rate 5`) against a loopback port nobody listens on, so it
keeps reading and failing to deliver, and samples its RSS every 0.1 s for `--seconds`.
Baseline in the same run: an idle `python -c "import sqlite3, httpx"` process, sampled the same
way, so the agent's own cost is visible. Both peaks are also read from the kernel (VmHWM).

--deliver then starts the server on that very port (gunicorn on a fresh PostgreSQL database
`bench_agent`, the tags bound, the station registered) and times how long the agent takes to
deliver the backlog, sampling its RSS meanwhile, and checks the server received every read once
and in the order of the device counter.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scan_ingest import ROOT  # noqa: E402

sys.path.insert(0, str(ROOT))

from agent.outbox import Outbox  # noqa: E402
from agent.readers.sim import demo_uids  # noqa: E402

MB = 1024 * 1024


def prefill(path: Path, count: int, uids: list[str]) -> None:
    outbox = Outbox(path)
    start = datetime(2025, 3, 1, 7, 0, tzinfo=timezone.utc)
    rows = (
        (str(uuid.uuid4()), uids[n % len(uids)],
         (start + timedelta(milliseconds=250 * n)).isoformat(timespec="microseconds")
         .replace("+00:00", "Z"), n)
        for n in range(1, count + 1)
    )
    with outbox._transaction():
        outbox.db.executemany(
            "INSERT INTO reads (event_id, uid, read_at, counter) VALUES (?, ?, ?, ?)", rows
        )
        outbox._set("counter", str(count))
    assert outbox.queued() == count
    outbox.close()


def vm_hwm(pid: int) -> int:
    """The process's peak resident set as the kernel counted it, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def sample_rss(process: subprocess.Popen, seconds: float, until=None) -> tuple[int, int, float]:
    """Sample the process's RSS every 0.1 s for `seconds` (or until `until()` is true); return
    (peak sampled RSS, kernel peak VmHWM, seconds sampled)."""
    import psutil

    proc, peak, start = psutil.Process(process.pid), 0, time.monotonic()
    while time.monotonic() - start < seconds:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        peak = max(peak, proc.memory_info().rss)
        if until is not None and until():
            break
        time.sleep(0.1)
    return peak, vm_hwm(process.pid), time.monotonic() - start


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def log_events(path: Path) -> dict:
    counts: dict = {}
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)["event"]
        except (ValueError, KeyError):
            continue
        counts[event] = counts.get(event, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description="Agent RSS with a large outbox backlog.")
    parser.add_argument("--reads", type=int, default=100_000, help="reads queued beforehand")
    parser.add_argument("--seconds", type=float, default=20, help="sampling time")
    parser.add_argument("--deliver", action="store_true",
                        help="then start the server and time the delivery of the backlog")
    parser.add_argument("--deliver-timeout", type=float, default=1800)
    args = parser.parse_args()

    from scan_latency import free_port

    scratch = Path(tempfile.mkdtemp(prefix="filmroom-agent-rss-"))
    outbox_path, key_file = scratch / "outbox.sqlite3", scratch / "key"
    agent_log = scratch / "agent.log"
    uids = demo_uids()
    started = time.monotonic()
    prefill(outbox_path, args.reads, uids)
    print(f"outbox {outbox_path}: {args.reads} reads queued in {time.monotonic() - started:.1f} s, "
          f"{outbox_path.stat().st_size / MB:.1f} MB on disk; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    idle = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, httpx, time; time.sleep(3600)"], cwd=ROOT
    )
    try:
        time.sleep(1.0)  # past the imports
        base_peak, base_hwm, _s = sample_rss(idle, min(args.seconds, 5))
    finally:
        stop(idle)
    print(f"baseline: idle python with sqlite3 + httpx imported: peak RSS {base_peak / MB:.1f} MB "
          f"(VmHWM {base_hwm / MB:.1f} MB)")

    port = free_port()  # nobody listens here until --deliver starts the server on it
    if args.deliver:  # the database and the station's key first, so the agent holds a real key
        from scan_ingest import open_database, stocked_file_room
        from scan_latency import register_reader

        open_database("postgres", "bench_agent")
        from django.db import connection

        room = stocked_file_room(uids=uids)
        key_file.write_text(register_reader(room["reader"].name, room["shelf"].code) + "\n")
        connection.close()
    else:
        key_file.write_text("bench.not-a-real-key\n")
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent", "--server", f"http://127.0.0.1:{port}",
         "--key-file", str(key_file), "--reader", "sim", "--sim-rate", "5", "--sim-seed", "5",
         "--outbox", str(outbox_path)],
        cwd=ROOT, stdout=agent_log.open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        peak, hwm, sampled = sample_rss(agent, args.seconds)
        events = log_events(agent_log)
        queued = Outbox(outbox_path).queued()
        print(f"agent, server down, {sampled:.0f} s: peak RSS {peak / MB:.1f} MB (VmHWM "
              f"{hwm / MB:.1f} MB), {peak / base_peak:.2f}x the baseline, own cost "
              f"{(peak - base_peak) / MB:.1f} MB; target <= 60 MB: "
              f"{'met' if max(peak, hwm) <= 60 * MB else 'NOT met'}")
        print(f"  log: {events.get('read', 0)} reads stored, {events.get('error', 0)} delivery "
              f"errors; outbox holds {queued} (expected {args.reads + events.get('read', 0)})")
        if args.deliver:
            deliver(args, agent, port, agent_log)
    finally:
        stop(agent)
    print(f"agent log: {agent_log}")


def deliver(args, agent: subprocess.Popen, port: int, agent_log: Path) -> None:
    """Start the server where the agent has been knocking; time the backlog's delivery and check
    the server holds every read once, in device-counter order."""
    from django.db import connection

    from scan_latency import start_server, stop_server
    from tracker.models import ScanRecord

    def backlog_stored() -> int:
        return ScanRecord.objects.filter(counter__lte=args.reads).count()

    log_path = Path(os.environ["FILMROOM_VAR_DIR"]) / "gunicorn.log"
    server = start_server(port, workers=3, conn_max_age=60, log_path=log_path)
    up_at = datetime.now(timezone.utc)
    polls = 0

    def delivered() -> bool:
        nonlocal polls
        polls += 1
        return polls % 20 == 0 and backlog_stored() >= args.reads

    try:
        peak, hwm, took = sample_rss(agent, args.deliver_timeout, until=delivered)
        done = backlog_stored()
        first = next((datetime.fromisoformat(json.loads(line)["at"].replace("Z", "+00:00"))
                      for line in agent_log.read_text().splitlines()
                      if '"event":"delivered"' in line), up_at)
        counters = list(ScanRecord.objects.order_by("id").values_list("counter", flat=True))
        backlog = [c for c in counters if c <= args.reads]
        print(f"delivery: server up -> {done} of {args.reads} backlog reads stored in {took:.0f} s "
              f"({done / took:.0f} reads/s; the first batch went "
              f"{(first - up_at).total_seconds():.1f} s after the server came up: the agent's "
              f"backoff), agent peak RSS meanwhile "
              f"{peak / MB:.1f} MB (VmHWM {hwm / MB:.1f} MB)")
        print(f"  each backlog read stored once: {backlog == list(range(1, args.reads + 1))}; "
              f"all {len(counters)} reads stored in device-counter order: "
              f"{all(a < b for a, b in zip(counters, counters[1:]))}")
    finally:
        stop_server(server)
        connection.close()


if __name__ == "__main__":
    main()
