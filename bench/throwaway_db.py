"""A fresh, migrated Filmroom database for one benchmark run: a new SQLite file under /tmp, or the
PostgreSQL database `bench_ledger` dropped and created again. Import this before anything Django."""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_PG_SERVER", "postgres://postgres@127.0.0.1:5432")
PG_DATABASE = "bench_ledger"


def arguments(description: str, default_events: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=default_events)
    return parser.parse_args()


def open_database(kind: str) -> str:
    """Point Django at an empty database of this kind, set it up and migrate it; return its name."""
    sys.path.insert(0, str(ROOT))
    scratch = Path(tempfile.mkdtemp(prefix="filmroom-bench-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ["FILMROOM_VAR_DIR"] = str(scratch)
    os.environ.setdefault("FILMROOM_LOG_LEVEL", "WARNING")
    # As in production: with DEBUG on, Django also records every query, on both sides.
    os.environ["FILMROOM_DEBUG"] = "0"
    os.environ["FILMROOM_SECRET_KEY"] = "bench-only-" + os.urandom(24).hex()
    if kind == "postgres":
        _recreate_postgres_database()
        os.environ["DATABASE_URL"] = f"{PG_SERVER}/{PG_DATABASE}"
        name = f"PostgreSQL {PG_DATABASE}"
    else:
        path = scratch / "bench.sqlite3"
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
        name = f"SQLite {path}"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return name


def _recreate_postgres_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DATABASE}")


def file_room():
    """The few rows events point at: places, people, a reader, and some jackets."""
    from django.contrib.auth import get_user_model

    from tracker.choices import LocationKind, MediaKind
    from tracker.models import Location, Media, ReaderDevice

    shelf = Location.objects.create(code="FR-A1", name="Shelf A1", kind=LocationKind.SHELF)
    clinic = Location.objects.create(
        code="ORTHO", name="Orthopaedics", kind=LocationKind.DEPARTMENT
    )
    users = [
        get_user_model().objects.create(username=name) for name in ("staff", "doctor", "doctor2")
    ]
    reader = ReaderDevice.objects.create(name="desk-1", location=shelf)
    media = [
        Media.objects.create(code=f"FJ-{i:04}", kind=MediaKind.FILM_JACKET, home_location=shelf)
        for i in range(200)
    ]
    return {"places": [shelf, clinic], "users": users, "reader": reader, "media": media}


def timed(work) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result
