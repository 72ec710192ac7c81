"""Management commands speak the site's language (settings.LANGUAGE_CODE, i.e.
FILMROOM_LANGUAGE_CODE): a Chinese file room reads verify_ledger, sweep, register_reader and
verify_export in Chinese, while their --json output stays exactly as it was."""
import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone, translation

from tests.test_translations import ENGLISH_RUN, chinese_catalogue  # noqa: F401
from tests.tracker.test_commands import alter_stored_event
from tests.tracker.test_exports import export_bytes, vkey
from tracker import ledger, services

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def chinese_site(settings, chinese_catalogue):  # noqa: F811
    """A site set to Chinese, with no language activated by a request (as under manage.py)."""
    settings.LANGUAGE_CODE = "zh-hans"
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def day(make_media, cast):
    jacket = make_media("FJ-1")
    services.media_check_out(
        media=jacket, borrower=cast["doctor"], actor=cast["staff"],
        due_at=timezone.now() + timedelta(days=1),
    )
    return jacket


def run(name: str, *args) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def english_in(text: str) -> list[str]:
    """Runs of English words, after what may stay English: hashes, codes, options, the ledger's
    origin and the export's filters (JSON)."""
    text = re.sub(r"--\w[\w-]*|\b[0-9a-f]{16,}\b|FJ-\d+|verify_ledger|[\w.]+/[\w-]+|\{.*?\}", " ", text)
    return ENGLISH_RUN.findall(text)


def test_verify_ledger_says_intact_and_broken_in_chinese(day, chinese_site):
    code, out, err = run("verify_ledger")
    assert code == 0 and out.startswith("保管台账完好：共 2 个事件"), out
    assert not english_in(out), out
    alter_stored_event(2)
    code, out, err = run("verify_ledger")
    assert code == 1
    assert err.strip() == "保管台账已损坏，首个异常序号 2：事件 2 已被篡改：其哈希值与内容不符。"
    code, out, _err = run("verify_ledger", "--json")
    report = json.loads(out)
    assert report["reason"] == "event 2 was altered: its hash does not match its content"
    assert set(report) == {"ok", "events", "head_hash", "first_bad_seq", "reason", "checkpoints_checked"}


def test_the_same_commands_stay_english_on_an_english_site(day, settings):
    settings.LANGUAGE_CODE = "en"
    translation.deactivate()
    code, out, _err = run("verify_ledger")
    assert out.startswith("Ledger intact: 2 events")


def test_sweep_reports_in_chinese(day, chinese_site):
    code, out, err = run("sweep", "--no-reminders", "--now", (timezone.now() + timedelta(days=5)).isoformat())
    assert code == 0 and CHINESE.search(out) and not english_in(out), out
    assert "逾期" in out


def test_register_reader_tells_in_chinese_and_still_prints_only_the_key(places, chinese_site):
    code, out, err = run("register_reader", "desk-9", "--location", "FR", "--mode", "check_out")
    assert code == 0 and len(out.strip().split()) == 1, out
    assert err.startswith("已在 FR 登记读卡站 desk-9"), err
    assert not english_in(err), err


def test_verify_export_accepts_and_rejects_in_chinese(day, cast, chinese_site, tmp_path):
    ledger.checkpoint()
    data = export_bytes(cast["auditor"], subject_kind="media", subject="FJ-1")
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    code, out, err = run("verify_export", str(path), "--vkey", vkey())
    assert code == 0 and out.startswith("导出文件完好："), (out, err)
    assert not english_in(out), english_in(out)
    path.write_bytes(data.replace(b"checked_out", b"checked_0ut", 1))
    code, out, err = run("verify_export", str(path), "--vkey", vkey())
    assert code == 1 and err.startswith("导出文件未通过核验"), err


COMMANDS = [
    "verify_ledger", "verify_export", "ledger_checkpoint", "audit_messages", "rebuild_projection",
    "sweep", "register_reader", "import_disc", "verify_disc", "pdi_check",
]


@pytest.mark.parametrize("name", COMMANDS)
def test_a_commands_help_is_worded_when_asked_not_when_first_loaded(name, capsys, chinese_catalogue):  # noqa: F811
    """A command first loaded while Chinese was active (a Chinese site's cron, then an English
    admin's shell in the same process) still explains itself in the language asked now."""
    from django.core.management import load_command_class

    app = "archive" if name in ("import_disc", "verify_disc", "pdi_check") else "tracker"
    with translation.override("zh-hans"):
        chinese = load_command_class(app, name).create_parser("manage.py", name).format_help()
    with translation.override("en"):
        english = load_command_class(app, name).create_parser("manage.py", name).format_help()
    description = english.split("\n\n")[1]
    assert re.search(r"[a-z]{3,} [a-z]{3,}", description), english
    assert re.search(r"[\u4e00-\u9fff]", chinese.split("\n\n")[1]), chinese
