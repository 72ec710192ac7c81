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
import stat
import struct
import time
import warnings
import zlib
from collections import deque
from dataclasses import dataclass, field
from io import BytesIO
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable

from django.utils.translation import gettext_lazy as _

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
READ_DONE = "read"  # a worker's notice that a big file is read and hashed, and parsing starts
# Files from this size on send READ_DONE; below it the read allowance in the deadline is tiny.
READ_NOTICE_BYTES = 4 * 1024 * 1024
PIPELINE = 4  # tasks queued per reader process
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


def _hash_path(root: Path, os_path: str) -> tuple[int, str]:
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return hash_file(root_fd, os_path)
    finally:
        os.close(root_fd)


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
    try:
        value = ds.get(keyword)
    except Exception:
        return ""
    if value is None:
        return ""
    if not isinstance(value, str) and hasattr(value, "__iter__"):
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


def describe(head: bytes, size: int, whole: bool) -> dict:
    """The indexer's fields from one file's leading bytes (raises _Refused for a bad file)."""
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
    if size >= READ_NOTICE_BYTES:
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


def _worker_main(conn, root: str, memory_mb: int) -> None:
    """A reader process: answers (task_id, kind, os_path) with plain dicts; never touches a DB."""
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
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        task_id, kind, argument = task
        if kind == "pdi":
            conn.send((task_id, _pdi_in_worker(argument)))
        else:
            result = _read_one(root_fd, argument, lambda: conn.send((task_id, READ_DONE)))
            conn.send((task_id, result))


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
    # Workers fork from a clean server that has this module (and pydicom) loaded, not from a
    # Django process with open database connections and threads.
    ctx.set_forkserver_preload([__name__, "pydicom"])
    return ctx


class _Reader:
    def __init__(self, ctx, root: str, memory_mb: int, start_timeout: float):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, root, memory_mb), daemon=True)
        self.process.start()
        child.close()
        self.tasks: deque[_Task] = deque()
        self.deadline = 0.0
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
            ) % {"code": code, "mb": memory_mb})) from None

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


@dataclass
class _Task:
    task_id: int
    kind: str
    argument: str
    timeout: float
    path: str
    parse_timeout: float = 0.0


def run_tasks(
    tasks: list[_Task], *, root: Path, workers: int, memory_mb: int,
    on_result: Callable[[_Task, dict], None],
) -> None:
    """Hand tasks to reader processes; a task past its deadline or whose reader dies gets a
    problem result and a fresh reader takes over (the tasks queued behind it are handed out again).

    Each reader holds up to PIPELINE tasks so it never waits for the parent between files; only
    the task at the head of its queue is running, and only that one has a deadline."""
    ctx = _context()
    start_timeout = 60.0
    queue = deque(tasks)
    count = max(1, min(workers, len(tasks) or 1))
    readers = [_Reader(ctx, str(root), memory_mb, start_timeout) for _ in range(count)]

    def replace(index: int) -> None:
        reader = readers[index]
        # Tasks waiting behind the failed one were never started: hand them out again.
        queue.extendleft(reversed(list(reader.tasks)[1:]))
        reader.stop()
        readers[index] = _Reader(ctx, str(root), memory_mb, start_timeout)

    def finish(index: int, result: dict) -> None:
        reader = readers[index]
        task = reader.tasks.popleft()
        if reader.tasks:
            reader.deadline = time.monotonic() + reader.tasks[0].timeout
        on_result(task, result)

    try:
        while queue or any(r.tasks for r in readers):
            for index, reader in enumerate(readers):
                while queue and len(reader.tasks) < PIPELINE:
                    task = queue.popleft()
                    try:
                        reader.conn.send((task.task_id, task.kind, task.argument))
                    except OSError:
                        queue.appendleft(task)
                        replace(index)
                        break
                    if not reader.tasks:
                        reader.deadline = time.monotonic() + task.timeout
                    reader.tasks.append(task)
            busy = [r for r in readers if r.tasks]
            wait_for = max(0.0, min(r.deadline for r in busy) - time.monotonic())
            ready = set(wait([r.conn for r in busy] + [r.process.sentinel for r in busy], wait_for))
            for index in range(len(readers)):
                reader = readers[index]
                if not reader.tasks:
                    continue
                if reader.conn in ready or reader.process.sentinel in ready:
                    try:
                        while reader.tasks and reader.conn.poll():
                            _, message = reader.conn.recv()
                            if message == READ_DONE:
                                # Reading took its share of time; the parse gets the full timeout.
                                reader.deadline = time.monotonic() + reader.tasks[0].parse_timeout
                            else:
                                finish(index, message)
                    except (EOFError, OSError):
                        pass
                    if reader.tasks and not reader.process.is_alive():
                        reader.process.join(1)
                        code = reader.process.exitcode
                        task = reader.tasks[0]
                        replace(index)
                        on_result(task, {"problem": "crashed", "params": {"code": code}})
                        continue
                if reader.tasks and time.monotonic() >= reader.deadline:
                    task = reader.tasks[0]
                    replace(index)
                    on_result(task, {"problem": "timeout", "params": {"seconds": _seconds(task.parse_timeout)}})
    finally:
        for reader in readers:
            try:
                reader.conn.send(None)
            except OSError:
                pass
        for reader in readers:
            reader.process.join(2)
            reader.stop()


def _seconds(value: float) -> str:
    return f"{value:g}"


def index_disc(
    root: Path, *, workers: int = 2, file_timeout: float = 30.0, memory_mb: int = 1024,
    pdi_check: bool = True, progress: Callable[[int, int, int, int], None] | None = None,
) -> IndexedDisc:
    """Walk, read and describe every file under root; see the module docstring."""
    started = time.monotonic()
    root = Path(root)
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
            tasks.append(_Task(len(tasks), "file", item.os_path, read_timeout, item.path, file_timeout))
    # The DICOMDIR first: its records are checked while the images are read.
    tasks.sort(key=lambda t: (t.path.upper() != DICOMDIR_NAME, t.path))
    pdi_report: dict = {}
    total_files = len(tasks)
    total_bytes = sum(item.size for item in walk.items if item.kind == "file")
    done = {"files": 0, "bytes": 0}
    if pdi_check:
        tasks.insert(1 if tasks and tasks[0].path.upper() == DICOMDIR_NAME else 0,
                     _Task(-1, "pdi", str(root), file_timeout * 10, "(PDI check)", file_timeout * 10))
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
            # The parse failed, not the read: hash it here (hash-only cannot hang) so a
            # returned disc can still be compared file by file.
            try:
                result["size"], result["sha256"] = _hash_path(root, task.argument)
            except OSError:
                pass
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
        run_tasks(tasks, root=root, workers=workers, memory_mb=memory_mb, on_result=on_result)
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
