"""The auditors' API: events a question covers (recorded), the access log, verify now."""
from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import reset_generator_stats

from archive.models import Patient
from tracker import ledger, services
from tracker.models import AccessLog, CustodyEvent

from .tampering import raw

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(make_media, cast, places):
    patient = Patient.objects.create(patient_id="P-300", name="Zhang Wei")
    jacket = make_media("FJ-3", patient=patient)
    make_media("CD-3")
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_transfer(media=jacket, to_holder=cast["doctor2"], actor=cast["doctor"])
    services.media_return(media=jacket, actor=cast["staff"])
    return jacket


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


# --- events ---------------------------------------------------------------------------------------


def test_it_answers_a_patients_events_newest_first_and_records_the_read(client_for, cast, history):
    response = client_for("auditor").get(
        "/api/v1/audit/events/", {"subject_kind": "patient", "subject": "P-300"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 4
    assert [e["seq"] for e in body["results"]] == [5, 4, 3, 1]
    first = body["results"][0]
    assert (first["kind"], first["media"], first["actor"]) == ("returned", "FJ-3", "staff")
    assert first["hash"] == CustodyEvent.objects.get(seq=5).hash
    entry = AccessLog.objects.get()
    assert (entry.user, entry.action, entry.subject_kind, entry.subject) == (
        cast["auditor"], "viewed", "patient", "P-300"
    )
    assert entry.detail["events"] == 4 and entry.detail["offset"] == 0
    assert entry.path.startswith("/api/v1/audit/events/?")


def test_it_filters_by_kinds_and_pages_with_limit_and_offset(client_for, history):
    api = client_for("admin")
    body = api.get("/api/v1/audit/events/", {"kinds": ["checked_out", "transferred"]}).json()
    assert [e["kind"] for e in body["results"]] == ["transferred", "checked_out"]
    page = api.get("/api/v1/audit/events/", {"limit": 2, "offset": 2}).json()
    assert page["count"] == 5 and [e["seq"] for e in page["results"]] == [3, 2]
    entries = list(AccessLog.objects.order_by("id"))
    assert [(e.subject_kind, e.subject) for e in entries] == [("events", ""), ("events", "")]
    assert (entries[1].detail["offset"], entries[1].detail["limit"]) == (2, 2)


def test_an_unknown_subject_is_a_404_that_says_so_and_records_nothing(client_for, history):
    error = assert_error(
        client_for("auditor").get("/api/v1/audit/events/", {"subject_kind": "media", "subject": "FJ-404"}),
        404, "not_found",
    )
    assert "No item has the code “FJ-404”" in error["message"]
    assert not AccessLog.objects.exists()


def test_a_wrong_question_is_a_400_naming_the_fields(client_for, history):
    error = assert_error(
        client_for("auditor").get("/api/v1/audit/events/", {"subject": "FJ-3", "kinds": "teleported"}),
        400, "invalid",
    )
    assert set(error["details"]["fields"]) == {"subject_kind", "kinds"}
    assert not AccessLog.objects.exists()


# --- the access log --------------------------------------------------------------------------------


def test_it_lists_the_access_log_with_filters(client_for, cast, history):
    client_for("auditor").get("/api/v1/audit/events/", {"subject_kind": "media", "subject": "FJ-3"})
    client_for("admin").post("/api/v1/audit/verify/", {}, format="json")
    api = client_for("auditor")
    everything = api.get("/api/v1/audit/access-log/").json()
    assert [(e["user"], e["action"], e["subject"]) for e in everything["results"]] == [
        ("admin", "verified", ""), ("auditor", "viewed", "FJ-3"),
    ]
    assert api.get("/api/v1/audit/access-log/", {"action": "viewed"}).json()["count"] == 1
    assert api.get("/api/v1/audit/access-log/", {"user": "admin"}).json()["count"] == 1
    assert api.get("/api/v1/audit/access-log/", {"subject": "fj-3"}).json()["count"] == 1
    assert_error(api.get("/api/v1/audit/access-log/", {"user": "ghost"}), 400, "invalid")
    assert AccessLog.objects.count() == 2, "reading the access log is not itself recorded"


# --- verify -----------------------------------------------------------------------------------------


def test_it_verifies_the_whole_ledger_and_records_it(client_for, cast, history):
    ledger.checkpoint()
    body = client_for("auditor").post("/api/v1/audit/verify/", {}, format="json").json()
    entry = AccessLog.objects.get()
    assert body == {
        "id": entry.pk, "at": body["at"], "user": "auditor", "scope": "ledger", "ok": True,
        "events": 5, "head_hash": CustodyEvent.objects.get(seq=5).hash, "first_bad_seq": None,
        "reason": "", "checkpoints_checked": 1, "first": None, "last": None,
        "seconds": body["seconds"],
    }
    assert entry.detail["ok"] is True


def test_it_verifies_a_range_and_names_a_tampered_row(client_for, cast, history):
    api = client_for("admin")
    body = api.post("/api/v1/audit/verify/", {"first": 2, "last": 4}, format="json").json()
    assert (body["scope"], body["ok"], body["events"], body["first"], body["last"]) == ("range", True, 3, 2, 4)
    raw("UPDATE tracker_custodyevent SET actor_id = %s WHERE seq = 4", [cast["staff"].pk])
    broken = api.post("/api/v1/audit/verify/", {"first": 2, "last": 5}, format="json").json()
    assert (broken["ok"], broken["first_bad_seq"]) == (False, 4)
    whole = api.post("/api/v1/audit/verify/", {}, format="json").json()
    assert (whole["ok"], whole["first_bad_seq"]) == (False, 4)
    assert AccessLog.objects.filter(action="verified").count() == 3


@pytest.mark.parametrize(
    "body, words",
    [({"first": 3}, "both the first and the last"), ({"first": 2, "last": 50}, "within 1..5"),
     ({"first": 0, "last": 2}, None)],
)
def test_a_wrong_range_is_a_400_and_records_nothing(client_for, history, body, words):
    error = assert_error(client_for("auditor").post("/api/v1/audit/verify/", body, format="json"), 400, "invalid")
    if words:
        assert words in error["message"]
    assert not AccessLog.objects.exists()


# --- the schema ------------------------------------------------------------------------------------


def test_the_audit_endpoints_have_exact_schemas_without_warnings(tmp_path):
    reset_generator_stats()
    out, err = StringIO(), StringIO()
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"),
        stdout=out, stderr=err,
    )
    assert "warning" not in err.getvalue().lower(), err.getvalue()
    schema = (tmp_path / "schema.yaml").read_text()
    for path in ("/api/v1/audit/events/", "/api/v1/audit/access-log/", "/api/v1/audit/verify/"):
        assert f"{path}:" in schema
    assert "name: subject_kind" in schema and "name: kinds" in schema
    assert "AuditVerificationOut" in schema
