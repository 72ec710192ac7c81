"""tracker.audit: the auditor's question (CustodyQuery over custody_events), checking a range of
the ledger row by row, and verifications kept as access-log rows."""
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone

from archive.models import Patient
from tracker import ledger, services
from tracker.audit import (
    RANGE_LIMIT,
    AccessLogQuery,
    CustodyQuery,
    last_verification,
    ledger_verify_recorded,
    record_access,
    verify_range,
)
from tracker.choices import AccessAction, AccessSubject, MediaKind
from tracker.exceptions import InvalidRequest
from tracker.models import AccessLog, CustodyEvent

from .tampering import raw, triggers_lifted

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(make_media, cast, places):
    """Ten events: a jacket of patient P-100 lent to doctor and back, a disc moved and seen."""
    patient = Patient.objects.create(patient_id="P-100", name="Wang Fang")
    jacket = make_media("FJ-1", patient=patient)  # 1
    disc = make_media("CD-1", kind=MediaKind.CD)  # 2
    services.tag_bind(uid="04000000000001", media=jacket, actor=cast["staff"])  # 3
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])  # 4
    services.media_transfer(media=disc, to_location=places["clinic"], actor=cast["staff"])  # 5
    services.media_return(media=jacket, actor=cast["staff"])  # 6
    services.media_seen(media=disc, location=places["shelf2"], actor=cast["staff"])  # 7
    services.media_check_out(media=jacket, borrower=cast["doctor2"], actor=cast["staff"])  # 8
    services.media_transfer(media=jacket, to_holder=cast["doctor"], actor=cast["doctor2"])  # 9
    services.media_return(media=jacket, actor=cast["staff"])  # 10
    assert CustodyEvent.objects.count() == 10
    return {"patient": patient, "jacket": jacket, "disc": disc}


def asked(**params) -> CustodyQuery:
    query = CustodyQuery(params)
    assert query.is_valid(), query.errors
    return query


def seqs(query: CustodyQuery) -> list[int]:
    return list(query.events().values_list("seq", flat=True))


# --- the question ------------------------------------------------------------------------------


def test_it_answers_for_an_item_a_patient_a_borrower_and_a_place(history, cast):
    assert seqs(asked(subject_kind="media", subject="FJ-1")) == [1, 3, 4, 6, 8, 9, 10]
    assert seqs(asked(subject_kind="patient", subject="P-100")) == [1, 3, 4, 6, 8, 9, 10]
    # doctor2: lent to them (8) and the hand-over they made (9)
    assert seqs(asked(subject_kind="borrower", subject="doctor2")) == [8, 9]
    # the clinic: the disc moved there (5) and moved away from it when seen on a shelf (7)
    assert seqs(asked(subject_kind="location", subject="ORTHO")) == [5, 7]
    assert seqs(asked()) == list(range(1, 11))
    assert seqs(asked(subject_kind="events")) == list(range(1, 11))


def test_it_names_the_subject_for_the_access_log_by_code_id_or_username(history):
    query = asked(subject_kind="patient", subject="p-100")  # any case, when only one matches
    assert (query.kind, query.subject_label) == ("patient", "P-100")
    assert "Wang" not in str(query.filters())
    assert asked(subject_kind="borrower", subject="doctor").subject_label == "doctor"


def test_it_narrows_by_kinds_of_event(history):
    query = asked(subject_kind="media", subject="FJ-1", kinds=["checked_out", "returned"])
    assert seqs(query) == [4, 6, 8, 10]
    assert query.filters()["kinds"] == ["checked_out", "returned"]


def test_it_refuses_a_subject_that_names_nothing_with_a_clear_message(history):
    query = CustodyQuery({"subject_kind": "media", "subject": "FJ-404"})
    assert not query.is_valid()
    assert query.unknown_subject
    assert "No item has the code “FJ-404”" in query.errors["subject"][0]


@pytest.mark.parametrize(
    "params, field, words",
    [
        ({"subject_kind": "patient"}, "subject", "patient's ID"),
        ({"subject": "FJ-1"}, "subject_kind", "is an item code, a patient ID"),
        ({"subject_kind": "events", "subject": "FJ-1"}, "subject", "Leave this empty"),
        ({"subject_kind": "ghost", "subject": "x"}, "subject_kind", "valid choice"),
        ({"from": "2026-11-24", "to": "2026-11-23"}, "to", "ends before it starts"),
        ({"from": "24/11/2026"}, "from", "valid date"),
        ({"kinds": ["checked_out", "teleported"]}, "kinds", "valid choice"),
    ],
)
def test_it_says_what_is_wrong_with_a_question(history, params, field, words):
    query = CustodyQuery(params)
    assert not query.is_valid()
    assert not query.unknown_subject
    assert words in " ".join(query.errors[field])


def test_the_period_is_whole_local_days(settings, history):
    settings.TIME_ZONE = "Asia/Shanghai"
    timezone.activate(ZoneInfo("Asia/Shanghai"))
    try:
        query = asked(**{"from": "2026-11-24", "to": "2026-11-24"})
        since, until = query.period()
    finally:
        timezone.deactivate()
    assert since == datetime(2026, 11, 23, 16, 0, tzinfo=ZoneInfo("UTC"))
    assert until == datetime(2026, 11, 24, 16, 0, tzinfo=ZoneInfo("UTC"))


def test_the_period_selects_by_received_time_both_days_included(history):
    # Put events 2..4 on three consecutive days (only the received time matters here).
    for seq, day in ((2, 10), (3, 11), (4, 12)):
        when = timezone.make_aware(datetime(2026, 3, day, 23, 59, 59))
        raw("UPDATE tracker_custodyevent SET received_at = %s WHERE seq = %s", [when, seq])
    assert seqs(asked(**{"from": "2026-03-11", "to": "2026-03-11"})) == [3]
    assert seqs(asked(**{"from": "2026-03-10", "to": "2026-03-11"})) == [2, 3]
    assert seqs(asked(**{"to": "2026-03-12"})) == [2, 3, 4]
    today = timezone.localdate().isoformat()
    assert 5 in seqs(asked(**{"from": today}))


def test_query_items_carry_the_question_to_export_links(history):
    query = asked(subject_kind="media", subject="fj-1", kinds=["returned"], **{"from": "2026-01-01"})
    assert query.query_items() == [
        ("subject_kind", "media"), ("subject", "FJ-1"), ("from", "2026-01-01"), ("kinds", "returned"),
    ]


# --- a range of the ledger -----------------------------------------------------------------------


def test_an_intact_range_is_checked_event_by_event(history):
    result = verify_range(first=3, last=7)
    assert (result.ok, result.events, result.first_bad_seq) == (True, 5, None)
    assert result.head_hash == CustodyEvent.objects.get(seq=7).hash
    whole = verify_range(first=1, last=10)
    assert whole.ok and whole.head_hash == ledger.verify_ledger().head_hash


def test_a_tampered_row_in_the_range_is_named(history, cast):
    raw("UPDATE tracker_custodyevent SET holder_id = %s WHERE seq = 8", [cast["auditor"].pk])
    result = verify_range(first=3, last=10)
    assert (result.ok, result.first_bad_seq) == (False, 8)
    assert "event 8 was altered" in result.reason
    assert verify_range(first=1, last=7).ok, "the events before it are still intact"
    assert verify_range(first=9, last=10).ok, "the events after it still link to its stored hash"


def test_a_tampered_payload_byte_is_named(history):
    event = CustodyEvent.objects.get(seq=4)
    due = event.payload["due_at"]
    payload = {**event.payload, "due_at": due[:-2] + ("1Z" if due[-2] != "1" else "2Z")}
    with triggers_lifted():
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE tracker_custodyevent SET payload = %s WHERE seq = 4",
                [CustodyEvent._meta.get_field("payload").get_db_prep_value(payload, connection)],
            )
    result = verify_range(first=1, last=10)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_a_rehashed_row_breaks_the_link_of_the_next_one(history, cast):
    # The forger recomputes event 5's hash after changing it, but not event 6's link.
    row = dict(CustodyEvent.objects.filter(seq=5).values(*ledger.BODY_FIELDS).get())
    row["actor_id"] = cast["auditor"].pk
    forged = ledger.chain_hash(row["prev_hash"], ledger.event_body(row))
    raw("UPDATE tracker_custodyevent SET actor_id = %s, hash = %s WHERE seq = 5", [row["actor_id"], forged])
    assert verify_range(first=5, last=5).ok, "alone, the rewritten row is self-consistent"
    result = verify_range(first=4, last=8)
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert "does not link to the hash of event 5" in result.reason
    # A range starting at 6 links to the stored hash of event 5, so it fails too.
    assert verify_range(first=6, last=10).first_bad_seq == 6


def test_a_deleted_row_is_named_inside_the_range_and_before_it(history):
    raw("DELETE FROM tracker_custodyevent WHERE seq = 6")
    result = verify_range(first=2, last=9)
    assert (result.ok, result.first_bad_seq) == (False, 6)
    assert "event 6 is missing" in result.reason
    before = verify_range(first=7, last=9)
    assert (before.ok, before.first_bad_seq) == (False, 7)
    assert "event 6, which event 7 links to, is missing" in before.reason


def test_a_deleted_tail_inside_the_range_is_named(history):
    raw("DELETE FROM tracker_custodyevent WHERE seq IN (8, 9)")
    result = verify_range(first=5, last=10)
    assert (result.ok, result.first_bad_seq) == (False, 8)


@pytest.mark.parametrize("first, last", [(0, 3), (4, 3), (5, 11)])
def test_a_range_the_ledger_does_not_span_is_refused(history, first, last):
    with pytest.raises(InvalidRequest, match=r"within 1\.\.10"):
        verify_range(first=first, last=last)


def test_a_range_longer_than_the_limit_is_refused(history, monkeypatch):
    monkeypatch.setattr("tracker.audit.RANGE_LIMIT", 4)
    with pytest.raises(InvalidRequest, match="at most 4 events"):
        verify_range(first=1, last=5)
    assert verify_range(first=1, last=4).ok
    assert RANGE_LIMIT >= 10_000


def test_an_empty_ledger_has_no_range_to_verify(db):
    with pytest.raises(InvalidRequest, match="no events yet"):
        verify_range(first=1, last=1)


# --- verifications kept in the access log --------------------------------------------------------


def test_a_verification_is_recorded_with_its_verdict(history, cast):
    ledger.checkpoint()
    entry = ledger_verify_recorded(user=cast["auditor"], path="/audit/verify/")
    assert (entry.action, entry.subject_kind, entry.subject) == ("verified", "ledger", "")
    assert entry.detail["scope"] == "ledger"
    assert entry.detail["ok"] is True and entry.detail["events"] == 10
    assert entry.detail["checkpoints_checked"] == 1
    assert entry.detail["head_hash"] == CustodyEvent.objects.get(seq=10).hash
    assert last_verification() == entry


def test_a_range_verification_is_recorded_but_is_not_the_last_whole_one(history, cast):
    whole = ledger_verify_recorded(user=cast["auditor"])
    ranged = ledger_verify_recorded(user=cast["admin"], first=2, last=4)
    assert (ranged.subject, ranged.detail["scope"], ranged.detail["events"]) == ("2..4", "range", 3)
    assert last_verification() == whole


def test_a_broken_ledger_is_recorded_as_broken(history, cast):
    raw("UPDATE tracker_custodyevent SET tag_uid = 'FFFFFFFFFFFFFF' WHERE seq = 3")
    entry = ledger_verify_recorded(user=cast["auditor"])
    assert (entry.detail["ok"], entry.detail["first_bad_seq"]) == (False, 3)
    assert "event 3" in entry.detail["reason"]


def test_a_refused_range_records_nothing(history, cast):
    with pytest.raises(InvalidRequest):
        ledger_verify_recorded(user=cast["auditor"], first=9, last=99)
    with pytest.raises(InvalidRequest, match="both the first and the last"):
        ledger_verify_recorded(user=cast["auditor"], first=3)
    assert not AccessLog.objects.exists()


# --- the access log, filtered --------------------------------------------------------------------


def test_the_access_log_filters_by_user_action_subject_and_day(history, cast):
    record_access(user=cast["auditor"], action=AccessAction.VIEWED, subject_kind=AccessSubject.PATIENT,
                  subject="P-100")
    record_access(user=cast["admin"], action=AccessAction.EXPORTED, subject_kind=AccessSubject.MEDIA,
                  subject="FJ-1")
    ledger_verify_recorded(user=cast["auditor"])

    def found(**params):
        query = AccessLogQuery(params)
        assert query.is_valid(), query.errors
        return [(e.user.username, e.action, e.subject) for e in query.entries()]

    assert found(user="auditor") == [("auditor", "verified", ""), ("auditor", "viewed", "P-100")]
    assert found(action="exported") == [("admin", "exported", "FJ-1")]
    assert found(subject_kind="patient", subject="p-100") == [("auditor", "viewed", "P-100")]
    today = timezone.localdate()
    assert len(found(**{"from": today.isoformat(), "to": today.isoformat()})) == 3
    assert found(**{"to": (today - timedelta(days=1)).isoformat()}) == []
    unknown = AccessLogQuery({"user": "nobody-at-all"})
    assert not unknown.is_valid() and "Nobody has the username" in unknown.errors["user"][0]
