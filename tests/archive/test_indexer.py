"""Disc import: a synthetic CT disc and pydicom's own test files, checked file by file."""
import json
import shutil
from pathlib import Path

import pydicom
import pytest
from django.core.management import CommandError, call_command
from pydicom.data import get_testdata_file
from pydicom.fileset import FileSet

from archive.indexer import _file_meta, describe, index_disc, plain_file_meta, scan_header
from archive.models import DiscManifest, Series, Study
from archive.services import disc_import
from tests.archive import discs
from tracker import ledger
from tracker.choices import EventKind, MediaKind
from tracker.models import CustodyEvent

pytestmark = pytest.mark.timeout(120)


def test_it_writes_a_dicomdir_pydicom_reads(tmp_path):
    spec = discs.ct_disc(tmp_path / "disc", files=12, series=2)
    file_set = FileSet(spec.dicomdir)
    named = sorted(Path(i.path).relative_to(spec.root).as_posix() for i in file_set)
    assert named == sorted(spec.by_path())


def test_it_indexes_a_300_file_ct_disc_file_by_file(tmp_path, cast, make_media):
    spec = discs.ct_disc(tmp_path / "disc", files=300, series=3, medical_record_locator="J-4711")
    disc = make_media("CD-300", kind=MediaKind.CD)

    result = disc_import(root=spec.root, media=disc, actor=cast["staff"])

    manifest = result.manifest
    entries = {e.path: e for e in manifest.entries.all()}
    assert set(entries) == set(spec.by_path()) | {"DICOMDIR"}
    for path, written in spec.by_path().items():
        entry = entries[path]
        assert (entry.size, entry.sha256) == (written.size, written.sha256)
        assert entry.sop_instance_uid == written.sop_instance_uid
        assert entry.sop_class_uid == written.sop_class_uid
        assert entry.transfer_syntax_uid == written.transfer_syntax_uid
        assert (entry.study_instance_uid, entry.series_instance_uid) == (
            written.study_instance_uid, written.series_instance_uid)
        assert entry.problem == ""
    dicomdir = spec.dicomdir.read_bytes()
    assert manifest.dicomdir_sha256 == entries["DICOMDIR"].sha256
    assert manifest.file_count == 301
    assert manifest.total_bytes == spec.total_bytes + len(dicomdir)
    assert manifest.problems == []
    study = Study.objects.get(study_instance_uid=spec.study_instance_uid)
    assert study.instance_count == 300 and study.medical_record_locator == "J-4711"
    assert study.patient.patient_id == "MRN-CT-1" and study.modalities == "CT"
    assert sorted(Series.objects.filter(study=study).values_list("instance_count", flat=True)) == [100] * 3
    disc.refresh_from_db()
    assert list(disc.studies.all()) == [study]
    event = CustodyEvent.objects.get(seq=manifest.event_seq)
    assert event.kind == EventKind.DISC_IMPORTED and event.media_id == disc.pk
    assert event.payload["manifest"] == manifest.pk and event.payload["files"] == 301
    assert manifest.pdi_report  # helper B's PDI check ran in a reader process
    assert ledger.verify_ledger().ok


def test_it_changes_nothing_when_the_same_disc_is_imported_again(tmp_path, cast, make_media):
    spec = discs.ct_disc(tmp_path / "disc", files=20)
    disc = make_media("CD-AGAIN", kind=MediaKind.CD)
    first = disc_import(root=spec.root, media=disc, actor=cast["staff"])
    events = CustodyEvent.objects.count()

    again = disc_import(root=spec.root, media=disc, actor=cast["staff"])

    assert again.unchanged and again.manifest.pk == first.manifest.pk
    assert DiscManifest.objects.count() == 1 and CustodyEvent.objects.count() == events


def test_it_indexes_pydicoms_dicomdir_test_sets_as_pydicom_reads_them(tmp_path, cast, make_media):
    source = Path(get_testdata_file("DICOMDIR", download=False)).parent
    root = tmp_path / "dicomdirtests"
    shutil.copytree(source, root)
    for variant in ("DICOMDIR-bigEnd", "DICOMDIR-implicit", "DICOMDIR-nooffset", "DICOMDIR-reordered",
                    "DICOMDIR-nopatient", "DICOMDIR-empty.dcm"):
        (root / variant).unlink()  # one DICOMDIR per disc, as on a real one
    trusted = {Path(i.path).relative_to(root).as_posix(): i.SOPInstanceUID for i in FileSet(root / "DICOMDIR")}

    result = disc_import(root=root, media=make_media("CD-PYD", kind=MediaKind.CD), actor=cast["staff"])

    entries = {e.path: e for e in result.manifest.entries.all()}
    assert {path: entries[path].sop_instance_uid for path in trusted} == trusted
    assert not [p for p in result.problems if p["path"] in trusted]
    assert entries["README.txt"].problem.startswith("not DICOM")
    assert Study.objects.count() == len({e.study_instance_uid for e in entries.values() if e.study_instance_uid})


def test_it_reads_every_pydicom_test_file_as_pydicom_does(tmp_path):
    """Each test file pydicom reads (without force) is indexed with its SOP Instance UID; each it
    refuses is reported, never a crash or a hang."""
    source = Path(get_testdata_file("CT_small.dcm", download=False)).parent
    root = tmp_path / "files"
    root.mkdir()
    for path in source.iterdir():
        if path.is_file():
            shutil.copy(path, root / path.name)

    disc = index_disc(root, workers=2, file_timeout=20, memory_mb=1024, pdi_check=False)

    entries = {e["path"]: e for e in disc.entries}
    assert set(entries) == {p.name for p in root.iterdir()}
    for path in root.iterdir():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            uid = str(ds.get("SOPInstanceUID", ""))
        except Exception:
            uid = None
        entry = entries[path.name]
        if uid and not entry["problem_code"]:
            assert entry["sop_instance_uid"] == uid, path.name
        elif uid is None:
            assert entry["problem_code"], path.name
    assert entries["image_dfl.dcm"]["problem_code"] == ""  # a small deflated file is fine
    assert entries["CT_small.dcm"]["sha256"] and entries["CT_small.dcm"]["modality"] == "CT"


def test_import_disc_command_prints_a_json_summary(tmp_path, cast, make_media):
    spec = discs.ct_disc(tmp_path / "disc", files=9, series=3)
    make_media("CD-JSON", kind=MediaKind.CD)
    out = tmp_path / "out.txt"
    with out.open("w") as stream:
        call_command("import_disc", str(spec.root), "--media", "CD-JSON", "--user", "staff",
                     "--json", stdout=stream)
    summary = json.loads(out.read_text())
    assert summary["status"] == "imported" and summary["files"] == 10 and summary["series"] == 3
    assert summary["studies"] == [spec.study_instance_uid] and summary["patients"] == ["MRN-CT-1"]
    assert summary["bytes"] == spec.total_bytes + spec.dicomdir.stat().st_size
    assert summary["problems"] == [] and summary["event_seq"] and summary["manifest"]
    assert isinstance(summary["seconds"], float)


def test_import_disc_registers_a_new_disc_on_the_home_shelf_without_media(tmp_path, cast, places, capsys):
    spec = discs.ct_disc(tmp_path / "disc", files=6, series=2, patient_id="MRN-NEW")
    call_command("import_disc", str(spec.root), "--home", "FR-A1", "--user", "staff", "--json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["media_created"] and summary["media"].startswith("CD-MRN-NEW-20240312")
    call_command("import_disc", str(spec.root), "--home", "FR-A1", "--user", "staff", "--json")
    again = json.loads(capsys.readouterr().out)
    assert again["status"] == "unchanged" and again["media"] == summary["media"]


@pytest.mark.parametrize("arguments, message", [
    (["--media", "NOPE"], "No item with code NOPE"),
    ([], "--media CODE, or give --home"),
    (["--media", "JACKET-1"], "film jacket"),
    (["--media", "CD-X", "--user", "ghost"], "No active user"),
])
def test_import_disc_refuses_usage_errors_with_exit_2(tmp_path, cast, make_media, arguments, message):
    make_media("JACKET-1")
    make_media("CD-X", kind=MediaKind.CD)
    spec = discs.ct_disc(tmp_path / "disc", files=3, series=1)
    with pytest.raises(CommandError, match=message) as caught:
        call_command("import_disc", str(spec.root), *arguments)
    assert caught.value.returncode == 2
    assert DiscManifest.objects.count() == 0


def _describe_both_ways(path: Path) -> tuple[object, object]:
    """describe() of one file through the fast header scan and through pydicom alone."""
    body = path.read_bytes()

    def one(fast: bool):
        try:
            return describe(memoryview(body), len(body), True, fast=fast)
        except Exception as exc:  # a refused file: compare the reason
            return type(exc).__name__, getattr(exc, "code", ""), getattr(exc, "params", {})

    return one(True), one(False)


def test_the_fast_header_scan_reads_every_file_exactly_as_pydicom_does(tmp_path):
    """pydicom's own test files (odd encodings, character sets, sequences, DICOMDIRs), DICOMDIRs
    written by dcmmkdir and by pydicom (also looping and escaping ones) and the hostile files:
    the fields, DICOMDIR records and refusals are the same either way, and the usual files do
    take the fast way."""
    discs.ct_disc(tmp_path / "dcmtk", files=12, series=3, dicomdir_tool="dcmmkdir")
    discs.ct_disc(tmp_path / "plain", files=12, series=2)
    discs.dicomdir_loop(tmp_path / "loop")
    discs.ct_disc(tmp_path / "away", files=1, series=1, with_dicomdir=False)
    discs.dicomdir_escape(tmp_path / "escape", outside=tmp_path / "away" / "DICOM" / "S0001" / "I0001")
    bad = tmp_path / "bad"
    for make in (discs.truncated_file, discs.truncated_header_file, discs.huge_length_file,
                 discs.deep_sequence_file, discs.not_dicom_file):
        make(bad)
    discs.deep_sequence_file(bad, "DICOM/BAD/DEEP4", depth=4)  # nested, but a real file may be
    discs.slow_file(bad, elements=20_000)
    discs.deflate_bomb_file(bad, inflated_mb=80)
    for n, (keyword, value) in enumerate([
        ("PatientName", "  DOE^JOHN "), ("PatientID", " ID-1 "),  # padded on both sides
        ("StudyDescription", "A \\B "),  # two values, each padded
        ("PatientName", "Yamada^Tarou=山田^太郎"),  # an ideographic group
        ("SeriesDescription", "Tête"),  # not ASCII
    ]):
        ds = discs.ct_dataset(
            patient_id="ID", study_uid=f"1.2.3.{n}", series_uid=f"1.2.3.{n}.1",
            sop_uid=f"1.2.3.{n}.1.1", instance=1, series_number=1, rows=8, cols=8,
            pixel_data=bytes(128),
        )
        ds.SpecificCharacterSet = "ISO_IR 192"
        setattr(ds, keyword, value)
        ds.save_as(tmp_path / f"text{n}.dcm", enforce_file_format=True)
    source = Path(get_testdata_file("CT_small.dcm", download=False)).parent
    files = [p for p in sorted(source.rglob("*")) + sorted(tmp_path.rglob("*")) if p.is_file()]

    fast_ones = 0
    for path in files:
        fast, slow = _describe_both_ways(path)
        assert fast == slow, path
        body = path.read_bytes()
        if len(body) > 132 and body[128:132] == b"DICM":
            meta, at = _file_meta(body)
            try:
                fast_ones += scan_header(memoryview(body), len(body), True, meta, at) is not None
            except Exception:  # refused by the fast scan itself (a truncated pixel element)
                fast_ones += 1
    assert fast_ones > 150  # most of pydicom's files, every CT file and DICOMDIR written here


def test_it_records_the_patient_name_as_written(tmp_path, cast, make_media):
    spec = discs.ct_disc(tmp_path / "disc", files=3, series=1, patient_id="MRN-NAME")
    disc_import(root=spec.root, media=make_media("CD-NAME", kind=MediaKind.CD), actor=cast["staff"])
    assert Study.objects.get(study_instance_uid=spec.study_instance_uid).patient.name == "TEST^DISC"


def test_the_plain_file_meta_read_gives_what_pydicom_gives(tmp_path):
    """The PDI check reads each file's meta group with plain_file_meta when it is well formed;
    whatever that accepts, pydicom reads the same (and the rest is left to pydicom)."""
    from io import BytesIO

    from pydicom.filereader import _read_file_meta_info, read_preamble

    discs.ct_disc(tmp_path / "dcmtk", files=6, series=2, dicomdir_tool="dcmmkdir")
    for make in (discs.huge_length_file, discs.deflate_bomb_file, discs.not_dicom_file):
        make(tmp_path / "bad")
    source = Path(get_testdata_file("CT_small.dcm", download=False)).parent
    plain_ones = 0
    for path in [p for p in sorted(source.rglob("*")) + sorted(tmp_path.rglob("*")) if p.is_file()]:
        head = path.read_bytes()[:8192]
        if len(head) < 132 or head[128:132] != b"DICM":
            continue
        plain = plain_file_meta(head)
        if plain is None:
            continue
        plain_ones += 1
        fp = BytesIO(head)
        read_preamble(fp, False)
        meta = _read_file_meta_info(fp)
        expected = tuple(
            str(meta.get(keyword)).strip("\x00 ") or None if meta.get(keyword) else None
            for keyword in ("TransferSyntaxUID", "MediaStorageSOPClassUID")
        )
        assert plain == expected, path
    assert plain_ones > 150
