"""Signatures through the API: with a return or a request's check-out, added after a station read
(POST /api/v1/signatures/), and read back with whether they are intact — against every role."""

import pytest
from django.db import connection
from django.urls import resolve
from django.utils import timezone

from tests.tracker.signature_images import blank, data_url, drawn
from tracker import services
from tracker.api import signatures as signatures_api
from tracker.choices import EventKind
from tracker.models import CustodyEvent, Signature

pytestmark = pytest.mark.django_db

ROLES = [None, "nobody", "doctor", "doctor2", "staff", "auditor", "admin"]


@pytest.fixture
def scene(cast, make_media):
    """A check-out to `doctor` signed at the desk, and an unsigned one to sign afterwards."""
    signed = services.media_check_out(
        media=make_media("M-SIGNED"),
        borrower=cast["doctor"],
        actor=cast["staff"],
        signature=drawn(),
    )
    unsigned = services.media_check_out(
        media=make_media("M-UNSIGNED"), borrower=cast["doctor"], actor=cast["staff"]
    )
    return {"signed": signed.out_seq, "unsigned": unsigned.out_seq}


# (method, path, body, status for each role). Only the file room signs; a signature is seen by
# staff, auditors and the borrower whose loan it is (another clinician: 404, as for the loan).
ENDPOINTS = [
    (
        "post",
        "/api/v1/signatures/",
        {"event_seq": "{unsigned}", "signature": data_url(drawn(seed=3))},
        {
            None: 401,
            "nobody": 403,
            "doctor": 403,
            "doctor2": 403,
            "staff": 201,
            "auditor": 403,
            "admin": 201,
        },
    ),
    (
        "get",
        "/api/v1/signatures/{signed}/",
        None,
        {
            None: 401,
            "nobody": 403,
            "doctor": 200,
            "doctor2": 404,
            "staff": 200,
            "auditor": 200,
            "admin": 200,
        },
    ),
]


@pytest.mark.parametrize(
    "method, path, body, role, expected",
    [
        pytest.param(m, p, b, role, statuses[role], id=f"{m.upper()} {p} as {role or 'anonymous'}")
        for m, p, b, statuses in ENDPOINTS
        for role in ROLES
    ],
)
def test_each_role_does_only_what_it_may(client_for, scene, method, path, body, role, expected):
    path = path.format(**scene)
    if body:
        body = {k: int(v.format(**scene)) if k == "event_seq" else v for k, v in body.items()}
    before = CustodyEvent.objects.count()

    response = getattr(client_for(role), method)(path, body, format="json")

    assert response.status_code == expected, response.content
    if expected >= 400:
        assert set(response.json()) == {"error"}
        assert CustodyEvent.objects.count() == before
    elif method == "post":
        assert CustodyEvent.objects.count() == before + 1


def test_every_endpoint_of_this_part_is_covered_above():
    covered = {resolve(p.format(signed=1, unsigned=2)).url_name for _m, p, *_r in ENDPOINTS}
    assert covered == {p.name for p in signatures_api.urlpatterns}


def test_a_signature_added_after_the_fact_is_described_and_intact(client_for, scene):
    staff = client_for("staff")

    made = staff.post(
        "/api/v1/signatures/",
        {
            "event_seq": scene["unsigned"],
            "signature": data_url(drawn(seed=4)),
            "signed_by": "Dana Osei",
        },
        format="json",
    )

    assert made.status_code == 201, made.content
    body = made.json()
    assert body == {
        "event_seq": scene["unsigned"],
        "event_kind": "checked_out",
        "media": "M-UNSIGNED",
        "signed_by": "Dana Osei",
        "sha256": Signature.objects.get(event_seq=scene["unsigned"]).sha256,
        "created_at": body["created_at"],
        "intact": True,
        "image_url": f"/signatures/{scene['unsigned']}.png",
    }
    assert CustodyEvent.objects.latest("seq").kind == EventKind.SIGNATURE_ADDED
    assert staff.get(f"/api/v1/signatures/{scene['unsigned']}/").json() == body


def test_a_second_signature_a_blank_pad_and_a_wrong_event_are_refused_in_words(
    client_for, cast, scene
):
    staff = client_for("staff")
    registered = CustodyEvent.objects.filter(kind=EventKind.MEDIA_REGISTERED).first().seq

    def post(seq, image):
        return staff.post(
            "/api/v1/signatures/", {"event_seq": seq, "signature": image}, format="json"
        )

    cases = [
        (post(scene["signed"], data_url(drawn(seed=5))), 409, "conflict", "already signed"),
        (post(scene["unsigned"], data_url(blank())), 400, "invalid", "blank"),
        (post(scene["unsigned"], "data:image/gif;base64,R0lGOD"), 400, "invalid", "PNG data URL"),
        (post(registered, data_url(drawn())), 400, "invalid", "Only a check-out or a return"),
        (post(999_999, data_url(drawn())), 404, "not_found", "no ledger event"),
    ]
    for response, status, code, words in cases:
        assert response.status_code == status, response.content
        error = response.json()["error"]
        assert error["code"] == code and words in error["message"], error
    assert Signature.objects.count() == 1


def test_a_return_through_the_api_may_carry_the_signature(client_for, cast, make_media):
    loan = services.media_check_out(
        media=make_media("M-BACK"), borrower=cast["doctor"], actor=cast["staff"]
    )
    image = drawn(seed=6)

    response = client_for("staff").post(
        f"/api/v1/loans/{loan.pk}/return/",
        {"signature": data_url(image), "signed_by": "Porter"},
        format="json",
    )

    assert response.status_code == 200, response.content
    returned = CustodyEvent.objects.latest("seq")
    signature = Signature.objects.get(event_seq=returned.seq)
    assert (returned.kind, signature.signed_by, bytes(signature.image)) == (
        EventKind.RETURNED,
        "Porter",
        image,
    )
    assert client_for("doctor").get(f"/api/v1/signatures/{returned.seq}/").json()["intact"] is True


def test_a_return_with_a_signature_that_is_not_one_returns_nothing(client_for, cast, make_media):
    loan = services.media_check_out(
        media=make_media("M-BACK"), borrower=cast["doctor"], actor=cast["staff"]
    )
    before = CustodyEvent.objects.count()

    response = client_for("staff").post(
        f"/api/v1/loans/{loan.pk}/return/", {"signature": "not a picture"}, format="json"
    )

    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid"
    assert CustodyEvent.objects.count() == before
    loan.refresh_from_db()
    assert loan.returned_at is None


def test_a_request_handed_over_through_the_api_may_carry_the_requesters_signature(
    client_for, cast, make_media
):
    today = timezone.localdate()
    made = services.loan_request_make(
        requester=cast["doctor"],
        media=make_media("M-ASKED"),
        purpose="x",
        needed_from=today,
        needed_until=today,
    )
    services.loan_request_approve(request=made, actor=cast["staff"])

    response = client_for("staff").post(
        f"/api/v1/loan-requests/{made.pk}/check-out/",
        {"signature": data_url(drawn(seed=7))},
        format="json",
    )

    assert response.status_code == 201, response.content
    lent = CustodyEvent.objects.latest("seq")
    assert lent.payload["request"] == made.created_seq and "signature" in lent.payload
    assert Signature.objects.get(event_seq=lent.seq).signed_by == "Doctor"


def test_a_swapped_image_reads_as_not_intact(client_for, scene):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tracker_signature SET image = %s", [drawn(seed=8)])

    assert (
        client_for("auditor").get(f"/api/v1/signatures/{scene['signed']}/").json()["intact"]
        is False
    )


def test_the_schema_describes_the_signature_endpoints_and_fields(client_for, cast):
    schema = client_for("doctor").get("/api/schema/", {"format": "json"}).json()
    paths, components = schema["paths"], schema["components"]["schemas"]

    def request_fields(path: str) -> set[str]:
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        return set(components[body["$ref"].rsplit("/", 1)[1]]["properties"])

    assert "/api/v1/signatures/{event_seq}/" in paths
    assert {"event_seq", "signature", "signed_by"} <= request_fields("/api/v1/signatures/")
    assert {"signature", "signed_by"} <= request_fields("/api/v1/loans/{id}/return/")
    assert {"signature", "signed_by"} <= request_fields("/api/v1/loan-requests/{id}/check-out/")
