"""Browser tests: Debian's Chromium, driven by Playwright, against a real Filmroom server.

Everything the tests create is committed, so the server thread sees it. A test that cannot
start Chromium fails: it is never skipped. Screenshots go to test-artifacts/e2e/."""
import gc
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connections
from django.utils.translation.reloader import translation_file_changed
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
TIMEOUT_MS = 10_000

expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture
def db(committed_db):
    """Everything here is really committed: the server thread answering the browser sees it."""


@pytest.fixture(scope="package")
def browser():
    """Chromium for the tests in this folder. Playwright stops with it: while it runs, Django
    sees an event loop in this thread, which the rest of the suite must not."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not on PATH: `apt-get install chromium` for these tests.")
    # Playwright's sync API runs an event loop in the test's thread; the ORM calls the tests
    # make there are still plain synchronous calls, so let Django allow them while it runs.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        try:
            chromium = playwright.chromium.launch(
                executable_path=executable, args=CHROMIUM_ARGS, timeout=60_000
            )
        except PlaywrightError as exc:
            pytest.fail(f"Chromium ({executable}) did not start under Playwright: {exc}")
        yield chromium
        # While Playwright runs, Django sees an event loop in this thread and keeps the ORM's
        # connections for it apart (asgiref's context storage): close those here, while they
        # are still the ones in view, or they outlive the session and PostgreSQL cannot drop
        # the test database.
        connections.close_all()
        chromium.close()


@pytest.fixture(scope="session", autouse=True)
def _station_streams_end(django_db_setup):
    """A closed station page still holds a server thread and its database connection until the
    server next writes to its live stream (up to ~30 s when no scans come). Those threads stop
    at their next query once the test is over and database access is blocked again; make sure
    they have, and that their connections are closed (they are freed with the thread's objects),
    before the test database is dropped: PostgreSQL refuses to drop a database still in use."""
    yield
    deadline = time.monotonic() + 30
    while busy := [t for t in threading.enumerate() if "process_request_thread" in t.name]:
        if time.monotonic() > deadline:
            pytest.fail(f"server threads still running 30 s after the last page closed: {busy}")
        busy[0].join(0.5)
    gc.collect()


@pytest.fixture
def site(start_server):
    """Base URL of a real Filmroom server on loopback."""
    return start_server()


@pytest.fixture
def page(browser, site, request):
    context = browser.new_context(
        base_url=site, locale="en-GB", viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.screenshot(path=ARTIFACTS / f"{_safe(request.node.name)}-end.png", full_page=True)
    finally:
        context.close()


@pytest.fixture
def shoot(page, request):
    """shoot("label") saves a full-page screenshot as test-artifacts/e2e/<test>-<n>-<label>.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    taken = []

    def take(label: str) -> Path:
        taken.append(label)
        path = ARTIFACTS / f"{_safe(request.node.name)}-{len(taken):02d}-{_safe(label)}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def compiled_messages():
    """The compiled Simplified Chinese catalogue (*.mo files are built, not committed)."""
    po = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    mo = po.with_suffix(".mo")
    if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
        done = subprocess.run(
            [sys.executable, "manage.py", "compilemessages", "--ignore=.venv", "-v0"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0:
            pytest.fail(
                "compilemessages failed (is Debian's gettext installed?):\n"
                f"{done.stdout}{done.stderr}"
            )
        translation_file_changed(sender=None, file_path=mo)  # drop catalogues cached before
    return mo


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
