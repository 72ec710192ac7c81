"""Verify on return: the disc is re-hashed and compared with its manifest, file by file."""
import json

import pytest
from django.core.management import CommandError, call_command

from archive.models import DiscVerification
from archive.services import disc_import
from tests.archive import discs
from tracker import ledger
from tracker.choices import DiscVerdict, EventKind, MediaKind
from tracker.models import CustodyEvent

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def lent_disc(tmp_path, cast, make_media):
    """A 30-file CT disc imported into item CD-LENT (as before it went out on loan)."""
    spec = discs.ct_disc(tmp_path / "disc", files=30, series=3)
    media = make_media("CD-LENT", kind=MediaKind.CD)
    disc_import(root=spec.root, media=media, actor=cast["staff"])
    return spec


def verify(spec, capsys) -> tuple[int, dict]:
    try:
        call_command("verify_disc", str(spec.root), "--media", "CD-LENT", "--user", "staff", "--json")
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, json.loads(capsys.readouterr().out)


def test_an_unchanged_disc_is_identical_and_exits_0(lent_disc, capsys):
    code, report = verify(lent_disc, capsys)
    assert code == 0
    assert report["verdict"] == DiscVerdict.IDENTICAL
    assert (report["missing"], report["changed"], report["extra"]) == ([], [], [])
    assert report["files_checked"] == 31
    row = DiscVerification.objects.get(pk=report["verification"])
    event = CustodyEvent.objects.get(seq=row.event_seq)
    assert event.kind == EventKind.DISC_VERIFIED and event.payload["verdict"] == "identical"
    assert ledger.verify_ledger().ok


def test_one_changed_byte_is_reported_by_path(lent_disc, capsys):
    path = "DICOM/S0002/I0005"
    body = bytearray((lent_disc.root / path).read_bytes())
    body[-100] ^= 0x01  # one pixel bit: the header still parses, the hash does not match
    (lent_disc.root / path).write_bytes(bytes(body))
    code, report = verify(lent_disc, capsys)
    assert code == 1 and report["verdict"] == DiscVerdict.ALTERED
    assert (report["missing"], report["changed"], report["extra"]) == ([], [path], [])


def test_a_removed_file_is_reported_missing(lent_disc, capsys):
    (lent_disc.root / "DICOM/S0003/I0010").unlink()
    code, report = verify(lent_disc, capsys)
    assert code == 1 and report["missing"] == ["DICOM/S0003/I0010"]
    assert report["changed"] == [] and report["extra"] == []


def test_an_added_file_is_reported_extra(lent_disc, capsys):
    (lent_disc.root / "DICOM" / "NOTES.TXT").write_text("added on the ward")
    code, report = verify(lent_disc, capsys)
    assert code == 1 and report["extra"] == ["DICOM/NOTES.TXT"]
    assert report["missing"] == [] and report["changed"] == []


def test_every_alteration_at_once_reaches_the_ledger(lent_disc, capsys):
    (lent_disc.root / "DICOM/S0001/I0001").write_bytes(b"overwritten")
    (lent_disc.root / "DICOM/S0001/I0002").unlink()
    (lent_disc.root / "EXTRA").write_bytes(b"x")
    code, report = verify(lent_disc, capsys)
    assert code == 1
    event = CustodyEvent.objects.get(seq=report["event_seq"])
    assert event.payload["verdict"] == "altered"
    assert (event.payload["changed"], event.payload["missing"], event.payload["extra"]) == (1, 1, 1)
    assert event.payload["changed_paths"] == ["DICOM/S0001/I0001"]
    assert event.payload["missing_paths"] == ["DICOM/S0001/I0002"]
    assert event.payload["extra_paths"] == ["EXTRA"]
    assert ledger.verify_ledger().ok


def test_the_human_report_names_each_path(lent_disc, capsys):
    (lent_disc.root / "DICOM/S0001/I0003").unlink()
    with pytest.raises(SystemExit) as exit:
        call_command("verify_disc", str(lent_disc.root), "--media", "CD-LENT", "--user", "staff")
    assert exit.value.code == 1
    out = capsys.readouterr().out
    assert "ALTERED" in out and "missing: DICOM/S0001/I0003" in out


def test_usage_errors_exit_2(lent_disc, tmp_path, make_media):
    make_media("CD-NEVER", kind=MediaKind.CD)
    for arguments, message in (
        ([str(lent_disc.root), "--media", "NOPE"], "No item with code NOPE"),
        ([str(lent_disc.root), "--media", "CD-NEVER"], "no disc manifest"),
        ([str(tmp_path / "absent"), "--media", "CD-LENT"], "is not a folder"),
    ):
        with pytest.raises(CommandError, match=message) as caught:
            call_command("verify_disc", *arguments, "--user", "staff")
        assert caught.value.returncode == 2
    assert not DiscVerification.objects.exists()


def test_a_file_the_import_could_not_record_is_not_called_extra_on_return(tmp_path, cast, make_media, capsys):
    # The import leaves out (and reports) a path longer than the manifest holds; the same
    # untouched disc must still verify identical, not "altered: 1 extra file".
    from archive.indexer import PATH_LIMIT

    spec = discs.ct_disc(tmp_path / "disc", files=4, series=1)
    deep = spec.root / "/".join(["D" * 100] * (PATH_LIMIT // 100 + 1))
    deep.mkdir(parents=True)
    (deep / "NOTE.TXT").write_text("kept by the burning software")
    media = make_media("CD-LENT", kind=MediaKind.CD)
    result = disc_import(root=spec.root, media=media, actor=cast["staff"])
    assert any(p["path"].startswith("D" * 100) for p in result.problems)

    code, report = verify(spec, capsys)

    assert (report["missing"], report["changed"], report["extra"]) == ([], [], [])
    assert code == 0 and report["verdict"] == DiscVerdict.IDENTICAL
