"""Stopping a long-running process on SIGTERM or SIGINT without a Python signal handler.

A Python signal handler runs in the main thread between two bytecodes. One that calls
`stop.set()` while the main thread is inside `stop.wait()` - holding the event's own lock - waits
for that lock forever: the process hangs on SIGTERM, rarely, and only when the signal lands in
that window (CI met it once in ~2 000 agent stops). Here the signals are blocked and a thread of
their own takes them with `sigwait`, so `stop.set()` runs as plain code in another thread.

Standard library only: the reader agent and the server's looping commands (`sweep --loop`)
both use it."""
from __future__ import annotations

import os
import signal
import threading

STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def stop_on_signals(stop: threading.Event) -> None:
    """Set `stop` at the first SIGTERM or SIGINT; a second one ends the process at once (exit
    status 128 + the signal's number), for a process stuck somewhere that never looks at `stop`.

    Call it before starting any other thread: threads inherit the blocked signals from the thread
    that starts them, and a thread that had them unblocked would take them instead."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def take() -> None:
        signal.sigwait(STOP_SIGNALS)
        stop.set()
        os._exit(128 + signal.sigwait(STOP_SIGNALS))

    threading.Thread(target=take, name="stop-signals", daemon=True).start()
