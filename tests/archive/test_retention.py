"""Retention review (issue 5 point 7): rules are data; the selector lists media kept as long as
the most specific matching rule asks, on a fixed day, for a person to review. Nothing is retired
or destroyed by it."""
from datetime import date

import pytest
from django.utils import timezone

from archive.models import Patient, RetentionRule, Study
from archive.retention import add_years, example_rules, media_past_retention
from tracker import services
from tracker.choices import MediaKind, MediaStatus, StudySource
from tracker.models import CustodyEvent, Media

pytestmark = pytest.mark.django_db

ADULT_BORN = date(1960, 4, 1)
CHILD_BORN = date(2005, 1, 1)


@pytest.fixture
def rules(db):
    """The examples of REFERENCE.md: mammography 10 years; adults 8 years; children until 25."""
    for rule in example_rules():
        rule.save()


@pytest.fixture
def item(cast, make_media):
    """item(code, kind, born, study_date, modality) → a media item holding one study."""
    counter = iter(range(1, 1000))

    def make(code, *, kind=MediaKind.CD, born=ADULT_BORN, on=date(2011, 6, 1), modality="CT"):
        n = next(counter)
        patient = Patient.objects.create(patient_id=f"P-{code}", birth_date=born)
        study = Study.objects.create(
            study_instance_uid=f"1.2.826.0.1.3680043.10.77.{n}", patient=patient, study_date=on,
            modalities=modality,
        )
        media = make_media(code, kind=kind, patient=patient)
        services.media_studies_link(media=media, studies=[study], actor=cast["staff"], source=StudySource.MANUAL)
        return media

    return make


def listed(today) -> dict[str, object]:
    return {due.media.code: due for due in media_past_retention(today=today)}


def test_it_lists_an_adults_cd_from_the_day_eight_years_have_passed(rules, item):
    item("CD-ADULT", on=date(2011, 6, 1))

    before = listed(date(2019, 5, 31))
    on_the_day = listed(date(2019, 6, 1))

    assert "CD-ADULT" not in before
    due = on_the_day["CD-ADULT"]
    assert due.due_on == date(2019, 6, 1)
    assert due.kept_since == date(2011, 6, 1)
    assert due.rule.name.startswith("Adults")
    assert due.age_then == 51


def test_it_keeps_a_childs_media_until_the_patient_is_25(rules, item):
    item("CD-CHILD", born=CHILD_BORN, on=date(2010, 1, 1))  # five years old at the study

    eight_years_on = listed(date(2018, 1, 2))
    day_before_25 = listed(date(2029, 12, 31))
    at_25 = listed(date(2030, 1, 1))

    assert "CD-CHILD" not in eight_years_on
    assert "CD-CHILD" not in day_before_25
    assert at_25["CD-CHILD"].due_on == date(2030, 1, 1)
    assert at_25["CD-CHILD"].age_then == 5


def test_it_keeps_a_minors_media_eight_years_when_that_is_later_than_25(rules, item):
    item("CD-TEEN", born=date(1990, 1, 1), on=date(2007, 6, 1))  # 17 then; 25 in 2015, 8 years → 2015-06-01

    assert listed(date(2015, 5, 31)) == {}
    assert listed(date(2015, 6, 1))["CD-TEEN"].due_on == date(2015, 6, 1)


def test_it_keeps_mammography_ten_years(rules, item):
    item("CD-MG", on=date(2010, 1, 1), modality="MG")

    after_eight = listed(date(2018, 1, 1))
    after_ten = listed(date(2020, 1, 1))

    assert "CD-MG" not in after_eight
    assert after_ten["CD-MG"].rule.modality == "MG"
    assert after_ten["CD-MG"].due_on == date(2020, 1, 1)


def test_it_reads_several_modalities_in_one_study(rules, item):
    item("CD-MIX", on=date(2010, 1, 1), modality="CR\\MG")

    assert "CD-MIX" not in listed(date(2019, 1, 1))
    assert listed(date(2020, 1, 1))["CD-MIX"].rule.modality == "MG"


def test_it_leaves_retired_media_out(rules, item, cast):
    retired = item("CD-GONE", on=date(2001, 1, 1))
    services.media_retire(media=retired, actor=cast["staff"], reason="Destroyed after review")
    item("CD-KEPT", on=date(2001, 1, 1))

    assert set(listed(date(2020, 1, 1))) == {"CD-KEPT"}


def test_it_lists_media_on_loan_or_missing_but_marks_them(rules, item, cast):
    lent = item("CD-LENT", on=date(2001, 1, 1))
    services.media_check_out(media=lent, borrower=cast["doctor"], actor=cast["staff"])
    item("CD-SHELF", on=date(2001, 1, 1))

    due = listed(date(2020, 1, 1))

    assert due["CD-LENT"].media.status == MediaStatus.ON_LOAN and due["CD-LENT"].needs_retrieval
    assert not due["CD-SHELF"].needs_retrieval


@pytest.mark.parametrize("code, kind, modality, expected", [
    ("CD-MG", MediaKind.CD, "MG", "cd mammography"),  # kind + modality
    ("CD-CT", MediaKind.CD, "CT", "cd"),  # kind
    ("FJ-MG", MediaKind.FILM_JACKET, "MG", "mammography"),  # modality
    ("FJ-CT", MediaKind.FILM_JACKET, "CT", "default"),  # neither
])
def test_it_applies_the_most_specific_rule(item, code, kind, modality, expected):
    RetentionRule.objects.create(name="default", retain_years=30)
    RetentionRule.objects.create(name="mammography", modality="MG", retain_years=20)
    RetentionRule.objects.create(name="cd", media_kind=MediaKind.CD, retain_years=10)
    RetentionRule.objects.create(name="cd mammography", media_kind=MediaKind.CD, modality="MG", retain_years=5)
    item(code, kind=kind, on=date(1980, 1, 1), modality=modality)

    due = listed(date(2020, 1, 1))[code]

    assert due.rule.name == expected
    assert due.due_on == add_years(date(1980, 1, 1), due.rule.retain_years)


def test_it_lists_nothing_without_rules(item):
    item("CD-OLD", on=date(1990, 1, 1))

    assert media_past_retention(today=date(2020, 1, 1)) == []


def test_it_flags_a_rule_for_minors_applied_without_a_birth_date(rules, item):
    item("CD-NOBIRTH", born=None, on=date(2001, 1, 1))

    due = listed(date(2020, 1, 1))["CD-NOBIRTH"]

    assert due.age_unknown and due.age_then is None
    assert due.due_on == date(2009, 1, 1)


def test_it_counts_from_registration_when_no_study_has_a_date(rules, cast, make_media):
    media = make_media("FJ-NODATE", patient=Patient.objects.create(patient_id="P-N", birth_date=ADULT_BORN))
    registered = timezone.localdate(media.created_at)

    assert listed(add_years(registered, 8))["FJ-NODATE"].kept_since == registered
    assert "FJ-NODATE" not in listed(add_years(registered, 7))


def test_it_counts_from_the_newest_study_on_the_item(rules, item, cast):
    media = item("CD-TWO", on=date(2005, 1, 1))
    newer = Study.objects.create(
        study_instance_uid="1.2.826.0.1.3680043.10.77.999", patient=media.patient, study_date=date(2012, 3, 3),
        modalities="CT",
    )
    services.media_studies_link(media=media, studies=[newer], actor=cast["staff"], source=StudySource.MANUAL)

    assert "CD-TWO" not in listed(date(2020, 3, 2))
    assert listed(date(2020, 3, 3))["CD-TWO"].kept_since == date(2012, 3, 3)


def test_it_never_changes_anything(rules, item):
    item("CD-OLD", on=date(1990, 1, 1))
    events, statuses = CustodyEvent.objects.count(), list(Media.objects.values_list("status", flat=True))

    assert listed(date(2020, 1, 1))

    assert CustodyEvent.objects.count() == events
    assert list(Media.objects.values_list("status", flat=True)) == statuses


def test_it_moves_29_february_to_the_28th_in_a_common_year():
    assert add_years(date(2012, 2, 29), 1) == date(2013, 2, 28)
    assert add_years(date(2012, 2, 29), 4) == date(2016, 2, 29)
