"""The access log says what each read or export asked, in the reader's language: the period,
the kinds of event, an export's format, rows and range — not the stored keys."""
import re

from django.test import Client

from tracker.audit import record_access
from tracker.choices import AccessAction, AccessSubject


def access_log(user, language: str) -> str:
    client = Client()
    client.force_login(user)
    client.cookies["django_language"] = language
    response = client.get("/audit/access-log/")
    assert response.status_code == 200
    html = response.content.decode()
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_an_export_and_a_chain_read_are_described_not_dumped(cast):
    record_access(
        user=cast["auditor"], action=AccessAction.EXPORTED, subject_kind=AccessSubject.PATIENT,
        subject="MRN-1",
        detail={
            "filters": {"subject_kind": "patient", "subject": "MRN-1", "from": "2026-11-01",
                        "to": None, "kinds": ["checked_out", "returned"]},
            "format": "csv", "rows": 12, "first_seq": 3, "last_seq": 1204, "ledger_size": 20431,
        },
    )
    record_access(
        user=cast["auditor"], action=AccessAction.VIEWED, subject_kind=AccessSubject.MEDIA,
        subject="J-1", detail={"events": 7, "page": 2, "custom_note": "kept"},
    )

    english = access_log(cast["auditor"], "en")
    assert "format: CSV" in english and "rows: 12" in english
    assert "first event: 3" in english and "last event: 1,204" in english
    assert "ledger size: 20,431" in english
    assert "kinds: Checked out, Returned" in english
    assert "events shown: 7" in english
    assert "custom_note: kept" in english  # a key we do not know is still shown
    for raw in ("first_seq", "ledger_size", "subject_kind", "'checked_out'", "filters"):
        assert raw not in english, raw

    chinese = access_log(cast["auditor"], "zh-hans")
    detail = chinese[chinese.index("MRN-1"):]
    assert "CSV" in detail and "1204" in detail and "；" in detail  # Chinese separators
    export = detail[:detail.index("20431") + 5]
    assert not re.search(r"[A-Za-z]{2,}", export.replace("CSV", "").replace("MRN", "")), export
