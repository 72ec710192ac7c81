"""Readers driven by nfcpy (USB PN53x/RC-S380 readers, a serial reader, or `udp:HOST:PORT` for
its simulated reader): each tag found is reported once as its identifier in uppercase hex (the
UID of a Type 1/2/4A tag, the IDm of a FeliCa card, the NFCID0 of a Type 4B tag), then the tag
is watched until it leaves. nfcpy cannot read ISO 15693 (ICODE SLIX) tags: use PC/SC for those."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import nfc

from . import Tap

TARGETS = ("106A", "106B", "212F")  # ISO 14443 A (NTAG, MIFARE), 14443 B, FeliCa
PRESENCE_CHECK_SECONDS = 0.1
RETRY_SECONDS = 2.0  # between attempts to open a reader that is missing or failed


class NfcpyReader:
    def __init__(
        self,
        path: str,
        *,
        log: Callable[..., None] = lambda *a, **k: None,
        targets: tuple[str, ...] = TARGETS,
    ):
        self.path = path
        self.log = log
        self.targets = list(targets)
        self.connected = False
        self._reported: str | None = None
        # nfcpy logs a broken link as an error on its own logger; the agent reports it itself.
        logging.getLogger("nfc.clf").setLevel(logging.CRITICAL)

    def _report(self, problem: str | None) -> None:
        self.connected = problem is None
        status = problem or "connected"
        if status == self._reported:
            return
        self._reported = status
        if problem:
            self.log("error", reader="nfcpy", message=problem)
        else:
            self.log("reader", reader="nfcpy", status="connected", path=self.path)

    def taps(self, stop: threading.Event) -> Iterator[Tap]:
        while not stop.is_set():
            try:
                clf = nfc.ContactlessFrontend(self.path)
            except (OSError, ValueError) as error:
                self._report(
                    f"Cannot open the nfcpy reader {self.path!r}: {error}. "
                    f"Is it plugged in (and not claimed by a kernel driver)? "
                    f"Retrying every {RETRY_SECONDS:g} s."
                )
                stop.wait(RETRY_SECONDS)
                continue
            try:
                yield from self._watch(clf, stop)
            finally:
                clf.close()
                self.connected = False

    def _watch(self, clf, stop: threading.Event) -> Iterator[Tap]:
        self._report(None)
        options = {
            "targets": self.targets,
            "iterations": 1,  # so `terminate` is asked after every sweep over the targets
            "on-connect": lambda tag: False,  # hand the tag back: presence is watched below
            "beep-on-connect": False,
        }
        while not stop.is_set():
            tag = clf.connect(rdwr=options, terminate=stop.is_set)
            if tag is False:
                self._report(f"The nfcpy reader {self.path!r} failed; opening it again.")
                stop.wait(RETRY_SECONDS)
                return
            if tag is None:
                continue
            yield Tap(bytes(tag.identifier).hex().upper())
            while not stop.is_set() and self._still_there(tag):
                stop.wait(PRESENCE_CHECK_SECONDS)

    def _still_there(self, tag) -> bool:
        try:
            return tag.is_present
        except (nfc.clf.CommunicationError, nfc.tag.TagCommandError, OSError):
            return False  # gone; a reader that was unplugged fails the next connect and is reopened
