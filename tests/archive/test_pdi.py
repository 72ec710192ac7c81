"""IHE PDI conformance report (archive.pdi) and `manage.py pdi_check`, on real discs and dcmtk."""
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from django.conf import settings

from archive.pdi import CHECK_CODES, pdi_check
from tests.archive.discs import (
    ct_disc,
    deep_sequence_file,
    deflate_bomb_file,
    dicomdir_escape,
    dicomdir_loop,
    fifo_file,
    huge_length_file,
    not_dicom_file,
    symlink_dir_out,
    symlink_out,
    truncated_file,
    truncated_header_file,
)

DICOMDIR_TESTS = Path(pydicom.data.__file__).parent / "test_files" / "dicomdirtests"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"


def failing(report: dict) -> dict[str, list[str]]:
    """{code: paths} of the checks that decide conformance and did not pass."""
    return {
        c["code"]: c["paths"] for c in report["checks"]
        if c["severity"] != "info" and c["ok"] is not True
    }


def check(report: dict, code: str) -> dict:
    return next(c for c in report["checks"] if c["code"] == code)


def dcmmkdir(root: Path, profile: str = "--general-purpose") -> None:
    """Run dcmtk's dcmmkdir over root/DICOM; it exits 0 while skipping files, so read stderr."""
    done = subprocess.run(
        ["dcmmkdir", "--recurse", "--input-directory", str(root), "--output-file",
         str(root / "DICOMDIR"), profile, "DICOM"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def good_disc(root: Path, files: int = 12) -> Path:
    spec = ct_disc(root, files=files, series=3, dicomdir_tool="dcmmkdir")
    assert len(spec.files) == files
    return root


class OpenedFiles:
    """Every file-system path Python opens or lists while recording (a real audit hook)."""

    recording: list | None = None
    installed = False

    @classmethod
    def hook(cls, event: str, args: tuple) -> None:
        if cls.recording is not None and event in ("open", "os.scandir", "os.listdir"):
            cls.recording.append(args[0])

    def __enter__(self):
        if not OpenedFiles.installed:
            # Audit hooks cannot be removed; this one idles when not recording.
            sys.addaudithook(OpenedFiles.hook)
            OpenedFiles.installed = True
        OpenedFiles.recording = []
        return OpenedFiles.recording

    def __exit__(self, *exc):
        OpenedFiles.recording = None


def test_it_passes_a_disc_made_by_dcmmkdir(tmp_path):
    root = good_disc(tmp_path / "disc", files=24)
    report = pdi_check(root)
    assert failing(report) == {}
    assert report["conformant"] is True
    assert report["best_profile"] == "STD-GEN-CD"
    assert all(p["ok"] for p in report["profiles"].values())
    assert report["fileset_id"] == "DCMTK_MEDIA_DEMO"
    assert report["counts"]["dicom_files"] == 24
    assert report["counts"]["referenced_files"] == 24  # dcmmkdir took every file
    assert report["counts"]["unreferenced_files"] == 0
    assert report["transfer_syntaxes"] == {
        "1.2.840.10008.1.2.1": {"name": "Explicit VR Little Endian", "files": 24}
    }
    # A stable shape: every check once, in the documented order, as plain JSON.
    assert [c["code"] for c in report["checks"]] == [code for code, _ in CHECK_CODES]
    assert json.loads(json.dumps(report)) == report


def test_it_reports_readme_index_and_web_folder_for_information_only(tmp_path):
    root = good_disc(tmp_path / "disc", files=3)
    before = pdi_check(root)
    assert [check(before, c)["ok"] for c in ("readme_txt", "index_htm", "ihe_pdi_folder")] == [
        False, False, False]
    not_dicom_file(root, "README.TXT")
    not_dicom_file(root, "INDEX.HTM", b"<html><body>Images</body></html>")
    not_dicom_file(root, "IHE_PDI/PAGE1.HTM", b"<html></html>")
    after = pdi_check(root)
    assert [check(after, c)["ok"] for c in ("readme_txt", "index_htm", "ihe_pdi_folder")] == [
        True, True, True]
    assert before["conformant"] is after["conformant"] is True
    assert after["counts"]["other_files"] == 3


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("DICOM/S0001/im0099", "file_id_characters"),
        ("DICOM/S0001/I-0099", "file_id_characters"),
        ("DICOM/S0001/IMAGE0099", "file_id_length"),
        ("DICOM/S0001/I0099.DCM", "file_id_extension"),
        ("DICOM/A/B/C/D/E/F/G/I0099", "file_id_depth"),
    ],
)
def test_it_names_file_ids_that_break_the_ps3_12_rules(tmp_path, name, code):
    root = good_disc(tmp_path / "disc", files=3)
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "DICOM/S0001/I0001", root / name)
    report = pdi_check(root)
    assert failing(report) == {code: [name], "dicom_files_referenced": [name]}
    assert report["conformant"] is False


def test_a_lowercase_mount_keeps_references_but_names_the_case(tmp_path):
    root = good_disc(tmp_path / "disc", files=6)
    # What Linux shows for an ISO 9660 disc without Rock Ridge: every name in lowercase.
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        path.rename(path.with_name(path.name.lower()))
    report = pdi_check(root)
    found = failing(report)
    assert set(found) == {
        "dicomdir_present", "dicomdir_references_case", "file_id_characters"}
    assert found["dicomdir_present"] == ["dicomdir"]
    assert "DICOM/S0001/I0001" in found["dicomdir_references_case"]
    assert "dicom/s0001/i0001" in found["file_id_characters"]
    assert check(report, "dicomdir_references_exist")["ok"] is True
    assert check(report, "dicom_files_referenced")["ok"] is True


def test_a_jpeg_file_breaks_the_cd_profile_but_not_the_dvd_one(tmp_path):
    root = tmp_path / "disc"
    ct_disc(root, files=6, series=2, with_dicomdir=False)
    target = root / "DICOM/S0001/I0002"
    subprocess.run(["dcmcjpeg", "+e1", str(target), str(tmp_path / "jpeg")], check=True,
                   capture_output=True, timeout=60)
    shutil.move(tmp_path / "jpeg", target)
    dcmmkdir(root, "--general-dvd-jpeg")
    report = pdi_check(root)
    assert failing(report) == {"transfer_syntax_cd": ["DICOM/S0001/I0002"]}
    assert report["conformant"] is True
    assert report["best_profile"] == "STD-GEN-DVD-JPEG"
    cd = report["profiles"]["STD-GEN-CD"]
    assert (cd["ok"], cd["violations"], cd["paths"]) == (False, 1, ["DICOM/S0001/I0002"])
    assert report["profiles"]["STD-GEN-USB-JPEG"]["ok"] is True
    assert report["profiles"]["STD-GEN-DVD-J2K"]["ok"] is False
    assert report["transfer_syntaxes"][JPEG_LOSSLESS_SV1]["files"] == 1


def test_a_disc_mixing_jpeg_and_jpeg_2000_meets_no_profile(tmp_path):
    root = tmp_path / "disc"
    ct_disc(root, files=2, series=1, with_dicomdir=False)
    subprocess.run(["dcmcjpeg", str(root / "DICOM/S0001/I0001"), str(root / "DICOM/S0001/JPEG")],
                   check=True, capture_output=True, timeout=60)
    shutil.copy(pydicom.data.get_testdata_file("JPEG2000.dcm", download=False),
                root / "DICOM/S0001/J2K")
    report = pdi_check(root)
    assert check(report, "transfer_syntax_any_profile")["paths"] == ["DICOM/S0001/J2K"]
    assert not any(p["ok"] for p in report["profiles"].values())


def test_a_disc_without_dicomdir_deviates_and_says_what_was_not_checked(tmp_path):
    root = tmp_path / "disc"
    ct_disc(root, files=6, series=2, with_dicomdir=False)
    report = pdi_check(root)
    assert check(report, "dicomdir_present")["ok"] is False
    assert "No DICOMDIR" in check(report, "dicomdir_present")["message"]
    for code in ("dicomdir_readable", "dicomdir_offsets", "dicom_files_referenced"):
        assert check(report, code)["ok"] is None
    assert report["conformant"] is False
    assert report["best_profile"] is None
    assert report["counts"]["unreferenced_files"] == 6


def test_it_names_a_file_listed_in_dicomdir_but_missing(tmp_path):
    root = good_disc(tmp_path / "disc", files=6)
    (root / "DICOM/S0002/I0001").unlink()
    report = pdi_check(root)
    assert failing(report) == {"dicomdir_references_exist": ["DICOM/S0002/I0001"]}
    assert report["counts"]["missing_references"] == 1


def test_it_names_a_dicom_file_dicomdir_does_not_list(tmp_path):
    root = good_disc(tmp_path / "disc", files=6)
    shutil.copy(root / "DICOM/S0001/I0001", root / "DICOM/S0001/I9999")
    not_dicom_file(root, "DICOM/S0001/NOTES")  # not DICOM: needs no DICOMDIR record
    report = pdi_check(root)
    assert failing(report) == {"dicom_files_referenced": ["DICOM/S0001/I9999"]}
    assert report["counts"]["unreferenced_files"] == 1


@pytest.mark.timeout(20)
def test_dicomdir_paths_leaving_the_disc_are_named_and_never_opened(tmp_path):
    outside = tmp_path / "SECRET"
    ct_disc(tmp_path / "elsewhere", files=1, series=1, with_dicomdir=False)
    shutil.copy(tmp_path / "elsewhere/DICOM/S0001/I0001", outside)
    root = tmp_path / "disc"
    spec = dicomdir_escape(root, outside=outside)
    with OpenedFiles() as opened:
        report = pdi_check(root)
    found = failing(report)
    assert list(found) == ["dicomdir_paths_safe"]
    assert check(report, "dicomdir_paths_safe")["count"] == len(spec.extra["escapes"]) == 4
    assert found["dicomdir_paths_safe"][0] == "../SECRET"
    assert f"{outside.resolve()}" in found["dicomdir_paths_safe"]
    assert check(report, "dicomdir_references_exist")["ok"] is True  # unsafe ones not looked up
    assert report["counts"]["dicom_files"] == 6
    assert "DICOMDIR" in opened  # the hook saw the reads
    assert not [p for p in opened if "SECRET" in str(p) or "elsewhere" in str(p)]


@pytest.mark.timeout(10)
def test_a_dicomdir_whose_offsets_loop_is_reported_quickly(tmp_path):
    root = tmp_path / "disc"
    dicomdir_loop(root)
    started = time.monotonic()
    report = pdi_check(root)
    assert time.monotonic() - started < 2
    offsets = check(report, "dicomdir_offsets")
    assert offsets["ok"] is False and offsets["count"] >= 2
    assert any("loop" in path for path in offsets["paths"])
    assert report["conformant"] is False


def _patch_ul(data: bytearray, item_offset: int, element: int, value: int) -> None:
    """Overwrite a (0004,xxxx) UL value inside the DICOMDIR record that starts at item_offset."""
    marker = struct.pack("<HH2sH", 0x0004, element, b"UL", 4)
    at = data.index(marker, item_offset)
    data[at + 8: at + 12] = struct.pack("<I", value)


@pytest.mark.timeout(10)
def test_a_dcmmkdir_dicomdir_whose_image_points_back_at_the_patient_is_reported(tmp_path):
    root = good_disc(tmp_path / "disc", files=3)
    records = list(pydicom.dcmread(root / "DICOMDIR").DirectoryRecordSequence)
    patient, last_image = records[0], records[-1]
    assert (patient.DirectoryRecordType, last_image.DirectoryRecordType) == ("PATIENT", "IMAGE")
    data = bytearray((root / "DICOMDIR").read_bytes())
    _patch_ul(data, last_image.seq_item_tell, 0x1420, patient.seq_item_tell)
    (root / "DICOMDIR").write_bytes(bytes(data))
    report = pdi_check(root)
    assert list(failing(report)) == ["dicomdir_offsets"]
    assert check(report, "dicomdir_offsets")["paths"] == [
        f"PATIENT record at offset {patient.seq_item_tell} reached a second time (a loop)"]


def test_symlinks_leaving_the_disc_are_named_and_not_followed(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    ct_disc(elsewhere, files=2, series=1, with_dicomdir=False)
    root = good_disc(tmp_path / "disc", files=3)
    symlink_out(root, "DICOM/S0001/LINK", target=elsewhere / "DICOM/S0001/I0001")
    symlink_dir_out(root, "DICOM/OUTDIR", target=elsewhere / "DICOM")
    with OpenedFiles() as opened:
        report = pdi_check(root)
    assert failing(report) == {"symlinks": ["DICOM/OUTDIR", "DICOM/S0001/LINK"]}
    assert "2 pointing off the disc" in check(report, "symlinks")["message"]
    assert report["counts"]["dicom_files"] == 3
    assert "I0001" in opened  # the hook saw the reads
    assert not [p for p in opened if "elsewhere" in str(p)]


@pytest.mark.timeout(60)
def test_hostile_files_on_the_disc_give_a_report_not_a_crash(tmp_path):
    root = good_disc(tmp_path / "disc", files=3)
    hostile = [
        truncated_file(root), truncated_header_file(root), huge_length_file(root),
        deep_sequence_file(root), deflate_bomb_file(root, inflated_mb=16),
    ]
    pipe = fifo_file(root)
    started = time.monotonic()
    report = pdi_check(root)
    assert time.monotonic() - started < 5
    assert check(report, "disc_walk")["paths"] == [pipe]
    assert sorted(check(report, "dicom_files_referenced")["paths"]) == sorted(hostile)
    # Their file meta is intact: only the bomb's deflated syntax is outside every profile.
    assert check(report, "transfer_syntax_any_profile")["paths"] == ["DICOM/BAD/BOMB"]
    json.dumps(report)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("damage", ["truncated", "garbage", "huge_length", "deep", "empty"])
def test_a_damaged_dicomdir_is_reported_as_unreadable_or_deviating(tmp_path, damage):
    root = good_disc(tmp_path / "disc", files=3)
    path = root / "DICOMDIR"
    body = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(body[: len(body) // 2])
    elif damage == "garbage":
        path.write_bytes(body[:132] + os.urandom(4096))
    elif damage == "huge_length":
        huge_length_file(root, "HUGE")
        path.unlink()
        (root / "HUGE").rename(path)
    elif damage == "deep":
        deep_sequence_file(root, "DEEP", depth=3000)
        path.unlink()
        (root / "DEEP").rename(path)
    else:
        path.write_bytes(b"")
    report = pdi_check(root)
    assert report["conformant"] is False
    assert check(report, "dicomdir_present")["ok"] is True
    assert {"dicomdir_readable", "dicomdir_meta", "dicomdir_offsets",
            "dicom_files_referenced"} & set(failing(report))
    json.dumps(report)


@pytest.mark.parametrize(
    ("variant", "deviations"),
    [
        ("DICOMDIR", set()),
        ("DICOMDIR-nooffset", set()),
        ("DICOMDIR-reordered", set()),
        ("DICOMDIR-bigEnd", {"dicomdir_meta"}),
        ("DICOMDIR-implicit", {"dicomdir_meta"}),
        ("DICOMDIR-nopatient", {"dicomdir_offsets"}),
        ("DICOMDIR-empty.dcm", {"dicom_files_referenced"}),
    ],
)
def test_pydicoms_dicomdir_sets(tmp_path, variant, deviations):
    root = tmp_path / "disc"
    for patient in ("77654033", "98892001", "98892003"):
        shutil.copytree(DICOMDIR_TESTS / patient, root / patient)
    shutil.copy(DICOMDIR_TESTS / variant, root / "DICOMDIR")
    report = pdi_check(root)
    assert set(failing(report)) == deviations
    assert report["conformant"] is (not deviations)
    assert report["counts"]["dicom_files"] == 31


def test_pydicoms_tiny_alpha_disc_is_conformant(tmp_path):
    shutil.copytree(DICOMDIR_TESTS / "TINY_ALPHA", tmp_path / "TINY")
    report = pdi_check(tmp_path / "TINY")
    assert failing(report) == {}
    assert (report["fileset_id"], report["counts"]["referenced_files"]) == ("TINY ALPHA", 50)


def test_pydicoms_whole_test_folder_names_its_deviations(tmp_path):
    shutil.copytree(DICOMDIR_TESTS, tmp_path / "all")
    report = pdi_check(tmp_path / "all")
    found = failing(report)
    variants = ["DICOMDIR-bigEnd", "DICOMDIR-empty.dcm", "DICOMDIR-implicit",
                "DICOMDIR-nooffset", "DICOMDIR-nopatient", "DICOMDIR-reordered"]
    assert set(found) == {"dicom_files_referenced", "file_id_length", "file_id_characters",
                          "file_id_extension"}
    assert found["file_id_characters"] == variants
    assert found["file_id_extension"] == ["DICOMDIR-empty.dcm"]
    # The variants and TINY_ALPHA's 50 images with its own DICOMDIR are not in the root one.
    assert check(report, "dicom_files_referenced")["count"] == 6 + 51
    assert "TINY_ALPHA/DICOMDIR" in found["dicom_files_referenced"]
    assert check(report, "readme_txt")["paths"] == ["README.txt"]
    assert report["conformant"] is False


def test_a_path_that_is_not_a_folder_gives_a_report(tmp_path):
    (tmp_path / "file").write_bytes(b"x")
    for path in (tmp_path / "file", tmp_path / "missing"):
        report = pdi_check(path)
        assert report["conformant"] is False
        assert check(report, "disc_walk")["ok"] is False


def manage(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "pdi_check", *args], cwd=settings.BASE_DIR,
        capture_output=True, text=True, timeout=120,
    )


def test_the_command_exits_0_for_a_conformant_disc_1_for_a_deviating_one_2_for_no_folder(
    tmp_path,
):
    root = good_disc(tmp_path / "disc", files=3)
    done = manage(str(root))
    assert done.returncode == 0, done.stderr
    assert "ok   dicomdir_present" in done.stdout
    assert "Conformant: the disc meets STD-GEN-CD." in done.stdout

    (root / "DICOM/S0001/I0001").unlink()
    done = manage(str(root))
    assert done.returncode == 1
    assert "FAIL dicomdir_references_exist" in done.stdout
    assert "DICOM/S0001/I0001" in done.stdout

    (tmp_path / "file").write_bytes(b"x")
    for path in (tmp_path / "file", tmp_path / "missing"):
        done = manage(str(path))
        assert done.returncode == 2
        assert "is not a folder" in done.stderr
    assert "Exit 0 when" in manage("--help").stdout


def test_the_command_prints_the_report_as_json(tmp_path):
    root = good_disc(tmp_path / "disc", files=3)
    (root / "DICOM/S0001/I0001").rename(root / "DICOM/S0001/i0001.dcm")
    done = manage(str(root), "--json")
    assert done.returncode == 1
    printed = json.loads(done.stdout)
    assert printed == pdi_check(root)
    assert check(printed, "file_id_extension")["paths"] == ["DICOM/S0001/i0001.dcm"]
    assert check(printed, "dicomdir_references_exist")["paths"] == ["DICOM/S0001/I0001"]


@pytest.mark.timeout(60)
def test_a_deflated_dicomdir_bomb_is_reported_without_inflating_it(tmp_path):
    # pdi_check runs in the caller's process (manage.py pdi_check): a DICOMDIR of under a
    # megabyte that inflates to 256 MiB must be refused, not inflated into memory.
    import tracemalloc

    root = good_disc(tmp_path / "disc", files=3)
    (root / "DICOMDIR").unlink()
    deflate_bomb_file(root, "BOMB", inflated_mb=256)
    (root / "BOMB").rename(root / "DICOMDIR")
    assert (root / "DICOMDIR").stat().st_size < 1024 * 1024
    tracemalloc.start()
    try:
        report = pdi_check(root)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024, f"inflated {peak / 2**20:.0f} MiB"
    readable = check(report, "dicomdir_readable")
    assert readable["ok"] is False
    assert "inflate" in readable["message"]
    assert report["conformant"] is False
    json.dumps(report)
