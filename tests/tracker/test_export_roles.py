"""Who may download which export (tracker/views/exports.py): every page × every role.

Auditors and admins export any question; file-room staff one item's chain only; clinicians and
people without a role get 403; anyone not logged in is sent to log in. Only a download that was
answered leaves an access-log row."""
import pytest
from django.conf import settings
from django.shortcuts import resolve_url

from archive.models import Patient
from tracker import services
from tracker.choices import AccessAction
from tracker.models import AccessLog

pytestmark = pytest.mark.django_db

ANONYMOUS = None
ROLES = [ANONYMOUS, "nobody", "doctor", "staff", "auditor", "admin"]
AUDIT = {"auditor", "admin"}
ITEM = {"staff", "auditor", "admin"}

PAGES = [
    ("/audit/export.csv?subject_kind=media&subject=FJ-1", ITEM),
    ("/audit/export.pdf?subject_kind=media&subject=FJ-1", ITEM),
    ("/audit/export.csv?subject_kind=patient&subject=P-1", AUDIT),
    ("/audit/export.pdf?subject_kind=patient&subject=P-1", AUDIT),
    ("/audit/export.csv?subject_kind=borrower&subject=doctor", AUDIT),
    ("/audit/export.csv?subject_kind=location&subject=FR-A1", AUDIT),
    ("/audit/export.csv?subject_kind=events", AUDIT),
    ("/audit/export.pdf?subject_kind=events", AUDIT),
    ("/audit/export.csv", AUDIT),  # no question at all: the whole event list
]


@pytest.fixture
def scene(cast, make_media):
    jacket = make_media("FJ-1", patient=Patient.objects.create(patient_id="P-1"))
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    return jacket


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("url,allowed", PAGES)
def test_role_table(client_for, scene, role, url, allowed):
    response = client_for(role).get(url)
    if role is ANONYMOUS:
        assert response.status_code == 302
        assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))
    elif role in allowed:
        assert response.status_code == 200
        assert response["Content-Disposition"].startswith("attachment;")
    else:
        assert response.status_code == 403
    exported = AccessLog.objects.filter(action=AccessAction.EXPORTED)
    assert exported.count() == (1 if role in allowed else 0)


@pytest.mark.parametrize("role", ["nobody", "doctor"])
def test_a_clinician_is_refused_before_anything_is_looked_up(client_for, scene, role):
    """No answer tells a clinician whether a subject exists: 403 even for a made-up one."""
    response = client_for(role).get("/audit/export.csv?subject_kind=media&subject=NOPE")
    assert response.status_code == 403


def test_writes_are_refused(client_for, scene):
    response = client_for("auditor").post("/audit/export.csv?subject_kind=events")
    assert response.status_code == 405
