"""Why the ledger failed verification is said in the reader's language on the auditors' pages and
on the home page, while verify_ledger --json and the API keep their English sentence."""
import re

import pytest
from django.conf import settings
from django.test import Client

from tests.test_translations import chinese_catalogue, english_on  # noqa: F401
from tracker import ledger, services
from tracker.audit import ledger_verify_recorded
from tracker.choices import AccessAction, AccessSubject
from tracker.models import AccessLog

from .tampering import raw

pytestmark = pytest.mark.django_db


def chinese(user) -> Client:
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    client.force_login(user)
    return client


@pytest.fixture
def tampered(make_media, cast, chinese_catalogue):  # noqa: F811
    jacket = make_media("FJ-1")
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=jacket, actor=cast["staff"])
    raw("UPDATE tracker_custodyevent SET holder_id = %s WHERE seq = 2", [cast["doctor2"].pk])
    return jacket


def reason_on_audit_page(html: str) -> str:
    found = re.search(r"<p>原因: (.*?)</p>", html, re.S)
    assert found, html
    return found.group(1).strip()


def verification_on_home(html: str) -> str:
    found = re.search(r'<p data-verification="broken">(.*?)</p>', html, re.S)
    assert found, html
    return found.group(1)


def test_a_tampered_ledger_is_explained_in_chinese_on_the_audit_and_home_pages(tampered, cast):
    auditor = chinese(cast["auditor"])
    page = auditor.post("/audit/verify/", {"scope": "ledger"}, follow=True).content.decode()
    reason = reason_on_audit_page(page)
    assert reason == "事件 2 已被篡改：其哈希值与内容不符。"
    assert english_on(f"<p>{reason}</p>") == []
    home = verification_on_home(auditor.get("/home/").content.decode())
    assert "事件 2 已被篡改：其哈希值与内容不符。" in home
    assert english_on(home) == [] and "was altered" not in home
    # The record keeps the English sentence (the API's and verify_ledger's) and its code.
    detail = AccessLog.objects.get(action=AccessAction.VERIFIED).detail
    assert detail["reason"] == "event 2 was altered: its hash does not match its content"
    assert (detail["reason_code"], detail["reason_params"]) == ("altered", {"seq": 2})


def test_the_same_verification_reads_in_english_for_an_english_reader(tampered, cast):
    english = Client()
    english.force_login(cast["auditor"])
    page = english.post("/audit/verify/", {"scope": "ledger"}, follow=True).content.decode()
    assert "Reason: Event 2 was altered: its hash does not match its content." in page


@pytest.fixture
def three_events(make_media, cast):
    jacket = make_media("FJ-2")
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=jacket, actor=cast["staff"])
    ledger.checkpoint()


def shown_reason(cast, entry) -> str:
    reason = reason_on_audit_page(chinese(cast["auditor"]).get(f"/audit/?shown={entry.pk}").content.decode())
    assert english_on(f"<p>{reason}</p>") == [], reason
    return reason


def test_a_missing_event_in_a_range_and_in_the_ledger_is_named_in_chinese(three_events, cast, chinese_catalogue):  # noqa: F811
    raw("DELETE FROM tracker_custodyevent WHERE seq = 2")
    ranged = ledger_verify_recorded(user=cast["auditor"], first=1, last=3)
    whole = ledger_verify_recorded(user=cast["auditor"])
    assert shown_reason(cast, ranged) == "事件 2 缺失或顺序错乱（实际读到 3）。"
    assert shown_reason(cast, whole) == "事件 2 缺失或顺序错乱（实际读到 3）。"


def test_a_ledger_shorter_than_its_signed_checkpoint_is_named_in_chinese(three_events, cast, chinese_catalogue):  # noqa: F811
    raw("DELETE FROM tracker_custodyevent WHERE seq = 3")
    whole = ledger_verify_recorded(user=cast["auditor"])
    assert whole.detail["reason"] == "a signed checkpoint covers 3 events but the ledger holds 2"
    assert shown_reason(cast, whole) == "已签名检查点覆盖 3 个事件，但保管台账中只有 2 个。"


def test_a_verification_recorded_before_reason_codes_shows_its_sentence(cast, make_media, chinese_catalogue):  # noqa: F811
    make_media("FJ-3")
    old = AccessLog.objects.create(
        user=cast["auditor"], action=AccessAction.VERIFIED, subject_kind=AccessSubject.LEDGER,
        detail={"scope": "ledger", "ok": False, "events": 1, "head_hash": "", "first_bad_seq": 1,
                "reason": "event 1 was altered: its hash does not match its content",
                "checkpoints_checked": 0, "seconds": 0.01},
    )
    shown = chinese(cast["auditor"]).get(f"/audit/?shown={old.pk}").content.decode()
    assert reason_on_audit_page(shown) == "event 1 was altered: its hash does not match its content"
