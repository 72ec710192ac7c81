"""A returned disc with a file that takes too long to read (a scratched disc, a hung stick)
still gets its verdict: that file is counted unreadable once its deadline passes, as in the
import, and every other file is checked as usual."""
import os

import pytest

from archive import indexer
from archive.models import DiscVerification
from archive.services import disc_hashes, disc_import, disc_verify
from tests.archive import discs
from tracker.choices import DiscVerdict, MediaKind

pytestmark = pytest.mark.timeout(120)
BIG = 3 * 1024**3  # a sparse file: seconds of hashing, no disc space


@pytest.fixture
def returned_disc(tmp_path, cast, make_media, monkeypatch, settings):
    """A disc imported before it went out, back with one file turned into a 3 GB one. The
    deadline here is 0.2 s whatever the size (the default adds a second per MB, which a test
    could not outrun without a very slow file)."""
    spec = discs.ct_disc(tmp_path / "disc", files=12, series=2)
    media = make_media("CD-BACK", kind=MediaKind.CD)
    disc_import(root=spec.root, media=media, actor=cast["staff"])
    slow = spec.files[0].path
    with open(spec.root / slow, "r+b") as f:
        f.truncate(BIG)
    settings.DISC_FILE_TIMEOUT_SECONDS = 0.2
    monkeypatch.setattr(indexer, "SLOW_READ_BYTES_PER_SECOND", 1024**4)
    return spec, media, slow


def test_a_file_past_its_deadline_is_unreadable_and_the_rest_is_hashed(returned_disc):
    spec, _media, slow = returned_disc

    hashes = disc_hashes(spec.root, workers=2)

    assert hashes.unreadable == [slow]
    assert hashes.found[slow] == (BIG, "")
    others = [f for f in spec.files if f.path != slow]
    assert {f.path: hashes.found[f.path][1] for f in others} == {f.path: f.sha256 for f in others}


def test_the_verdict_counts_it_changed_and_is_recorded(returned_disc, cast):
    spec, media, slow = returned_disc

    verification = disc_verify(root=spec.root, media=media, actor=cast["staff"])

    assert verification.verdict == DiscVerdict.ALTERED
    assert verification.changed == [slow] and not verification.missing and not verification.extra
    assert DiscVerification.objects.get().event_seq == verification.event_seq


def test_one_slow_file_per_worker_does_not_stall_the_others(tmp_path, monkeypatch, settings):
    """Two slow files and one worker: each is given up on in turn and a fresh thread reads on."""
    spec = discs.ct_disc(tmp_path / "disc", files=6, series=1, with_dicomdir=False)
    for disc_file in spec.files[:2]:
        os.truncate(spec.root / disc_file.path, BIG)
    monkeypatch.setattr(indexer, "SLOW_READ_BYTES_PER_SECOND", 1024**4)

    hashes = disc_hashes(spec.root, workers=1, file_timeout=0.2)

    assert sorted(hashes.unreadable) == sorted(f.path for f in spec.files[:2])
    assert all(hashes.found[f.path][1] == f.sha256 for f in spec.files[2:])
