"""`manage.py sweep --loop` as cron or systemd would run it: a real process on committed data that
passes repeatedly, adds nothing on its second pass, and stops cleanly on SIGTERM; and two sweeps
at once (two servers' timers firing together), each on its own connection."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from tests.conftest import make_user
from tracker import services
from tracker.choices import FlagKind, LocationKind, MediaKind, Role
from tracker.models import CustodyEvent, Flag, Location, Reminder

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(committed_db):
    """Committed for real: the sweep runs in another process (see tests/conftest.py)."""


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_the_loop_passes_repeatedly_adds_nothing_twice_and_stops_on_sigterm(db, tmp_path):
    staff, doctor = make_user("staff", Role.FILE_ROOM), make_user("doctor", Role.CLINICIAN)
    shelf = Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF)
    media = services.media_register(code="FJ-1", kind=MediaKind.FILM_JACKET, home_location=shelf, actor=staff)
    services.media_check_out(
        media=media, borrower=doctor, actor=staff, due_at=timezone.now() - timedelta(hours=1)
    )
    before = CustodyEvent.objects.count()
    env = {
        **os.environ, "DATABASE_URL": database_url(), "FILMROOM_VAR_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "sweep", "--loop", "0.2", "--json", "--no-reminders"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        passes = [json.loads(process.stdout.readline()) for _ in range(3)]
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert time.monotonic() - started < 5  # it did not wait out a long pass or sleep
    assert "Sweep stopped." in out
    assert passes[0]["raised"][FlagKind.OVERDUE] == 1
    assert all(sum(p["raised"].values()) + sum(p["cleared"].values()) == 0 for p in passes[1:])
    assert Flag.objects.filter(kind=FlagKind.OVERDUE, cleared_at__isnull=True).count() == 1
    assert CustodyEvent.objects.count() == before + 1


def test_two_sweeps_at_once_raise_each_flag_and_send_each_reminder_once(db, settings):
    from django.core import mail
    from django.db import connections

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    staff = make_user("staff", Role.FILE_ROOM)
    doctor = make_user("doctor", Role.CLINICIAN, email="doctor@hospital.example")
    shelf = Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF)
    for n in range(30):
        media = services.media_register(
            code=f"FJ-{n}", kind=MediaKind.FILM_JACKET, home_location=shelf, actor=staff
        )
        services.media_check_out(
            media=media, borrower=doctor, actor=staff, due_at=timezone.now() - timedelta(hours=1)
        )
    before = CustodyEvent.objects.count()
    now = timezone.now()
    start, failures = threading.Barrier(2), []

    def run():
        try:
            start.wait()
            services.sweep(now=now)
        except Exception as exc:  # reported below, with the thread's own error
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert Flag.objects.filter(kind=FlagKind.OVERDUE, cleared_at__isnull=True).count() == 30
    assert Reminder.objects.count() == 30 and len(mail.outbox) == 30
    assert CustodyEvent.objects.count() == before + 60  # 30 flags, 30 reminders
