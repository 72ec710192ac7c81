"""The hand-over endpoints: who may call what (every endpoint against every role), what each
answers, who sees which hand-overs, and safe retries."""

import uuid

import pytest
from django.urls import resolve

from tracker import services
from tracker.api import handovers as handovers_api
from tracker.choices import HandoverStatus
from tracker.models import CustodyEvent, Handover

pytestmark = pytest.mark.django_db

ANONYMOUS = None
ROLES = [ANONYMOUS, "nobody", "doctor", "staff", "auditor", "admin"]
EVERYONE = {"doctor", "staff", "auditor", "admin"}
ACTORS = {"doctor", "staff", "admin"}  # no auditors; the service narrows it further


@pytest.fixture
def scene(cast, make_media):
    """to_doctor: doctor2 hands M-A to doctor. from_doctor: doctor hands M-B to doctor2.
    M-C: on loan to doctor, free to hand on. M-D: between doctor2 and admin (not doctor's)."""

    def lend(code, borrower):
        item = make_media(code)
        services.media_check_out(media=item, borrower=cast[borrower], actor=cast["staff"])
        return item

    def offer(code, giver, receiver):
        return services.handover_offer(
            media=lend(code, giver), actor=cast[giver], to_holder=cast[receiver]
        )

    scene = {
        "to_doctor": offer("M-A", "doctor2", "doctor"),
        "from_doctor": offer("M-B", "doctor", "doctor2"),
        "others": offer("M-D", "doctor2", "admin"),
    }
    lend("M-C", "doctor")
    return scene


# (method, path, body, roles allowed, status when allowed); {to_doctor} etc. from the scene.
ENDPOINTS = [
    ("get", "/api/v1/handovers/", None, EVERYONE, 200),
    (
        "post",
        "/api/v1/handovers/",
        {"media": "M-C", "to_holder": "doctor2", "note": "x"},
        ACTORS,
        201,
    ),
    ("get", "/api/v1/handovers/{to_doctor}/", None, EVERYONE, 200),  # doctor receives it
    ("post", "/api/v1/handovers/{to_doctor}/accept/", {}, ACTORS, 200),  # doctor receives it
    ("post", "/api/v1/handovers/{to_doctor}/decline/", {"reason": "Away"}, ACTORS, 200),
    ("post", "/api/v1/handovers/{from_doctor}/cancel/", {}, ACTORS, 200),  # doctor gave it
]


def expected_status(role, allowed, success):
    if role is ANONYMOUS:
        return 401
    return success if role in allowed else 403


def fill(path: str, scene) -> str:
    return path.format(**{name: h.pk for name, h in scene.items()})


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
    before = CustodyEvent.objects.count()

    response = getattr(client_for(role), method)(fill(path, scene), body, format="json")

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert set(response.json()) == {"error"}
        assert response.json()["error"]["code"] == (
            "not_authenticated" if expected == 401 else "permission_denied"
        )
        assert CustodyEvent.objects.count() == before
    elif method == "post":
        assert CustodyEvent.objects.count() == before + 1


def test_every_endpoint_of_this_part_is_covered_above():
    covered = {resolve(p.format(to_doctor=1, from_doctor=1)).url_name for _m, p, *_r in ENDPOINTS}

    assert covered == {p.name for p in handovers_api.urlpatterns}


def test_a_clinician_sees_only_the_hand_overs_they_give_or_receive(client_for, scene):
    mine = client_for("doctor").get("/api/v1/handovers/").json()["results"]
    everything = client_for("auditor").get("/api/v1/handovers/").json()["results"]

    assert {h["media"] for h in mine} == {"M-A", "M-B"}
    assert {h["media"] for h in everything} == {"M-A", "M-B", "M-D"}
    hidden = client_for("doctor").get(f"/api/v1/handovers/{scene['others'].pk}/")
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "not_found"
    acting = client_for("doctor").post(f"/api/v1/handovers/{scene['others'].pk}/accept/", {})
    assert acting.status_code == 404


def test_the_list_filters_by_status_and_item(client_for, cast, scene):
    services.handover_decline(handover=scene["to_doctor"], actor=cast["doctor"], reason="Away")
    staff = client_for("staff")

    pending = staff.get("/api/v1/handovers/", {"status": "pending"}).json()["results"]
    declined = staff.get("/api/v1/handovers/", {"status": "declined", "media": "M-A"}).json()

    assert {h["media"] for h in pending} == {"M-B", "M-D"}
    assert [(h["media"], h["reason"]) for h in declined["results"]] == [("M-A", "Away")]


def test_offer_accept_through_the_api_moves_custody_once(client_for, cast, scene):
    doctor, doctor2 = client_for("doctor"), client_for("doctor2")
    event_id = str(uuid.uuid4())

    offered = doctor.post(
        "/api/v1/handovers/",
        {"media": "M-C", "to_holder": "doctor2", "note": "Clinic at 2", "event_id": event_id},
        format="json",
    )
    again = doctor.post(
        "/api/v1/handovers/",
        {"media": "M-C", "to_holder": "doctor2", "note": "Clinic at 2", "event_id": event_id},
        format="json",
    )
    body = offered.json()
    assert offered.status_code == 201 and again.status_code == 201
    assert again.json()["id"] == body["id"]
    assert {
        k: body[k] for k in ("media", "from_holder", "to_holder", "to_location", "note", "status")
    } == {
        "media": "M-C",
        "from_holder": "doctor",
        "to_holder": "doctor2",
        "to_location": None,
        "note": "Clinic at 2",
        "status": "pending",
    }
    assert client_for("doctor").get("/api/v1/media/M-C/").json()["current_holder"] == "doctor"

    accepted = doctor2.post(f"/api/v1/handovers/{body['id']}/accept/", {}, format="json")

    assert accepted.status_code == 200
    assert (accepted.json()["status"], accepted.json()["closed_by"]) == ("accepted", "doctor2")
    assert client_for("doctor").get("/api/v1/media/M-C/").json()["current_holder"] == "doctor2"
    closed = doctor2.post(f"/api/v1/handovers/{body['id']}/accept/", {}, format="json")
    assert (closed.status_code, closed.json()["error"]["code"]) == (409, "handover_closed")


def test_refusals_are_json_errors_a_person_can_act_on(client_for, cast, scene, places):
    doctor = client_for("doctor")

    both = doctor.post(
        "/api/v1/handovers/", {"media": "M-C", "to_holder": "doctor2", "to_location": "EXT"}
    )
    not_mine = doctor.post("/api/v1/handovers/", {"media": "M-D", "to_location": "EXT"})
    pending = doctor.post("/api/v1/handovers/", {"media": "M-B", "to_location": "EXT"})
    unknown = doctor.post("/api/v1/handovers/", {"media": "NOPE", "to_holder": "doctor2"})
    no_reason = doctor.post(f"/api/v1/handovers/{scene['to_doctor'].pk}/decline/", {})
    not_receiver = doctor.post(f"/api/v1/handovers/{scene['from_doctor'].pk}/accept/", {})

    assert (both.status_code, both.json()["error"]["code"]) == (400, "invalid")
    assert "exactly one" in both.json()["error"]["message"]
    assert (not_mine.status_code, not_mine.json()["error"]["code"]) == (403, "permission_denied")
    assert "Only Doctor2, who has M-D on loan" in not_mine.json()["error"]["message"]
    assert (pending.status_code, pending.json()["error"]["code"]) == (409, "conflict")
    assert "already being handed to Doctor2" in pending.json()["error"]["message"]
    assert unknown.status_code == 400 and "media" in unknown.json()["error"]["details"]["fields"]
    assert (no_reason.status_code, no_reason.json()["error"]["code"]) == (400, "invalid")
    assert (not_receiver.status_code, not_receiver.json()["error"]["code"]) == (
        403,
        "permission_denied",
    )
    assert Handover.objects.filter(status=HandoverStatus.PENDING).count() == 3


def test_a_conflicting_retry_is_a_409_naming_the_fields(client_for, scene):
    doctor = client_for("doctor")
    event_id = str(uuid.uuid4())
    path = f"/api/v1/handovers/{scene['to_doctor'].pk}/decline/"

    first = doctor.post(path, {"reason": "Away", "event_id": event_id}, format="json")
    other = doctor.post(path, {"reason": "Busy", "event_id": event_id}, format="json")

    assert first.status_code == 200
    assert (other.status_code, other.json()["error"]["code"]) == (409, "event_conflict")
    assert other.json()["error"]["details"]["fields"] == ["reason"]
