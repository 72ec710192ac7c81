"""A custody event in words (tracker.event_text.describe): every family of events reads as a
sentence in the reader's language, with the people by their names, dates localised, and no
payload key hidden from an auditor; the chain pages show those words instead of raw keys."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
from django.utils import timezone, translation

from tests.test_translations import ENGLISH_RUN, ENGLISH_UI, chinese_catalogue  # noqa: F401
from tests.tracker.signature_images import drawn
from tracker import event_text, ledger, services
from tracker.choices import DiscVerdict, EventKind, FlagKind, StudySource
from tracker.ledger import EventRequest
from tracker.models import CustodyEvent

CHINESE = re.compile(r"[\u4e00-\u9fff]")
DUE = datetime(2026, 12, 1, 10, 0, tzinfo=dt_timezone.utc)


def words(event, language: str) -> str:
    with translation.override(language):
        return " | ".join(event_text.describe(event))


def english_in(text: str) -> list[str]:
    """Interface English in a Chinese description (codes, names and numbers aside)."""
    return sorted({m.group(0) for m in ENGLISH_UI.finditer(text)} | {m.group(0) for m in ENGLISH_RUN.finditer(text)})


def last(kind: str) -> CustodyEvent:
    return CustodyEvent.objects.filter(kind=kind).select_related(
        "holder", "to_location", "from_location", "media"
    ).latest("seq")


@pytest.fixture
def named(cast, places):
    """The doctors as the pages name them: by their full names; the shelf has a Chinese name,
    as it would in a Chinese file room (data is not interface, and the finder cannot tell)."""
    for who, (first, family) in {"doctor": ("Ming", "Li"), "doctor2": ("Jing", "Chen")}.items():
        cast[who].first_name, cast[who].last_name = first, family
        cast[who].save()
    places["shelf"].name = "甲一架"
    places["shelf"].save()
    return cast


def both(event) -> tuple[str, str]:
    english, chinese = words(event, "en"), words(event, "zh-hans")
    assert CHINESE.search(chinese) and not english_in(chinese), (chinese, english_in(chinese))
    return english, chinese


def test_custody_events_name_the_borrower_the_due_day_and_the_request(
    named, make_media, places, chinese_catalogue  # noqa: F811
):
    jacket = make_media("J-7")
    today = timezone.localdate()
    asked = services.loan_request_make(
        requester=named["doctor"], media=jacket, needed_from=today, needed_until=today, purpose="clinic"
    )
    services.loan_request_approve(request=asked, actor=named["staff"])
    services.media_check_out(media=jacket, borrower=named["doctor"], actor=named["staff"], due_at=DUE)
    english, chinese = both(last(EventKind.CHECKED_OUT))
    assert english == f"checked out to Ming Li, due Dec. 1, 2026; for the request made in event {asked.created_seq}"
    assert "Li Ming" in chinese or "Ming Li" in chinese
    assert "2026年12月1日" in chinese and str(asked.created_seq) in chinese
    services.media_return(media=jacket, actor=named["staff"])
    english, chinese = both(last(EventKind.RETURNED))
    assert english.startswith("returned")
    english, chinese = both(last(EventKind.MEDIA_REGISTERED))
    assert english == "registered as Film jacket J-7, home 甲一架 (FR-A1)"
    assert "胶片袋" in chinese and "J-7" in chinese


def test_request_events_say_which_request_and_why(named, make_media, chinese_catalogue):  # noqa: F811
    jacket = make_media("J-8")
    today = timezone.localdate()
    asked = services.loan_request_make(
        requester=named["doctor"], media=jacket, needed_from=today, needed_until=today + timedelta(days=2),
        purpose="肿瘤会诊",
    )
    english, chinese = both(last(EventKind.REQUEST_MADE))
    assert "loan requested for" in english and "purpose: 肿瘤会诊" in english
    services.loan_request_deny(request=asked, actor=named["staff"], reason="重复申请")
    english, chinese = both(last(EventKind.REQUEST_DENIED))
    assert english == f"request made in event {asked.created_seq} denied: 重复申请"
    assert chinese == f"事件 {asked.created_seq} 中提出的申请已拒绝：重复申请"


def test_flags_are_raised_and_cleared_in_words_and_the_sweeps_reason_is_translated(
    named, make_media, chinese_catalogue  # noqa: F811
):
    jacket = make_media("J-9")
    services.media_check_out(
        media=jacket, borrower=named["doctor"], actor=named["staff"],
        due_at=timezone.now() + timedelta(days=1),
    )
    services.sweep(now=timezone.now() + timedelta(days=5))
    english, chinese = both(last(EventKind.FLAG_RAISED))
    assert english.startswith("flag raised: Overdue; was due ") and "borrower doctor" in english
    assert "逾期" in chinese
    services.media_return(media=jacket, actor=named["staff"])
    services.sweep(now=timezone.now() + timedelta(days=6))
    english, chinese = both(last(EventKind.FLAG_CLEARED))
    assert english.startswith(
        "flag cleared: Overdue: no longer overdue: returned, renewed or handed over"
    ), english
    assert "不再逾期：已归还、已续借或已转交" in chinese


def test_hand_overs_name_the_receiver_and_the_offer(named, make_media, chinese_catalogue):  # noqa: F811
    jacket = make_media("J-10")
    services.media_check_out(media=jacket, borrower=named["doctor"], actor=named["staff"])
    offer = services.handover_offer(media=jacket, actor=named["doctor"], to_holder=named["doctor2"], note="查房")
    english, chinese = both(last(EventKind.HANDOVER_OFFERED))
    assert english.startswith("hand-over offered to Jing Chen; note: 查房")
    assert chinese.startswith("发起转交给 Jing Chen；备注：查房")
    services.handover_decline(handover=offer, actor=named["doctor2"], reason="非本人患者")
    english, chinese = both(last(EventKind.HANDOVER_DECLINED))
    assert english == f"hand-over offered in event {offer.offered_seq} declined: 非本人患者"
    again = services.handover_offer(media=jacket, actor=named["doctor"], to_holder=named["doctor2"])
    services.handover_accept(handover=again, actor=named["doctor2"])
    english, chinese = both(last(EventKind.TRANSFERRED))
    assert english.startswith(f"hand-over offered in event {again.offered_seq} accepted: handed to Jing Chen")


def test_discs_say_how_many_studies_and_files(named, make_media, chinese_catalogue):  # noqa: F811
    from archive.models import Patient, Study

    patient = Patient.objects.create(patient_id="MRN-1", name="Test")
    studies = [
        Study.objects.create(study_instance_uid=f"1.2.3.{n}", patient=patient) for n in range(3)
    ]
    disc = make_media("CD-1", kind="cd")
    services.media_disc_imported(
        media=disc, manifest_id=1, studies=studies, actor=named["staff"],
        summary={"files": 1200, "bytes": 734003200, "series": 4, "problems": 0, "dicomdir_sha256": "ab" * 32},
    )
    english, chinese = both(last(EventKind.DISC_IMPORTED))
    assert english.startswith("disc imported: 3 studies; 1,200 files, 700.0\xa0MB, 0 problems"), english
    assert "dicomdir_sha256" not in english and "DICOMDIR SHA-256: " + "ab" * 32 in english
    services.media_disc_verified(
        media=disc, manifest_id=1, verdict=DiscVerdict.ALTERED, actor=named["staff"],
        summary={"files_checked": 1200, "missing": 2, "changed": 1, "extra": 0, "missing_paths": ["A/1", "A/2"]},
    )
    english, chinese = both(last(EventKind.DISC_VERIFIED))
    assert english.startswith("disc verified: 2 missing, 1 changed, 0 added; 1,200 files checked")
    assert "missing files: A/1, A/2" in english
    services.media_studies_link(media=disc, studies=studies[:1], source=StudySource.PACS, actor=named["staff"])
    english, chinese = both(last(EventKind.STUDIES_LINKED))
    assert english.startswith("1 study linked (Found in the PACS)")


def test_a_signature_names_the_event_it_signs(named, make_media, chinese_catalogue):  # noqa: F811
    jacket = make_media("J-11")
    loan = services.media_check_out(media=jacket, borrower=named["doctor"], actor=named["staff"])
    services.signature_add(event_seq=loan.out_seq, image=drawn(), actor=named["staff"])
    english, chinese = both(last(EventKind.SIGNATURE_ADDED))
    assert english.startswith(f"signature added for event {loan.out_seq}")
    assert str(loan.out_seq) in chinese


def test_inventories_and_reminders_say_what_they_counted_and_whom_they_reminded(
    named, make_media, places, mailoutbox, chinese_catalogue  # noqa: F811
):
    jacket = make_media("J-14")
    make_media("J-15")
    session = services.inventory_start(scope=places["shelf"], actor=named["staff"])
    services.inventory_record_reads(session=session, uids=[])
    services.inventory_close(session=session, actor=named["staff"])
    english, chinese = both(last(EventKind.INVENTORY_CLOSED))
    assert english.startswith(f"inventory {session.pk} closed; 0 found, 2 missing, 0 misplaced, 0 unknown tags")
    assert "expected: 2" in english and "missing: J-14, J-15" in english
    assert chinese.startswith(f"盘点 {session.pk} 已结束；找到 0 件，缺失 2 件")
    named["doctor"].email = "li.ming@hospital.example"
    named["doctor"].save()
    loan = services.media_check_out(media=jacket, borrower=named["doctor"], actor=named["staff"])
    services.loan_remind(loan=loan, actor=named["staff"])
    english, chinese = both(last(EventKind.REMINDER_SENT))
    assert english.startswith("reminder sent to doctor; sent by hand")
    assert "e-mail address: li.ming@hospital.example" in english


def test_an_unknown_payload_key_is_still_shown(named, make_media, chinese_catalogue):  # noqa: F811
    jacket = make_media("J-12")
    with translation.override("en"):
        request = EventRequest(EventKind.FLAG_RAISED, media=jacket, actor=named["staff"])
        ledger.append(request, payload={"kind": FlagKind.NOT_SEEN, "shelf_note": "behind the radiator"})
    event = last(EventKind.FLAG_RAISED)
    english, chinese = words(event, "en"), words(event, "zh-hans")
    assert english == "flag raised: Not seen where it should be | shelf_note: behind the radiator"
    assert chinese == "标记异常：未在应在位置识读到 | shelf_note：behind the radiator"


def test_the_chain_pages_show_the_words_not_the_keys(named, make_media, page_for, chinese_catalogue):  # noqa: F811
    jacket = make_media("J-13")
    services.media_check_out(media=jacket, borrower=named["doctor"], actor=named["staff"], due_at=DUE)
    auditor = page_for("auditor")
    auditor.cookies["django_language"] = "zh-hans"
    chain = auditor.get("/audit/chain/?subject_kind=media&subject=J-13").content.decode()
    item = auditor.get("/media/J-13/").content.decode()
    for html in (chain, item):
        assert "2026年12月1日" in html
        assert "due_at" not in html and "home_location" not in html
    english = page_for("auditor").get("/audit/chain/?subject_kind=media&subject=J-13").content.decode()
    assert "checked out to Ming Li, due Dec. 1, 2026" in english
