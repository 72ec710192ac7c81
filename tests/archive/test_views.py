"""The archive's pages: a patient, a study, a disc manifest, a disc check, what the media page
adds, linking an item to studies (from a real Orthanc, or by UID) and the retention review."""
import re
from datetime import date
from pathlib import Path

import pytest
from django.test import Client

from archive import views
from archive.models import DiscManifest, DiscVerification, Patient
from tests.archive.test_api import CT_UID, FREE_UID, MR_UID, build_archive
from tests.conftest import free_port
from tests.interop.orthanc import STUDIES, orthanc  # noqa: F401  (orthanc is a fixture)
from tracker.choices import DiscVerdict, MediaKind
from tracker.models import CustodyEvent

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(cast, make_media):
    return build_archive(cast, make_media)


def html(response) -> str:
    return response.content.decode()


def pages(scene) -> list[str]:
    return [
        "/patients/", "/patients/P-100/", f"/studies/{CT_UID}/", f"/manifests/{scene['manifest'].pk}/",
        f"/verifications/{scene['check'].pk}/",
    ]


# --- who may see which page ----------------------------------------------------------------------


def test_it_sends_anonymous_visitors_to_the_login_page(scene):
    for path in pages(scene) + ["/media/FJ-1/pacs/", "/retention/"]:
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path


@pytest.mark.parametrize("role", ["doctor", "staff", "auditor", "admin"])
def test_it_shows_every_role_patients_studies_and_disc_contents(page_for, scene, role):
    for path in pages(scene):
        assert page_for(role).get(path).status_code == 200, path


def test_it_refuses_an_account_without_a_role(page_for, scene):
    for path in pages(scene) + ["/media/FJ-1/pacs/", "/retention/"]:
        assert page_for("nobody").get(path).status_code == 403, path


@pytest.mark.parametrize("role, expected", [("doctor", 403), ("auditor", 403), ("staff", 200), ("admin", 200)])
def test_it_keeps_study_linking_to_file_room_staff(page_for, scene, settings, role, expected):
    settings.PACS = {}

    assert page_for(role).get("/media/FJ-1/pacs/").status_code == expected


@pytest.mark.parametrize("role, expected", [("doctor", 403), ("auditor", 200), ("staff", 200), ("admin", 200)])
def test_it_shows_the_retention_review_to_staff_auditors_and_admins(page_for, scene, role, expected):
    assert page_for(role).get("/retention/").status_code == expected


def test_it_refuses_link_and_unlink_posts_from_auditors_and_clinicians(page_for, scene):
    events_before = CustodyEvent.objects.count()
    for role in ("auditor", "doctor"):
        client = page_for(role)
        assert client.post("/media/FJ-1/studies/link/", {"uids": FREE_UID}).status_code == 403
        assert client.post("/media/FJ-1/studies/unlink/", {"studies": MR_UID, "reason": "x"}).status_code == 403
        assert client.post("/media/FJ-1/pacs/", {"pacs": "main", "study": "1"}).status_code == 403
    assert CustodyEvent.objects.count() == events_before


# --- patients and studies ----------------------------------------------------------------------


def test_it_finds_a_patient_by_id_or_name(page_for, scene):
    by_id = html(page_for("doctor").get("/patients/", {"q": "P-200"}))
    by_name = html(page_for("doctor").get("/patients/", {"q": "lovelace"}))
    nothing = html(page_for("doctor").get("/patients/", {"q": "nobody here"}))

    assert 'href="/patients/P-200/"' in by_id and "P-100" not in by_id
    assert 'href="/patients/P-100/"' in by_name
    assert "No patient matches" in nothing


def test_it_shows_a_patients_media_where_they_are_and_their_studies(page_for, scene):
    page = html(page_for("staff").get("/patients/P-100/"))

    assert "Ada Lovelace" in page and "1950" in page
    assert 'href="/media/CD-1/"' in page and 'href="/media/FJ-1/"' in page
    assert "On loan" in page and "Doctor" in page  # the jacket's holder
    assert "Shelf A1" in page  # the disc's shelf
    for uid in (CT_UID, MR_UID, FREE_UID):
        assert f'href="/studies/{uid}/"' in page
    assert "on no registered item" in page  # the study no item holds


def test_it_hides_another_clinicians_due_date_on_the_patient_page(page_for, scene):
    mine = page_for("doctor").get("/patients/P-100/").context["whereabouts"]
    theirs = page_for("doctor2").get("/patients/P-100/").context["whereabouts"]

    assert {w.media.code: w.due_at for w in mine}["FJ-1"] == scene["loan"].due_at
    assert {w.media.code: w.due_at for w in theirs}["FJ-1"] is None


def test_it_answers_an_unknown_patient_or_study_with_a_404(page_for, scene):
    assert page_for("doctor").get("/patients/P-999/").status_code == 404
    assert page_for("doctor").get("/studies/9.9.9/").status_code == 404


def test_it_shows_a_study_with_its_series_and_which_media_hold_it(page_for, scene):
    page = html(page_for("doctor").get(f"/studies/{CT_UID}/"))

    assert "CT chest" in page and "ACC-1" in page
    assert CT_UID + ".1" in page and "Axial" in page
    assert 'href="/media/CD-1/"' in page and "On shelf" in page and "Shelf A1" in page
    assert 'href="/patients/P-100/"' in page


# --- disc manifests and checks ----------------------------------------------------------------


def test_it_shows_a_manifest_with_files_problems_and_the_pdi_report(page_for, scene):
    page = html(page_for("doctor").get(f"/manifests/{scene['manifest'].pk}/"))

    assert "IMAGES/IM0001" in page and "README.BAD" in page and "not DICOM" in page
    assert f"{CT_UID}.1.1" in page  # SOP instance
    assert "Explicit VR Little Endian" in page  # the transfer syntax by name
    assert "Deviates from IHE PDI" in page and "File-set ID: FILMROOM01" in page
    assert "<td>STD-GEN-CD</td>" in page and "CD-R" in page
    assert "File IDs break the 8-character rule." in page and "IMAGES/LONGNAME001" in page
    assert "file_id_rules" in page and "not checked" in page  # the check that could not run
    assert "Altered" in page  # the check made against this manifest


@pytest.mark.parametrize("report", [
    {}, {"checks": "not a list"}, {"checks": [None, {"code": "x"}], "counts": []},
    {"conformant": True}, ["not", "a", "dict"], {"profiles": ["STD-GEN-CD"]},
    {"profiles": {"STD-GEN-CD": "odd"}, "transfer_syntaxes": {"1.2": "odd"}},
    {"profiles": "STD-GEN-CD", "transfer_syntaxes": []},
])
def test_it_shows_a_manifest_whatever_shape_its_pdi_report_has(page_for, scene, report):
    DiscManifest.objects.filter(pk=scene["manifest"].pk).update(pdi_report=report, problems=[{"path": "X"}, "junk"])

    response = page_for("doctor").get(f"/manifests/{scene['manifest'].pk}/")

    assert response.status_code == 200


def test_it_pages_through_a_large_manifest(page_for, scene, monkeypatch):
    monkeypatch.setattr(views, "ENTRIES_PER_PAGE", 2)

    first = html(page_for("doctor").get(f"/manifests/{scene['manifest'].pk}/"))
    second = html(page_for("doctor").get(f"/manifests/{scene['manifest'].pk}/", {"page": 2}))

    assert "IMAGES/IM0001" in first and "Page 1 of 2" in first
    assert '<td class="hash">README.BAD</td>' in second and '<td class="hash">DICOMDIR</td>' not in second


def test_it_shows_a_disc_check_with_every_path_that_differs(page_for, scene):
    page = html(page_for("doctor").get(f"/verifications/{scene['check'].pk}/"))

    # shown in red: the class the style sheet colours with --bad (no inline styles under the CSP)
    assert "Altered" in page and 'class="status verdict verdict-altered"' in page
    css = (Path(__file__).resolve().parents[2] / "static/filmroom/filmroom.css").read_text()
    assert re.search(r"\.verdict-altered \{ color: var\(--bad\)", css)
    assert "IMAGES/IM0002" in page and "IMAGES/IM0001" in page and "EXTRA/NEW.DCM" in page
    assert f'href="/manifests/{scene["manifest"].pk}/"' in page


# --- what the media page adds ------------------------------------------------------------------


def test_it_shows_an_items_studies_manifests_and_latest_check_in_red_when_altered(page_for, scene):
    page = html(page_for("doctor").get("/media/CD-1/"))

    assert f'href="/studies/{CT_UID}/"' in page
    assert f'href="/manifests/{scene["manifest"].pk}/"' in page
    assert f'href="/verifications/{scene["check"].pk}/"' in page
    assert "verdict-altered" in page and "verdict-identical" not in page
    assert 'href="/patients/P-100/"' in page
    assert "/media/CD-1/pacs/" not in page  # a clinician does not link studies


def test_it_shows_the_latest_check_in_green_once_the_disc_is_identical_again(page_for, scene, cast):
    later = DiscVerification.objects.create(
        manifest=scene["manifest"], media=scene["disc"], verified_by=cast["staff"],
        verdict=DiscVerdict.IDENTICAL, files_checked=3, bytes_checked=3000,
    )

    page = html(page_for("staff").get("/media/CD-1/"))

    assert f'href="/verifications/{later.pk}/"' in page
    assert "verdict-identical" in page and "verdict-altered" not in page
    assert 'href="/media/CD-1/pacs/"' in page  # staff may link studies


# --- linking by UID and unlinking -----------------------------------------------------------------


def test_it_links_a_known_study_by_uid_through_the_ledger(page_for, scene):
    response = page_for("staff").post(
        "/media/FJ-1/studies/link/", {"uids": f" {FREE_UID}\n", "note": "On film"}, follow=True
    )

    assert response.redirect_chain == [("/media/FJ-1/", 302)]
    assert "Linked 1 study to FJ-1." in html(response)
    event = CustodyEvent.objects.order_by("-seq").first()
    assert (event.kind, event.payload["studies"], event.payload["source"]) == ("studies_linked", [FREE_UID], "manual")
    assert set(scene["jacket"].studies.values_list("study_instance_uid", flat=True)) == {MR_UID, FREE_UID}


def test_it_says_which_uid_it_does_not_know_and_keeps_what_was_typed(page_for, scene):
    events_before = CustodyEvent.objects.count()

    response = page_for("staff").post("/media/FJ-1/studies/link/", {"uids": f"{FREE_UID}\n9.9.9"})

    assert response.status_code == 400
    page = html(response)
    assert "No study has the UID 9.9.9 here" in page
    assert FREE_UID in page  # the textarea keeps the input
    assert CustodyEvent.objects.count() == events_before


def test_it_unlinks_a_study_with_a_reason(page_for, scene):
    response = page_for("staff").post("/media/FJ-1/studies/unlink/", {"studies": MR_UID, "reason": "Other patient's film"})

    assert response.status_code == 302
    event = CustodyEvent.objects.order_by("-seq").first()
    assert (event.kind, event.payload) == ("studies_unlinked", {"studies": [MR_UID], "reason": "Other patient's film"})
    assert not scene["jacket"].studies.exists()


def test_it_asks_for_a_reason_before_unlinking(page_for, scene):
    events_before = CustodyEvent.objects.count()

    response = page_for("staff").post("/media/FJ-1/studies/unlink/", {"studies": MR_UID})

    assert response.status_code == 400
    assert "This field is required." in html(response)
    assert CustodyEvent.objects.count() == events_before


# --- the PACS: a real Orthanc, and one that is not there -------------------------------------------


def closed_port_pacs(protocol: str) -> dict:
    """A PACS at a loopback port nothing listens on (a real socket that refuses)."""
    port = free_port()
    if protocol == "dimse":
        return {"protocol": "dimse", "host": "127.0.0.1", "port": port, "ae_title": "PACS", "timeout": 2}
    return {"protocol": "dicomweb", "base_url": f"http://127.0.0.1:{port}/dicom-web", "timeout": 2}


@pytest.mark.parametrize("protocol", ["dimse", "dicomweb"])
def test_it_says_clearly_when_the_pacs_is_down_and_keeps_the_form(page_for, scene, settings, protocol):
    settings.PACS = {"main": closed_port_pacs(protocol)}
    criteria = {"pacs": "main", "patient_id": "P-100", "accession_number": "ACC-77"}
    events_before = CustodyEvent.objects.count()

    search = page_for("staff").get("/media/FJ-1/pacs/", criteria)
    link = page_for("staff").post("/media/FJ-1/pacs/", {**criteria, "study": CT_UID})

    for response in (search, link):
        assert response.status_code == 503
        page = html(response)
        assert "The PACS search did not work." in page
        assert "could not be reached" in page and "main" in page
        assert 'value="ACC-77"' in page and 'value="P-100"' in page  # the form keeps the criteria
        assert "Link a known study by its UID" in page  # the way round a PACS that is down
    assert CustodyEvent.objects.count() == events_before


def test_it_says_so_when_no_pacs_is_set_up(page_for, scene, settings):
    settings.PACS = {}

    response = page_for("staff").get("/media/FJ-1/pacs/")

    assert "No PACS is set up" in html(response)
    assert "Link a known study by its UID" in html(response)


@pytest.fixture
def jacket_in_pacs(settings, orthanc, cast, make_media):  # noqa: F811
    """Film jacket FJ-100 of patient MRN-100, whose studies the test Orthanc holds."""
    settings.PACS = {
        "orthanc": {"protocol": "dimse", "host": "127.0.0.1", "port": orthanc.dicom_port,
                    "ae_title": orthanc.ae_title, "timeout": 5},
        "orthanc-web": {"protocol": "dicomweb", "base_url": orthanc.dicomweb_url, "timeout": 5},
    }
    patient = Patient.objects.create(patient_id="MRN-100", birth_date=date(1970, 1, 1))
    return make_media("FJ-100", kind=MediaKind.FILM_JACKET, patient=patient)


def test_it_offers_the_jackets_studies_from_the_pacs_and_links_the_ticked_ones(page_for, jacket_in_pacs):
    jane = [s for s in STUDIES if s.patient_id == "MRN-100"]
    staff = page_for("staff")

    offered = staff.get("/media/FJ-100/pacs/")

    assert offered.status_code == 200
    rows = offered.context["rows"]
    assert [r.study.study_instance_uid for r in rows] == [jane[1].uid, jane[0].uid, jane[2].uid]
    assert [r.matches_jacket for r in rows] == [True, True, False]
    page = html(offered)
    assert "this jacket" in page and "ACC-1003" in page and "ROE" not in page

    linked = staff.post("/media/FJ-100/pacs/", {"pacs": "orthanc", "study": [jane[0].uid, jane[2].uid]})

    assert linked.status_code == 302 and linked["Location"] == "/media/FJ-100/pacs/?pacs=orthanc"
    event = CustodyEvent.objects.order_by("-seq").first()
    assert event.kind == "studies_linked" and event.payload["source"] == "pacs"
    assert event.payload["studies"] == sorted([jane[0].uid, jane[2].uid])
    after = staff.get(linked["Location"])
    assert "Linked 2 studies from the PACS to FJ-100." in html(after)
    assert [r.linked for r in after.context["rows"]] == [False, True, True]


def test_it_searches_the_pacs_by_accession_over_dicomweb(page_for, jacket_in_pacs):
    response = page_for("staff").get(
        "/media/FJ-100/pacs/", {"pacs": "orthanc-web", "patient_id": "", "accession_number": "ACC-1002"}
    )

    assert response.status_code == 200
    assert [r.study.accession_number for r in response.context["rows"]] == ["ACC-1002"]
    assert "What the PACS found" in html(response)


def test_it_refuses_to_link_another_patients_study_from_the_pacs(page_for, jacket_in_pacs):
    richard = next(s for s in STUDIES if s.patient_id == "MRN-200")
    criteria = {"pacs": "orthanc", "accession_number": richard.accession}

    response = page_for("staff").post("/media/FJ-100/pacs/", {**criteria, "study": richard.uid})

    assert response.status_code == 400
    assert "belongs to patient MRN-100" in html(response)
    assert not jacket_in_pacs.studies.exists()


# --- retention review --------------------------------------------------------------------------


def test_it_lists_media_past_retention_and_says_nothing_is_destroyed(page_for, scene):
    response = page_for("auditor").get("/retention/", {"as_of": "2023-02-02"})

    page = html(response)
    assert [(d.media.code, d.due_on) for d in response.context["due"]] == [
        ("CD-1", date(2021, 5, 1)), ("FJ-1", date(2022, 1, 10)), ("FJ-OLD", date(2023, 2, 2))
    ]
    assert "Nothing here is destroyed or retired" in page
    assert 'href="/media/FJ-OLD/"' in page and "Short" in page and "Feb. 2, 2023" in page
    assert "Not on the shelf: find it first." in page  # FJ-1 is on loan


def test_it_says_so_when_the_retention_day_is_not_a_date(page_for, scene):
    response = page_for("staff").get("/retention/", {"as_of": "someday"})

    assert "is not a date" in html(response)


def test_it_says_so_when_there_are_no_retention_rules(page_for, scene):
    from archive.models import RetentionRule

    RetentionRule.objects.all().delete()

    assert "No retention rules are set up" in html(page_for("staff").get("/retention/"))


def test_the_main_menu_links_patients_for_everyone_and_retention_for_staff(page_for, scene):
    doctor = html(page_for("doctor").get("/"))
    staff = html(page_for("staff").get("/"))

    assert 'href="/patients/"' in doctor and 'href="/retention/"' not in doctor
    assert 'href="/patients/"' in staff and 'href="/retention/"' in staff


def test_it_shows_the_pdi_report_that_pdi_check_writes_for_a_real_disc(page_for, scene, tmp_path):
    from archive.pdi import CHECK_CODES, pdi_check
    from tests.archive.discs import ct_disc

    ct_disc(tmp_path / "disc", files=6, series=2)
    # A DICOM file the DICOMDIR does not list, under a name too long for a PDI file ID.
    first = next(p for p in (tmp_path / "disc").rglob("*") if p.is_file() and p.name != "DICOMDIR")
    (tmp_path / "disc" / "TOOLONGNAME01").write_bytes(first.read_bytes())
    report = pdi_check(tmp_path / "disc")
    DiscManifest.objects.filter(pk=scene["manifest"].pk).update(pdi_report=report)

    page = html(page_for("doctor").get(f"/manifests/{scene['manifest'].pk}/"))

    for code, _severity in CHECK_CODES:
        assert f"<td>{code}<br>" in page, code
    for profile in report["profiles"]:
        assert f"<td>{profile}</td>" in page
    assert "TOOLONGNAME01" in page  # named where it breaks a rule
    assert "✘ failed" in page


def test_it_refuses_to_link_another_patients_study_by_uid(page_for, scene):
    # FJ-1 holds P-100's films; OTHER_UID is P-200's study.
    from tests.archive.test_api import OTHER_UID

    events_before = CustodyEvent.objects.count()

    response = page_for("staff").post("/media/FJ-1/studies/link/", {"uids": OTHER_UID})

    assert response.status_code == 400
    assert "FJ-1 belongs to patient P-100; these studies are of P-200." in html(response)
    assert CustodyEvent.objects.count() == events_before


@pytest.mark.parametrize("role, sees_who", [("doctor", False), ("auditor", True), ("staff", True)])
def test_it_names_who_imported_and_checked_a_disc_only_to_those_who_may_read_the_custody_chain(
    page_for, scene, role, sees_who
):
    # A clinician sees where an item is, not who handled it (tracker hides the custody chain).
    for path in (f"/manifests/{scene['manifest'].pk}/", f"/verifications/{scene['check'].pk}/"):
        page = html(page_for(role).get(path))
        assert (" · Staff" in page) is sees_who, path
