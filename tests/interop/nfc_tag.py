"""A contactless tag for nfcpy's `udp` driver: a reader opened as `udp:localhost:PORT` finds it.

    python tests/interop/nfc_tag.py --port PORT --type3 IDM    # FeliCa / Type 3, nfcpy's emulation
    python tests/interop/nfc_tag.py --port PORT --type2 UID    # NTAG213 / Type 2, answered here

The tag lies on the reader while the process runs; ending the process takes it away. nfcpy
emulates Type 3 tags itself; for Type 2 this program answers the udp driver's datagrams
(`106A <hex frame>`) the way an NTAG213 does: anticollision for a 7-byte UID, GET_VERSION and
READ. Events are printed as flushed lines (`listening`, `selected`, `read PAGE`, `connected`,
`released`) so tests wait on output instead of sleeping."""

from __future__ import annotations

import argparse
import functools
import operator
import socket
import sys


def say(*words: str) -> None:
    print(*words, flush=True)


def bcc(data: bytes) -> int:
    return functools.reduce(operator.xor, data, 0)


def ntag213_memory(uid: bytes) -> bytes:
    """45 pages: the UID with its check bytes, the capability container, an empty NDEF message."""
    head = uid[:3] + bytes([bcc(b"\x88" + uid[:3])]) + uid[3:] + bytes([bcc(uid[3:]), 0x48, 0, 0])
    head += bytes.fromhex("E1101200 0300FE00")
    return head + bytes(45 * 4 - len(head))


def serve_type2(port: int, uid: bytes) -> None:
    if len(uid) != 7:
        raise SystemExit("a Type 2 UID has 7 bytes (14 hex digits)")
    memory = ntag213_memory(uid)
    cl1, cl2 = b"\x88" + uid[:3], uid[3:]
    anticollision = {
        b"\x93\x20": cl1 + bytes([bcc(cl1)]),  # cascade level 1: 88 (cascade tag) + 3 UID bytes
        b"\x93\x70" + cl1 + bytes([bcc(cl1)]): b"\x04",  # SAK: UID not complete
        b"\x95\x20": cl2 + bytes([bcc(cl2)]),
        b"\x95\x70" + cl2 + bytes([bcc(cl2)]): b"\x00",  # SAK: selected, a Type 2 tag
    }
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    say("listening", uid.hex().upper())
    selected = False
    while True:
        datagram, reader = sock.recvfrom(1024)
        technology, _, frame_hex = datagram.decode("ascii").partition(" ")
        if technology != "106A":
            continue  # Type B or F polls: an NTAG does not hear them
        frame = bytes.fromhex(frame_hex)
        answer = None
        if frame in (b"\x26", b"\x52"):  # SENS_REQ / ALL_REQ: anticollision starts again
            selected, answer = False, b"\x44\x00"
        elif frame in anticollision:
            answer = anticollision[frame]
            if answer == b"\x00":
                selected = True
                say("selected")
        elif not selected:
            pass  # READ and the rest need a selected tag: a new tag cannot pass a presence check
        elif frame == b"\x60":  # GET_VERSION
            answer = bytes.fromhex("0004040201000F03")  # NTAG213
        elif frame[:1] == b"\x30" and len(frame) == 2:  # READ four pages (the presence check too)
            start = frame[1] % 45 * 4
            answer = (memory + memory[:16])[start : start + 16]
            say("read", str(frame[1]))
        else:
            selected = (
                False  # e.g. AUTHENTICATE: an NTAG213 does not know it, refuses and goes idle
            )
        if answer is not None:
            sock.sendto(b"106A " + answer.hex().encode(), reader)


def serve_type3(port: int, idm: bytes) -> None:
    import nfc

    if len(idm) != 8:
        raise SystemExit("a Type 3 IDm has 8 bytes (16 hex digits)")
    pmm = bytes.fromhex("0301FFFFFFFFFFFF")  # IC code 01: a standard FeliCa card
    system_code = bytes.fromhex("12FC")  # NFC Forum Type 3 Tag

    def on_startup(target):
        target.brty = "212F"
        target.sensf_res = bytearray(b"\x01" + idm + pmm + system_code)
        return target

    with nfc.ContactlessFrontend(f"udp:localhost:{port}") as clf:
        say("listening", idm.hex().upper())
        while True:
            clf.connect(
                card={
                    "on-startup": on_startup,
                    "on-connect": lambda tag: say("connected") or True,
                    "on-release": lambda tag: say("released") or True,
                }
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True, help="UDP port the reader's path names")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--type2", metavar="UID", help="an NTAG213 with this 7-byte UID")
    kind.add_argument("--type3", metavar="IDM", help="a FeliCa card with this 8-byte IDm")
    args = parser.parse_args()
    if args.type2:
        serve_type2(args.port, bytes.fromhex(args.type2))
    else:
        serve_type3(args.port, bytes.fromhex(args.type3))
    return 0


if __name__ == "__main__":
    sys.exit(main())
