"""Schemathesis drives every operation of the OpenAPI schema with generated requests (100 cases
per operation) as a file-room member, and the scan ingest with a reader's key: no answer may be a
server error, and every answer must be one the schema documents (status code, content type and
body). The schema is the one /api/schema/ serves; the requests go through the real WSGI app,
middleware, authentication and database (the test's own)."""
import json

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import make_user
from tracker.choices import Role
from tracker.models import ReaderDevice, ReaderKey

EXAMPLES = int(__import__("os").environ.get("SCHEMA_EXAMPLES", "100"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

_raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
schema = schemathesis.openapi.from_dict(_raw)
schema.app = get_wsgi_application()
SCANS = "/api/v1/scans/"


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """As Django's test client does: the app would close the test's database connection at the
    end of each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_headers(db, places, make_media):
    """A file-room member's session (and CSRF token, as a browser sends it), and some data."""
    for n in range(3):
        make_media(f"FJ-S{n}")
    client = Client()
    client.force_login(make_user("schema-staff", Role.FILE_ROOM))
    token = _get_new_csrf_string()
    return {"cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": token},
            "headers": {"X-CSRFToken": token}}


@pytest.fixture
def reader_headers(db, places):
    reader = ReaderDevice.objects.create(name="schema-desk", location=places["shelf"], mode="locate")
    _row, key = ReaderKey.objects.create_key(name="schema", reader=reader)
    return {"Authorization": f"Api-Key {key}"}


_settings = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@schema.exclude(path=SCANS).parametrize()
@_settings
def test_every_operation_answers_as_documented_to_staff(case, staff_headers):
    response = case.call(**staff_headers)
    case.validate_response(response, checks=CHECKS, headers=staff_headers["headers"])


@schema.include(path=SCANS).parametrize()
@_settings
def test_the_scan_ingest_answers_as_documented_to_a_reader(case, reader_headers):
    response = case.call(headers=reader_headers)
    case.validate_response(response, checks=CHECKS, headers=reader_headers)
