"""Delivers the outbox to the server's scan API in order, in batches, with retry and backoff.

A read leaves the outbox only after the server answered for it: `stored: true` (the server holds
it, whatever it meant at the counter) → removed; `stored: false` (refused for good, e.g. a
malformed read or an event_id reused with other details) → kept aside in the outbox's
`rejected` table with the server's reason and logged. Nothing is dropped silently.
"""
from __future__ import annotations

import random
import threading
from collections.abc import Callable

import httpx

from .outbox import Outbox

MAX_BACKOFF = 30.0
MAX_BATCH = 500


class Sender:
    def __init__(
        self,
        *,
        outbox_path: str,
        server: str,
        key: str,
        log: Callable[..., None],
        wake: threading.Event,
        batch_size: int = 200,
        timeout: float = 10.0,
        cap: int | None = None,
        reader_connected: Callable[[], bool] = lambda: True,
    ):
        self.outbox_path = outbox_path
        self.url = server.rstrip("/") + "/api/v1/scans/"
        self.headers = {"Authorization": f"Api-Key {key}", "User-Agent": "filmroom-agent/1"}
        self.log = log
        self.wake = wake
        self.batch_size = min(batch_size, MAX_BATCH)
        self.timeout = timeout
        self.cap = cap
        self.reader_connected = reader_connected
        self.backoff = 0.0

    def run(self, stop: threading.Event, *, until_drained: threading.Event | None = None) -> None:
        """Deliver until `stop` is set (or, once `until_drained` is set, until the queue is empty)."""
        outbox = Outbox(self.outbox_path, **({"cap": self.cap} if self.cap else {}))
        alarm_raised, connected = False, None
        with httpx.Client(timeout=self.timeout, headers=self.headers) as http:
            while not stop.is_set():
                if self.reader_connected() != connected:  # for `python -m agent status`
                    connected = self.reader_connected()
                    outbox.set_state(reader_connected="true" if connected else "false")
                batch = outbox.peek(self.batch_size)
                if not batch:
                    if until_drained is not None and until_drained.is_set():
                        return
                    self.wake.wait(1.0)
                    self.wake.clear()
                    continue
                if outbox.near_cap() != alarm_raised:
                    alarm_raised = not alarm_raised
                    if alarm_raised:
                        self.log("alarm", message="outbox near its cap; deliveries are failing",
                                 queued=outbox.queued(), cap=outbox.cap)
                if self._deliver(http, outbox, batch):
                    self.backoff = 0.0
                else:
                    self.backoff = min(MAX_BACKOFF, max(0.25, self.backoff * 2))
                    stop.wait(self.backoff * random.uniform(0.8, 1.2))
        outbox.close()

    def _deliver(self, http: httpx.Client, outbox: Outbox, batch) -> bool:
        try:
            response = http.post(self.url, json={"scans": [read.as_scan() for read in batch]})
        except httpx.HTTPError as exc:
            return self._failed(outbox, f"server unreachable: {exc.__class__.__name__}: {exc}")
        if response.status_code == 413 and self.batch_size > 1:
            self.batch_size = max(1, self.batch_size // 2)
            return self._failed(outbox, f"batch too large; now sending {self.batch_size} at a time")
        if response.status_code not in (200, 201, 207):
            return self._failed(outbox, f"server answered {response.status_code}: {response.text[:300]}")
        try:
            results = {item["event_id"]: item for item in response.json()["results"]}
        except (ValueError, KeyError, TypeError):
            return self._failed(outbox, "server answered without per-scan results")
        delivered = []
        for read in batch:
            result = results.get(read.event_id)
            if result is None:
                continue  # not answered: stays queued and goes again
            if result.get("stored"):
                delivered.append(read.id)
            else:
                reason = f"{result.get('code', 'rejected')}: {result.get('message', '')}"
                outbox.reject(read, reason)
                self.log("error", message="server refused a read", event_id=read.event_id,
                         uid=read.uid, reason=reason)
        outbox.ack(delivered)
        self.log("delivered", count=len(delivered), queued=outbox.queued())
        return True

    def _failed(self, outbox: Outbox, message: str) -> bool:
        outbox.set_state(last_error=message)
        self.log("error", message=message, queued=outbox.queued())
        return False
