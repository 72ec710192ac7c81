"""How far a disc follows IHE PDI and DICOM PS3.10-12: reported, never enforced.

`pdi_check(root)` walks the folder without following symbolic links, reads only each file's
first bytes (the PS3.10 file meta information) and the root DICOMDIR, and never opens anything
outside `root`. It never raises on a damaged or hostile disc; it returns plain JSON data:

    {
      "schema": 1,
      "conformant": bool,         # True when at least one general-purpose profile is met
      "best_profile": str | None, # the first met profile in PROFILES order (CD before DVD/USB)
      "fileset_id": str | None,   # (0004,1130) of the DICOMDIR
      "profiles": {name: {"ok": bool, "media": str,
                          "failed_checks": [codes of required checks not ok],
                          "transfer_syntaxes": [uid, ...], "violations": int,
                          "paths": [first 20 files whose transfer syntax it does not allow]}},
      "checks": [{"code": str, "ok": bool | None, "severity": "required" | "profile" | "info",
                  "message": str, "count": int, "paths": [first 20 paths concerned]}],
      "counts": {"files", "directories", "dicom_files", "other_files", "symlinks",
                 "dicomdir_records", "referenced_files", "missing_references",
                 "unreferenced_files": int},
      "transfer_syntaxes": {uid: {"name": str, "files": int}},
    }

Every code in CHECK_CODES appears once, in that order. `ok` is null when a check could not run
(e.g. no readable DICOMDIR to compare with). A profile is met when every "required" check is ok
and every DICOM file's transfer syntax is one the profile allows; "profile" checks explain the
transfer-syntax side, "info" checks (README.TXT, INDEX.HTM, IHE_PDI/, File-set ID) never change
the verdict. On a CD-R only STD-GEN-CD applies: read `profiles`, not just `conformant`.
Paths are relative, "/"-separated, as found on the disc (DICOMDIR paths as written there).
"""
import io
import os
import re
import stat
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import UID

from archive.indexer import plain_file_meta

SCHEMA = 1
MAX_PATHS = 20
MAX_ENTRIES = 200_000  # files + folders walked; a real DVD holds a few tens of thousands
MAX_DEPTH = 32  # PS3.12 allows 8 levels; deeper trees are reported, not followed to the end
MAX_DICOMDIR_BYTES = 128 * 1024 * 1024
META_FIRST_READ = 8 * 1024  # a PS3.10 file meta group is usually under 1 KiB
META_MAX_READ = 256 * 1024
MAX_TRANSFER_SYNTAXES = 32

EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
JPEG_SYNTAXES = (
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51",  # JPEG Extended (Process 2 & 4)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless, first-order prediction
)
J2K_SYNTAXES = (
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless only
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
)
# PS3.11 general-purpose application profiles (the sets dcmtk's dcmmkdir checks too).
PROFILES: dict[str, dict] = {
    "STD-GEN-CD": {"media": "CD-R", "syntaxes": (EXPLICIT_LE,)},
    "STD-GEN-DVD-JPEG": {"media": "DVD", "syntaxes": (EXPLICIT_LE, *JPEG_SYNTAXES)},
    "STD-GEN-USB-JPEG": {"media": "USB/flash", "syntaxes": (EXPLICIT_LE, *JPEG_SYNTAXES)},
    "STD-GEN-DVD-J2K": {"media": "DVD", "syntaxes": (EXPLICIT_LE, *J2K_SYNTAXES)},
    "STD-GEN-USB-J2K": {"media": "USB/flash", "syntaxes": (EXPLICIT_LE, *J2K_SYNTAXES)},
}
ANY_PROFILE_SYNTAXES = frozenset(s for p in PROFILES.values() for s in p["syntaxes"])

REQUIRED, PROFILE, INFO = "required", "profile", "info"
CHECK_CODES = (
    ("disc_walk", REQUIRED),
    ("symlinks", REQUIRED),
    ("dicomdir_present", REQUIRED),
    ("dicomdir_readable", REQUIRED),
    ("dicomdir_meta", REQUIRED),
    ("dicomdir_offsets", REQUIRED),
    ("dicomdir_paths_safe", REQUIRED),
    ("dicomdir_references_exist", REQUIRED),
    ("dicomdir_references_case", REQUIRED),
    ("dicom_files_referenced", REQUIRED),
    ("dicom_meta", REQUIRED),
    ("file_id_depth", REQUIRED),
    ("file_id_length", REQUIRED),
    ("file_id_characters", REQUIRED),
    ("file_id_extension", REQUIRED),
    ("transfer_syntax_cd", PROFILE),
    ("transfer_syntax_any_profile", REQUIRED),
    ("fileset_id", INFO),
    ("readme_txt", INFO),
    ("index_htm", INFO),
    ("ihe_pdi_folder", INFO),
)

FILE_ID_COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")
FILE_ID_CHARACTERS = re.compile(r"[A-Z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean(text: str, limit: int = 240) -> str:
    """Text safe to print and to store as JSON in PostgreSQL (no NULs, no lone surrogates)."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    text = _CONTROL.sub("\ufffd", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _syntax_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else _("unknown transfer syntax")


@dataclass
class _DicomFile:
    syntax: str | None  # None: the file meta could not be read or names no transfer syntax
    sop_class: str | None


@dataclass
class _Disc:
    """What a walk of the folder found."""

    root_is_folder: bool = True
    files: set[str] = field(default_factory=set)
    directories: int = 0
    dicom: dict[str, _DicomFile] = field(default_factory=dict)
    symlinks: list[str] = field(default_factory=list)
    symlinks_outside: int = 0
    skipped: list[str] = field(default_factory=list)  # unreadable or not regular files
    truncated: bool = False
    entries: int = 0
    root_names: set[str] = field(default_factory=set)
    root_folders: set[str] = field(default_factory=set)
    dicomdir_name: str | None = None  # "DICOMDIR", or a case variant such as "dicomdir"
    dicomdir_bytes: bytes | None = None
    dicomdir_problem: str | None = None


@dataclass
class _Dicomdir:
    """What the DICOMDIR says, read without trusting its record offsets."""

    error: str | None = None
    meta_problems: list[str] = field(default_factory=list)
    fileset_id: str | None = None
    records: int = 0
    loops: int = 0
    dangling: int = 0
    orphans: int = 0
    offset_paths: list[str] = field(default_factory=list)
    references: list[tuple[str, bool]] = field(default_factory=list)  # (path, safe)


class _Walker:
    """Walk the disc through directory file descriptors: no symlink is ever followed."""

    def __init__(self, root: Path):
        self.root = os.path.abspath(root)
        self.disc = _Disc()

    def run(self) -> _Disc:
        try:
            fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            self.disc.root_is_folder = False
            return self.disc
        try:
            self._scan(fd, [], 0)
        finally:
            os.close(fd)
        return self.disc

    def _scan(self, dir_fd: int, parts: list[str], depth: int) -> None:
        disc = self.disc
        try:
            with os.scandir(dir_fd) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            disc.skipped.append("/".join(parts) or ".")
            return
        subfolders = []
        for entry in entries:
            if disc.entries >= MAX_ENTRIES:
                disc.truncated = True
                return
            disc.entries += 1
            rel = "/".join([*parts, entry.name])
            try:
                if entry.is_symlink():
                    self._symlink(dir_fd, entry.name, parts, rel)
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append(entry.name)
                    if not parts:
                        disc.root_folders.add(entry.name)
                elif entry.is_file(follow_symlinks=False):
                    self._file(dir_fd, entry.name, rel, at_root=not parts)
                else:
                    disc.skipped.append(rel)
            except OSError:
                disc.skipped.append(rel)
        for name in subfolders:
            rel = "/".join([*parts, name])
            if depth + 1 > MAX_DEPTH:
                disc.truncated = True
                disc.skipped.append(rel)
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
            except OSError:
                disc.skipped.append(rel)
                continue
            disc.directories += 1
            try:
                self._scan(fd, [*parts, name], depth + 1)
            finally:
                os.close(fd)

    def _symlink(self, dir_fd: int, name: str, parts: list[str], rel: str) -> None:
        self.disc.symlinks.append(rel)
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            target = "/"
        # Judged on the text of the link alone: resolving it would touch paths off the disc.
        joined = os.path.normpath(os.path.join(self.root, *parts, target))
        if joined != self.root and not joined.startswith(self.root.rstrip("/") + "/"):
            self.disc.symlinks_outside += 1

    def _file(self, dir_fd: int, name: str, rel: str, at_root: bool) -> None:
        disc = self.disc
        # O_NOFOLLOW and O_NONBLOCK: a file swapped for a link or a FIFO since the listing
        # must neither lead off the disc nor block the walk.
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                disc.skipped.append(rel)
                return
            disc.files.add(rel)
            if at_root:
                disc.root_names.add(name)
                if name.upper() == "DICOMDIR" and (
                    disc.dicomdir_name is None or name == "DICOMDIR"
                ):
                    disc.dicomdir_name = name
                    if info.st_size > MAX_DICOMDIR_BYTES:
                        disc.dicomdir_bytes = None
                        disc.dicomdir_problem = _("it is larger than %(mb)d MB") % {
                            "mb": MAX_DICOMDIR_BYTES // (1024 * 1024)
                        }
                    else:
                        disc.dicomdir_bytes = _read_up_to(fd, info.st_size)
                        disc.dicomdir_problem = None
                    return
            head = _read_up_to(fd, META_FIRST_READ)
            if len(head) < 132 or head[128:132] != b"DICM":
                return
            meta = _file_meta(head)
            if meta.syntax is None and info.st_size > len(head):
                os.lseek(fd, 0, os.SEEK_SET)
                meta = _file_meta(_read_up_to(fd, META_MAX_READ))
            disc.dicom[rel] = meta
        finally:
            os.close(fd)


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1024 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_meta(head: bytes) -> _DicomFile:
    """Transfer syntax and SOP class from the file meta group, parsed from bytes in memory."""
    # pydicom's read_file_meta_info opens the path itself; parsing a bounded copy means a huge
    # declared length can at worst read to the end of these bytes.
    plain = plain_file_meta(head)  # the usual group without pydicom (a third of an import's check)
    if plain is not None:
        return _DicomFile(*(_clean(value, 64) if value else None for value in plain))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fp = io.BytesIO(head)
            read_preamble(fp, False)
            meta = _read_file_meta_info(fp)
            syntax = meta.get("TransferSyntaxUID")
            sop_class = meta.get("MediaStorageSOPClassUID")
    except Exception:  # hostile bytes raise anything from struct.error to RecursionError
        return _DicomFile(None, None)
    syntax = _clean(str(syntax).strip("\x00 "), 64) if syntax else None
    sop_class = _clean(str(sop_class).strip("\x00 "), 64) if sop_class else None
    return _DicomFile(syntax or None, sop_class or None)


def _as_int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return -1


def _file_id(value) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (str, bytes)) else list(value)
    parts = []
    for item in items:
        if isinstance(item, bytes):
            item = item.decode("latin-1")
        parts.append(str(item).strip(" \x00"))
    return parts


def _unsafe_file_id(parts: list[str]) -> bool:
    """A file ID that could name something off the disc (.., absolute, drive letters)."""
    return any(
        part in ("", ".", "..") or any(c in part for c in "/\\:\x00") for part in parts
    )


def _inflates_beyond(data: bytes, limit: int) -> bool:
    """Whether a deflated DICOMDIR's dataset inflates to more than `limit` bytes, found out in
    1 MiB steps: pydicom inflates the whole of it at once, and a tiny bomb can ask for gigabytes
    (pdi_check also runs in the caller's process, where no memory limit protects it)."""
    try:
        fp = io.BytesIO(data)
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        if str(meta.get("TransferSyntaxUID", "") or "").strip("\x00 ") != DEFLATED_LE:
            return False
        inflater, pending, total = zlib.decompressobj(-zlib.MAX_WBITS), data[fp.tell():], 0
        while pending and not inflater.eof:
            total += len(inflater.decompress(pending, 1024 * 1024))
            if total > limit:
                return True
            pending = inflater.unconsumed_tail
    except Exception:  # not readable as deflated: dcmread reports it as it is
        return False
    return False


def _read_dicomdir(data: bytes) -> _Dicomdir:
    """Parse the DICOMDIR from memory and walk its record links with cycle detection."""
    result = _Dicomdir()
    if _inflates_beyond(data, MAX_DICOMDIR_BYTES):
        result.error = _(
            "it is deflated and would inflate to more than %(mb)d MB; it was not read"
        ) % {"mb": MAX_DICOMDIR_BYTES // (1024 * 1024)}
        return result
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(io.BytesIO(data))
            except InvalidDicomError:
                ds = pydicom.dcmread(io.BytesIO(data), force=True)
                result.meta_problems.append(_("it has no PS3.10 header (preamble and 'DICM')"))
            meta = ds.get("file_meta") or {}
            sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
            syntax = str(meta.get("TransferSyntaxUID", "") or "")
            if sop_class != DICOMDIR_SOP_CLASS:
                result.meta_problems.append(
                    _("its Media Storage SOP Class is %(found)s, not %(expected)s")
                    % {"found": _clean(sop_class or "-", 64), "expected": DICOMDIR_SOP_CLASS}
                )
            if syntax != EXPLICIT_LE:
                result.meta_problems.append(
                    _("it is encoded as %(found)s, not Explicit VR Little Endian")
                    % {"found": _clean(_syntax_name(syntax) if syntax else "-", 64)}
                )
            fileset_id = ds.get("FileSetID")
            result.fileset_id = _clean(str(fileset_id), 64) if fileset_id else None
            if "DirectoryRecordSequence" not in ds:
                result.error = _("it has no directory records; it is not a DICOMDIR")
                return result
            records = list(ds.DirectoryRecordSequence)
            first = _as_int(
                ds.get("OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity")
            )
            links, file_ids, kinds = [], [], []
            for record in records:
                kinds.append(_clean(str(record.get("DirectoryRecordType", "") or "?"), 16))
                links.append(
                    (
                        _as_int(record.get("OffsetOfTheNextDirectoryRecord")),
                        _as_int(record.get("OffsetOfReferencedLowerLevelDirectoryEntity")),
                    )
                )
                file_ids.append(_file_id(record.get("ReferencedFileID")))
            offsets = {getattr(r, "seq_item_tell", None): i for i, r in enumerate(records)}
    except Exception as exc:  # damaged or hostile: RecursionError, MemoryError, struct.error...
        result.error = _clean(f"{type(exc).__name__}: {exc}", 160)
        return result
    result.records = len(records)
    _walk_record_links(result, first, links, offsets, kinds)
    for parts in file_ids:
        if parts is not None:
            path = _clean("/".join(parts))
            result.references.append((path, not _unsafe_file_id(parts)))
    return result


def _walk_record_links(
    result: _Dicomdir, first: int, links: list[tuple[int, int]], offsets: dict, kinds: list[str]
) -> None:
    """Follow next/lower offsets from the root; each record is visited at most once."""
    visited: set[int] = set()
    pending = [first] if first else []
    while pending:
        offset = pending.pop()
        while offset:
            index = offsets.get(offset)
            if index is None:
                result.dangling += 1
                if len(result.offset_paths) < MAX_PATHS:
                    result.offset_paths.append(
                        _("link to offset %(offset)d, where no record starts") % {"offset": offset}
                    )
                break
            if index in visited:
                result.loops += 1
                if len(result.offset_paths) < MAX_PATHS:
                    result.offset_paths.append(
                        _("%(kind)s record at offset %(offset)d reached a second time (a loop)")
                        % {"kind": kinds[index], "offset": offset}
                    )
                break
            visited.add(index)
            next_offset, lower = links[index]
            if lower:
                pending.append(lower)
            offset = next_offset
    result.orphans = len(links) - len(visited)
    tells = {index: offset for offset, index in offsets.items()}
    for index in range(len(links)):
        if index not in visited and len(result.offset_paths) < MAX_PATHS:
            result.offset_paths.append(
                _("%(kind)s record at offset %(offset)s not reachable from the root")
                % {"kind": kinds[index], "offset": tells.get(index, "?")}
            )


class _Report:
    def __init__(self):
        self.checks: dict[str, dict] = {}

    def add(
        self, code: str, ok: bool | None, message: str, paths: list[str] = (),
        count: int | None = None,
    ) -> None:
        paths = list(paths)
        self.checks[code] = {
            "code": code,
            "ok": ok,
            "severity": dict(CHECK_CODES)[code],
            "message": message,
            "count": len(paths) if count is None else count,
            "paths": [_clean(p) for p in paths[:MAX_PATHS]],
        }

    def ordered(self) -> list[dict]:
        return [self.checks[code] for code, _severity in CHECK_CODES]


def pdi_check(root: Path) -> dict:
    """Report how far the disc (folder) at `root` follows IHE PDI; never raises on its content."""
    disc = _Walker(Path(root)).run()
    report = _Report()
    if not disc.root_is_folder:
        return _not_a_folder(report)
    dicomdir = None
    if disc.dicomdir_bytes is not None:
        dicomdir = _read_dicomdir(disc.dicomdir_bytes)
    _walk_checks(report, disc)
    references = _dicomdir_checks(report, disc, dicomdir)
    _file_id_checks(report, disc, references)
    syntaxes = _syntax_checks(report, disc)
    _info_checks(report, disc, dicomdir)
    return _assemble(report, disc, dicomdir, references, syntaxes)


def _not_a_folder(report: _Report) -> dict:
    for code, _severity in CHECK_CODES:
        report.add(code, None, _("Not checked: the path is not a folder that can be read."))
    report.add("disc_walk", False, _("The path is not a folder that can be read."))
    return {
        "schema": SCHEMA,
        "conformant": False,
        "best_profile": None,
        "fileset_id": None,
        "profiles": {
            name: {"ok": False, "media": p["media"], "failed_checks": ["disc_walk"],
                   "transfer_syntaxes": list(p["syntaxes"]), "violations": 0, "paths": []}
            for name, p in PROFILES.items()
        },
        "checks": report.ordered(),
        "counts": dict.fromkeys(
            ("files", "directories", "dicom_files", "other_files", "symlinks",
             "dicomdir_records", "referenced_files", "missing_references",
             "unreferenced_files"), 0
        ),
        "transfer_syntaxes": {},
    }


def _walk_checks(report: _Report, disc: _Disc) -> None:
    if disc.truncated:
        report.add(
            "disc_walk", False,
            _("The disc has more than %(entries)d entries or folders nested deeper than "
              "%(depth)d levels; the check stopped there and this report covers only part "
              "of it.") % {"entries": MAX_ENTRIES, "depth": MAX_DEPTH},
            disc.skipped,
        )
    elif disc.skipped:
        report.add(
            "disc_walk", False,
            ngettext(
                "%(count)d entry could not be read or is not a plain file (permissions, "
                "device files); it was skipped and the rest of the report stands.",
                "%(count)d entries could not be read or are not plain files (permissions, "
                "device files); they were skipped and the rest of the report stands.",
                len(disc.skipped),
            ) % {"count": len(disc.skipped)},
            disc.skipped,
        )
    else:
        report.add(
            "disc_walk", True,
            _("All %(files)d files in %(folders)d folders were read.")
            % {"files": len(disc.files), "folders": disc.directories + 1},
        )
    if disc.symlinks:
        report.add(
            "symlinks", False,
            ngettext(
                "%(count)d symbolic link (%(outside)d pointing off the disc); a burnt disc "
                "has none, so this folder is probably a copy. Links were not followed.",
                "%(count)d symbolic links (%(outside)d pointing off the disc); a burnt disc "
                "has none, so this folder is probably a copy. Links were not followed.",
                len(disc.symlinks),
            ) % {"count": len(disc.symlinks), "outside": disc.symlinks_outside},
            disc.symlinks,
        )
    else:
        report.add("symlinks", True, _("No symbolic links."))


def _dicomdir_checks(report: _Report, disc: _Disc, dicomdir: _Dicomdir | None) -> dict:
    """DICOMDIR checks; returns the references that resolved, as {reference: path on disc}."""
    resolved: dict[str, str] = {}
    if disc.dicomdir_name == "DICOMDIR":
        report.add("dicomdir_present", True, _("DICOMDIR is at the root of the disc."))
    elif disc.dicomdir_name:
        report.add(
            "dicomdir_present", False,
            _("The index is named %(name)s instead of DICOMDIR, probably because the disc was "
              "mounted with lowercase names; it was checked anyway.")
            % {"name": _clean(disc.dicomdir_name)},
            [disc.dicomdir_name],
        )
    else:
        link = "DICOMDIR" in disc.symlinks
        report.add(
            "dicomdir_present", False,
            _("DICOMDIR is a symbolic link; it was not followed.") if link else
            _("No DICOMDIR at the root of the disc: viewers and PACS importers cannot list its "
              "studies without reading every file. The import still indexes the files."),
            ["DICOMDIR"] if link else [],
        )
    not_checked = _("Not checked: no readable DICOMDIR.")
    if dicomdir is None or dicomdir.error:
        if disc.dicomdir_name:
            reason = disc.dicomdir_problem or (dicomdir.error if dicomdir else "")
            report.add(
                "dicomdir_readable", False,
                _("DICOMDIR could not be read (%(reason)s): viewers will not open this disc by "
                  "its index.") % {"reason": reason},
                [disc.dicomdir_name],
            )
        else:
            report.add("dicomdir_readable", None, not_checked)
        for code in ("dicomdir_meta", "dicomdir_offsets", "dicomdir_paths_safe",
                     "dicomdir_references_exist", "dicomdir_references_case",
                     "dicom_files_referenced"):
            report.add(code, None, not_checked)
        return resolved

    report.add(
        "dicomdir_readable", True,
        ngettext("DICOMDIR was read: %(count)d directory record.",
                 "DICOMDIR was read: %(count)d directory records.", dicomdir.records)
        % {"count": dicomdir.records},
    )
    if dicomdir.meta_problems:
        report.add(
            "dicomdir_meta", False,
            _("DICOMDIR header deviates: %(problems)s. Strict readers may refuse it.")
            % {"problems": "; ".join(dicomdir.meta_problems)},
            [disc.dicomdir_name],
        )
    else:
        report.add(
            "dicomdir_meta", True,
            _("DICOMDIR is a Media Storage Directory in Explicit VR Little Endian."),
        )
    if dicomdir.loops or dicomdir.dangling or dicomdir.orphans:
        report.add(
            "dicomdir_offsets", False,
            _("DICOMDIR record links are broken: %(loops)d loop(s), %(dangling)d link(s) to "
              "nowhere, %(orphans)d record(s) not reachable from the root. Viewers may hang or "
              "miss images; the files themselves are still indexed.")
            % {"loops": dicomdir.loops, "dangling": dicomdir.dangling,
               "orphans": dicomdir.orphans},
            dicomdir.offset_paths,
            count=dicomdir.loops + dicomdir.dangling + dicomdir.orphans,
        )
    else:
        report.add(
            "dicomdir_offsets", True,
            _("DICOMDIR records are linked into one tree, without loops."),
        )

    unsafe = [path for path, safe in dicomdir.references if not safe]
    if unsafe:
        report.add(
            "dicomdir_paths_safe", False,
            ngettext(
                "DICOMDIR names %(count)d path that leaves the disc or is malformed (.., "
                "absolute or empty parts). It was not opened; a damaged or hostile disc.",
                "DICOMDIR names %(count)d paths that leave the disc or are malformed (.., "
                "absolute or empty parts). They were not opened; a damaged or hostile disc.",
                len(unsafe),
            ) % {"count": len(unsafe)},
            unsafe,
        )
    else:
        report.add("dicomdir_paths_safe", True, _("Every DICOMDIR path stays on the disc."))

    by_case = {}
    for path in disc.files:
        by_case.setdefault(path.upper(), path)
    missing, other_case = [], []
    safe_refs = [path for path, safe in dicomdir.references if safe]
    for path in safe_refs:
        if path in disc.files:
            resolved[path] = path
        elif path.upper() in by_case:
            resolved[path] = by_case[path.upper()]
            other_case.append(path)
        else:
            missing.append(path)
    if missing:
        report.add(
            "dicomdir_references_exist", False,
            ngettext(
                "%(count)d file listed in DICOMDIR is missing from the disc: viewers will "
                "show a gap.",
                "%(count)d files listed in DICOMDIR are missing from the disc: viewers will "
                "show gaps.",
                len(missing),
            ) % {"count": len(missing)},
            missing,
        )
    else:
        report.add(
            "dicomdir_references_exist", True,
            _("All %(count)d files listed in DICOMDIR are on the disc.")
            % {"count": len(safe_refs)},
        )
    if other_case:
        report.add(
            "dicomdir_references_case", False,
            ngettext(
                "%(count)d file listed in DICOMDIR exists only with different upper/lower "
                "case; case-sensitive systems will not find it (often a lowercase mount).",
                "%(count)d files listed in DICOMDIR exist only with different upper/lower "
                "case; case-sensitive systems will not find them (often a lowercase mount).",
                len(other_case),
            ) % {"count": len(other_case)},
            other_case,
        )
    else:
        report.add(
            "dicomdir_references_case", True,
            _("DICOMDIR paths match the file names exactly."),
        )

    listed = set(resolved.values())
    unreferenced = sorted(p for p in disc.dicom if p not in listed)
    if unreferenced:
        report.add(
            "dicom_files_referenced", False,
            ngettext(
                "%(count)d DICOM file is not listed in DICOMDIR: viewers that open the disc by "
                "its index will not show it (the import still indexes it).",
                "%(count)d DICOM files are not listed in DICOMDIR: viewers that open the disc "
                "by its index will not show them (the import still indexes them).",
                len(unreferenced),
            ) % {"count": len(unreferenced)},
            unreferenced,
        )
    else:
        report.add(
            "dicom_files_referenced", True,
            _("Every DICOM file on the disc is listed in DICOMDIR."),
        )
    return resolved


def _file_id_checks(report: _Report, disc: _Disc, resolved: dict[str, str]) -> None:
    """PS3.12 file IDs: at most 8 components of 1-8 characters A-Z, 0-9, _ and no extension."""
    paths = sorted(set(disc.dicom) | set(resolved))
    deep, long, characters, extension = [], [], [], []
    for path in paths:
        parts = path.split("/")
        if len(parts) > 8:
            deep.append(path)
        if any(len(part.split(".", 1)[0]) > 8 or not part for part in parts):
            long.append(path)
        if any(not FILE_ID_CHARACTERS.fullmatch(part.replace(".", "")) for part in parts):
            characters.append(path)
        if "." in parts[-1]:
            extension.append(path)
    rules = (
        ("file_id_depth", deep,
         ngettext("%(count)d path has more than 8 levels; PS3.12 file IDs have at most 8 parts.",
                  "%(count)d paths have more than 8 levels; PS3.12 file IDs have at most 8 parts.",
                  len(deep)),
         _("Every DICOM path has at most 8 levels.")),
        ("file_id_length", long,
         ngettext("%(count)d path has a name longer than 8 characters; ISO 9660 discs and "
                  "PS3.12 allow 1 to 8, and older viewers will not find the file.",
                  "%(count)d paths have a name longer than 8 characters; ISO 9660 discs and "
                  "PS3.12 allow 1 to 8, and older viewers will not find the files.",
                  len(long)),
         _("Every name in a DICOM path has 1 to 8 characters.")),
        ("file_id_characters", characters,
         ngettext("%(count)d path uses characters other than A-Z, 0-9 and _ (lowercase counts). "
                  "Older viewers may not find it; if every name is lowercase, the disc may just "
                  "have been mounted that way.",
                  "%(count)d paths use characters other than A-Z, 0-9 and _ (lowercase counts). "
                  "Older viewers may not find them; if every name is lowercase, the disc may "
                  "just have been mounted that way.",
                  len(characters)),
         _("DICOM paths use only A-Z, 0-9 and _.")),
        ("file_id_extension", extension,
         ngettext("%(count)d DICOM file has a file-name extension (such as .dcm); PS3.12 file "
                  "IDs have none. Most viewers cope, strict ones do not.",
                  "%(count)d DICOM files have a file-name extension (such as .dcm); PS3.12 file "
                  "IDs have none. Most viewers cope, strict ones do not.",
                  len(extension)),
         _("No DICOM file has a file-name extension.")),
    )
    for code, found, bad, good in rules:
        if found:
            report.add(code, False, bad % {"count": len(found)}, found)
        else:
            report.add(code, True, good)


def _syntax_checks(report: _Report, disc: _Disc) -> dict[str, list[str]]:
    """Transfer syntax per file; returns {uid or "": [paths]} ("" = header unreadable)."""
    syntaxes: dict[str, list[str]] = {}
    for path, found in sorted(disc.dicom.items()):
        if found.sop_class == DICOMDIR_SOP_CLASS:
            continue  # a second DICOMDIR deeper down: reported as unreferenced, not an image
        syntaxes.setdefault(found.syntax or "", []).append(path)
    unreadable = syntaxes.get("", [])
    if unreadable:
        report.add(
            "dicom_meta", False,
            ngettext(
                "%(count)d file starts like DICOM but its header (file meta information) "
                "cannot be read or names no transfer syntax; no profile allows it.",
                "%(count)d files start like DICOM but their header (file meta information) "
                "cannot be read or names no transfer syntax; no profile allows them.",
                len(unreadable),
            ) % {"count": len(unreadable)},
            unreadable,
        )
    else:
        report.add("dicom_meta", True, _("Every DICOM file has a readable PS3.10 header."))

    def names(uids) -> str:
        return ", ".join(sorted({_syntax_name(uid) for uid in uids if uid}))

    not_cd = {uid: paths for uid, paths in syntaxes.items() if uid != EXPLICIT_LE}
    if not_cd:
        count = sum(map(len, not_cd.values()))
        report.add(
            "transfer_syntax_cd", False,
            ngettext(
                "%(count)d file is not uncompressed Explicit VR Little Endian (%(names)s), so "
                "the disc does not meet the CD profile STD-GEN-CD; see the DVD/USB profiles.",
                "%(count)d files are not uncompressed Explicit VR Little Endian (%(names)s), so "
                "the disc does not meet the CD profile STD-GEN-CD; see the DVD/USB profiles.",
                count,
            ) % {"count": count, "names": names(not_cd) or "-"},
            [p for paths in not_cd.values() for p in paths],
        )
    else:
        report.add(
            "transfer_syntax_cd", True,
            _("Every DICOM file is uncompressed Explicit VR Little Endian, as the CD profile "
              "STD-GEN-CD requires."),
        )
    nowhere = {uid: paths for uid, paths in syntaxes.items()
               if uid and uid not in ANY_PROFILE_SYNTAXES}
    jpeg = [p for uid in JPEG_SYNTAXES for p in syntaxes.get(uid, [])]
    j2k = [p for uid in J2K_SYNTAXES for p in syntaxes.get(uid, [])]
    if nowhere:
        count = sum(map(len, nowhere.values()))
        report.add(
            "transfer_syntax_any_profile", False,
            ngettext(
                "%(count)d file uses a transfer syntax no general-purpose profile allows "
                "(%(names)s). Many viewers still read it, but the disc is not PDI conformant.",
                "%(count)d files use transfer syntaxes no general-purpose profile allows "
                "(%(names)s). Many viewers still read them, but the disc is not PDI conformant.",
                count,
            ) % {"count": count, "names": names(nowhere)},
            [p for paths in nowhere.values() for p in paths],
        )
    elif jpeg and j2k:
        report.add(
            "transfer_syntax_any_profile", False,
            _("The disc mixes JPEG and JPEG 2000 files; no single profile allows both. "
              "The JPEG 2000 files are listed."),
            j2k,
        )
    else:
        report.add(
            "transfer_syntax_any_profile", True,
            _("Every transfer syntax on the disc is allowed by a general-purpose profile."),
        )
    return syntaxes


def _info_checks(report: _Report, disc: _Disc, dicomdir: _Dicomdir | None) -> None:
    fileset_id = dicomdir.fileset_id if dicomdir and not dicomdir.error else None
    if fileset_id:
        report.add("fileset_id", True, _("File-set ID: %(id)s.") % {"id": fileset_id})
    else:
        report.add(
            "fileset_id", False,
            _("The DICOMDIR has no File-set ID; it is allowed, the ID only names the disc."),
        )
    has_pdi_folder = "IHE_PDI" in disc.root_folders

    def present(code: str, name: str, found: bool, missing: str, root_names: set[str]) -> None:
        if found:
            report.add(code, True, _("%(name)s is present.") % {"name": name})
            return
        variants = sorted(n for n in root_names if n.upper() == name)
        if variants:
            missing += " " + _("Found as %(variant)s (name case differs).") % {
                "variant": variants[0]}
        report.add(code, False, missing, variants)

    present(
        "readme_txt", "README.TXT", "README.TXT" in disc.root_names,
        _("No README.TXT at the root; IHE PDI asks for one saying who made the disc and how "
          "to reach them. For information only."),
        disc.root_names,
    )
    present(
        "index_htm", "INDEX.HTM", "INDEX.HTM" in disc.root_names,
        _("No INDEX.HTM at the root; the disc has no IHE PDI web content, which is needed "
          "because an IHE_PDI folder exists.") if has_pdi_folder else
        _("No INDEX.HTM at the root; the disc has no web page for patients (optional in "
          "IHE PDI)."),
        disc.root_names,
    )
    present(
        "ihe_pdi_folder", "IHE_PDI", has_pdi_folder,
        _("No IHE_PDI folder (web content is optional in IHE PDI)."),
        disc.root_folders,
    )


def _assemble(
    report: _Report, disc: _Disc, dicomdir: _Dicomdir | None, resolved: dict[str, str],
    syntaxes: dict[str, list[str]],
) -> dict:
    checks = report.ordered()
    failed = [c["code"] for c in checks if c["severity"] == REQUIRED and c["ok"] is not True]
    profiles = {}
    for name, profile in PROFILES.items():
        violating = [p for uid, paths in syntaxes.items() if uid not in profile["syntaxes"]
                     for p in paths]
        profiles[name] = {
            "ok": not failed and not violating,
            "media": profile["media"],
            "failed_checks": failed,
            "transfer_syntaxes": list(profile["syntaxes"]),
            "violations": len(violating),
            "paths": [_clean(p) for p in violating[:MAX_PATHS]],
        }
    best = next((name for name, p in profiles.items() if p["ok"]), None)
    listed = set(resolved.values())
    readable = dicomdir is not None and not dicomdir.error
    summary = {}
    for uid, paths in sorted(syntaxes.items(), key=lambda item: -len(item[1])):
        if uid and len(summary) < MAX_TRANSFER_SYNTAXES:
            summary[uid] = {"name": _syntax_name(uid), "files": len(paths)}
    return {
        "schema": SCHEMA,
        "conformant": best is not None,
        "best_profile": best,
        "fileset_id": dicomdir.fileset_id if readable else None,
        "profiles": profiles,
        "checks": checks,
        "counts": {
            "files": len(disc.files),
            "directories": disc.directories,
            "dicom_files": len(disc.dicom),
            "other_files": len(disc.files) - len(disc.dicom) - (1 if disc.dicomdir_name else 0),
            "symlinks": len(disc.symlinks),
            "dicomdir_records": dicomdir.records if readable else 0,
            "referenced_files": len(dicomdir.references) if readable else 0,
            "missing_references": report.checks["dicomdir_references_exist"]["count"],
            # Without a readable DICOMDIR no file is listed anywhere.
            "unreferenced_files": len(disc.dicom) - len(listed & set(disc.dicom)),
        },
        "transfer_syntaxes": summary,
    }
