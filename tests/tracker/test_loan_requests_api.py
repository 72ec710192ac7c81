"""The loan-request and renewal endpoints: who may call what, what each answers, safe retries."""

import uuid
from datetime import timedelta

import pytest
from django.urls import resolve
from django.utils import timezone

from archive.models import Patient
from tracker import services
from tracker.api import loan_requests as loan_requests_api
from tracker.choices import RequestStatus
from tracker.models import CustodyEvent, LoanRequest

pytestmark = pytest.mark.django_db

ANONYMOUS = None
ROLES = [ANONYMOUS, "nobody", "doctor", "staff", "auditor", "admin"]
EVERYONE = {"doctor", "staff", "auditor", "admin"}
STAFF = {"staff", "admin"}
ASKERS = {"doctor", "staff", "admin"}


def dates(days: int = 3) -> dict:
    today = timezone.localdate()
    return {"needed_from": str(today), "needed_until": str(today + timedelta(days=days))}


@pytest.fixture
def scene(cast, make_media):
    """doctor's pending request for a shelf item, and doctor's loan of another item."""
    shelved = make_media("M-SHELF")
    request = services.loan_request_make(
        requester=cast["doctor"],
        media=shelved,
        purpose="Clinic",
        **{
            k: timezone.localdate() + timedelta(days=n)
            for k, n in (("needed_from", 0), ("needed_until", 3))
        },
    )
    lent = make_media("M-LENT")
    loan = services.media_check_out(media=lent, borrower=cast["doctor"], actor=cast["staff"])
    make_media("M-FREE")
    return {"request": request, "loan": loan}


# (method, path, body, roles allowed, status when allowed); {request} and {loan} from the scene.
ENDPOINTS = [
    ("get", "/api/v1/loan-requests/", None, EVERYONE, 200),
    (
        "post",
        "/api/v1/loan-requests/",
        {"media": "M-FREE", "purpose": "Ward round", **dates()},
        ASKERS,
        201,
    ),
    ("get", "/api/v1/loan-requests/{request}/", None, EVERYONE, 200),  # doctor's own
    ("post", "/api/v1/loan-requests/{request}/approve/", {}, STAFF, 200),
    ("post", "/api/v1/loan-requests/{request}/deny/", {"reason": "Lent to court"}, STAFF, 200),
    ("post", "/api/v1/loan-requests/{request}/cancel/", {}, ASKERS, 200),  # doctor's own
    ("post", "/api/v1/loans/{loan}/renew/", {}, ASKERS, 200),  # doctor's own loan
]


def expected_status(role, allowed, success):
    if role is ANONYMOUS:
        return 401
    return success if role in allowed else 403


@pytest.mark.parametrize(
    "method, path, body, role, expected",
    [
        pytest.param(
            m,
            p,
            b,
            role,
            expected_status(role, allowed, ok),
            id=f"{m.upper()} {p} as {role or 'anonymous'}",
        )
        for m, p, b, allowed, ok in ENDPOINTS
        for role in ROLES
    ],
)
def test_each_role_does_only_what_it_may(client_for, scene, method, path, body, role, expected):
    path = path.format(request=scene["request"].pk, loan=scene["loan"].pk)
    before = CustodyEvent.objects.count()

    response = getattr(client_for(role), method)(path, body, format="json")

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["code"] == (
            "not_authenticated" if expected == 401 else "permission_denied"
        )
        assert CustodyEvent.objects.count() == before
    elif method == "post":
        assert CustodyEvent.objects.count() == before + 1


def test_ready_is_for_staff_on_an_approved_request(client_for, cast, scene):
    path = f"/api/v1/loan-requests/{scene['request'].pk}/ready/"
    services.loan_request_approve(request=scene["request"], actor=cast["staff"])

    statuses = {role: client_for(role).post(path, {}, format="json").status_code for role in ROLES}

    assert statuses == {
        None: 401,
        "nobody": 403,
        "doctor": 403,
        "auditor": 403,
        "staff": 200,
        "admin": 409,
    }
    assert LoanRequest.objects.get(pk=scene["request"].pk).status == RequestStatus.READY


def test_every_endpoint_of_this_part_is_covered_above():
    covered = {resolve(p.format(request=1, loan=1)).url_name for _m, p, *_r in ENDPOINTS}

    tested_below = {"api-loan-request-ready", "api-loan-request-check-out"}
    assert covered | tested_below == {p.name for p in loan_requests_api.urlpatterns}


def test_staff_hand_a_ready_item_to_its_requester_for_the_request(client_for, cast, scene, places):
    loan_request = scene["request"]
    path = f"/api/v1/loan-requests/{loan_request.pk}/check-out/"
    too_soon = client_for("staff").post(path, {}, format="json")
    services.loan_request_approve(request=loan_request, actor=cast["staff"])
    services.loan_request_ready(request=loan_request, actor=cast["staff"])

    refused = {
        role: client_for(role).post(path, {}, format="json").status_code
        for role in (None, "nobody", "doctor", "auditor")
    }
    lent = client_for("staff").post(path, {}, format="json")

    assert too_soon.status_code == 409 and too_soon.json()["error"]["code"] == "request_closed"
    assert refused == {None: 401, "nobody": 403, "doctor": 403, "auditor": 403}
    assert lent.status_code == 201
    assert (lent.json()["media"], lent.json()["borrower"]) == ("M-SHELF", "doctor")
    assert LoanRequest.objects.get(pk=loan_request.pk).status == RequestStatus.FULFILLED


def test_a_clinician_sees_only_their_own_requests_even_by_filter(
    client_for, cast, scene, make_media
):
    other = services.loan_request_make(
        requester=cast["doctor2"],
        media=make_media("M-2"),
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )

    mine = client_for("doctor").get("/api/v1/loan-requests/", {"requester": "doctor2"}).json()
    all_of_them = client_for("auditor").get("/api/v1/loan-requests/").json()
    hidden = client_for("doctor").get(f"/api/v1/loan-requests/{other.pk}/")
    cancel = client_for("doctor").post(
        f"/api/v1/loan-requests/{other.pk}/cancel/", {}, format="json"
    )

    assert mine["results"] == []
    assert {r["id"] for r in all_of_them["results"]} == {scene["request"].pk, other.pk}
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    assert cancel.status_code == 404
    assert LoanRequest.objects.get(pk=other.pk).status == RequestStatus.PENDING


def test_a_clinician_cannot_renew_a_colleagues_loan(client_for, scene):
    response = client_for("doctor2").post(
        f"/api/v1/loans/{scene['loan'].pk}/renew/", {}, format="json"
    )

    assert response.status_code == 404  # another's loan is not even visible


def test_staff_filter_requests_by_status_media_and_patient(client_for, cast, scene, make_media):
    patient = Patient.objects.create(patient_id="MRN-9")
    services.loan_request_make(
        requester=cast["doctor2"],
        patient=patient,
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )
    staff = client_for("staff")

    def ids(**query):
        return [r["id"] for r in staff.get("/api/v1/loan-requests/", query).json()["results"]]

    assert ids(media="M-SHELF") == [scene["request"].pk]
    assert len(ids(patient="MRN-9")) == 1
    assert len(ids(status="pending")) == 2 and ids(status="approved") == []


def test_the_requester_sees_status_and_queue_position(client_for, cast, scene):
    services.loan_request_approve(request=scene["request"], actor=cast["staff"])
    second = client_for("doctor2").post(
        "/api/v1/loan-requests/",
        {"media": "M-SHELF", "purpose": "Tumour board", **dates()},
        format="json",
    )
    services.loan_request_approve(
        request=LoanRequest.objects.get(pk=second.json()["id"]), actor=cast["staff"]
    )

    mine = client_for("doctor2").get(f"/api/v1/loan-requests/{second.json()['id']}/").json()

    assert second.status_code == 201 and second.json()["status"] == "pending"
    assert (mine["status"], mine["queue_position"], mine["media"]) == ("approved", 2, "M-SHELF")


def test_a_denial_without_a_reason_says_what_is_missing(client_for, scene):
    response = client_for("staff").post(
        f"/api/v1/loan-requests/{scene['request'].pk}/deny/", {"reason": ""}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "Give a reason for denying request" in response.json()["error"]["message"]


def test_a_renewal_refused_for_a_waiting_colleague_is_a_409_that_says_so(client_for, cast, scene):
    services.loan_request_make(
        requester=cast["doctor2"],
        media=scene["loan"].media,
        purpose="x",
        needed_from=timezone.localdate(),
        needed_until=timezone.localdate(),
    )

    response = client_for("doctor").post(
        f"/api/v1/loans/{scene['loan'].pk}/renew/", {}, format="json"
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "renewal_refused"
    assert "A colleague is waiting for M-LENT" in response.json()["error"]["message"]


def test_a_retried_request_with_its_event_id_is_answered_once(client_for, scene):
    body = {"media": "M-FREE", "purpose": "Ward round", "event_id": str(uuid.uuid4()), **dates()}
    doctor = client_for("doctor")
    before = CustodyEvent.objects.count()

    first = doctor.post("/api/v1/loan-requests/", body, format="json")
    again = doctor.post("/api/v1/loan-requests/", body, format="json")
    changed = doctor.post("/api/v1/loan-requests/", {**body, "purpose": "Other"}, format="json")

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "event_conflict"
    assert CustodyEvent.objects.count() == before + 1


def test_a_retried_renewal_renews_once(client_for, scene):
    body = {"event_id": str(uuid.uuid4())}
    doctor = client_for("doctor")

    first = doctor.post(f"/api/v1/loans/{scene['loan'].pk}/renew/", body, format="json")
    again = doctor.post(f"/api/v1/loans/{scene['loan'].pk}/renew/", body, format="json")

    assert first.status_code == again.status_code == 200
    assert first.json()["renewals"] == again.json()["renewals"] == 1
    assert first.json()["due_at"] == again.json()["due_at"]
