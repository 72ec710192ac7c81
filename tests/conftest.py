"""The usual cast for Filmroom tests: one user per role, a small file room, and helpers.

Tests that need committed data seen by other connections (threads, servers) use the
`committed_db` fixture instead of pytest-django's transactional_db: Django's flush cannot
empty the append-only ledger (its triggers refuse DELETE and TRUNCATE), so the fixture
lifts the triggers for the clean-up only, as the database owner can."""
import os
import socket
import tempfile
import uuid
from importlib import import_module
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection, connections
from django.test import Client
from django.utils import translation
from rest_framework.test import APIClient

from tracker import services
from tracker.choices import LocationKind, MediaKind, Role
from tracker.models import Location

TEST_PASSWORD = "correct horse battery staple 42"


def pytest_collection_modifyitems(config, items):
    """Tests marked for one database are deselected (not skipped) on the other."""
    other = "sqlite" if connection.vendor == "postgresql" else "postgres"
    selected, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker(other) else selected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def pytest_configure(config):
    from django.conf import settings

    # Tests create many users; the production hasher's cost buys nothing here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # WhiteNoise serves STATIC_ROOT (filled by collectstatic in production); let it exist here.
    settings.STATIC_ROOT.mkdir(exist_ok=True)
    # SQLite tests use a file, not memory, so a live server thread and other processes see
    # committed data through their own connections, as on a real station.
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(
            Path(tempfile.gettempdir()) / f"filmroom-test-{os.getpid()}.sqlite3"
        )
    else:  # named explicitly, so committed_db can tell the test database from the real one
        test = database.setdefault("TEST", {})
        test["NAME"] = test.get("NAME") or "test_" + database["NAME"]


@pytest.fixture(autouse=True)
def _language_as_found():
    """Each test ends with no language active in its thread. Django's LocaleMiddleware activates
    the language of each request and leaves it active afterwards (the next request sets its
    own), so a test that fetched a Chinese page would otherwise have the next test's direct
    calls (a label sheet, a command's help) speak Chinese."""
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _signing_key_in_tmp(settings, tmp_path):
    """Each test signs checkpoints with its own fresh key (as a new installation would)."""
    path = tmp_path / "ledger-signing-key.pem"
    key = Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    settings.LEDGER_SIGNING_KEY_FILE = path


def make_user(username: str, role: str | None, **extra):
    user = get_user_model().objects.create_user(
        username=username, password=TEST_PASSWORD, first_name=username.title(), **extra
    )
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def cast(db):
    """staff, doctor, doctor2, auditor, admin, and nobody (no role)."""
    return {
        "staff": make_user("staff", Role.FILE_ROOM),
        "doctor": make_user("doctor", Role.CLINICIAN),
        "doctor2": make_user("doctor2", Role.CLINICIAN),
        "auditor": make_user("auditor", Role.AUDITOR),
        "admin": make_user("admin", Role.ADMIN),
        "nobody": make_user("nobody", None),
    }


@pytest.fixture
def places(db):
    room = Location.objects.create(code="FR", name="File room", kind=LocationKind.ROOM)
    return {
        "room": room,
        "shelf": Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF, parent=room),
        "shelf2": Location.objects.create(code="FR-A2", name="Shelf A2", kind=LocationKind.SHELF, parent=room),
        "clinic": Location.objects.create(code="ORTHO", name="Orthopaedics", kind=LocationKind.DEPARTMENT),
        "external": Location.objects.create(code="EXT", name="City General", kind=LocationKind.EXTERNAL),
        "courier": Location.objects.create(code="COURIER", name="Courier", kind=LocationKind.TRANSIT),
    }


@pytest.fixture
def make_media(cast, places):
    def make(code: str | None = None, kind: str = MediaKind.FILM_JACKET, **kwargs):
        return services.media_register(
            code=code or f"M-{uuid.uuid4().hex[:8]}",
            kind=kind,
            home_location=kwargs.pop("home_location", places["shelf"]),
            actor=kwargs.pop("actor", cast["staff"]),
            **kwargs,
        )

    return make


@pytest.fixture
def client_for(cast):
    """client_for("doctor") → an APIClient logged in as that member of the cast."""

    def login(name: str | None) -> APIClient:
        client = APIClient()
        if name:
            client.force_login(cast[name])
        return client

    return login


def wipe_database() -> None:
    """Empty every Filmroom table, the ledger and the access log included, lifting their
    append-only triggers for this only."""
    tables = [
        t
        for t in connection.introspection.django_table_names(only_existing=True)
        if t.split("_", 1)[0] in {"tracker", "archive", "auth", "axes", "django"}
        and t not in {"django_migrations", "django_content_type", "auth_permission"}
    ]
    ledger = import_module("tracker.migrations.0002_ledger_append_only_triggers")
    access_log = import_module("tracker.migrations.0012_access_log_append_only")
    append_only = [*ledger.APPEND_ONLY_TABLES, access_log.TABLE]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("".join(f"ALTER TABLE {t} DISABLE TRIGGER USER;" for t in append_only))
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            cursor.execute("".join(f"ALTER TABLE {t} ENABLE TRIGGER USER;" for t in append_only))
        else:
            for statement in ledger.SQLITE_DROP + access_log.SQLITE_DROP:
                cursor.execute(statement)
            cursor.execute("PRAGMA foreign_keys = OFF")
            for table in tables:
                cursor.execute(f'DELETE FROM "{table}"')
            cursor.execute("PRAGMA foreign_keys = ON")
            for statement in ledger.SQLITE_TRIGGERS + access_log.SQLITE_TRIGGERS:
                cursor.execute(statement)


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """Database access where every service call really commits (for threads and servers).

    pytest-django creates the test database only for tests that use a fixture named `db` (or
    its marks), so a module using this one overrides `db` to depend on it. The check below
    refuses to run (and wipe) anything but a test database."""
    with django_db_blocker.unblock():
        name = connection.settings_dict["NAME"]
        if name != connection.creation._get_test_db_name():
            pytest.fail(f"committed_db would run on {name}, not a test database: override `db` in the module")
        wipe_database()
        yield
        connections.close_all()
        wipe_database()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def start_server(committed_db):
    """start_server(port=None) → base URL of a real HTTP server running Filmroom on loopback,
    stopped at the end of the test (it can also be started late, on a port chosen earlier)."""
    from pytest_django.live_server_helper import LiveServer

    servers = []

    def start(port: int | None = None) -> str:
        server = LiveServer(f"127.0.0.1:{port or free_port()}")
        servers.append(server)
        return server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def page_for(cast):
    """page_for("auditor") → a browser-like client (pages, not the API) logged in as that member
    of the cast; page_for(None) is an anonymous visitor."""

    def login(name: str | None) -> Client:
        client = Client()
        if name:
            client.force_login(cast[name])
        return client

    return login
