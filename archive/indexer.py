"""Read a disc: every file once, header parsed (no pixel data) and SHA-256 computed in one read.

Discs come from outside the hospital and may be damaged or hostile, so the parsing happens in
worker processes with a per-file deadline and an address-space limit: a file that hangs, recurses
or allocates without bound costs one worker (replaced) and becomes a per-file problem; the other
files are still indexed. Nothing here touches the database; archive.services turns the result
into rows. The DICOMDIR is read as a hint (checked, never followed outside the disc); the folders
are always walked. Symbolic links are never followed and no path outside the disc is opened.

This module must stay importable without Django set up: worker processes import it alone.
"""
from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import queue
import stat
import struct
import threading
import time
import warnings
import zlib
from collections import deque
from dataclasses import dataclass, field
from io import BytesIO
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterator

from django.utils.translation import gettext_lazy as _

logger = logging.getLogger(__name__)

# Header bytes kept in memory per file; the rest of a file is hashed as it streams past.
HEADER_LIMIT = 64 * 1024 * 1024
CHUNK = 1024 * 1024
# Deflated datasets are inflated only this far: enough for any header, not for a bomb.
INFLATE_LIMIT = 64 * 1024 * 1024
# A file may take its deadline plus the time to read it at this (slow optical drive) rate.
SLOW_READ_BYTES_PER_SECOND = 1024 * 1024
DICOMDIR_NAME = "DICOMDIR"
DEFLATED = "1.2.840.10008.1.2.1.99"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
UNDEFINED = 0xFFFFFFFF
# Explicit VRs whose length field is 4 bytes (after 2 reserved bytes).
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}

# Problem codes are produced in the workers (no translations there) and rendered in the parent.
REASONS = {
    "not_dicom": _("not DICOM (no DICM marker after the 128-byte preamble)"),
    "not_dicom_meta": _("not DICOM: the file meta information cannot be read (%(error)s)"),
    "truncated": _("truncated: %(detail)s"),
    "too_deep": _("sequences nested too deep to read; not indexed"),
    "out_of_memory": _("reading it needed more than the %(mb)s MB allowed; not indexed"),
    "deflate_bomb": _(
        "deflated data expands beyond %(mib)s MiB (a possible deflate bomb); not inflated further"
    ),
    "timeout": _("took longer than %(seconds)s s to read; the reader was stopped"),
    "crashed": _("the reader process died while reading it (exit code %(code)s)"),
    "unreadable": _("cannot be read: %(error)s"),
    "unparsable": _("not readable as DICOM: %(error)s"),
    "header_too_long": _("its header is longer than %(mib)s MiB; not indexed"),
    "no_uids": _("DICOM file without %(missing)s; kept in the manifest but not grouped"),
    "symlink_out": _("symbolic link leaving the disc (to %(target)s); not followed"),
    "symlink_in": _("symbolic link (to %(target)s); not followed, its target is indexed where it lies"),
    "special": _("not a regular file (%(what)s); not read"),
    "path_too_long": _("path longer than %(limit)s characters; not indexed"),
    "dicomdir_escape": _("the DICOMDIR names %(file_id)s, a path outside the disc; not followed"),
    "dicomdir_loop": _(
        "the DICOMDIR's record offsets loop (the record at byte %(offset)s is reached again); "
        "not followed further"
    ),
    "dicomdir_bad_offset": _("the DICOMDIR points at byte %(offset)s, where no record starts"),
    "dicomdir_missing": _("named in the DICOMDIR but not on the disc"),
    "dicomdir_unreadable": _("the DICOMDIR cannot be read: %(error)s"),
}


def reason_text(code: str, params: dict | None = None) -> str:
    """The sentence for a problem code, in the active language."""
    return str(REASONS[code]) % (params or {})


class DiscReadError(Exception):
    """The disc cannot be read at all (not a folder, or no reader process can start)."""


@dataclass(frozen=True)
class DiscItem:
    """One name found on the disc. `path` is the relative POSIX path shown and stored;
    `os_path` is the same path as the file system spells it (it may hold undecodable bytes)."""

    path: str
    os_path: str
    kind: str  # "file", "symlink" or "special"
    size: int = 0
    link_target: str = ""
    what: str = ""


@dataclass
class DiscWalk:
    items: list[DiscItem] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)


@dataclass
class IndexedDisc:
    """What the disc holds: one entry per name (plain dicts), the problems, and the figures."""

    root: Path
    entries: list[dict]
    problems: list[dict]
    dicomdir_sha256: str
    pdi_report: dict
    seconds: float

    @property
    def file_count(self) -> int:
        return len(self.entries)

    @property
    def total_bytes(self) -> int:
        return sum(entry["size"] for entry in self.entries)


def _shown(os_name: str) -> str:
    """A name as stored and shown: undecodable bytes become \\xNN escapes, never an error."""
    return os.fsencode(os_name).decode("utf-8", "backslashreplace")


def link_digest(target: str) -> str:
    """The manifest's 'hash' of a symbolic link: its target text (it is never followed)."""
    return hashlib.sha256(b"symlink\0" + os.fsencode(target)).hexdigest()


EMPTY_DIGEST = hashlib.sha256(b"").hexdigest()
PATH_LIMIT = 512


def walk_disc(root: Path) -> DiscWalk:
    """Every name under root, without following symbolic links; iterative, so depth is no risk."""
    root = Path(root)
    if not root.is_dir():
        raise DiscReadError(str(_("%(path)s is not a folder. Give the disc's mount point or a copied folder.") % {"path": root}))
    real_root = os.path.realpath(root)
    walk = DiscWalk()
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir) if rel_dir else root) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            walk.problems.append({"path": _shown(rel_dir) or ".", "code": "unreadable",
                                  "params": {"error": exc.strerror or str(exc)}})
            continue
        for entry in entries:
            os_path = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            shown = _shown(os_path)
            try:
                if entry.is_symlink():
                    target = os.readlink(entry.path)
                    inside = os.path.realpath(entry.path)
                    leaves = os.path.commonpath([real_root, inside]) != real_root
                    walk.items.append(DiscItem(shown, os_path, "symlink", link_target=_shown(target),
                                               what="out" if leaves else "in"))
                elif entry.is_dir(follow_symlinks=False):
                    stack.append(os_path)
                elif entry.is_file(follow_symlinks=False):
                    walk.items.append(DiscItem(shown, os_path, "file",
                                               size=entry.stat(follow_symlinks=False).st_size))
                else:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    what = ("named pipe" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
                            else "device" if stat.S_ISBLK(mode) or stat.S_ISCHR(mode) else "unknown")
                    walk.items.append(DiscItem(shown, os_path, "special", what=what))
            except OSError as exc:
                walk.problems.append({"path": shown, "code": "unreadable",
                                      "params": {"error": exc.strerror or str(exc)}})
    walk.items.sort(key=lambda item: item.path)
    return walk


# --- reading one file (runs in a worker process, or in a thread for hash-only checks) --------

def open_inside(root_fd: int, os_path: str) -> int:
    """Open a regular file under the disc root, refusing symbolic links at every step."""
    parts = os_path.split("/")
    fds = []
    try:
        current = root_fd
        for part in parts[:-1]:
            current = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=current)
            fds.append(current)
        # O_NONBLOCK: a named pipe swapped in after the walk must not block the open.
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=current)
    finally:
        for opened in fds:
            os.close(opened)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "not a regular file")
    return fd


_buffer = bytearray()


def read_and_hash(fd: int, limit: int = HEADER_LIMIT) -> tuple[memoryview, int, str]:
    """One pass over the file: (its first `limit` bytes, its size, its SHA-256). The bytes are a
    view of a buffer reused for the next file (a fresh one each time costs page faults)."""
    global _buffer
    digest = hashlib.sha256()
    size_hint = os.fstat(fd).st_size
    want = min(size_hint, limit) or 1
    if len(_buffer) < want:
        _buffer = bytearray(want)
    view = memoryview(_buffer)[:want]
    got = 0
    with open(fd, "rb", buffering=0, closefd=False) as stream:
        while got < want:
            n = stream.readinto(view[got:])
            if not n:
                break
            got += n
        digest.update(view[:got])
        size = got
        if got == want and got == limit:
            chunk = bytearray(CHUNK)
            chunk_view = memoryview(chunk)
            while n := stream.readinto(chunk_view):
                digest.update(chunk_view[:n])
                size += n
    return view[:got], size, digest.hexdigest()


def hash_file(root_fd: int, os_path: str) -> tuple[int, str]:
    """(size, SHA-256) of one file under the root, for hash-only verification."""
    fd = open_inside(root_fd, os_path)
    try:
        digest = hashlib.sha256()
        size = 0
        chunk = bytearray(CHUNK)
        view = memoryview(chunk)
        with open(fd, "rb", buffering=0, closefd=False) as stream:
            while n := stream.readinto(view):
                digest.update(view[:n])
                size += n
        return size, digest.hexdigest()
    finally:
        os.close(fd)


def _hash_path_within(root: Path, item: DiscItem, seconds: float) -> tuple[int, str] | None:
    """(size, SHA-256) of one file, or None when unreadable or still being read after `seconds`:
    a reader stopped for overrunning may have been stuck in the read itself, and the import must
    not hang on the same file."""
    with Hashers(root, workers=1) as hashers:
        for _item, hashed in hashers.run([item], deadline=lambda _item: seconds):
            return hashed
    return None


class Hashers:
    """Daemon threads hashing disc files, each file against its own deadline: `run` yields
    (item, (size, sha256)) or (item, None) for a file unreadable or past its deadline, whose
    thread is then abandoned and replaced. A scratched disc or a hung stick can stall read()
    itself, and nothing must hang on it: a daemon thread stuck there holds no lock and does not
    keep the process alive. Used by disc verification, and by the import for a file whose
    reader process was stopped."""

    def __init__(self, root: Path, workers: int):
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.workers = max(1, workers)
        self.todo: queue.SimpleQueue = queue.SimpleQueue()
        self.done: queue.SimpleQueue = queue.SimpleQueue()
        self.busy: dict[int, tuple[DiscItem, float]] = {}  # thread ident -> item, deadline
        self.stopped = threading.Event()
        self.started = 0

    def __enter__(self) -> Hashers:
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        for _thread in range(self.started):  # one each, so no idle thread waits on for ever
            self.todo.put(None)
        # An abandoned thread may still be inside read(): it holds its own descriptor for the
        # file, not this one, so closing the root now is safe.
        os.close(self.root_fd)

    def _work(self, deadline_of) -> None:
        me = threading.get_ident()
        while not self.stopped.is_set():
            item = self.todo.get()
            if item is None or self.stopped.is_set():
                return
            self.busy[me] = (item, time.monotonic() + deadline_of(item))
            try:
                result = hash_file(self.root_fd, item.os_path)
            except OSError:
                result = None
            if self.busy.pop(me, None) is None:
                return  # given up on while it read: its item is already answered
            self.done.put((item, result))

    def _start(self, deadline_of) -> None:
        self.started += 1
        threading.Thread(target=self._work, args=(deadline_of,), name="filmroom-hash", daemon=True).start()

    def run(self, items: list, *, deadline) -> Iterator[tuple]:
        for item in items:
            self.todo.put(item)
        for _thread in range(self.workers):
            self._start(deadline)
        answered = 0
        while answered < len(items):
            soonest = min((due for _item, due in list(self.busy.values())), default=None)
            wait_for = 1.0 if soonest is None else max(0.0, min(1.0, soonest - time.monotonic()))
            try:
                yield self.done.get(timeout=wait_for)
                answered += 1
                continue
            except queue.Empty:
                pass
            now = time.monotonic()
            for ident, (item, due) in list(self.busy.items()):
                if now >= due and self.busy.pop(ident, None) is not None:
                    logger.warning("Gave up reading %s after its deadline", item.path)
                    answered += 1
                    yield item, None
                    self._start(deadline)


def _file_meta(head: bytes) -> tuple[dict[int, str], int]:
    """({element: text} of the group 0002 UIDs, offset where the dataset starts)."""
    pos = 132
    meta: dict[int, str] = {}
    end = len(head)
    while pos + 8 <= end:
        group, element = struct.unpack_from("<HH", head, pos)
        if group != 0x0002:
            break
        vr = bytes(head[pos + 4:pos + 6])
        if vr in LONG_VRS:
            (length,) = struct.unpack_from("<I", head, pos + 8)
            value_at = pos + 12
        else:
            (length,) = struct.unpack_from("<H", head, pos + 6)
            value_at = pos + 8
        if length == UNDEFINED or value_at + length > end:
            raise ValueError("file meta element longer than the file")
        if element in (0x0002, 0x0003, 0x0010):
            meta[element] = bytes(head[value_at:value_at + length]).rstrip(b"\x00 ").decode("ascii", "replace")
        pos = value_at + length
    return meta, pos


def _inflate(data: bytes) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = inflater.decompress(data, INFLATE_LIMIT)
    if inflater.unconsumed_tail or (len(out) >= INFLATE_LIMIT and not inflater.eof):
        raise _Refused("deflate_bomb", {"mib": INFLATE_LIMIT // (1024 * 1024)})
    return out


class _Refused(Exception):
    def __init__(self, code: str, params: dict | None = None):
        super().__init__(code)
        self.code = code
        self.params = params or {}


def _at_pixels(tag, vr, length) -> bool:
    return tag in PIXEL_TAGS


def _check_complete(ds, buffer_len: int, file_size: int, whole: bool) -> None:
    """Refuse a dataset whose top-level elements or pixel data run past the end of the file."""
    for tag in ds.keys():
        raw = ds.get_item(tag)
        length = getattr(raw, "length", None)
        value = getattr(raw, "value", None)
        if length is None or length == UNDEFINED or not isinstance(value, (bytes, bytearray)):
            continue
        if len(value) < length:
            if not whole:
                raise _Refused("header_too_long", {"mib": HEADER_LIMIT // (1024 * 1024)})
            raise _Refused("truncated", {"detail": (
                f"element ({tag.group:04X},{tag.element:04X}) declares {length} bytes, "
                f"the file holds {len(value)}"
            )})


def _check_pixels(head: bytes, at: int, size: int, little: bool, implicit: bool, whole: bool) -> None:
    """The pixel data element (where the header stops) must fit in the file."""
    if at + 12 > len(head):
        if whole:
            raise _Refused("truncated", {"detail": "the pixel data element is cut off"})
        return
    order = "<" if little else ">"
    if implicit:
        (length,) = struct.unpack_from(order + "I", head, at + 4)
        value_at = at + 8
    else:
        vr = bytes(head[at + 4:at + 6])
        if vr in LONG_VRS:
            (length,) = struct.unpack_from(order + "I", head, at + 8)
            value_at = at + 12
        else:
            (length,) = struct.unpack_from(order + "H", head, at + 6)
            value_at = at + 8
    if length != UNDEFINED:
        if value_at + length > size:
            raise _Refused("truncated", {"detail": (
                f"the pixel data declares {length} bytes, the file holds {max(size - value_at, 0)}"
            )})
        return
    if not whole:
        return
    # Encapsulated pixel data: walk the fragments to the sequence delimiter.
    pos = value_at
    while True:
        if pos + 8 > size:
            raise _Refused("truncated", {"detail": "the encapsulated pixel data ends early"})
        group, element, length = struct.unpack_from(order + "HHI", head, pos)
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED:
            return  # malformed, but not ours to judge: a viewer will say so
        pos += 8 + length


def _text(ds, keyword: str) -> str:
    from pydicom.valuerep import PersonName

    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    # A PersonName iterates over its characters: it is one value, not a list of them.
    if not isinstance(value, (str, PersonName)) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)
    return str(value).strip().replace("\x00", "")


def _plain(ds, tag: int) -> str:
    """An ASCII-only value (UI, DA, CS, IS, SH) straight from the raw bytes: no conversion."""
    try:
        raw = ds.get_item(tag)
    except Exception:
        return ""
    if raw is None:
        return ""
    value = raw.value
    if isinstance(value, (bytes, bytearray)):
        return value.decode("ascii", "replace").strip(" \x00")
    return _text(ds, raw.keyword) if hasattr(raw, "keyword") else str(value or "").strip()


# --- the fast header scan: strict explicit VR little endian, pydicom for anything else --------

# Every VR of PS3.5; an element whose two VR bytes are not one of these sends the file to pydicom.
KNOWN_VRS = LONG_VRS | {
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
}
# The elements the indexer keeps: tag -> (field, the VR it must have, True for person-entered text).
WANTED = {
    0x00080016: ("sop_class_uid", b"UI", False),
    0x00080018: ("sop_instance_uid", b"UI", False),
    0x00080020: ("study_date", b"DA", False),
    0x00080050: ("accession_number", b"SH", False),
    0x00080060: ("modality", b"CS", False),
    0x00081030: ("study_description", b"LO", True),
    0x0008103E: ("series_description", b"LO", True),
    0x00100010: ("patient_name", b"PN", True),
    0x00100020: ("patient_id", b"LO", True),
    0x00100030: ("birth_date", b"DA", False),
    0x00100040: ("sex", b"CS", False),
    0x00101090: ("medical_record_locator", b"LO", True),
    0x0020000D: ("study_instance_uid", b"UI", False),
    0x0020000E: ("series_instance_uid", b"UI", False),
    0x00200011: ("series_number", b"IS", False),
}
SCAN_MAX_ELEMENTS = 4096  # top-level and nested together; more is unusual: pydicom decides
SCAN_MAX_DEPTH = 8  # sequences nested deeper go to pydicom (which reports "too deep" at ~hundreds)
_explicit_le: dict[str, bool] = {}
_unpack_tag = struct.Struct("<HH").unpack_from
_unpack_item = struct.Struct("<HHI").unpack_from
_unpack_u16 = struct.Struct("<H").unpack_from
_unpack_u32 = struct.Struct("<I").unpack_from


class _Unusual(Exception):
    """The fast scan met something it does not vouch for; pydicom reads the file instead."""


def _is_explicit_le(syntax: str) -> bool:
    """True for transfer syntaxes whose dataset is explicit VR little endian, not deflated
    (native and encapsulated pixel data alike)."""
    known = _explicit_le.get(syntax)
    if known is None:
        from pydicom.uid import UID

        uid = UID(syntax or "0")
        known = bool(syntax) and uid.is_transfer_syntax and not uid.is_implicit_VR and (
            uid.is_little_endian and not uid.is_deflated)
        _explicit_le[syntax] = known
    return known


def plain_file_meta(head) -> tuple[str | None, str | None] | None:
    """(Transfer Syntax UID, Media Storage SOP Class UID) of a well-formed file meta group (after
    the preamble and "DICM"), stripped of padding, None where absent or empty; None for anything
    pydicom might read otherwise (unknown VRs, odd lengths, not ASCII, several values)."""
    pos, end, found = 132, len(head), {}
    while pos + 8 <= end:
        group, element = _unpack_tag(head, pos)
        if group != 0x0002:
            break
        vr = bytes(head[pos + 4:pos + 6])
        if vr in LONG_VRS:
            if pos + 12 > end:
                return None
            length, value_at = _unpack_u32(head, pos + 8)[0], pos + 12
        elif vr in KNOWN_VRS:
            length, value_at = _unpack_u16(head, pos + 6)[0], pos + 8
        else:
            return None
        if length == UNDEFINED or value_at + length > end:
            return None
        if element in (0x0002, 0x0010):
            raw = bytes(head[value_at:value_at + length])
            if vr != b"UI" or not raw.isascii() or b"\\" in raw:
                return None
            found[element] = raw.decode("ascii").strip("\x00 ") or None
        pos = value_at + length
    else:
        if pos != end:
            return None  # a few bytes that are not a whole element header
    return found.get(0x0010), found.get(0x0002)


def _skip_items(head, pos: int, end: int, undefined: bool, depth: int, budget: list[int]) -> int:
    """Past the items of a sequence value (which starts at pos); raises _Unusual on anything odd."""
    if depth > SCAN_MAX_DEPTH:
        raise _Unusual
    while True:
        if not undefined and pos == end:
            return pos
        if pos + 8 > end:
            raise _Unusual
        group, element, length = _unpack_item(head, pos)
        pos += 8
        if group != 0xFFFE:
            raise _Unusual
        if element == 0xE0DD and undefined and length == 0:
            return pos
        if element != 0xE000:
            raise _Unusual
        if length == UNDEFINED:
            pos = _skip_elements(head, pos, end, True, depth + 1, budget)
        else:
            if pos + length > end:
                raise _Unusual
            if _skip_elements(head, pos, pos + length, False, depth + 1, budget) != pos + length:
                raise _Unusual
            pos += length


def _skip_elements(head, pos: int, end: int, undefined: bool, depth: int, budget: list[int],
                   record: dict | None = None) -> int:
    """Past the elements of one sequence item; an undefined-length item ends at its delimiter.
    With `record`, a DICOMDIR record's links and file ID are kept in it as pydicom reads them."""
    last = -1
    while True:
        if not undefined and pos == end:
            return pos
        if pos + 8 > end:
            raise _Unusual
        budget[0] -= 1
        if budget[0] < 0:
            raise _Unusual
        group, element = _unpack_tag(head, pos)
        if group == 0xFFFE:
            if undefined and element == 0xE00D and _unpack_u32(head, pos + 4)[0] == 0:
                return pos + 8
            raise _Unusual
        tag = group << 16 | element
        if tag <= last:
            raise _Unusual
        last = tag
        vr = bytes(head[pos + 4:pos + 6])
        if vr in LONG_VRS:
            if pos + 12 > end:
                raise _Unusual
            length = _unpack_u32(head, pos + 8)[0]
            value_at = pos + 12
        elif vr in KNOWN_VRS:
            length = _unpack_u16(head, pos + 6)[0]
            value_at = pos + 8
        else:
            raise _Unusual
        if length == UNDEFINED:
            if vr != b"SQ":
                raise _Unusual
            pos = _skip_items(head, value_at, end, True, depth, budget)
        elif value_at + length > end:
            raise _Unusual
        elif vr == b"SQ":
            pos = _skip_items(head, value_at, value_at + length, False, depth, budget)
        else:
            if record is not None and tag in _RECORD_TAGS:
                record[_RECORD_TAGS[tag]] = _record_value(tag, vr, bytes(head[value_at:value_at + length]))
            pos = value_at + length


def _person_text(raw: bytes, vr: bytes) -> str:
    """A person-entered value exactly as pydicom would give it through _text, for values that
    are one plain ASCII string (any character set decodes those alike); anything else: _Unusual."""
    text = raw.rstrip(b"\x00 ")
    if not text:
        return ""
    if not text.isascii() or b"\\" in text or (vr == b"PN" and b"=" in text) or any(
        byte < 0x20 or byte == 0x7F for byte in text
    ):
        raise _Unusual
    return text.decode("ascii").strip()


class _Record(dict):
    """A DICOMDIR record read by the fast scan, shaped like the pydicom record it stands for."""

    seq_item_tell = 0


_RECORD_TAGS = {
    0x00041400: "OffsetOfTheNextDirectoryRecord",
    0x00041420: "OffsetOfReferencedLowerLevelDirectoryEntity",
    0x00041500: "ReferencedFileID",
}


def _record_value(tag: int, vr: bytes, raw: bytes):
    """A record value as pydicom converts it, for the plain cases only (else _Unusual)."""
    if tag == 0x00041500:
        if vr != b"CS" or not raw.isascii():
            raise _Unusual
        items = raw.decode("ascii").rstrip(" \x00").split("\\")
        return items[0] if len(items) == 1 else items
    if vr != b"UL" or len(raw) not in (0, 4):
        raise _Unusual
    return _unpack_u32(raw, 0)[0] if raw else None


def _scan_records(head, pos: int, length: int) -> tuple[list[_Record], int]:
    """The records of a DICOMDIR's (0004,1220) sequence whose value starts at pos, and where the
    sequence ends; raises _Unusual on anything the fast scan does not vouch for."""
    undefined = length == UNDEFINED
    end = len(head) if undefined else pos + length
    if end > len(head):
        raise _Unusual
    records: list[_Record] = []
    budget = [len(head)]  # every element takes at least 8 bytes: the scan ends by itself
    while True:
        if not undefined and pos == end:
            return records, pos
        if pos + 8 > end:
            raise _Unusual
        group, element, item_length = _unpack_item(head, pos)
        if group != 0xFFFE:
            raise _Unusual
        if element == 0xE0DD and undefined and item_length == 0:
            return records, pos + 8
        if element != 0xE000:
            raise _Unusual
        record = _Record()
        record.seq_item_tell = pos
        pos += 8
        if item_length == UNDEFINED:
            pos = _skip_elements(head, pos, end, True, 1, budget, record)
        else:
            item_end = pos + item_length
            if item_end > end or _skip_elements(head, pos, item_end, False, 1, budget, record) != item_end:
                raise _Unusual
            pos = item_end
        records.append(record)


def scan_header(head, size: int, whole: bool, meta: dict[int, str], dataset_at: int) -> dict | None:
    """The indexer's fields read straight from an explicit VR little endian header, or None when
    the file holds anything this scan does not vouch for (pydicom then reads it, and reports)."""
    end = len(head)
    fields: dict[str, str] = {}
    pos = dataset_at
    last = -1
    budget = [SCAN_MAX_ELEMENTS]
    records: list[_Record] | None = None
    first_record = None
    try:
        while pos < end:
            if pos + 8 > end:
                return None
            group, element = _unpack_tag(head, pos)
            tag = group << 16 | element
            if tag <= last:  # out of order or repeated: pydicom's reading decides
                return None
            last = tag
            if tag in PIXEL_TAGS:
                _check_pixels(head, pos, size, True, False, whole)
                break
            budget[0] -= 1
            if budget[0] < 0 or group == 0xFFFE:
                return None
            vr = bytes(head[pos + 4:pos + 6])
            if vr in LONG_VRS:
                if pos + 12 > end:
                    return None
                length = _unpack_u32(head, pos + 8)[0]
                value_at = pos + 12
            elif vr in KNOWN_VRS:
                length = _unpack_u16(head, pos + 6)[0]
                value_at = pos + 8
            else:
                return None
            if tag == 0x00041220 and vr == b"SQ":  # a DICOMDIR's records
                records, pos = _scan_records(head, value_at, length)
                continue
            if length == UNDEFINED:
                if vr != b"SQ":
                    return None
                pos = _skip_items(head, value_at, end, True, 1, budget)
                continue
            if value_at + length > end:
                return None  # truncated, or a header longer than the bytes kept: pydicom says which
            wanted = WANTED.get(tag)
            if wanted is not None:
                name, wanted_vr, person = wanted
                if vr != wanted_vr:
                    return None
                raw = bytes(head[value_at:value_at + length])
                if person:
                    fields[name] = _person_text(raw, vr)
                else:
                    fields[name] = raw.decode("ascii", "replace").strip(" \x00")
            elif vr == b"SQ":
                if _skip_items(head, value_at, value_at + length, False, 1, budget) != value_at + length:
                    return None
            elif tag == 0x00041200:
                first_record = _record_value(0x00041400, vr, bytes(head[value_at:value_at + length]))
            pos = value_at + length
        else:
            if not whole or pos != end:
                return None
    except _Unusual:
        return None
    sop_class = fields.get("sop_class_uid") or meta.get(0x0002, "")
    result = {name: "" for name, _vr, _person in WANTED.values()}
    result.update(fields)
    result["sop_class_uid"] = sop_class
    result["sop_instance_uid"] = fields.get("sop_instance_uid") or meta.get(0x0003, "")
    result["transfer_syntax_uid"] = meta.get(0x0010, "")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        result["dicomdir"] = _dicomdir_records({
            "DirectoryRecordSequence": records,
            "OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity": first_record,
        })
    return result


def describe(head: bytes, size: int, whole: bool, fast: bool = True) -> dict:
    """The indexer's fields from one file's leading bytes (raises _Refused for a bad file).
    With `fast`, scan_header reads the usual files and pydicom only the rest (same result)."""
    from pydicom import dcmread
    from pydicom.filereader import read_dataset
    from pydicom.uid import UID

    if len(head) < 132 or bytes(head[128:132]) != b"DICM":
        raise _Refused("not_dicom")
    try:
        meta, dataset_at = _file_meta(head)
        syntax = meta.get(0x0010, "")
    except (ValueError, struct.error) as exc:
        raise _Refused("not_dicom_meta", {"error": str(exc)}) from exc
    if syntax == DEFLATED:
        inflated = _inflate(head[dataset_at:])
        stream = BytesIO(inflated)
        ds = read_dataset(stream, False, True, stop_when=_at_pixels)
        # The inflated stream is all in memory and capped: its own end is the file's end.
        _check_complete(ds, len(inflated), len(inflated), True)
    else:
        if fast and _is_explicit_le(syntax):
            fields = scan_header(head, size, whole, meta, dataset_at)
            if fields is not None:
                return fields
        stream = BytesIO(head)
        ds = dcmread(stream, stop_before_pixels=True)
        _check_complete(ds, len(head), size, whole)
        stopped = stream.tell()
        if stopped < len(head):
            uid = UID(syntax or "1.2.840.10008.1.2.1")
            little = uid.is_little_endian if uid.is_transfer_syntax else True
            implicit = uid.is_implicit_VR if uid.is_transfer_syntax else False
            _check_pixels(head, stopped, size, little, implicit, whole)
        elif not whole:
            raise _Refused("header_too_long", {"mib": HEADER_LIMIT // (1024 * 1024)})
    fields = {
        # A DICOMDIR names its class only in the file meta; so may sloppy writers.
        "sop_class_uid": _plain(ds, 0x00080016) or meta.get(0x0002, ""),
        "sop_instance_uid": _plain(ds, 0x00080018) or meta.get(0x0003, ""),
        "transfer_syntax_uid": syntax,
        "study_instance_uid": _plain(ds, 0x0020000D),
        "series_instance_uid": _plain(ds, 0x0020000E),
        "patient_id": _text(ds, "PatientID"),
        "patient_name": _text(ds, "PatientName"),
        "birth_date": _plain(ds, 0x00100030),
        "sex": _plain(ds, 0x00100040),
        "study_date": _plain(ds, 0x00080020),
        "accession_number": _plain(ds, 0x00080050),
        "study_description": _text(ds, "StudyDescription"),
        "medical_record_locator": _text(ds, "MedicalRecordLocator"),
        "modality": _plain(ds, 0x00080060),
        "series_number": _plain(ds, 0x00200011),
        "series_description": _text(ds, "SeriesDescription"),
    }
    if fields["sop_class_uid"] == MEDIA_STORAGE_DIRECTORY:
        fields["dicomdir"] = _dicomdir_records(ds)
    return fields


def _file_id_problem(components: list[str]) -> bool:
    """True when a DICOMDIR file ID would leave the disc (or is not a relative path at all)."""
    if not components:
        return True
    for part in components:
        if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part:
            return True
    return False


def _dicomdir_records(ds) -> dict:
    """File IDs named by a DICOMDIR and what is wrong with its records, following the offsets
    with a visited set (a loop ends the walk instead of spinning forever)."""
    problems: list[dict] = []
    file_ids: list[str] = []
    records = ds.get("DirectoryRecordSequence") or []
    by_offset = {getattr(record, "seq_item_tell", None): record for record in records}
    for record in records:
        value = record.get("ReferencedFileID")
        if value is None:
            continue
        components = [value] if isinstance(value, str) else [str(v) for v in value]
        # "\\"-separated values that pydicom left whole count as separate components.
        components = [c for part in components for c in part.split("\\")] if components else []
        shown = "/".join(components) if components else "(empty)"
        if _file_id_problem(components) or shown.startswith("/"):
            problems.append({"path": DICOMDIR_NAME, "code": "dicomdir_escape",
                             "params": {"file_id": shown[:200]}})
        else:
            file_ids.append(shown)
    first = ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity") or 0
    visited: set[int] = set()
    pending = [first] if first else []
    while pending:
        offset = pending.pop()
        while offset:
            if offset in visited:
                problems.append({"path": DICOMDIR_NAME, "code": "dicomdir_loop",
                                 "params": {"offset": offset}})
                break
            visited.add(offset)
            record = by_offset.get(offset)
            if record is None:
                problems.append({"path": DICOMDIR_NAME, "code": "dicomdir_bad_offset",
                                 "params": {"offset": offset}})
                break
            lower = record.get("OffsetOfReferencedLowerLevelDirectoryEntity") or 0
            if lower:
                pending.append(lower)
            offset = record.get("OffsetOfTheNextDirectoryRecord") or 0
    return {"file_ids": file_ids, "problems": problems}


def _read_one(root_fd: int, os_path: str, on_read: Callable[[], None] = lambda: None) -> dict:
    """Read, hash and describe one file; problems come back as a code, never as an exception.
    `on_read` is called between reading and parsing (the parse has its own deadline)."""
    try:
        fd = open_inside(root_fd, os_path)
    except OSError as exc:
        return {"problem": "unreadable", "params": {"error": exc.strerror or str(exc)}}
    try:
        head, size, sha256 = read_and_hash(fd)
    except OSError as exc:
        return {"problem": "unreadable", "params": {"error": exc.strerror or str(exc)}}
    finally:
        os.close(fd)
    result = {"size": size, "sha256": sha256}
    on_read()
    whole = len(head) == size
    try:
        result.update(describe(head, size, whole))
    except _Refused as refused:
        result.update(problem=refused.code, params=refused.params)
    except RecursionError:
        result.update(problem="too_deep", params={})
    except MemoryError:
        result.update(problem="out_of_memory", params={"mb": _memory_mb})
    except Exception as exc:  # pydicom raises many kinds on malformed input; each is a report
        text = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        code = "truncated" if isinstance(exc, EOFError) else "unparsable"
        result.update(problem=code, params={"error": text, "detail": text})
    return result


_memory_mb = 0
# A reader sends its results in batches of this many (or sooner: when it runs out of work, or
# when the oldest unsent result has waited FLUSH_SECONDS); the parent keeps 2 × BATCH handed out.
BATCH = 32
FLUSH_SECONDS = 0.1
# The parent wakes at least this often to compare each reader's running file with its deadline.
WATCH_SECONDS = 0.25
_TASK_BITS = 32


def _status_word(task_id: int, parsing: bool, base: float) -> int:
    """What a reader is doing, in one 64-bit word (one store, so the parent never reads a task
    with another task's start time): milliseconds since `base`, read/parse phase, task id + 1."""
    ms = int((time.monotonic() - base) * 1000)
    return ms << (_TASK_BITS + 1) | int(parsing) << _TASK_BITS | (task_id + 1)


def _worker_main(conn, root: str, memory_mb: int, status, base: float, batch: int) -> None:
    """A reader process: takes lists of (task_id, kind, os_path) and sends back lists of
    (task_id, plain dict); never touches a database. Before each file it writes what it is
    doing into `status` (shared memory), which is how the parent times a file without a message."""
    global _memory_mb
    import resource

    _memory_mb = memory_mb
    if memory_mb:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    import pydicom  # noqa: F401  (loaded before "ready", so a too-small limit shows at once)

    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    conn.send(("ready", None))
    pending: deque = deque()
    out: list = []
    oldest = 0.0
    while True:
        if not pending or conn.poll():
            if not pending and out:
                conn.send(out)  # about to wait for work: everything done so far goes first
                out = []
            try:
                tasks = conn.recv()
            except EOFError:
                return
            if tasks is None:
                if out:
                    conn.send(out)
                return
            pending.extend(tasks)
            continue
        task_id, kind, argument = pending.popleft()
        if kind == "pdi" and out:
            conn.send(out)  # the PDI check takes a while: do not hold finished files behind it
            out = []
        status.value = _status_word(task_id, False, base)
        if kind == "pdi":
            result = _pdi_in_worker(argument)
        else:
            def parsing(task_id=task_id):
                status.value = _status_word(task_id, True, base)

            result = _read_one(root_fd, argument, parsing)
        if not out:
            oldest = time.monotonic()
        out.append((task_id, result))
        if len(out) >= batch or time.monotonic() - oldest > FLUSH_SECONDS:
            conn.send(out)
            out = []


def _pdi_in_worker(root: str) -> dict:
    """Helper B's IHE PDI check, run here so a hostile DICOMDIR cannot hang the importer."""
    try:
        import django
        from django.apps import apps

        if not apps.ready:
            django.setup()
        from archive import pdi
    except ImportError:
        return {"available": False, "note": "archive.pdi is not installed; no PDI check was run."}
    try:
        return pdi.pdi_check(Path(root))
    except Exception as exc:  # a failing check is reported, not fatal to the import
        return {"available": False, "note": f"the PDI check failed: {exc}"[:300]}


# --- the pool of reader processes ----------------------------------------------------------

def _context():
    ctx = multiprocessing.get_context("forkserver")
    # Workers fork from a clean server that has this module, pydicom and Django (set up, for the
    # PDI check) loaded, not from a Django process with open database connections and threads.
    # The preload counts only if this is the first use of the process's fork server.
    ctx.set_forkserver_preload([__name__, "pydicom", "archive.reader_preload"])
    return ctx


@dataclass
class _Task:
    task_id: int
    kind: str
    argument: str
    timeout: float  # for reading and parsing
    path: str
    parse_timeout: float = 0.0  # once the file is read


class _Reader:
    """One reader process, started at once; `wait_ready` waits for its hello."""

    def __init__(self, ctx, root: str, memory_mb: int, base: float):
        self.conn, child = ctx.Pipe()
        self.status = ctx.RawValue("Q", 0)
        self.base = base
        self.memory_mb = memory_mb
        self.process = ctx.Process(target=_worker_main, args=(child, root, memory_mb, self.status, base, BATCH),
                                   daemon=True)
        self.process.start()
        child.close()
        self.tasks: dict[int, _Task] = {}  # handed out and not answered yet, in the order sent

    def wait_ready(self, start_timeout: float) -> None:
        if not self.conn.poll(start_timeout):
            self.stop()
            raise DiscReadError(str(_("A disc reader process did not start within %(s)s s.") % {"s": start_timeout}))
        try:
            self.conn.recv()
        except EOFError:
            code = self.process.exitcode
            self.stop()
            raise DiscReadError(str(_(
                "A disc reader process could not start (exit code %(code)s). If "
                "DISC_WORKER_MEMORY_MB (%(mb)s) is very low, raise it."
            ) % {"code": code, "mb": self.memory_mb})) from None

    def running(self) -> tuple[_Task | None, float]:
        """The handed-out task this reader is working on (None between tasks) and its deadline."""
        word = self.status.value
        task = self.tasks.get((word & ((1 << _TASK_BITS) - 1)) - 1)
        if task is None:
            return None, 0.0
        started = self.base + (word >> (_TASK_BITS + 1)) / 1000
        parsing = word >> _TASK_BITS & 1
        return task, started + (task.parse_timeout if parsing else task.timeout)

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


class _Pool:
    """Reader processes; they start when the pool is made, so they boot while the disc is walked."""

    START_TIMEOUT = 60.0

    def __init__(self, root: Path, workers: int, memory_mb: int):
        self.ctx = _context()
        self.root = str(root)
        self.memory_mb = memory_mb
        self.base = time.monotonic()
        self.readers = [self._start() for _ in range(max(1, workers))]

    def _start(self) -> _Reader:
        return _Reader(self.ctx, self.root, self.memory_mb, self.base)

    def replace(self, index: int) -> None:
        self.readers[index].stop()
        reader = self._start()
        self.readers[index] = reader
        reader.wait_ready(self.START_TIMEOUT)

    def close(self) -> None:
        for reader in self.readers:
            try:
                reader.conn.send(None)
            except OSError:
                pass
        for reader in self.readers:
            reader.process.join(2)
            reader.stop()


def run_tasks(
    tasks: list[_Task], *, root: Path, workers: int, memory_mb: int,
    on_result: Callable[[_Task, dict], None], pool: _Pool | None = None,
) -> None:
    """Hand tasks to reader processes; a task past its deadline or whose reader dies gets a
    problem result and a fresh reader takes over (the tasks it held and had not answered are
    handed out again: a reader answers in batches, so those may be done but unsent).

    Tasks go out in lists and results come back in lists, so the parent, which shares the CPUs
    with the readers, spends little per file; each reader's shared status word names the task it
    is running and since when, which is what the deadline is measured from."""
    own = pool is None
    pool = pool or _Pool(root, workers, memory_mb)
    queue = deque(tasks)
    unexplained = 0  # reader deaths with no task to blame, in a row

    def fail(index: int, problem: dict) -> None:
        nonlocal unexplained
        reader = pool.readers[index]
        task, _deadline = reader.running()
        held = list(reader.tasks.values())
        if task is None and held and unexplained >= 2:
            task = held[0]  # it keeps dying before it says what it reads: blame the first
        unexplained = 0 if task is not None else unexplained + 1
        queue.extendleft(reversed([t for t in held if t is not task]))
        pool.replace(index)
        if task is not None:
            if problem["problem"] == "timeout":
                problem = {"problem": "timeout", "params": {"seconds": _seconds(task.parse_timeout)}}
            on_result(task, problem)

    try:
        for reader in pool.readers:
            reader.wait_ready(pool.START_TIMEOUT)
        while queue or any(r.tasks for r in pool.readers):
            readers = pool.readers
            for index, reader in enumerate(readers):
                room = 2 * BATCH - len(reader.tasks)
                if not queue or room < BATCH:
                    continue
                # Near the end, share what is left evenly rather than in full batches.
                share = -(-len(queue) // len(readers))
                chunk = [queue.popleft() for _ in range(min(room, share))]
                try:
                    reader.conn.send([(t.task_id, t.kind, t.argument) for t in chunk])
                except OSError:
                    queue.extendleft(reversed(chunk))
                    fail(index, {"problem": "crashed", "params": {"code": reader.process.exitcode}})
                    continue
                for task in chunk:
                    reader.tasks[task.task_id] = task
            busy = [r for r in pool.readers if r.tasks]
            if not busy:
                continue
            deadlines = [deadline for r in busy for task, deadline in [r.running()] if task]
            wait_for = min([WATCH_SECONDS, *(d - time.monotonic() for d in deadlines)])
            ready = set(wait([r.conn for r in busy] + [r.process.sentinel for r in busy], max(0.0, wait_for)))
            for index in range(len(pool.readers)):
                reader = pool.readers[index]
                if not reader.tasks:
                    continue
                if reader.conn in ready or reader.process.sentinel in ready:
                    try:
                        while reader.tasks and reader.conn.poll():
                            for task_id, result in reader.conn.recv():
                                on_result(reader.tasks.pop(task_id), result)
                    except (EOFError, OSError):
                        pass
                    if reader.tasks and not reader.process.is_alive():
                        reader.process.join(1)
                        fail(index, {"problem": "crashed", "params": {"code": reader.process.exitcode}})
                        continue
                task, deadline = reader.running()
                if task is not None and time.monotonic() >= deadline:
                    fail(index, {"problem": "timeout", "params": {}})
    finally:
        if own:
            pool.close()


def _seconds(value: float) -> str:
    return f"{value:g}"


def index_disc(
    root: Path, *, workers: int = 2, file_timeout: float = 30.0, memory_mb: int = 1024,
    pdi_check: bool = True, progress: Callable[[int, int, int, int], None] | None = None,
) -> IndexedDisc:
    """Walk, read and describe every file under root; see the module docstring."""
    started = time.monotonic()
    root = Path(root)
    # The readers boot (a fork each) while the disc is walked.
    pool = _Pool(root, workers, memory_mb) if root.is_dir() else None
    try:
        return _index(root, pool, file_timeout=file_timeout, pdi_check=pdi_check,
                      progress=progress, started=started)
    finally:
        if pool is not None:
            pool.close()


def _index(root: Path, pool: _Pool | None, *, file_timeout: float, pdi_check: bool,
           progress: Callable[[int, int, int, int], None] | None, started: float) -> IndexedDisc:
    walk = walk_disc(root)
    problems = list(walk.problems)
    entries: list[dict] = []
    tasks: list[_Task] = []
    for item in walk.items:
        if len(item.path) > PATH_LIMIT:
            problems.append({"path": item.path[:PATH_LIMIT], "code": "path_too_long", "params": {"limit": PATH_LIMIT}})
            continue
        if item.kind == "symlink":
            code = "symlink_out" if item.what == "out" else "symlink_in"
            entries.append(_entry(item.path, 0, link_digest(os.readlink(root / item.os_path)),
                                  problem=code, params={"target": item.link_target[:150]}))
        elif item.kind == "special":
            entries.append(_entry(item.path, 0, EMPTY_DIGEST, problem="special",
                                  params={"what": item.what}))
        else:
            read_timeout = file_timeout + item.size / SLOW_READ_BYTES_PER_SECOND
            tasks.append(_Task(0, "file", item.os_path, read_timeout, item.path, file_timeout))
    # The DICOMDIR first: its records are checked while the images are read.
    tasks.sort(key=lambda t: (t.path.upper() != DICOMDIR_NAME, t.path))
    pdi_report: dict = {}
    total_files = len(tasks)
    total_bytes = sum(item.size for item in walk.items if item.kind == "file")
    done = {"files": 0, "bytes": 0}
    if pdi_check:
        tasks.insert(1 if tasks and tasks[0].path.upper() == DICOMDIR_NAME else 0,
                     _Task(0, "pdi", str(root), file_timeout * 10, "(PDI check)", file_timeout * 10))
    for number, task in enumerate(tasks):
        task.task_id = number
    dicomdir_ids: list[str] = []
    by_path = {item.path: item for item in walk.items}

    def on_result(task: _Task, result: dict) -> None:
        nonlocal pdi_report
        if task.kind == "pdi":
            if "problem" in result and set(result) <= {"problem", "params"}:
                pdi_report = {"available": False, "note": reason_text(result["problem"], result["params"])}
            else:
                pdi_report = result
            return
        record = result.pop("dicomdir", None)
        if record is not None and task.path.upper() == DICOMDIR_NAME:
            dicomdir_ids.extend(record["file_ids"])
            problems.extend(record["problems"])
        problem = result.pop("problem", "")
        params = result.pop("params", {})
        if "sha256" not in result and problem in ("timeout", "crashed"):
            # Most likely the parse failed, not the read: hash it here so a returned disc can
            # still be compared file by file; within the file's own deadline, in case the read
            # was what stalled.
            hashed = _hash_path_within(root, by_path[task.path], task.timeout)
            if hashed is not None:
                result["size"], result["sha256"] = hashed
        size = result.pop("size", by_path[task.path].size)
        entry = _entry(task.path, size, result.pop("sha256", ""), problem=problem, params=params, **result)
        if not problem and entry["sop_class_uid"] != MEDIA_STORAGE_DIRECTORY and not (
            entry["study_instance_uid"] and entry["series_instance_uid"] and entry["sop_instance_uid"]
        ):
            missing = [name for name, key in (("Study Instance UID", "study_instance_uid"),
                                              ("Series Instance UID", "series_instance_uid"),
                                              ("SOP Instance UID", "sop_instance_uid")) if not entry[key]]
            entry["problem_code"], entry["problem_params"] = "no_uids", {"missing": ", ".join(missing)}
        entries.append(entry)
        done["files"] += 1
        done["bytes"] += entry["size"]
        if progress:
            progress(done["files"], total_files, done["bytes"], total_bytes)

    if tasks:
        run_tasks(tasks, root=root, workers=len(pool.readers), memory_mb=pool.memory_mb,
                  on_result=on_result, pool=pool)
    entries.sort(key=lambda e: e["path"])
    on_disc = {entry["path"].upper() for entry in entries}
    for file_id in dict.fromkeys(dicomdir_ids):
        if file_id.upper() not in on_disc:
            problems.append({"path": file_id, "code": "dicomdir_missing", "params": {}})
    for entry in entries:
        if entry["problem_code"]:
            problems.append({"path": entry["path"], "code": entry["problem_code"],
                             "params": entry["problem_params"]})
    dicomdir = next((e for e in entries if e["path"].upper() == DICOMDIR_NAME), None)
    return IndexedDisc(
        root=root, entries=entries, problems=problems,
        dicomdir_sha256=dicomdir["sha256"] if dicomdir else "",
        pdi_report=pdi_report, seconds=time.monotonic() - started,
    )


ENTRY_FIELDS = (
    "sop_class_uid", "sop_instance_uid", "transfer_syntax_uid", "study_instance_uid",
    "series_instance_uid", "patient_id", "patient_name", "birth_date", "sex", "study_date",
    "accession_number", "study_description", "medical_record_locator", "modality",
    "series_number", "series_description",
)


def _entry(path: str, size: int, sha256: str, *, problem: str = "", params: dict | None = None,
           **fields: str) -> dict:
    entry = {"path": path, "size": size, "sha256": sha256, "problem_code": problem,
             "problem_params": params or {}}
    for name in ENTRY_FIELDS:
        entry[name] = fields.get(name, "")
    return entry
