"""PC/SC readers through pcscd, with pyscard's low-level `smartcard.scard` API.

A tag placed on the reader is read once with the PC/SC part 3 GET DATA command (`FF CA 00 00 00`)
and reported as its UID in uppercase hex. Arrivals are told apart by pcscd's event counter (the
high 16 bits of the reader's event state), not by the ATR: two tags of the same kind swapped
faster than we look have the same ATR, but each arrival and removal moves the counter."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from smartcard import scard

from . import Tap

PNP = "\\\\?PnP?\\Notification"  # pseudo-reader that changes when readers come and go
GET_UID = [0xFF, 0xCA, 0x00, 0x00, 0x00]
WAIT_MS = 500  # how long one look at the reader may block, so `stop` is noticed quickly
RETRY_SECONDS = 1.0  # between attempts to reach pcscd when it is not running


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


TIMEOUT = _code(scard.SCARD_E_TIMEOUT)
READER_GONE = {
    _code(c)
    for c in (
        scard.SCARD_E_UNKNOWN_READER,
        scard.SCARD_E_READER_UNAVAILABLE,
        scard.SCARD_E_NO_READERS_AVAILABLE,
    )
}
SERVICE_GONE = {
    _code(c)
    for c in (
        scard.SCARD_E_NO_SERVICE,
        scard.SCARD_E_SERVICE_STOPPED,
        scard.SCARD_E_INVALID_HANDLE,
        scard.SCARD_F_COMM_ERROR,
    )
}


class PcscError(Exception):
    def __init__(self, what: str, hresult: int):
        self.code = _code(hresult)
        super().__init__(f"{what}: {scard.SCardGetErrorMessage(hresult)} (0x{self.code:08X})")


def _check(what: str, result):
    """pyscard returns (hresult, values...): raise for a failure, return the values."""
    hresult, *values = (result,) if isinstance(result, int) else result
    if _code(hresult) != 0:
        raise PcscError(what, hresult)
    return values[0] if len(values) == 1 else values


def _counter(state: int) -> int:
    return (state >> 16) & 0xFFFF


def arrived(before: int | None, after: int) -> bool:
    """Whether the reader's state went from `before` (None: first look) to a new tag on it."""
    if not after & scard.SCARD_STATE_PRESENT or after & scard.SCARD_STATE_MUTE:
        return False
    if before is None or not before & scard.SCARD_STATE_PRESENT:
        return True
    # Present both times: a different count means it was taken off and one put on in between.
    return _counter(before) != _counter(after)


class PcscReader:
    def __init__(
        self, reader_name: str | None = None, *, log: Callable[..., None] = lambda *a, **k: None
    ):
        self.reader_name = reader_name
        self.log = log
        self.connected = False
        self._reported: str | None = None

    def taps(self, stop: threading.Event) -> Iterator[Tap]:
        while not stop.is_set():
            context = None
            try:
                context = _check(
                    "connecting to pcscd", scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
                )
                yield from self._watch(context, stop)
            except PcscError as error:
                self._report(
                    None, problem=f"{error}. Is pcscd running? Retrying every {RETRY_SECONDS:g} s."
                )
                stop.wait(RETRY_SECONDS)
            finally:
                if context is not None:
                    scard.SCardReleaseContext(context)
        self.connected = False

    def _report(self, name: str | None, *, problem: str | None = None) -> None:
        """Set `connected` and log each change once (not once per retry)."""
        self.connected = name is not None
        status = problem or name or "no reader"
        if status == self._reported:
            return
        self._reported = status
        if problem:
            self.log("error", reader="pcsc", message=problem)
        elif name:
            self.log("reader", reader="pcsc", status="connected", name=name)
        else:
            wanted = f"a reader named like {self.reader_name!r}" if self.reader_name else "a reader"
            self.log(
                "reader",
                reader="pcsc",
                status="waiting",
                message=f"Waiting for {wanted} to be plugged in.",
            )

    def _pick(self, context) -> str | None:
        hresult, names = scard.SCardListReaders(context, [])
        if _code(hresult) in READER_GONE:
            return None
        names = _check("listing readers", (hresult, names))
        return next((n for n in names if self.reader_name is None or self.reader_name in n), None)

    def _watch(self, context, stop: threading.Event) -> Iterator[Tap]:
        name, state, pnp, relist = None, None, scard.SCARD_STATE_UNAWARE, True
        while not stop.is_set():
            if relist:
                current = self._pick(context)
                if current != name:
                    name, state = current, None
                self._report(name)
                relist = False
            looks = [(PNP, pnp)]
            if name:
                looks.append((name, scard.SCARD_STATE_UNAWARE if state is None else state))
            hresult, results = scard.SCardGetStatusChange(context, WAIT_MS, looks)
            if _code(hresult) == TIMEOUT:
                continue
            if _code(hresult) in READER_GONE:
                relist = True
                continue
            _check("watching the reader", (hresult, results))
            for reader, event, _atr in results:
                changed = event & scard.SCARD_STATE_CHANGED
                event &= ~scard.SCARD_STATE_CHANGED
                if reader == PNP:
                    relist, pnp = relist or bool(changed), event
                elif event & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                    relist = True
                else:
                    before, state = state, event
                    if arrived(before, event) and (uid := self._read_uid(context, name)):
                        yield Tap(uid)

    def _read_uid(self, context, name: str) -> str | None:
        """The UID of the tag on the reader, or None (logged) when it could not be read."""
        try:
            card, protocol = _check(
                "connecting to the tag",
                scard.SCardConnect(
                    context,
                    name,
                    scard.SCARD_SHARE_SHARED,
                    scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
                ),
            )
            try:
                response = _check("reading the UID", scard.SCardTransmit(card, protocol, GET_UID))
            finally:
                scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        except PcscError as error:
            if error.code in SERVICE_GONE:
                raise
            self.log(
                "error",
                reader="pcsc",
                message=f"{error}. The tag was not read (taken away too soon?); tap it again.",
            )
            return None
        if len(response) < 2 or response[-2:] != [0x90, 0x00]:
            answer = bytes(response).hex().upper() or "nothing"
            self.log(
                "error",
                reader="pcsc",
                message=f"The tag answered {answer} instead of its UID; tap it again.",
            )
            return None
        return bytes(response[:-2]).hex().upper()
