"""Which studies an item holds is history too: links, unlinks, disc imports and disc checks are
ledger events, the projection follows them, and a rebuild reproduces the links."""
import uuid

import pytest

from archive.models import Patient, Study
from tracker import ledger, projection, services
from tracker.choices import DiscVerdict, EventKind, StudySource
from tracker.exceptions import EventConflict, InvalidRequest
from tracker.models import CustodyEvent


@pytest.fixture
def studies(db):
    patient = Patient.objects.create(patient_id="MRN-7")
    return [
        Study.objects.create(study_instance_uid=f"1.2.3.{n}", patient=patient) for n in range(3)
    ]


def linked(media) -> set[str]:
    return set(media.studies.values_list("study_instance_uid", flat=True))


def test_it_links_studies_found_in_the_pacs_and_gives_a_jacket_its_patient(make_media, cast, studies):
    jacket = make_media("FJ-CAT")
    event = services.media_studies_link(
        media=jacket, studies=studies[:2], actor=cast["staff"], source=StudySource.PACS
    )
    jacket.refresh_from_db()
    assert event.kind == EventKind.STUDIES_LINKED
    assert event.payload == {"studies": ["1.2.3.0", "1.2.3.1"], "source": "pacs", "patient_id": "MRN-7"}
    assert linked(jacket) == {"1.2.3.0", "1.2.3.1"}
    assert jacket.patient.patient_id == "MRN-7"


def test_unlinking_needs_a_reason_and_keeps_the_old_link_in_history(make_media, cast, studies):
    jacket = make_media("FJ-CAT")
    services.media_studies_link(media=jacket, studies=studies, actor=cast["staff"], source="manual")
    with pytest.raises(InvalidRequest):
        services.media_studies_unlink(media=jacket, studies=studies[:1], actor=cast["staff"], reason=" ")
    services.media_studies_unlink(
        media=jacket, studies=studies[:1], actor=cast["staff"], reason="another patient's study"
    )
    assert linked(jacket) == {"1.2.3.1", "1.2.3.2"}
    kinds = list(CustodyEvent.objects.filter(media=jacket).values_list("kind", flat=True))
    assert kinds[-2:] == [EventKind.STUDIES_LINKED, EventKind.STUDIES_UNLINKED]


def test_a_study_the_item_is_not_linked_to_cannot_be_unlinked_and_nothing_is_recorded(make_media, cast, studies):
    """Any caller (the API, the item's page) meets the rule: the service checks it."""
    jacket = make_media("FJ-CAT")
    services.media_studies_link(media=jacket, studies=studies[:1], actor=cast["staff"], source="manual")
    before = CustodyEvent.objects.count()

    with pytest.raises(InvalidRequest) as refused:
        services.media_studies_unlink(media=jacket, studies=studies[:2], actor=cast["staff"], reason="tidy")

    assert refused.value.details == {"studies": ["1.2.3.1"]}
    assert "1.2.3.1" in refused.value.message and "1.2.3.0" not in refused.value.message
    assert CustodyEvent.objects.count() == before and linked(jacket) == {"1.2.3.0"}


def test_a_recorded_unlink_sent_again_is_its_replay_not_a_refusal(make_media, cast, studies):
    """The retry of an unlink finds the studies already unlinked; it gets the first answer."""
    jacket = make_media("FJ-CAT")
    services.media_studies_link(media=jacket, studies=studies, actor=cast["staff"], source="manual")
    asked = {"media": jacket, "studies": studies[:1], "actor": cast["staff"], "reason": "x", "event_id": uuid.uuid4()}

    first = services.media_studies_unlink(**asked)
    again = services.media_studies_unlink(**asked)

    assert again.seq == first.seq and linked(jacket) == {"1.2.3.1", "1.2.3.2"}


def test_a_disc_import_links_its_studies_and_a_check_records_the_verdict(make_media, cast, studies):
    disc = make_media("D-CAT", kind="cd")
    imported = services.media_disc_imported(
        media=disc, manifest_id=12, studies=studies, actor=cast["staff"],
        summary={"files": 3, "bytes": 1000, "problems": 0},
    )
    checked = services.media_disc_verified(
        media=disc, manifest_id=12, verdict=DiscVerdict.ALTERED, actor=cast["staff"],
        summary={"missing": 1, "changed": 0, "extra": 0, "paths": ["DICOM/I0001"]},
    )
    assert imported.payload["manifest"] == 12 and imported.payload["source"] == "disc"
    assert linked(disc) == {"1.2.3.0", "1.2.3.1", "1.2.3.2"}
    assert checked.payload["verdict"] == "altered" and checked.seq == imported.seq + 1
    with pytest.raises(InvalidRequest):
        services.media_disc_verified(
            media=disc, manifest_id=12, verdict="fine", actor=cast["staff"], summary={}
        )


def test_a_replayed_link_returns_the_original_and_a_different_one_conflicts(make_media, cast, studies):
    jacket = make_media("FJ-CAT")
    event_id = uuid.uuid4()
    first = services.media_studies_link(
        media=jacket, studies=studies[:1], actor=cast["staff"], source="pacs", event_id=event_id
    )
    again = services.media_studies_link(
        media=jacket, studies=studies[:1], actor=cast["staff"], source="pacs", event_id=event_id
    )
    assert again.seq == first.seq
    with pytest.raises(EventConflict):
        services.media_studies_link(
            media=jacket, studies=studies[1:2], actor=cast["staff"], source="pacs", event_id=event_id
        )


def test_the_projection_rebuilds_the_links_from_the_ledger(make_media, cast, studies):
    jacket, disc = make_media("FJ-CAT"), make_media("D-CAT", kind="cd")
    services.media_studies_link(media=jacket, studies=studies[:2], actor=cast["staff"], source="pacs")
    services.media_disc_imported(
        media=disc, manifest_id=1, studies=studies[2:], actor=cast["staff"], summary={}
    )
    services.media_studies_unlink(media=jacket, studies=studies[:1], actor=cast["staff"], reason="x")
    assert projection.rebuild(check_only=True) == []
    jacket.studies.add(studies[2])  # a link made behind the ledger's back
    differences = projection.rebuild(check_only=True)
    assert differences and "studies" in differences[0]
    assert ledger.verify_ledger().ok
