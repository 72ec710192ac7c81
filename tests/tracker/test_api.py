"""The REST API as a client uses it: what each call does, what it refuses, and in what shape."""
import json
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import RequestFactory
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.drainage import reset_generator_stats

from archive.models import Patient
from tracker import services
from tracker.choices import EventKind, LocationKind, MediaKind, MediaStatus, RequestStatus
from tracker.models import CustodyEvent, Loan, LoanPolicy, LoanRequest, Tag
from tracker.views import server_error

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client_for):
    return client_for("staff")


def error_of(response, status: int, code: str) -> dict:
    """The error body, after checking the status and the documented shape."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"].strip()
    return body["error"]


def events() -> int:
    return CustodyEvent.objects.count()


# --- media ---------------------------------------------------------------------------------


def test_it_registers_media_on_its_home_shelf(staff, places):
    Patient.objects.create(patient_id="MRN-100", name="Ada Lovelace")

    response = staff.post(
        "/api/v1/media/",
        {"code": "J-100", "kind": "film_jacket", "home_location": "FR-A1", "patient_id": "MRN-100"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["code"] == "J-100"
    assert body["status"] == MediaStatus.ON_SHELF
    assert body["current_location"] == "FR-A1"
    assert body["patient_id"] == "MRN-100"
    assert CustodyEvent.objects.get().kind == "media_registered"


def test_it_refuses_a_second_item_with_the_same_code(staff, make_media):
    make_media("J-100")
    before = events()

    response = staff.post(
        "/api/v1/media/", {"code": "J-100", "kind": "cd", "home_location": "FR-A1"}, format="json"
    )

    error = error_of(response, 409, "duplicate_code")
    assert "J-100" in error["message"]
    assert events() == before


def test_it_says_which_fields_are_wrong(staff, places):
    response = staff.post(
        "/api/v1/media/",
        {"kind": "vinyl", "home_location": "NOWHERE", "patient_id": "MRN-404"},
        format="json",
    )

    error = error_of(response, 400, "invalid")
    fields = error["details"]["fields"]
    assert set(fields) == {"code", "kind", "home_location", "patient_id"}
    assert "MRN-404" in fields["patient_id"][0]
    assert events() == 0


def test_it_answers_malformed_json_with_a_json_error(staff, places):
    response = staff.post("/api/v1/media/", "{not json", content_type="application/json")

    error_of(response, 400, "parse_error")


def test_it_answers_an_unknown_media_code_with_a_json_404(staff, places):
    for response in (
        staff.get("/api/v1/media/NOPE-1/"),
        staff.get("/api/v1/media/NOPE-1/chain/"),
        staff.post("/api/v1/media/NOPE-1/seen/", {"location": "FR-A1"}, format="json"),
        staff.post("/api/v1/media/NOPE-1/retire/", {"reason": "gone"}, format="json"),
    ):
        error = error_of(response, 404, "not_found")
        assert "NOPE-1" in error["message"]


def test_it_finds_media_by_tag_uid_however_the_reader_printed_it(staff, cast, make_media):
    jacket = make_media("J-200")
    make_media("J-201")
    services.tag_bind(uid="04A1B2C3D4E5F6", media=jacket, actor=cast["staff"])

    for query in ("04:a1:b2:c3:d4:e5:f6", "04-A1-B2-C3-D4-E5-F6", "04a1b2c3d4e5f6", "J-200"):
        response = staff.get("/api/v1/media/", {"q": query, "status": "on_shelf"})
        assert response.status_code == 200, response.content
        assert [m["code"] for m in response.json()["results"]] == ["J-200"], query


def test_it_records_where_an_item_was_seen(staff, make_media):
    make_media("J-300")

    response = staff.post("/api/v1/media/J-300/seen/", {"location": "FR-A2"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["current_location"] == "FR-A2"


def test_it_retires_an_item_for_good(staff, make_media):
    make_media("J-400")

    response = staff.post(
        "/api/v1/media/J-400/retire/", {"reason": "Films handed to the patient"}, format="json"
    )
    again = staff.post("/api/v1/loans/", {"media": "J-400", "borrower": "doctor"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == MediaStatus.RETIRED
    error_of(again, 409, "media_retired")


def test_it_wants_a_reason_to_retire(staff, make_media):
    make_media("J-401")

    response = staff.post("/api/v1/media/J-401/retire/", {}, format="json")

    assert "reason" in error_of(response, 400, "invalid")["details"]["fields"]


# --- tags ----------------------------------------------------------------------------------


def test_it_binds_a_tag_and_stores_its_uid_in_canonical_uppercase(staff, make_media):
    make_media("J-500")

    response = staff.post(
        "/api/v1/tags/bind/", {"uid": "04:a1:b2:c3:d4:e5:f6", "media": "J-500"}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["uid"] == "04A1B2C3D4E5F6"
    assert response.json()["media"] == "J-500"
    assert list(Tag.objects.values_list("uid", flat=True)) == ["04A1B2C3D4E5F6"]
    assert staff.get("/api/v1/media/J-500/").json()["tag_uid"] == "04A1B2C3D4E5F6"


def test_it_refuses_a_tag_that_is_already_on_another_item(staff, make_media):
    make_media("J-500")
    make_media("J-501")
    staff.post("/api/v1/tags/bind/", {"uid": "04:a1:b2:c3:d4:e5:f6", "media": "J-500"}, format="json")
    before = events()

    response = staff.post(
        "/api/v1/tags/bind/", {"uid": "04 A1 B2 C3 D4 E5 F6", "media": "J-501"}, format="json"
    )

    error = error_of(response, 409, "tag_bound_elsewhere")
    assert "J-500" in error["message"]
    assert error["details"]["media"] == "J-500"
    assert events() == before


def test_it_refuses_a_uid_no_reader_could_have_sent(staff, make_media):
    make_media("J-502")

    response = staff.post("/api/v1/tags/bind/", {"uid": "04:A1:B2", "media": "J-502"}, format="json")

    error = error_of(response, 400, "invalid")
    assert "3" in error["details"]["fields"]["uid"][0]


def test_it_unbinds_a_tag_and_keeps_the_history(staff, cast, make_media):
    jacket = make_media("J-503")
    services.tag_bind(uid="DEADBEEF", media=jacket, actor=cast["staff"])

    response = staff.post("/api/v1/tags/de:ad:be:ef/unbind/", {"reason": "Tag cracked"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {**response.json(), "uid": "DEADBEEF", "media": None}
    assert staff.get("/api/v1/media/J-503/").json()["tag_uid"] is None
    assert jacket.tag_bindings.get().unbound_at is not None
    error_of(staff.post("/api/v1/tags/DEADBEEF/unbind/", {}, format="json"), 409, "tag_not_bound")
    error_of(staff.post("/api/v1/tags/CAFEBABE/unbind/", {}, format="json"), 404, "unknown_tag")


# --- loans and transfers ---------------------------------------------------------------------


def test_it_checks_out_with_the_due_date_the_loan_policy_gives(staff, make_media):
    LoanPolicy.objects.create(name="Jackets", media_kind=MediaKind.FILM_JACKET, loan_days=21)
    LoanPolicy.objects.create(
        name="Jackets to departments",
        media_kind=MediaKind.FILM_JACKET,
        destination_kind=LocationKind.DEPARTMENT,
        loan_days=7,
    )
    make_media("J-600")
    make_media("J-601")

    plain = staff.post("/api/v1/loans/", {"media": "J-600", "borrower": "doctor"}, format="json")
    to_clinic = staff.post(
        "/api/v1/loans/",
        {"media": "J-601", "borrower": "doctor", "destination": "ORTHO"},
        format="json",
    )

    for response, days in ((plain, 21), (to_clinic, 7)):
        assert response.status_code == 201, response.content
        loan = response.json()
        length = parse_datetime(loan["due_at"]) - parse_datetime(loan["out_at"])
        assert abs(length - timedelta(days=days)) < timedelta(seconds=5)
        assert loan["borrower"] == "doctor"
        assert loan["returned_at"] is None
    assert staff.get("/api/v1/media/J-600/").json()["status"] == MediaStatus.ON_LOAN


def test_it_takes_an_explicit_due_date(staff, make_media):
    make_media("J-602")
    due = (timezone.now() + timedelta(days=3)).replace(microsecond=0)

    response = staff.post(
        "/api/v1/loans/",
        {"media": "J-602", "borrower": "doctor", "due_at": due.isoformat()},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert parse_datetime(response.json()["due_at"]) == due


def test_it_refuses_a_due_date_in_the_past(staff, make_media):
    make_media("J-603")

    response = staff.post(
        "/api/v1/loans/",
        {"media": "J-603", "borrower": "doctor", "due_at": (timezone.now() - timedelta(hours=1)).isoformat()},
        format="json",
    )

    error = error_of(response, 400, "invalid")
    assert "future" in error["details"]["fields"]["due_at"][0]
    assert not Loan.objects.exists()


def test_it_refuses_a_second_check_out_and_names_the_borrower(staff, cast, make_media):
    cast["doctor"].first_name, cast["doctor"].last_name = "Grace", "Hopper"
    cast["doctor"].save()
    make_media("J-604")
    staff.post("/api/v1/loans/", {"media": "J-604", "borrower": "doctor"}, format="json")
    before = events()

    response = staff.post("/api/v1/loans/", {"media": "J-604", "borrower": "doctor2"}, format="json")

    error = error_of(response, 409, "already_on_loan")
    assert "Grace Hopper" in error["message"]
    assert error["details"]["borrower"] == "doctor"
    assert events() == before


def test_it_returns_a_loan_once(staff, make_media):
    make_media("J-605")
    loan = staff.post("/api/v1/loans/", {"media": "J-605", "borrower": "doctor"}, format="json").json()

    returned = staff.post(f"/api/v1/loans/{loan['id']}/return/", {}, format="json")
    again = staff.post(f"/api/v1/loans/{loan['id']}/return/", {}, format="json")

    assert returned.status_code == 200, returned.content
    assert returned.json()["returned_at"] is not None
    media = staff.get("/api/v1/media/J-605/").json()
    assert (media["status"], media["current_location"], media["current_holder"]) == (
        MediaStatus.ON_SHELF, "FR-A1", None,
    )
    error = error_of(again, 409, "not_on_loan")
    assert "J-605" in error["message"]


def test_it_returns_to_another_shelf_when_asked(staff, make_media):
    make_media("J-606")
    loan = staff.post("/api/v1/loans/", {"media": "J-606", "borrower": "doctor"}, format="json").json()

    staff.post(f"/api/v1/loans/{loan['id']}/return/", {"location": "FR-A2"}, format="json")

    assert staff.get("/api/v1/media/J-606/").json()["current_location"] == "FR-A2"


def test_it_hands_an_item_on_loan_to_another_person(staff, make_media):
    make_media("J-700")
    first = staff.post("/api/v1/loans/", {"media": "J-700", "borrower": "doctor"}, format="json").json()

    response = staff.post("/api/v1/transfers/", {"media": "J-700", "to_holder": "doctor2"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["current_holder"] == "doctor2"
    loans = staff.get("/api/v1/loans/", {"media": "J-700"}).json()["results"]
    open_loans = [loan for loan in loans if loan["returned_at"] is None]
    assert [loan["borrower"] for loan in open_loans] == ["doctor2"]
    assert open_loans[0]["due_at"] == first["due_at"]
    transfers = staff.get("/api/v1/transfers/").json()["results"]
    assert [(t["from_holder"], t["to_holder"]) for t in transfers] == [("doctor", "doctor2")]


def test_it_moves_an_item_to_another_place(staff, make_media):
    make_media("J-701")

    response = staff.post("/api/v1/transfers/", {"media": "J-701", "to_location": "COURIER"}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["current_location"] == "COURIER"
    assert response.json()["status"] == MediaStatus.IN_TRANSIT


def test_it_will_not_hand_a_shelved_item_to_a_person(staff, make_media):
    make_media("J-702")

    response = staff.post("/api/v1/transfers/", {"media": "J-702", "to_holder": "doctor"}, format="json")

    error_of(response, 409, "not_on_loan")


def test_it_wants_a_destination_for_a_transfer(staff, make_media):
    make_media("J-703")

    response = staff.post("/api/v1/transfers/", {"media": "J-703"}, format="json")

    error_of(response, 400, "invalid")


# --- idempotent retries ----------------------------------------------------------------------


def test_it_answers_a_retried_check_out_with_the_same_loan_and_no_new_event(staff, make_media):
    make_media("J-800")
    body = {"media": "J-800", "borrower": "doctor", "event_id": str(uuid.uuid4())}

    first = staff.post("/api/v1/loans/", body, format="json")
    before = events()
    retry = staff.post("/api/v1/loans/", body, format="json")

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert events() == before
    assert CustodyEvent.objects.filter(event_id=body["event_id"]).count() == 1


def test_it_answers_a_retried_registration_with_the_same_item(staff, places):
    body = {"code": "J-801", "kind": "cd", "home_location": "FR-A1", "event_id": str(uuid.uuid4())}

    first = staff.post("/api/v1/media/", body, format="json")
    before = events()
    retry = staff.post("/api/v1/media/", body, format="json")

    assert retry.status_code == 201, retry.content
    assert retry.json() == first.json()
    assert events() == before


def test_it_refuses_an_event_id_reused_for_something_else(staff, make_media):
    make_media("J-802")
    event_id = str(uuid.uuid4())
    staff.post("/api/v1/loans/", {"media": "J-802", "borrower": "doctor", "event_id": event_id}, format="json")
    before = events()

    response = staff.post(
        "/api/v1/loans/", {"media": "J-802", "borrower": "doctor2", "event_id": event_id}, format="json"
    )

    error = error_of(response, 409, "event_conflict")
    assert error["details"]["event_id"] == event_id
    assert error["details"]["fields"] == ["holder_id"]
    assert events() == before


def test_it_answers_a_retried_return_and_refuses_one_that_asks_for_another_shelf(staff, make_media):
    make_media("J-803")
    loan = staff.post("/api/v1/loans/", {"media": "J-803", "borrower": "doctor"}, format="json").json()
    event_id = str(uuid.uuid4())
    path = f"/api/v1/loans/{loan['id']}/return/"

    first = staff.post(path, {"event_id": event_id}, format="json")
    before = events()
    retry = staff.post(path, {"event_id": event_id}, format="json")
    elsewhere = staff.post(path, {"event_id": event_id, "location": "FR-A2"}, format="json")

    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    error_of(elsewhere, 409, "event_conflict")
    assert events() == before


def test_it_refuses_to_return_an_old_loan_after_the_item_went_out_again(staff, make_media):
    make_media("J-804")
    old = staff.post("/api/v1/loans/", {"media": "J-804", "borrower": "doctor"}, format="json").json()
    staff.post(f"/api/v1/loans/{old['id']}/return/", {}, format="json")
    new = staff.post("/api/v1/loans/", {"media": "J-804", "borrower": "doctor2"}, format="json").json()

    response = staff.post(f"/api/v1/loans/{old['id']}/return/", {}, format="json")

    error_of(response, 409, "not_on_loan")
    assert staff.get(f"/api/v1/loans/{new['id']}/").json()["returned_at"] is None


# --- custody chain and ledger ----------------------------------------------------------------


def test_it_lists_the_custody_chain_newest_first_with_hashes(staff, make_media):
    make_media("J-900")
    loan = staff.post("/api/v1/loans/", {"media": "J-900", "borrower": "doctor"}, format="json").json()
    staff.post(f"/api/v1/loans/{loan['id']}/return/", {}, format="json")

    response = staff.get("/api/v1/media/J-900/chain/")

    assert response.status_code == 200
    chain = response.json()["results"]
    assert [event["kind"] for event in chain] == ["returned", "checked_out", "media_registered"]
    assert [event["seq"] for event in chain] == sorted((e["seq"] for e in chain), reverse=True)
    for newer, older in zip(chain, chain[1:]):
        assert newer["prev_hash"] == older["hash"]
    for event in chain:
        assert len(event["hash"]) == 64 and int(event["hash"], 16) >= 0
    assert chain[1]["holder"] == "doctor" and chain[1]["actor"] == "staff"


def test_it_reports_an_intact_ledger(client_for, make_media):
    make_media("J-901")

    response = client_for("auditor").get("/api/v1/ledger/verify/")

    assert response.status_code == 200
    assert response.json() == {**response.json(), "ok": True, "events": 1, "first_bad_seq": None}


# --- every error is JSON in one shape ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing-here/", "/api/v2/media/", "/api/", "/api/v1/loans/not-a-number/"]
)
def test_it_answers_an_unknown_api_address_with_a_json_404(staff, path):
    error = error_of(staff.get(path), 404, "not_found")
    assert path in error["message"]


def test_it_points_to_the_address_with_the_trailing_slash(staff):
    error = error_of(staff.get("/api/v1/media"), 404, "not_found")
    assert "/api/v1/media/" in error["message"]


@pytest.mark.parametrize(
    "method, path", [("delete", "/api/v1/media/"), ("get", "/api/v1/tags/bind/"), ("put", "/api/v1/loans/")]
)
def test_it_answers_a_wrong_method_with_a_json_405(staff, method, path):
    error_of(getattr(staff, method)(path), 405, "method_not_allowed")


def test_it_answers_a_server_error_under_the_api_in_json():
    response = server_error(RequestFactory().get("/api/v1/media/"))

    assert response.status_code == 500
    assert json.loads(response.content)["error"]["code"] == "server_error"


def test_it_keeps_the_html_error_page_outside_the_api():
    response = server_error(RequestFactory().get("/media/J-1/"))

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")


# --- the OpenAPI schema ------------------------------------------------------------------------


def test_it_publishes_a_valid_openapi_schema_without_warnings(tmp_path):
    reset_generator_stats()  # warnings of an earlier schema build in this process would count
    out, err = StringIO(), StringIO()

    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"),
        stdout=out, stderr=err,
    )

    assert "warning" not in err.getvalue().lower(), err.getvalue()
    assert "error" not in err.getvalue().lower(), err.getvalue()
    schema = (tmp_path / "schema.yaml").read_text()
    assert "/api/v1/loans/{id}/return/" in schema
    assert "cookieAuth" in schema


def test_a_check_out_past_the_queue_needs_a_reason_and_records_it(client_for, cast, make_media):
    held = make_media("M-HELD")
    today = timezone.localdate()
    waiting = services.loan_request_approve(
        request=services.loan_request_make(
            requester=cast["doctor2"], needed_from=today, needed_until=today + timedelta(days=3),
            purpose="Fracture clinic", media=held,
        ),
        actor=cast["staff"],
    )
    staff = client_for("staff")

    refused = staff.post("/api/v1/loans/", {"media": "M-HELD", "borrower": "doctor"}, format="json")
    lent = staff.post(
        "/api/v1/loans/",
        {"media": "M-HELD", "borrower": "doctor", "queue_override": "Emergency surgery"},
        format="json",
    )

    assert refused.status_code == 409 and refused.json()["error"]["code"] == "queue_ahead"
    assert lent.status_code == 201, lent.content
    event = CustodyEvent.objects.filter(media=held, kind=EventKind.CHECKED_OUT).get()
    assert event.payload["queue_override"] == "Emergency surgery"
    assert LoanRequest.objects.get(pk=waiting.pk).status == RequestStatus.APPROVED  # still waits


def test_a_check_out_for_the_head_of_the_queue_fulfils_the_request(client_for, cast, make_media):
    held = make_media("M-HELD")
    today = timezone.localdate()
    waiting = services.loan_request_approve(
        request=services.loan_request_make(
            requester=cast["doctor"], needed_from=today, needed_until=today + timedelta(days=3),
            purpose="Fracture clinic", media=held,
        ),
        actor=cast["staff"],
    )

    response = client_for("staff").post(
        "/api/v1/loans/", {"media": "M-HELD", "borrower": "doctor", "request": waiting.pk}, format="json"
    )

    assert response.status_code == 201, response.content
    assert LoanRequest.objects.get(pk=waiting.pk).status == RequestStatus.FULFILLED


def test_a_body_of_a_type_no_parser_takes_is_a_documented_415_in_the_error_shape(client_for, places):
    response = client_for("staff").generic(
        "POST", "/api/v1/media/", b"code=M-1", content_type="text/plain"
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert "text/plain" in response.json()["error"]["message"]
    schema = client_for("staff").get("/api/schema/?format=json").json()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch"):
                assert "415" in operation["responses"], (method, path)
