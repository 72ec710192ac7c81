"""Who may use the auditors' workspace: every page and endpoint against every role.

Auditors and admins only. File-room staff get 403 like clinicians (tracker.audit AUDIT_ROLES:
they read chains on an item's page, and need no ledger verification or access log). Pages send
anonymous visitors to the login page; the API answers them 401. A refused request records
nothing in the access log and appends nothing to the ledger. Clinicians cannot open one another's
loans either (issue 7's access test)."""
import pytest
from django.test import Client
from django.urls import resolve

from tracker import services
from tracker.models import AccessLog, CustodyEvent
from tracker.api import audit as audit_api
from tracker.urls import api_urlpatterns, urlpatterns
from tracker.views import audit as audit_views

pytestmark = pytest.mark.django_db

ANONYMOUS = None
ROLES = [ANONYMOUS, "nobody", "doctor", "staff", "auditor", "admin"]
AUDIT = {"auditor", "admin"}
CHAIN = "subject_kind=media&subject=M-AUDIT"

# (method, path, body, status when allowed, access-log rows an allowed call leaves)
PAGES = [
    ("get", "/audit/", None, 200, 0),
    ("post", "/audit/verify/", {"scope": "ledger"}, 302, 1),
    ("post", "/audit/verify/", {"scope": "range", "first": 1, "last": 1}, 302, 1),
    ("get", f"/audit/chain/?{CHAIN}", None, 200, 1),
    ("get", "/audit/chain/", None, 200, 0),
    ("get", "/audit/flags/?kind=overdue", None, 200, 0),
    ("get", "/audit/access-log/?action=viewed", None, 200, 0),
]
ENDPOINTS = [
    ("get", f"/api/v1/audit/events/?{CHAIN}", None, 200, 1),
    ("get", "/api/v1/audit/access-log/", None, 200, 0),
    ("post", "/api/v1/audit/verify/", {}, 200, 1),
    ("post", "/api/v1/audit/verify/", {"first": 1, "last": 1}, 200, 1),
]


@pytest.fixture
def scene(cast, make_media):
    item = make_media("M-AUDIT")
    loan = services.media_check_out(media=item, borrower=cast["doctor"], actor=cast["staff"])
    return {"item": item, "loan": loan}


def page_client(cast, role) -> Client:
    client = Client()
    if role:
        client.force_login(cast[role])
    return client


def cases(table):
    return [
        pytest.param(method, path, body, role, success, logged, id=f"{method.upper()} {path} as {role or 'anonymous'}")
        for method, path, body, success, logged in table
        for role in ROLES
    ]


@pytest.mark.parametrize("method, path, body, role, success, logged", cases(PAGES))
def test_only_auditors_and_admins_open_the_pages(cast, scene, method, path, body, role, success, logged):
    events = CustodyEvent.objects.count()
    response = getattr(page_client(cast, role), method)(path, body)
    if role is ANONYMOUS:
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/") or "login" in response["Location"]
    elif role in AUDIT:
        assert response.status_code == success, response.content[:500]
    else:
        assert response.status_code == 403
    assert AccessLog.objects.count() == (logged if role in AUDIT else 0)
    assert CustodyEvent.objects.count() == events


@pytest.mark.parametrize("method, path, body, role, success, logged", cases(ENDPOINTS))
def test_only_auditors_and_admins_call_the_api(client_for, scene, method, path, body, role, success, logged):
    events = CustodyEvent.objects.count()
    response = getattr(client_for(role), method)(path, body, format="json")
    expected = 401 if role is ANONYMOUS else success if role in AUDIT else 403
    assert response.status_code == expected, response.content
    if expected >= 400:
        error = response.json()["error"]
        assert error["code"] == ("not_authenticated" if expected == 401 else "permission_denied")
        assert error["message"]
    assert AccessLog.objects.count() == (logged if role in AUDIT else 0)
    assert CustodyEvent.objects.count() == events


def test_the_tables_cover_every_audit_page_and_endpoint():
    pages = {resolve(p.split("?")[0]).url_name for _m, p, *_ in PAGES}
    endpoints = {resolve(p.split("?")[0]).url_name for _m, p, *_ in ENDPOINTS}
    assert pages == {p.name for p in audit_views.urlpatterns}
    assert endpoints == {p.name for p in audit_api.urlpatterns}
    # ... and all of them are mounted (the exports' /audit/export.* pages have their own table).
    assert pages <= {p.name for p in urlpatterns}
    assert endpoints <= {p.name for p in api_urlpatterns}


# --- the access log, as issue 7 asks ---------------------------------------------------------------


def test_an_auditor_viewing_a_chain_is_recorded_once_with_its_subject(cast, client_for, scene):
    page_client(cast, "auditor").get("/audit/chain/", {"subject_kind": "media", "subject": "M-AUDIT"})
    client_for("auditor").get("/api/v1/audit/events/", {"subject_kind": "borrower", "subject": "doctor"})

    page_entry, api_entry = AccessLog.objects.order_by("id")
    assert (page_entry.user, page_entry.action, page_entry.subject_kind, page_entry.subject) == (
        cast["auditor"], "viewed", "media", "M-AUDIT"
    )
    assert (api_entry.user, api_entry.action, api_entry.subject_kind, api_entry.subject) == (
        cast["auditor"], "viewed", "borrower", "doctor"
    )


def test_a_clinician_asking_for_a_chain_is_refused_and_leaves_no_record(cast, client_for, scene):
    page = page_client(cast, "doctor").get("/audit/chain/", {"subject_kind": "media", "subject": "M-AUDIT"})
    api = client_for("doctor").get("/api/v1/audit/events/", {"subject_kind": "media", "subject": "M-AUDIT"})
    assert (page.status_code, api.status_code) == (403, 403)
    assert not AccessLog.objects.exists()


# --- clinicians and one another's loans --------------------------------------------------------------


def test_a_clinician_cannot_open_another_clinicians_loan(client_for, scene):
    loan = scene["loan"]  # the doctor's
    other = client_for("doctor2")

    detail = other.get(f"/api/v1/loans/{loan.pk}/")
    assert detail.status_code in (403, 404)
    assert "M-AUDIT" not in detail.content.decode()
    assert other.get("/api/v1/loans/").json()["results"] == []
    assert other.get("/api/v1/loans/", {"borrower": "doctor"}).json()["results"] == []
    assert other.post(f"/api/v1/loans/{loan.pk}/renew/", {}, format="json").status_code in (403, 404)
    assert other.post(f"/api/v1/loans/{loan.pk}/return/", {}, format="json").status_code == 403
    # ... while the borrower sees it.
    assert client_for("doctor").get(f"/api/v1/loans/{loan.pk}/").json()["media"] == "M-AUDIT"
