"""Synthetic discs on real files, for the archive tests and the disc-import benchmark.

Everything here writes real DICOM Part-10 files (explicit VR little endian, real pixel data) and
real DICOMDIRs under a folder you give; nothing needs Django, so bench/ can import it too.

Good discs
    ct_disc(root, *, files=300, series=3, rows=64, cols=64, patient_id="MRN-CT-1",
            with_dicomdir=True, pdi_names=True, dicomdir_tool="pydicom", seed="",
            medical_record_locator="J-0001", accession_number="ACC-1") -> DiscSpec
        One CT study split into `series` series. With pdi_names the file IDs follow PS3.10 / IHE
        PDI (DICOM/S0001/I0001: uppercase, ≤ 8 characters a component); without, they look like a
        careless export (images/series_1/img_0001.dcm) and no DICOMDIR can name them.
        The DICOMDIR is written by `write_dicomdir` (pydicom-encoded records, PATIENT / STUDY /
        SERIES / IMAGE, real offsets) or, with dicomdir_tool="dcmmkdir", by dcmtk's dcmmkdir.
        The same arguments (and seed) give the same UIDs, so a rebuilt disc is the same study.
    ct_file(path, *, patient_id, study_uid, series_uid, sop_uid, instance, rows, cols, ...) -> bytes
        One CT image file; returns nothing useful but writes `path`.
    write_dicomdir(root, spec_files, *, loop=False, extra_file_ids=()) -> Path
        A DICOMDIR for DiscFile entries; `loop` makes the first record's next-record offset point
        at itself and the last image's point back at the first image (pydicom's FileSet never
        ends on such a file); `extra_file_ids` adds IMAGE records naming arbitrary component
        lists, e.g. ["..", "..", "ETC", "PASSWD"].

DiscSpec (what was written; paths are relative POSIX paths under spec.root)
    .root, .files: list[DiscFile], .patient_id, .study_instance_uid, .series_instance_uids,
    .dicomdir (Path | None), .by_path() -> {path: DiscFile}, .sop_instance_uids, .total_bytes
DiscFile: .path, .size, .sha256, .sop_class_uid, .sop_instance_uid, .transfer_syntax_uid,
    .study_instance_uid, .series_instance_uid

Hostile files (issue 5 point 2); each writes under root and returns the relative path it made:
    truncated_file(root, rel="DICOM/BAD/TRUNC", keep=0.6)   cut inside the pixel data
    truncated_header_file(root, rel="DICOM/BAD/TRUNCHDR")   cut inside the header
    huge_length_file(root, rel="DICOM/BAD/HUGE", declared=2**31 - 2)
        a small file with one element declaring `declared` bytes
    deep_sequence_file(root, rel="DICOM/BAD/DEEP", depth=500)   sequences nested `depth` deep
    deflate_bomb_file(root, rel="DICOM/BAD/BOMB", inflated_mb=1024)
        Deflated Explicit VR Little Endian whose dataset inflates to `inflated_mb` MiB of zeros
    slow_file(root, rel="DICOM/BAD/SLOW", elements=1_000_000)
        one private element repeated `elements` times: pydicom needs seconds (~3.6 s per
        million here) to parse it, memory stays flat — for the per-file timeout
    bloated_file(root, rel="DICOM/BAD/BLOAT", elements=3_000_000)
        `elements` distinct private elements: parsing needs hundreds of MB — for the memory limit
    not_dicom_file(root, rel="README.TXT", content=b"...")     plain bytes, no DICM marker
    unreadable_file(root, rel="DICOM/BAD/LOCKED")   a good CT file with mode 000 (root still
        reads it: run the reader without privileges to see it refused)
    fifo_file(root, rel="DICOM/BAD/PIPE")   a named pipe: opening it for reading would block
    symlink_out(root, rel="DICOM/BAD/LINK", target=Path)   a symlink to a file outside the disc
    symlink_dir_out(root, rel="DICOM/OUTDIR", target=Path)   a symlinked folder leaving the disc
    dicomdir_loop(root)   a small good disc whose DICOMDIR offsets loop (returns DiscSpec)
    dicomdir_escape(root, outside: Path)   a small good disc whose DICOMDIR also names
        ../<outside>'s file, an absolute path and a component holding a slash (returns DiscSpec)
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import warnings
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import dcmwrite, write_dataset, write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    generate_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


@dataclass(frozen=True)
class DiscFile:
    path: str
    size: int
    sha256: str
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    study_instance_uid: str
    series_instance_uid: str
    instance_number: int = 0
    series_number: int = 0


@dataclass
class DiscSpec:
    root: Path
    files: list[DiscFile]
    patient_id: str
    study_instance_uid: str
    series_instance_uids: list[str]
    dicomdir: Path | None = None
    extra: dict = field(default_factory=dict)

    def by_path(self) -> dict[str, DiscFile]:
        return {f.path: f for f in self.files}

    @property
    def sop_instance_uids(self) -> set[str]:
        return {f.sop_instance_uid for f in self.files}

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["filmroom-test-disc", *map(str, parts)])


def _pixels(rows: int, cols: int, seed: str) -> bytes:
    """Noise-like 12-bit CT values (deterministic), so files have a realistic size and content."""
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    need = rows * cols * 2
    while len(out) < need:
        block = hashlib.sha256(block).digest()
        out += block
    # Keep values within 12 bits stored, as a CT would.
    pixels = bytearray(out[:need])
    pixels[1::2] = bytes(b & 0x0F for b in pixels[1::2])
    return bytes(pixels)


def _file_meta(sop_class: str, sop_uid: str, syntax: str = ExplicitVRLittleEndian) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta


def ct_dataset(
    *, patient_id: str, study_uid: str, series_uid: str, sop_uid: str, instance: int,
    series_number: int, rows: int, cols: int, pixel_data: bytes,
    medical_record_locator: str = "", accession_number: str = "",
) -> Dataset:
    """The dataset of one CT slice with the attributes a DICOMDIR and an indexer look at."""
    ds = Dataset()
    ds.file_meta = _file_meta(CT_IMAGE_STORAGE, sop_uid)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20240312"
    ds.StudyTime = "101500"
    ds.AccessionNumber = accession_number
    ds.Modality = "CT"
    ds.Manufacturer = "Filmroom test"
    ds.StudyDescription = "CT CHEST"
    ds.SeriesDescription = f"AXIAL {series_number}"
    ds.PatientName = "TEST^DISC"
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    if medical_record_locator:
        ds.MedicalRecordLocator = medical_record_locator
    ds.SliceThickness = "1.0"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance
    ds.ImagePositionPatient = [0, 0, instance]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = cols
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = pixel_data
    return ds


def _write(root: Path, rel: str, ds: Dataset) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    dcmwrite(path, ds, enforce_file_format=True)
    return path


def _describe(root: Path, rel: str, ds: Dataset) -> DiscFile:
    body = (root / rel).read_bytes()
    return DiscFile(
        path=rel, size=len(body), sha256=hashlib.sha256(body).hexdigest(),
        sop_class_uid=str(ds.SOPClassUID), sop_instance_uid=str(ds.SOPInstanceUID),
        transfer_syntax_uid=str(ds.file_meta.TransferSyntaxUID),
        study_instance_uid=str(ds.StudyInstanceUID), series_instance_uid=str(ds.SeriesInstanceUID),
        instance_number=int(ds.InstanceNumber), series_number=int(ds.SeriesNumber),
    )


def ct_disc(
    root: Path, *, files: int = 300, series: int = 3, rows: int = 64, cols: int = 64,
    patient_id: str = "MRN-CT-1", with_dicomdir: bool = True, pdi_names: bool = True,
    dicomdir_tool: str = "pydicom", seed: str = "", medical_record_locator: str = "J-0001",
    accession_number: str = "ACC-1",
) -> DiscSpec:
    """Write one multi-series CT study of `files` images under `root` (see the module docstring)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    study_uid = _uid(seed, patient_id, "study")
    series_uids = [_uid(seed, patient_id, "series", s) for s in range(1, series + 1)]
    base = _pixels(rows, cols, f"{seed}{patient_id}")
    written: list[DiscFile] = []
    for n in range(files):
        s = n % series
        instance = n // series + 1
        sop_uid = _uid(seed, patient_id, "image", n)
        # A different rotation of the noise per slice: distinct content, no extra hashing cost.
        shift = (n * 7919) % len(base)
        ds = ct_dataset(
            patient_id=patient_id, study_uid=study_uid, series_uid=series_uids[s], sop_uid=sop_uid,
            instance=instance, series_number=s + 1, rows=rows, cols=cols,
            pixel_data=base[shift:] + base[:shift],
            medical_record_locator=medical_record_locator, accession_number=accession_number,
        )
        if pdi_names:
            rel = f"DICOM/S{s + 1:04d}/I{instance:04d}"
        else:
            rel = f"images/series_{s + 1}/img_{instance:04d}.dcm"
        _write(root, rel, ds)
        written.append(_describe(root, rel, ds))
    spec = DiscSpec(
        root=root, files=written, patient_id=patient_id, study_instance_uid=study_uid,
        series_instance_uids=series_uids,
    )
    if with_dicomdir:
        if not pdi_names:
            raise ValueError("A DICOMDIR can only name PS3.10 file IDs: use pdi_names=True.")
        if dicomdir_tool == "dcmmkdir":
            spec.dicomdir = run_dcmmkdir(root)
        else:
            spec.dicomdir = write_dicomdir(root, written, patient_id=patient_id)
    return spec


def run_dcmmkdir(root: Path) -> Path:
    """dcmtk's dcmmkdir over every file under root; fails loudly if it skipped any (it exits 0)."""
    exe = shutil.which("dcmmkdir")
    if not exe:
        raise RuntimeError("dcmmkdir (Debian package dcmtk) is not installed.")
    done = subprocess.run(
        [exe, "--recurse", "--input-directory", str(root), "--output-file",
         str(root / "DICOMDIR"), "--general-purpose", "DICOM"],
        capture_output=True, text=True, timeout=600,
    )
    if done.returncode or "E:" in done.stderr:
        raise RuntimeError(f"dcmmkdir failed: {done.stderr.strip()}")
    return root / "DICOMDIR"


# --- DICOMDIR writing (pydicom encodes each record; we place the offsets) ---------------------

def _encode(ds: Dataset) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        write_dataset(fp, ds)
    return fp.getvalue()


def _record(kind: str, **attrs: object) -> Dataset:
    ds = Dataset()
    ds.OffsetOfTheNextDirectoryRecord = 0
    ds.RecordInUseFlag = 0xFFFF
    ds.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    ds.DirectoryRecordType = kind
    with warnings.catch_warnings():
        # Hostile records name components that are not valid CS values; that is their point.
        warnings.simplefilter("ignore", UserWarning)
        for keyword, value in attrs.items():
            setattr(ds, keyword, value)
    return ds


@dataclass
class _Node:
    record: Dataset
    children: list["_Node"] = field(default_factory=list)
    offset: int = 0


def write_dicomdir(
    root: Path, files: list[DiscFile], *, patient_id: str | None = None, loop: bool = False,
    extra_file_ids: tuple[list[str], ...] = (),
) -> Path:
    """Write root/DICOMDIR naming `files` (PATIENT/STUDY/SERIES/IMAGE) plus `extra_file_ids`."""
    root = Path(root)
    first = files[0] if files else None
    patient = _Node(_record("PATIENT", PatientID=patient_id or "UNKNOWN", PatientName="TEST^DISC"))
    study = _Node(_record(
        "STUDY", StudyDate="20240312", StudyTime="101500", StudyDescription="CT CHEST",
        StudyInstanceUID=first.study_instance_uid if first else _uid("nostudy"), StudyID="1",
        AccessionNumber="",
    ))
    patient.children.append(study)
    series_nodes: dict[str, _Node] = {}
    for f in files:
        node = series_nodes.get(f.series_instance_uid)
        if node is None:
            node = _Node(_record(
                "SERIES", Modality="CT", SeriesInstanceUID=f.series_instance_uid,
                SeriesNumber=f.series_number,
            ))
            series_nodes[f.series_instance_uid] = node
            study.children.append(node)
        node.children.append(_Node(_record(
            "IMAGE", ReferencedFileID=f.path.split("/"),
            ReferencedSOPClassUIDInFile=f.sop_class_uid,
            ReferencedSOPInstanceUIDInFile=f.sop_instance_uid,
            ReferencedTransferSyntaxUIDInFile=f.transfer_syntax_uid,
            InstanceNumber=f.instance_number,
        )))
    if extra_file_ids:
        stray = _Node(_record("SERIES", Modality="OT", SeriesInstanceUID=_uid("stray"), SeriesNumber=99))
        study.children.append(stray)
        for n, components in enumerate(extra_file_ids):
            stray.children.append(_Node(_record(
                "IMAGE", ReferencedFileID=list(components),
                ReferencedSOPClassUIDInFile=CT_IMAGE_STORAGE,
                ReferencedSOPInstanceUIDInFile=_uid("stray", n),
                ReferencedTransferSyntaxUIDInFile=ExplicitVRLittleEndian, InstanceNumber=n + 1,
            )))

    order: list[_Node] = []

    def visit(node: _Node) -> None:
        order.append(node)
        for child in node.children:
            visit(child)

    visit(patient)

    meta = _file_meta(MEDIA_STORAGE_DIRECTORY, _uid("dicomdir", patient_id, len(files)))
    head = BytesIO()
    head.write(b"\x00" * 128 + b"DICM")
    meta_fp = DicomBytesIO()
    meta_fp.is_little_endian = True
    meta_fp.is_implicit_VR = False
    write_file_meta_info(meta_fp, meta, enforce_standard=True)
    head.write(meta_fp.getvalue())
    top = Dataset()
    top.FileSetID = "FILMROOM"
    top.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    top.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    top.FileSetConsistencyFlag = 0
    top_len = len(_encode(top))
    # Record lengths do not depend on offset values (UL, fixed 4 bytes): measure, then place.
    position = len(head.getvalue()) + top_len + 12  # + (0004,1220) SQ header, explicit VR
    for node in order:
        node.offset = position
        position += 8 + len(_encode(node.record))

    def link(siblings: list[_Node]) -> None:
        for a, b in zip(siblings, siblings[1:]):
            a.record.OffsetOfTheNextDirectoryRecord = b.offset
        for node in siblings:
            if node.children:
                node.record.OffsetOfReferencedLowerLevelDirectoryEntity = node.children[0].offset
                link(node.children)

    link([patient])
    if loop:
        patient.record.OffsetOfTheNextDirectoryRecord = patient.offset
        images = [n for n in order if n.record.DirectoryRecordType == "IMAGE"]
        if images:
            images[-1].record.OffsetOfTheNextDirectoryRecord = images[0].offset
    top.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = patient.offset
    top.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = patient.offset
    items = b"".join(
        struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
        for body in (_encode(node.record) for node in order)
    )
    sequence = struct.pack("<HH2sHI", 0x0004, 0x1220, b"SQ", 0, len(items)) + items
    body = head.getvalue() + _encode(top) + sequence
    path = root / "DICOMDIR"
    path.write_bytes(body)
    return path


# --- hostile files ---------------------------------------------------------------------------

def _one_ct(root: Path, rel: str, *, rows: int = 64, cols: int = 64, tag: str = "") -> Path:
    ds = ct_dataset(
        patient_id="MRN-HOSTILE", study_uid=_uid("hostile-study"), series_uid=_uid("hostile-series"),
        sop_uid=_uid("hostile", rel, tag), instance=1, series_number=1, rows=rows, cols=cols,
        pixel_data=_pixels(rows, cols, rel),
    )
    return _write(root, rel, ds)


def truncated_file(root: Path, rel: str = "DICOM/BAD/TRUNC", keep: float = 0.6) -> str:
    path = _one_ct(root, rel, rows=128, cols=128)
    body = path.read_bytes()
    path.write_bytes(body[: int(len(body) * keep)])
    return rel


def truncated_header_file(root: Path, rel: str = "DICOM/BAD/TRUNCHDR") -> str:
    path = _one_ct(root, rel)
    body = path.read_bytes()
    # Cut inside the Patient Name value, well before the pixel data.
    cut = body.index(b"TEST^DISC") + 4
    path.write_bytes(body[:cut])
    return rel


def _meta_bytes(sop_class: str, sop_uid: str, syntax: str) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, _file_meta(sop_class, sop_uid, syntax), enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + fp.getvalue()


def _header_elements(patient_id: str, rel: str) -> bytes:
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = _uid("hostile", rel)
    ds.Modality = "CT"
    ds.PatientID = patient_id
    ds.StudyInstanceUID = _uid("hostile-study")
    ds.SeriesInstanceUID = _uid("hostile-series")
    return _encode(ds)


def _place(root: Path, rel: str, body: bytes) -> str:
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return rel


def huge_length_file(root: Path, rel: str = "DICOM/BAD/HUGE", declared: int = 2**31 - 2) -> str:
    """A few hundred bytes whose private OB element (0009,1010) declares `declared` bytes."""
    body = _meta_bytes(CT_IMAGE_STORAGE, _uid("hostile", rel), ExplicitVRLittleEndian)
    elements = _header_elements("MRN-HOSTILE", rel)
    huge = struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, declared) + b"\x00" * 64
    # Elements sit in tag order: group 0008 first, then the private group 0009, then the rest.
    split = elements.index(struct.pack("<HH", 0x0010, 0x0020))
    return _place(root, rel, body + elements[:split] + huge + elements[split:])


def deep_sequence_file(root: Path, rel: str = "DICOM/BAD/DEEP", depth: int = 500) -> str:
    """Referenced Series Sequence (0008,1115) nested `depth` deep, undefined lengths all the way."""
    body = _meta_bytes(CT_IMAGE_STORAGE, _uid("hostile", rel), ExplicitVRLittleEndian)
    opening = struct.pack("<HH2sHI", 0x0008, 0x1115, b"SQ", 0, 0xFFFFFFFF) + struct.pack(
        "<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF
    )
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    elements = _header_elements("MRN-HOSTILE", rel)
    # (0008,1115) sorts after Modality (0008,0060) and before Patient ID (0010,0020).
    split = elements.index(struct.pack("<HH", 0x0010, 0x0020))
    nested = opening * depth + closing * depth
    return _place(root, rel, body + elements[:split] + nested + elements[split:])


def deflate_bomb_file(root: Path, rel: str = "DICOM/BAD/BOMB", inflated_mb: int = 1024) -> str:
    """Deflated Explicit VR LE: a tiny file whose dataset inflates to `inflated_mb` MiB."""
    body = _meta_bytes(CT_IMAGE_STORAGE, _uid("hostile", rel), DeflatedExplicitVRLittleEndian)
    size = inflated_mb * 1024 * 1024
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    out = [squeeze.compress(_header_elements("MRN-HOSTILE", rel))]
    out.append(squeeze.compress(struct.pack("<HH2sHI", 0x0009, 0x1010, b"OB", 0, size)))
    zeros = b"\x00" * (1024 * 1024)
    for _ in range(inflated_mb):
        out.append(squeeze.compress(zeros))
    out.append(squeeze.flush())
    return _place(root, rel, body + b"".join(out))


def slow_file(root: Path, rel: str = "DICOM/BAD/SLOW", elements: int = 1_000_000) -> str:
    body = _meta_bytes(CT_IMAGE_STORAGE, _uid("hostile", rel), ExplicitVRLittleEndian)
    return _place(root, rel, body + struct.pack("<HH2sH", 0x0009, 0x1010, b"LO", 0) * elements)


def bloated_file(root: Path, rel: str = "DICOM/BAD/BLOAT", elements: int = 3_000_000) -> str:
    body = _meta_bytes(CT_IMAGE_STORAGE, _uid("hostile", rel), ExplicitVRLittleEndian)
    parts = []
    for n in range(elements):
        group = 0x0009 + 2 * (n >> 16)  # odd (private) groups, each holding 65 536 elements
        parts.append(struct.pack("<HH2sH", group, n & 0xFFFF, b"LO", 0))
    return _place(root, rel, body + b"".join(parts))


def not_dicom_file(
    root: Path, rel: str = "README.TXT", content: bytes = b"This disc holds DICOM images.\r\n"
) -> str:
    return _place(root, rel, content)


def unreadable_file(root: Path, rel: str = "DICOM/BAD/LOCKED") -> str:
    path = _one_ct(root, rel)
    path.chmod(0)
    return rel


def fifo_file(root: Path, rel: str = "DICOM/BAD/PIPE") -> str:
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return rel


def symlink_out(root: Path, rel: str = "DICOM/BAD/LINK", *, target: Path) -> str:
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    return rel


def symlink_dir_out(root: Path, rel: str = "DICOM/OUTDIR", *, target: Path) -> str:
    path = Path(root) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target, target_is_directory=True)
    return rel


def dicomdir_loop(root: Path, *, files: int = 6) -> DiscSpec:
    """A small good disc whose DICOMDIR record offsets loop back on themselves."""
    spec = ct_disc(root, files=files, series=2, with_dicomdir=False, patient_id="MRN-LOOP")
    spec.dicomdir = write_dicomdir(root, spec.files, patient_id=spec.patient_id, loop=True)
    return spec


def dicomdir_escape(root: Path, *, outside: Path, files: int = 6) -> DiscSpec:
    """A small good disc whose DICOMDIR also names files outside it: `..`, absolute, a slash.

    `outside` is a file next to (not under) root; spec.extra["escapes"] lists the component lists."""
    spec = ct_disc(root, files=files, series=2, with_dicomdir=False, patient_id="MRN-ESCAPE")
    up = [".."] * (len(Path(root).resolve().parts)) + list(Path(outside).resolve().parts[1:])
    escapes = ([".."] + [Path(outside).name], up, ["", *Path(outside).resolve().parts[1:]],
               [str(Path(outside).resolve())])
    spec.dicomdir = write_dicomdir(
        root, spec.files, patient_id=spec.patient_id, extra_file_ids=escapes
    )
    spec.extra["escapes"] = escapes
    return spec
