"""The auditors' pages: ledger integrity and "Verify now", custody chains (each view recorded),
flags and their history, the access log."""
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from archive.models import Patient
from tracker import ledger, services
from tracker.models import AccessLog, CustodyEvent

from .tampering import raw

pytestmark = pytest.mark.django_db


def page_client(user, **kwargs) -> Client:
    client = Client(**kwargs)
    client.force_login(user)
    return client


@pytest.fixture
def auditor(cast) -> Client:
    return page_client(cast["auditor"])


@pytest.fixture
def history(make_media, cast, places):
    patient = Patient.objects.create(patient_id="P-200", name="Li Lei")
    jacket = make_media("FJ-1", patient=patient)
    make_media("CD-9")
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=jacket, actor=cast["staff"])
    return {"patient": patient, "jacket": jacket}


def text(response) -> str:
    return response.content.decode()


def seqs_shown(response) -> list[int]:
    return [int(seq) for seq in re.findall(r'data-seq="(\d+)"', text(response))]


# --- home: ledger integrity ----------------------------------------------------------------------


def test_the_home_page_says_when_nothing_was_verified_or_signed_yet(auditor, history):
    page = auditor.get("/audit/")
    assert page.status_code == 200
    body = text(page)
    assert "has not been verified from this workspace yet" in body
    assert "No signed checkpoints yet" in body
    assert "The custody ledger holds 4 events." in body
    assert 'name="csrfmiddlewaretoken"' in body
    assert not AccessLog.objects.exists(), "the home page reads no patient data"


def test_verify_now_records_and_shows_an_intact_ledger_in_green(auditor, cast, history):
    ledger.checkpoint()
    response = auditor.post("/audit/verify/", {"scope": "ledger"})
    entry = AccessLog.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/audit/?shown={entry.pk}#verdict"
    assert (entry.user, entry.action, entry.detail["ok"]) == (cast["auditor"], "verified", True)

    body = text(auditor.get(response["Location"]))
    assert 'data-verdict="intact"' in body and "verdict-ok" in body
    assert "The ledger is intact" in body
    assert "4 events, and 1 signed checkpoints agree with them." in body
    assert "1 checkpoint is stored" in body
    assert CustodyEvent.objects.get(seq=4).hash in body
    assert "Verified by auditor" in body
    # The home page keeps showing it as the last verification.
    assert "The ledger is intact" in text(auditor.get("/audit/"))


def test_verify_now_over_htmx_answers_the_verdict_panel_alone(auditor, history):
    response = auditor.post("/audit/verify/", {"scope": "ledger"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    body = text(response)
    assert "<html" not in body and 'data-verdict="intact"' in body
    assert "4 events; no signed checkpoint to compare them with yet." in body
    # ... and the list of recent verifications, swapped out of band, now names it.
    assert 'id="recent-verifications" aria-labelledby="verifications-title" hx-swap-oob="true"' in body
    assert "whole ledger" in body and "✓ intact" in body
    assert AccessLog.objects.filter(action="verified").count() == 1


def test_a_broken_ledger_is_shown_in_red_naming_the_first_bad_seq(auditor, cast, history):
    raw("UPDATE tracker_custodyevent SET holder_id = %s WHERE seq = 3", [cast["doctor2"].pk])
    body = text(auditor.post("/audit/verify/", {"scope": "ledger"}, follow=True))
    assert 'data-verdict="broken"' in body and "verdict-bad" in body
    assert "The ledger is broken" in body
    assert "First bad event: 3" in body
    assert "Event 3 was altered: its hash does not match its content." in body


def test_a_range_is_verified_and_recorded(auditor, history):
    body = text(auditor.post("/audit/verify/", {"scope": "range", "first": 2, "last": 4}, follow=True))
    assert "Events 2–4 are intact" in body
    assert "3 events checked" in body
    assert AccessLog.objects.get().subject == "2..4"


def test_a_range_verification_of_a_tampered_row_names_it(auditor, history):
    raw("UPDATE tracker_custodyevent SET tag_uid = 'AB' WHERE seq = 2")
    body = text(auditor.post("/audit/verify/", {"scope": "range", "first": 1, "last": 3}, follow=True))
    assert "Events 1–3: broken" in body and "First bad event: 2" in body


@pytest.mark.parametrize(
    "form, words",
    [
        ({"first": 4, "last": 2}, "the last event must not be below the first"),
        ({"first": 1, "last": 99}, "Choose a range within 1..4"),
        ({"first": "", "last": 3}, "This field is required"),
    ],
)
def test_a_wrong_range_is_explained_and_records_nothing(auditor, history, form, words):
    response = auditor.post("/audit/verify/", {"scope": "range", **form})
    assert response.status_code == 400
    assert words in text(response)
    htmx = auditor.post("/audit/verify/", {"scope": "range", **form}, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 200 and words in text(htmx) and 'role="alert"' in text(htmx)
    assert not AccessLog.objects.exists()


def test_verify_now_needs_the_csrf_token(cast, history):
    client = page_client(cast["auditor"], enforce_csrf_checks=True)
    assert client.post("/audit/verify/", {"scope": "ledger"}).status_code == 403
    assert not AccessLog.objects.exists()


def test_the_home_page_lists_checkpoints_and_recent_activity(auditor, history):
    checkpoint = ledger.checkpoint()
    body = text(auditor.get("/audit/"))
    assert f'title="{checkpoint.hash}"' in body and checkpoint.key_id in body
    assert "1 checkpoint is stored" in body
    assert 'href="/audit/chain/?subject_kind=media&amp;subject=FJ-1"' in body
    assert "Li Lei" not in body and "P-200" not in body, "no patient on the home page"


# --- a custody chain ------------------------------------------------------------------------------


def test_the_chain_page_asks_first_and_records_nothing_until_asked(auditor, history):
    body = text(auditor.get("/audit/chain/"))
    assert "Choose a subject" in body
    assert '<label for="id_subject_kind">' in body and '<label for="id_from">' in body
    assert not AccessLog.objects.exists()


def test_an_items_chain_is_shown_newest_first_and_recorded(auditor, cast, history):
    response = auditor.get("/audit/chain/", {"subject_kind": "media", "subject": "FJ-1"})
    assert response.status_code == 200
    assert seqs_shown(response) == [4, 3, 1]
    body = text(response)
    assert f'title="{CustodyEvent.objects.get(seq=4).hash}"' in body
    assert 'href="/audit/export.csv?subject_kind=media&amp;subject=FJ-1"' in body
    assert 'href="/audit/export.pdf?subject_kind=media&amp;subject=FJ-1"' in body
    entry = AccessLog.objects.get()
    assert (entry.user, entry.action, entry.subject_kind, entry.subject) == (
        cast["auditor"], "viewed", "media", "FJ-1"
    )
    assert entry.detail == {
        "subject_kind": "media", "subject": "FJ-1", "from": None, "to": None, "kinds": [],
        "page": 1, "events": 3,
    }
    assert entry.path == "/audit/chain/?subject_kind=media&subject=FJ-1"


def test_a_patients_chain_is_recorded_under_their_id(auditor, history):
    response = auditor.get(
        "/audit/chain/", {"subject_kind": "patient", "subject": "P-200", "kinds": ["checked_out", "returned"]}
    )
    assert seqs_shown(response) == [4, 3]
    assert "Li Lei" in text(response)
    entry = AccessLog.objects.get()
    assert (entry.subject_kind, entry.subject, entry.detail["kinds"]) == (
        "patient", "P-200", ["checked_out", "returned"]
    )
    assert "kinds=checked_out&amp;kinds=returned" in text(response)


def test_an_unknown_subject_is_a_clear_message_not_an_error(auditor, history):
    response = auditor.get("/audit/chain/", {"subject_kind": "patient", "subject": "P-404"})
    assert response.status_code == 404
    body = text(response)
    assert "No patient has the ID “P-404”" in body and 'role="alert"' in body
    assert 'value="P-404"' in body, "the form keeps what was typed"
    assert not AccessLog.objects.exists()


def test_a_wrong_question_is_explained(auditor, history):
    response = auditor.get("/audit/chain/", {"subject_kind": "media", "from": "2026-02-02", "to": "2026-02-01"})
    assert response.status_code == 400
    assert "the number on its label" in text(response)
    assert "ends before it starts" in text(response)
    assert not AccessLog.objects.exists()


def test_a_period_with_no_events_says_so(auditor, history):
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = auditor.get("/audit/chain/", {"subject_kind": "media", "subject": "FJ-1", "to": yesterday})
    assert response.status_code == 200
    assert "No events match" in text(response)
    assert AccessLog.objects.get().detail["events"] == 0


def test_long_chains_come_a_hundred_events_a_page_and_every_page_is_recorded(auditor, cast, places, history):
    for n in range(102):
        services.media_seen(media=history["jacket"], location=places["shelf2" if n % 2 else "shelf"],
                            actor=cast["staff"])
    question = {"subject_kind": "media", "subject": "FJ-1"}
    first = auditor.get("/audit/chain/", question)
    assert seqs_shown(first) == list(range(106, 6, -1))
    assert "Page 1 of 2" in text(first)
    assert 'href="?subject_kind=media&amp;subject=FJ-1&amp;page=2"' in text(first)
    second = auditor.get("/audit/chain/", {**question, "page": 2})
    assert seqs_shown(second) == [6, 5, 4, 3, 1]
    pages = sorted(entry.detail["page"] for entry in AccessLog.objects.all())
    assert pages == [1, 2]
    assert {entry.subject for entry in AccessLog.objects.all()} == {"FJ-1"}


# --- flags ----------------------------------------------------------------------------------------


@pytest.fixture
def flagged(make_media, cast, places):
    due = timezone.now() + timedelta(hours=1)
    loan = services.media_check_out(media=make_media("FJ-7"), borrower=cast["doctor"], actor=cast["staff"],
                                    due_at=due)
    services.media_transfer(media=make_media("CD-7"), to_location=places["courier"], actor=cast["staff"])
    services.sweep(now=timezone.now() + timedelta(days=3), remind=False)
    return loan


def test_open_flags_and_their_history(auditor, cast, flagged):
    body = text(auditor.get("/audit/flags/"))
    assert "2 open flags" in body
    assert "FJ-7" in body and "CD-7" in body
    assert body.count("▲") == 2 and "▼" not in body

    services.media_return(media=flagged.media, actor=cast["staff"])
    services.sweep(now=timezone.now() + timedelta(days=3), remind=False)
    overdue = text(auditor.get("/audit/flags/", {"kind": "overdue"}))
    assert "0 open flags" in overdue and "No open flags" in overdue
    assert overdue.count("▲") == 1 and overdue.count("▼") == 1
    assert "no longer overdue" in overdue
    assert "CD-7" not in overdue
    assert 'href="/flags/?kind=overdue"' in overdue


def test_the_flags_page_says_when_there_are_none(auditor, history):
    body = text(auditor.get("/audit/flags/"))
    assert "No open flags" in body and "No flag has been raised yet." in body


# --- the access log ------------------------------------------------------------------------------


def test_the_access_log_shows_who_viewed_what_and_filters(auditor, cast, history):
    page_client(cast["admin"]).get("/audit/chain/", {"subject_kind": "media", "subject": "FJ-1"})
    auditor.get("/audit/chain/", {"subject_kind": "patient", "subject": "P-200"})
    auditor.post("/audit/verify/", {"scope": "ledger"})

    everything = text(auditor.get("/audit/access-log/"))
    assert "3 entries, newest first." in everything
    assert "P-200" in everything and "FJ-1" in everything and "✓ intact" in everything

    mine = auditor.get("/audit/access-log/", {"user": "admin"})
    assert "1 entry, newest first." in text(mine) and "P-200" not in text(mine)
    patients = text(auditor.get("/audit/access-log/", {"subject_kind": "patient"}))
    assert "1 entry" in patients and "P-200" in patients
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert "No entries match" in text(auditor.get("/audit/access-log/", {"to": yesterday}))
    unknown = auditor.get("/audit/access-log/", {"user": "ghost"})
    assert unknown.status_code == 400 and "Nobody has the username “ghost”" in text(unknown)
    assert AccessLog.objects.count() == 3, "reading the access log is not itself recorded"


def test_the_access_log_starts_empty(auditor, history):
    assert "Nobody has viewed, exported or verified anything yet." in text(auditor.get("/audit/access-log/"))
