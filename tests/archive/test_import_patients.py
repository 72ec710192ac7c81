"""A disc is one patient's: an import never puts one patient's images on another's item."""
import pytest
from django.core.management import CommandError, call_command

from archive.models import DiscManifest, Patient, Study
from archive.services import disc_import
from tests.archive import discs
from tracker.choices import EventKind, MediaKind
from tracker.exceptions import InvalidRequest
from tracker.models import CustodyEvent

pytestmark = pytest.mark.timeout(120)


def imports() -> int:
    return CustodyEvent.objects.filter(kind=EventKind.DISC_IMPORTED).count()


def test_a_disc_of_another_patient_is_refused_and_nothing_is_recorded(tmp_path, cast, make_media):
    mine = Patient.objects.create(patient_id="MRN-A")
    disc = make_media("CD-A", kind=MediaKind.CD, patient=mine)
    spec = discs.ct_disc(tmp_path / "disc", files=4, series=1, patient_id="MRN-B")

    with pytest.raises(InvalidRequest, match="CD-A belongs to patient MRN-A.*MRN-B.*right disc"):
        disc_import(root=spec.root, media=disc, actor=cast["staff"])

    assert (DiscManifest.objects.count(), imports(), disc.studies.count()) == (0, 0, 0)
    assert not Study.objects.filter(study_instance_uid=spec.study_instance_uid).exists()


def test_the_command_says_so_and_exits_2(tmp_path, cast, make_media):
    make_media("CD-A", kind=MediaKind.CD, patient=Patient.objects.create(patient_id="MRN-A"))
    spec = discs.ct_disc(tmp_path / "disc", files=2, series=1, patient_id="MRN-B")

    with pytest.raises(CommandError, match="belongs to patient MRN-A") as caught:
        call_command("import_disc", str(spec.root), "--media", "CD-A", "--user", "staff")

    assert caught.value.returncode == 2 and DiscManifest.objects.count() == 0


def test_a_disc_of_several_patients_goes_only_on_an_item_without_a_patient(tmp_path, cast, places, make_media):
    discs.ct_disc(tmp_path / "disc" / "ONE", files=2, series=1, patient_id="MRN-1")
    discs.ct_disc(tmp_path / "disc" / "TWO", files=2, series=1, patient_id="MRN-2")
    jacket_of_one = make_media("CD-1", kind=MediaKind.CD, patient=Patient.objects.create(patient_id="MRN-1"))

    with pytest.raises(InvalidRequest, match="CD-1 belongs to patient MRN-1.*MRN-1, MRN-2"):
        disc_import(root=tmp_path / "disc", media=jacket_of_one, actor=cast["staff"])
    assert (DiscManifest.objects.count(), imports()) == (0, 0)

    result = disc_import(
        root=tmp_path / "disc", media=None, actor=cast["staff"], register_home=places["shelf"]
    )
    result.media.refresh_from_db()
    assert result.media.patient is None  # never one patient's name on a mixed disc
    assert sorted(result.media.studies.values_list("patient__patient_id", flat=True)) == ["MRN-1", "MRN-2"]


def test_a_study_recorded_for_another_patient_is_reported_and_not_linked(tmp_path, cast, make_media):
    spec = discs.ct_disc(tmp_path / "disc", files=3, series=1, patient_id="MRN-CT-1")
    other = Patient.objects.create(patient_id="MRN-ELSEWHERE")
    Study.objects.create(study_instance_uid=spec.study_instance_uid, patient=other, description="kept")
    disc = make_media("CD-X", kind=MediaKind.CD)

    result = disc_import(root=spec.root, media=disc, actor=cast["staff"])

    study = Study.objects.get(study_instance_uid=spec.study_instance_uid)
    assert (study.patient, study.description) == (other, "kept")
    assert disc.studies.count() == 0 and result.studies == []
    assert any("not linked" in p["reason"] for p in result.manifest.problems)
