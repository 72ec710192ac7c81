"""Who may call what under /api/v1/: every endpoint against every role (README, "API").

Not logged in → 401 with a challenge; logged in without the role → 403; with it → 2xx. A refused
request leaves the ledger as it was. The schema and docs need a login (any role): the API's
shape is nobody's business outside the hospital, and a reader station never needs it.
"""
import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import resolve
from rest_framework.test import APIClient

from tracker import services
from tracker.choices import FlagKind
from tracker.models import CustodyEvent
from tracker.services.flags import flag_raise
from tracker.urls import api_urlpatterns

pytestmark = pytest.mark.django_db

ANONYMOUS = None
ROLES = [ANONYMOUS, "nobody", "doctor", "staff", "auditor", "admin"]
EVERYONE = {"doctor", "staff", "auditor", "admin"}
STAFF = {"staff", "admin"}
READ_ALL = {"staff", "auditor", "admin"}
AUDIT = {"auditor", "admin"}


@pytest.fixture
def scene(cast, places, make_media):
    """A shelf item, an item with a tag, and an item on loan to `doctor`."""
    shelved = make_media("M-SHELF")
    tagged = make_media("M-TAGGED")
    services.tag_bind(uid="04:A1:B2:C3:D4:E5:F6", media=tagged, actor=cast["staff"])
    lent = make_media("M-LENT")
    cast["doctor"].email = "doctor@hospital.example"  # so a reminder can be sent
    cast["doctor"].save()
    loan = services.media_check_out(media=lent, borrower=cast["doctor"], actor=cast["staff"])
    # An open inventory of a place no item calls home: closing it adds exactly one event.
    inventory = services.inventory_start(scope=places["clinic"], actor=cast["staff"])
    flag = flag_raise(media=shelved, kind=FlagKind.NOT_SEEN)
    return {
        "shelved": shelved, "tagged": tagged, "lent": lent, "loan": loan, "inventory": inventory,
        "flag": flag,
    }


# (method, path, body, roles allowed, status when allowed). Paths and bodies may use the scene.
ENDPOINTS = [
    ("get", "/api/v1/media/", None, EVERYONE, 200),
    ("post", "/api/v1/media/", {"code": "M-NEW", "kind": "cd", "home_location": "FR-A1"},
     STAFF, 201),
    ("get", "/api/v1/media/M-SHELF/", None, EVERYONE, 200),
    ("get", "/api/v1/media/M-SHELF/chain/", None, READ_ALL, 200),
    ("post", "/api/v1/media/M-SHELF/seen/", {"location": "FR-A2"}, STAFF, 200),
    ("post", "/api/v1/media/M-SHELF/retire/", {"reason": "Water damage"}, STAFF, 200),
    ("get", "/api/v1/locations/", None, EVERYONE, 200),
    ("get", "/api/v1/locations/FR-A1/", None, EVERYONE, 200),
    ("get", "/api/v1/tags/", None, READ_ALL, 200),
    ("post", "/api/v1/tags/bind/", {"uid": "DEADBEEF", "media": "M-SHELF"}, STAFF, 201),
    ("post", "/api/v1/tags/04A1B2C3D4E5F6/unbind/", {}, STAFF, 200),
    ("get", "/api/v1/loans/", None, EVERYONE, 200),
    ("post", "/api/v1/loans/", {"media": "M-SHELF", "borrower": "doctor2"}, STAFF, 201),
    ("get", "/api/v1/loans/{loan}/", None, EVERYONE, 200),  # doctor's own loan
    ("post", "/api/v1/loans/{loan}/return/", {}, STAFF, 200),
    ("get", "/api/v1/transfers/", None, EVERYONE, 200),
    ("post", "/api/v1/transfers/", {"media": "M-LENT", "to_holder": "doctor2"}, STAFF, 201),
    ("post", "/api/v1/transfers/", {"media": "M-SHELF", "to_location": "ORTHO"}, STAFF, 201),
    ("get", "/api/v1/ledger/verify/", None, AUDIT, 200),
    ("get", "/api/v1/flags/", None, EVERYONE, 200),  # clinicians: flags on their own loans
    ("post", "/api/v1/flags/{flag}/clear/", {"reason": "On its shelf after all"}, STAFF, 200),
    ("get", "/api/v1/reminders/", None, EVERYONE, 200),
    ("post", "/api/v1/loans/{loan}/remind/", {}, STAFF, 201),
    ("get", "/api/v1/dashboard/", None, READ_ALL, 200),
    ("get", "/api/v1/inventories/", None, READ_ALL, 200),
    ("post", "/api/v1/inventories/", {"scope": "FR-A2"}, STAFF, 201),
    ("get", "/api/v1/inventories/{inventory}/", None, READ_ALL, 200),
    ("post", "/api/v1/inventories/{inventory}/close/", {}, STAFF, 200),
    ("post", "/api/v1/inventories/{inventory}/cancel/", {}, STAFF, 200),
]


def expected_status(role, allowed, success):
    if role is ANONYMOUS:
        return 401
    return success if role in allowed else 403


CASES = [
    pytest.param(
        method,
        path,
        body,
        role,
        expected_status(role, allowed, success),
        id=f"{method.upper()} {path} as {role or 'anonymous'}",
    )
    for method, path, body, allowed, success in ENDPOINTS
    for role in ROLES
]


def assert_error_shape(response, code):
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest.mark.parametrize("method, path, body, role, expected", CASES)
def test_it_lets_each_role_do_only_what_the_readme_says(
    client_for, scene, method, path, body, role, expected
):
    path = path.format(loan=scene["loan"].pk, inventory=scene["inventory"].pk, flag=scene["flag"].pk)
    events_before = CustodyEvent.objects.count()

    response = getattr(client_for(role), method)(path, body, format="json")

    assert response.status_code == expected, response.content
    if expected == 401:
        assert_error_shape(response, "not_authenticated")
        assert response["WWW-Authenticate"].startswith("Session")
    elif expected == 403:
        assert_error_shape(response, "permission_denied")
    if expected >= 400:
        assert CustodyEvent.objects.count() == events_before
    elif method == "post":
        assert CustodyEvent.objects.count() == events_before + 1


# Endpoints authenticated by a reader's key rather than a person's role (tests/tracker/test_scans.py),
# or by either (inventory reads: tests/tracker/test_inventory_api.py).
READER_KEY_ENDPOINTS = {"api-scans", "api-inventory-reads"}
# Endpoints with their own role table, which checks it covers them all.
OWN_ROLE_TABLES = {  # test_loan_requests_api.py, test_handovers_api.py, test_signatures_api.py, test_audit*.py
    name for name in (p.name for p in api_urlpatterns)
    if name.startswith(("api-loan-request", "api-handover", "api-signature", "api-audit"))
} | {"api-loan-renew"}


def test_it_covers_every_api_endpoint():
    covered = {
        resolve(path.format(loan=1, inventory=1, flag=1)).url_name for _method, path, *_rest in ENDPOINTS
    }

    assert covered | READER_KEY_ENDPOINTS | OWN_ROLE_TABLES == {p.name for p in api_urlpatterns}, (
        "add the new endpoint above"
    )


def test_it_shows_a_clinician_only_their_own_loans(client_for, cast, scene, make_media):
    other = services.media_check_out(
        media=make_media("M-OTHER"), borrower=cast["doctor2"], actor=cast["staff"]
    )

    mine = client_for("doctor").get("/api/v1/loans/").json()
    everyone = client_for("auditor").get("/api/v1/loans/").json()

    assert [loan["id"] for loan in mine["results"]] == [scene["loan"].pk]
    assert {loan["id"] for loan in everyone["results"]} == {scene["loan"].pk, other.pk}


def test_it_hides_another_clinicians_loan_behind_a_404(client_for, scene):
    response = client_for("doctor2").get(f"/api/v1/loans/{scene['loan'].pk}/")

    assert response.status_code == 404
    assert_error_shape(response, "not_found")


def test_it_shows_a_clinician_only_transfers_to_or_from_them(
    client_for, cast, places, scene, make_media
):
    services.media_transfer(media=scene["lent"], to_holder=cast["doctor2"], actor=cast["staff"])
    services.media_transfer(media=make_media("M-AWAY"), to_location=places["clinic"], actor=cast["staff"])

    doctor = client_for("doctor").get("/api/v1/transfers/").json()["results"]
    doctor2 = client_for("doctor2").get("/api/v1/transfers/").json()["results"]
    staff = client_for("staff").get("/api/v1/transfers/").json()["results"]

    assert [(t["media"], t["from_holder"], t["to_holder"]) for t in doctor] == [
        ("M-LENT", "doctor", "doctor2")
    ]
    assert [t["media"] for t in doctor2] == ["M-LENT"]
    assert sorted(t["media"] for t in staff) == ["M-AWAY", "M-LENT"]


def test_it_lets_no_clinician_filter_their_way_to_other_loans(client_for, cast, scene, make_media):
    services.media_check_out(
        media=make_media("M-OTHER"), borrower=cast["doctor2"], actor=cast["staff"]
    )

    response = client_for("doctor").get("/api/v1/loans/", {"borrower": "doctor2"})

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_it_keeps_custody_chains_tags_and_the_ledger_from_clinicians(client_for, scene):
    doctor = client_for("doctor")
    for path in ("/api/v1/media/M-LENT/chain/", "/api/v1/tags/", "/api/v1/ledger/verify/"):
        response = doctor.get(path)
        assert response.status_code == 403, path
        assert_error_shape(response, "permission_denied")


def test_it_refuses_every_write_from_an_auditor(client_for, scene):
    auditor = client_for("auditor")
    writes = [
        (path.format(loan=scene["loan"].pk, inventory=scene["inventory"].pk, flag=scene["flag"].pk), body)
        for method, path, body, *_rest in ENDPOINTS
        if method == "post"
    ]
    events_before = CustodyEvent.objects.count()

    statuses = {path: auditor.post(path, body, format="json").status_code for path, body in writes}

    assert set(statuses.values()) == {403}, statuses
    assert CustodyEvent.objects.count() == events_before


def test_it_refuses_a_browser_session_write_without_the_csrf_token(cast, scene):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(cast["staff"])
    events_before = CustodyEvent.objects.count()

    response = browser.post("/api/v1/media/M-SHELF/seen/", {"location": "FR-A2"}, format="json")

    assert response.status_code == 403
    assert_error_shape(response, "permission_denied")
    assert "CSRF" in response.json()["error"]["message"]
    assert CustodyEvent.objects.count() == events_before


def test_it_gives_a_disabled_account_no_access(client_for, cast, scene):
    client = client_for("staff")
    cast["staff"].is_active = False
    cast["staff"].save()

    response = client.get("/api/v1/media/")

    assert response.status_code in (401, 403)
    assert "error" in response.json()


def test_it_serves_the_openapi_schema_to_a_logged_in_user(client_for, cast):
    response = client_for("doctor").get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Filmroom API"
    assert "/api/v1/loans/" in schema["paths"]


def test_it_keeps_the_schema_from_anonymous_callers(client_for, cast):
    response = client_for(None).get("/api/schema/")

    assert response.status_code == 401
    assert_error_shape(response, "not_authenticated")


def test_it_serves_the_api_docs_from_this_site_without_a_cdn(client_for, cast):
    response = client_for("auditor").get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode().lower()
    for cdn in ("cdn", "jsdelivr", "unpkg"):
        assert cdn not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.content.decode())
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        if asset.startswith("/api/docs/?"):  # its settings script, from this page's own address
            assert client_for("auditor").get(asset).status_code == 200
            continue
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not shipped with the site"


def test_it_sends_anonymous_visitors_of_the_docs_to_the_login_page(client_for, cast):
    response = client_for(None).get("/api/docs/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
