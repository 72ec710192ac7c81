"""A contactless tag on vsmartcard's virtual reader (vpcd), driven by lines on standard input.

    python tests/interop/vpcd_tag.py --port 35963

The emulator is vpcd's TCP client: connecting puts the tag on the reader, closing takes it off.
Every message is a 2-byte big-endian length and a payload; a 1-byte payload is a control code
(00 power off, 01 power on, 02 reset, 04 send the ATR), anything longer an APDU.

Commands (one per line): `insert UID`, `remove`, `swap UID` (off and the next one on at once),
`tap-drop UID` (on, then off as soon as the first APDU arrives, unanswered), `polls` (how many
times pcscd asked for the ATR: it does so every ~400 ms while a tag is on), `quit`.
Each event is printed as one flushed line (`inserted UID`, `apdu CMD RESPONSE`, `dropped CMD`,
`removed`, `ejected` when pcscd hung up, `polls N`, `error ...`) so tests wait on output."""

from __future__ import annotations

import argparse
import socket
import struct
import sys
import threading

# A contactless storage card as PC/SC part 3 describes it (ISO 14443 A, "MIFARE Ultralight").
ATR = bytes.fromhex("3B8F8001804F0CA0000003060300030000000068")
GET_UID = bytes.fromhex("FFCA000000")
_print_lock = threading.Lock()


def say(*words: str) -> None:
    with _print_lock:
        print(*words, flush=True)


def ntag213_memory(uid: bytes) -> bytes:
    """45 pages: the UID with its check bytes, the capability container, an empty NDEF message."""
    uid = (uid + bytes(7))[:7]
    bcc0 = 0x88 ^ uid[0] ^ uid[1] ^ uid[2]
    bcc1 = uid[3] ^ uid[4] ^ uid[5] ^ uid[6]
    head = (
        uid[:3]
        + bytes([bcc0])
        + uid[3:]
        + bytes([bcc1, 0x48, 0, 0])
        + bytes.fromhex("E1101200 0300FE00")
    )
    return head + bytes(45 * 4 - len(head))


class Tag:
    """One tag on the reader: one connection to vpcd, served by its own thread."""

    def __init__(self, port: int, uid: bytes, *, drop_on_apdu: bool = False):
        self.uid, self.memory, self.drop_on_apdu = uid, ntag213_memory(uid), drop_on_apdu
        self.polls, self.taken_off, self.off_reader = 0, False, False
        self.sock = socket.create_connection(("127.0.0.1", port))
        # Without these each APDU waits ~40 ms for a delayed ACK.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._quickack()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def _quickack(self) -> None:
        # Linux leaves quick-ACK mode on its own, so it is set again after every receive.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    def _receive(self, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        self._quickack()
        return data

    def answer(self, apdu: bytes) -> bytes:
        if apdu == GET_UID:
            return self.uid + b"\x90\x00"
        if len(apdu) == 5 and apdu[:3] == b"\xff\xb0\x00":
            start, length = apdu[3] * 4, apdu[4] or 256
            if start + length <= len(self.memory):
                return self.memory[start : start + length] + b"\x90\x00"
        return b"\x6a\x81"

    def serve(self) -> None:
        dropped = None
        try:
            while (head := self._receive(2)) is not None:
                payload = self._receive(struct.unpack(">H", head)[0])
                if payload is None:
                    break
                if len(payload) == 1:
                    if payload[0] == 0x04:
                        self.polls += 1
                        self.sock.sendall(struct.pack(">H", len(ATR)) + ATR)
                    continue
                if self.drop_on_apdu:
                    dropped = payload
                    self.sock.shutdown(socket.SHUT_RDWR)
                    break
                reply = self.answer(payload)
                self.sock.sendall(struct.pack(">H", len(reply)) + reply)
                say("apdu", payload.hex().upper(), reply.hex().upper())
        except OSError:
            pass
        self.off_reader = True  # before saying so: the next command may come at once
        if dropped is not None:
            say("dropped", dropped.hex().upper())
        elif not self.taken_off:
            say("ejected")

    def take_off(self) -> None:
        self.taken_off = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # pcscd hung up first
        self.thread.join()
        self.sock.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--port",
        type=int,
        default=35963,
        help="vpcd port of the reader (35963 = Virtual PCD 00 00)",
    )
    port = parser.parse_args().port
    tag: Tag | None = None
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if tag and tag.off_reader:  # dropped, or pcscd hung up
            tag.take_off()
            tag = None
        try:
            if command in ("remove", "swap", "quit"):
                if tag:
                    tag.take_off()
                    tag = None
                say("removed")
            if command in ("insert", "swap", "tap-drop"):
                if tag:
                    raise ValueError("a tag is already on the reader: remove it first")
                tag = Tag(port, bytes.fromhex(argument), drop_on_apdu=command == "tap-drop")
                say("inserted", tag.uid.hex().upper())
            elif command == "polls":
                say("polls", str(tag.polls if tag else 0))
            elif command == "quit":
                return 0
            elif command not in ("remove", "swap", ""):
                raise ValueError(f"unknown command {command!r}")
        except (OSError, ValueError) as error:
            say("error", str(error))
    if tag:
        tag.take_off()
    return 0


if __name__ == "__main__":
    sys.exit(main())
