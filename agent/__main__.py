"""python -m agent --server URL --key-file FILE --reader sim|pcsc|nfcpy|wedge --outbox FILE
python -m agent status --outbox FILE

Logs one JSON line per read stored in the outbox (with its event_id and uid), one per batch
delivered, and one per error, on standard output."""
from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

from .client import Sender
from .outbox import DEFAULT_CAP, Outbox, utc_now_text
from .signals import stop_on_signals

_print_lock = threading.Lock()


def log(event: str, **fields) -> None:
    line = json.dumps({"at": utc_now_text(), "event": event, **fields}, separators=(",", ":"))
    with _print_lock:
        print(line, flush=True)


def build_reader(args, outbox: Outbox):
    if args.reader == "sim":
        from .readers.sim import FileReader, RandomReader

        if args.sim_file:
            return FileReader(args.sim_file, start=int(outbox.get_state("sim_position", "0")))
        return RandomReader(args.sim_rate or 1.0, seed=args.sim_seed)
    if args.reader == "wedge":
        from .readers.wedge import WedgeReader

        return WedgeReader(args.wedge_device)
    if args.reader == "pcsc":
        from .readers.pcsc import PcscReader

        return PcscReader(args.reader_name, log=log)
    if args.reader == "nfcpy":
        from .readers.nfcpy import NfcpyReader

        return NfcpyReader(args.nfc_device or "usb", log=log)
    raise SystemExit(f"unknown reader {args.reader}")


class Debounce:
    """The same tag read again within `window` seconds is the same tap."""

    def __init__(self, window: float):
        self.window = window
        self.last: tuple[str, float] | None = None

    def repeated(self, uid: str) -> bool:
        now = time.monotonic()
        if self.last and self.last[0] == uid and now - self.last[1] < self.window:
            self.last = (uid, now)
            return True
        self.last = (uid, now)
        return False


def run(args) -> int:
    key = Path(args.key_file).read_text().strip()
    if not key:
        raise SystemExit(f"{args.key_file} is empty: put the reader's API key in it.")
    outbox = Outbox(args.outbox, cap=args.cap)
    stop, wake, drained = threading.Event(), threading.Event(), threading.Event()
    stop_on_signals(stop)
    reader = build_reader(args, outbox)
    sender = Sender(
        outbox_path=args.outbox, server=args.server, key=key, log=log, wake=wake,
        batch_size=args.batch, cap=args.cap, reader_connected=lambda: bool(reader.connected),
    )
    # A replayed sim file ends when everything is delivered; a wedge reader's input ending (its
    # tty closed) stops the agent at once: unsent reads wait in the outbox for the next start.
    until_drained = drained if args.reader == "sim" and args.sim_file else None
    sending = threading.Thread(target=sender.run, args=(stop,), kwargs={"until_drained": until_drained},
                               name="sender", daemon=True)
    sending.start()
    debounce = Debounce(args.debounce if args.debounce is not None else (0.0 if args.reader == "sim" else 1.0))
    log("started", reader=args.reader, queued=outbox.queued(), server=args.server)
    try:
        for tap in reader.taps(stop):
            if debounce.repeated(tap.uid):
                if tap.state:
                    outbox.set_state(**tap.state)
                continue
            read = outbox.put(tap.uid, state=tap.state)
            wake.set()
            log("read", event_id=read.event_id, uid=read.uid, counter=read.counter, queued=outbox.queued())
    finally:
        drained.set()
        wake.set()
    if until_drained is None:
        stop.set()
    while sending.is_alive() and not stop.is_set():
        sending.join(0.5)
    stop.set()
    sending.join(5)
    log("stopped", queued=outbox.queued())
    return 0


def status(args) -> int:
    print(json.dumps(Outbox(args.outbox).status(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["status"]:
        parser = argparse.ArgumentParser(prog="python -m agent status", description="Print the outbox status as JSON.")
        parser.add_argument("--outbox", required=True)
        return status(parser.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(prog="python -m agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True, help="Filmroom base URL, e.g. https://filmroom.example")
    parser.add_argument("--key-file", required=True, help="file holding this reader's API key")
    parser.add_argument("--reader", required=True, choices=["sim", "pcsc", "nfcpy", "wedge"])
    parser.add_argument("--outbox", required=True, help="SQLite file for the durable outbox")
    parser.add_argument("--reader-name", help="PC/SC reader to use (substring of its name)")
    parser.add_argument("--nfc-device", help="nfcpy device path, e.g. usb or udp:localhost:54321")
    parser.add_argument("--wedge-device", help="tty a keyboard-wedge reader types into (default stdin)")
    parser.add_argument("--sim-file", help="replay one UID per line (resumes after the last stored read)")
    parser.add_argument("--sim-rate", type=float, help="read random demo tags N times a second")
    parser.add_argument("--sim-seed", type=int, help="seed for --sim-rate")
    parser.add_argument("--debounce", type=float, help="seconds within which the same tag is one read")
    parser.add_argument("--batch", type=int, default=200, help="reads per delivery (max 500)")
    parser.add_argument("--cap", type=int, default=DEFAULT_CAP, help="outbox size that raises the alarm")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
