"""No patient names or IDs in the application logs: a test plants a patient, uses Filmroom the way
people do (search by name, open pages by patient ID, miss a page, call the API), and greps what
the configured log handler wrote; and a real development server's access log is grepped too."""
import io
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from archive.models import Patient
from tests.conftest import free_port
from tracker.log_filters import NoPatientData

ROOT = Path(__file__).resolve().parents[1]
NAME, PATIENT_ID = "Plantedname^Weiqiang", "PLANT-4711"


@pytest.fixture
def log_output():
    """What Filmroom's configured console handler writes, while the test runs."""
    handlers = {
        h for name in ("", "django.request", "django.server")
        for h in logging.getLogger(name).handlers
        if any(isinstance(f, NoPatientData) for f in h.filters)
    }
    assert handlers, "the console handler lost its patient-data filter"
    stream = io.StringIO()
    previous = {h: h.setStream(stream) for h in handlers}
    yield stream
    for handler, old in previous.items():
        handler.setStream(old)


def test_a_days_work_with_a_patient_leaves_no_name_or_id_in_the_log(log_output, make_media, cast, client):
    patient = Patient.objects.create(patient_id=PATIENT_ID, name=NAME)
    make_media("FJ-LOG", patient=patient)
    client.force_login(cast["staff"])
    assert client.get("/", {"q": "Plantedname"}).status_code == 200
    assert client.get(f"/patients/{PATIENT_ID}/").status_code == 200
    assert client.get(f"/patients/{PATIENT_ID}-X/").status_code == 404  # logged: Not Found
    assert client.get(f"/api/v1/patients/{PATIENT_ID}-X/").status_code == 404
    assert client.get("/api/v1/media/", {"search": PATIENT_ID}).status_code == 200
    client.force_login(cast["doctor"])
    assert client.post("/api/v1/requests/", {"patient": PATIENT_ID}, format="json").status_code >= 400
    logging.getLogger("tracker").warning("a service warns about %s", "row 7")

    written = log_output.getvalue()
    assert "Not Found: /patients/<path:patient_id>/" in written  # the 404 was logged, by route
    assert "a service warns about row 7" in written
    for secret in (PATIENT_ID, "Plantedname", "Weiqiang"):
        assert secret not in written, written


def test_the_development_servers_access_log_names_routes_not_patients(tmp_path):
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("FILMROOM_") and k != "DATABASE_URL"},
        "FILMROOM_VAR_DIR": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PYTHONUNBUFFERED": "1",
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    port = free_port()
    log = (tmp_path / "server.log").open("w+")
    server = subprocess.Popen([*manage, "runserver", "--noreload", f"127.0.0.1:{port}"], cwd=ROOT,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 60
            while True:  # poll until it listens, failing loudly if it dies or never does
                try:
                    http.get("/login/")
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline, log_text(log)
                    time.sleep(0.05)
            assert http.get("/", params={"q": "Plantedname Weiqiang"}).status_code == 302
            assert http.get(f"/patients/{PATIENT_ID}/").status_code == 302
    finally:
        server.terminate()
        server.wait(10)
    written = log_text(log)
    assert '"GET / HTTP/1.1" 302' in written and '"GET /patients/<path:patient_id>/ HTTP/1.1" 302' in written
    for secret in (PATIENT_ID, "Plantedname", "Weiqiang"):
        assert secret not in written, written


def log_text(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()
