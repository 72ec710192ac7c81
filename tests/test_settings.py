"""Production settings: `check --deploy` is clean, and nothing runs on development defaults."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = {
    "FILMROOM_DEBUG": "0",
    "FILMROOM_SECRET_KEY": "k7Qz-production-like-secret-9f3a1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f",
    "FILMROOM_ALLOWED_HOSTS": "filmroom.hospital.example",
}


def manage(*args, env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FILMROOM_") and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
        capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_reports_no_issues_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "DEBUG", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = manage("check", env={k: v for k, v in PRODUCTION.items() if k != "FILMROOM_SECRET_KEY"})
    assert result.returncode != 0
    assert "FILMROOM_SECRET_KEY must be set" in result.stderr
