"""The ledger's management commands as an operator or auditor runs them: verify_ledger,
ledger_checkpoint, rebuild_projection and seed_demo."""
import json
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from tests.tracker.test_ledger import triggers_lifted
from tracker import ledger, services
from tracker.choices import MediaStatus
from archive.models import RetentionRule
from tracker.models import CustodyEvent, LedgerCheckpoint, Loan, Media


def run(name: str, *args) -> tuple[str, str]:
    """Run a command; return (stdout, stderr). A SystemExit propagates to the caller."""
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(name: str, *args) -> tuple[int, str, str]:
    """Run a command that must exit non-zero; return (exit code, stdout, stderr)."""
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command(name, *args, stdout=out, stderr=err)
    return exited.value.code, out.getvalue(), err.getvalue()


@pytest.fixture
def day(make_media, cast, places):
    """Five events: two items registered, one tagged, lent and returned."""
    jacket, disc = make_media("FJ-1"), make_media("CD-1")
    services.tag_bind(uid="04A1B2C3D4E5F6", media=jacket, actor=cast["staff"])
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=jacket, actor=cast["staff"])
    assert CustodyEvent.objects.count() == 5
    return jacket, disc


def alter_stored_event(seq: int) -> None:
    """What someone with the database owner's rights could do: change one stored event."""
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE tracker_custodyevent SET tag_uid = '04FFFFFFFFFFFF' WHERE seq = %s", [seq]
        )


def head_hash() -> str:
    return CustodyEvent.objects.order_by("-seq").values_list("hash", flat=True).first()


# --- verify_ledger ------------------------------------------------------------------------------


def test_verify_ledger_reports_an_intact_ledger(day):
    out, err = run("verify_ledger")
    assert out == f"Ledger intact: 5 events, head {head_hash()}, 0 signed checkpoint(s) match.\n"
    assert err == ""


def test_verify_ledger_prints_its_result_as_json(day):
    run("ledger_checkpoint")
    out, _err = run("verify_ledger", "--json")
    assert json.loads(out) == {
        "ok": True,
        "events": 5,
        "head_hash": head_hash(),
        "first_bad_seq": None,
        "reason": "",
        "checkpoints_checked": 1,
    }


def test_verify_ledger_exits_1_and_names_the_first_altered_event(day):
    alter_stored_event(3)
    code, out, err = refused("verify_ledger")
    assert code == 1
    assert err.startswith("LEDGER BROKEN at seq 3:")
    assert "Ledger intact" not in out


def test_verify_ledger_exact_recomputes_every_body_and_agrees_on_the_verdict(day):
    out, _err = run("verify_ledger", "--exact")
    assert out.startswith("Ledger intact: 5 events")
    alter_stored_event(3)
    code, _out, err = refused("verify_ledger", "--exact")
    assert code == 1 and err.startswith("LEDGER BROKEN at seq 3:")


def test_verify_ledger_as_json_names_the_first_altered_event(day):
    alter_stored_event(2)
    alter_stored_event(4)
    code, out, _err = refused("verify_ledger", "--json")
    report = json.loads(out)
    assert code == 1
    assert (report["ok"], report["first_bad_seq"]) == (False, 2)
    assert "2" in report["reason"]


def test_verify_ledger_names_a_deleted_event(day):
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM tracker_custodyevent WHERE seq = 4")
    code, _out, err = refused("verify_ledger")
    assert code == 1 and "at seq 4:" in err


# --- ledger_checkpoint and verifier keys --------------------------------------------------------


def test_ledger_checkpoint_prints_the_signed_note_it_stores(day):
    out, _err = run("ledger_checkpoint")
    checkpoint = LedgerCheckpoint.objects.get()
    assert out == checkpoint.note
    assert out.startswith(f"{settings.LEDGER_ORIGIN}\n5\n")
    assert f"\n\n\u2014 {settings.LEDGER_ORIGIN} " in out
    assert ledger.parse_checkpoint(out, ledger.signing_key().public_key()) == (5, head_hash())


def test_the_verifier_key_it_prints_is_accepted_by_verify_ledger(day, tmp_path):
    out, _err = run("ledger_checkpoint", "--vkey")
    vkey = out.splitlines()[-1]
    assert out == LedgerCheckpoint.objects.get().note + vkey + "\n"
    assert vkey.startswith(f"{settings.LEDGER_ORIGIN}+")
    verified, _err = run("verify_ledger", "--vkey", vkey)
    assert "1 signed checkpoint(s) match" in verified
    key_file = tmp_path / "filmroom.vkey"
    key_file.write_text(vkey + "\n")
    verified, _err = run("verify_ledger", "--vkey", str(key_file))
    assert "1 signed checkpoint(s) match" in verified


def test_verify_ledger_fails_with_the_verifier_key_of_another_key(day):
    run("ledger_checkpoint")
    stranger_key = Ed25519PrivateKey.generate().public_key()
    stranger = ledger.verifier_key(settings.LEDGER_ORIGIN, stranger_key)
    code, _out, err = refused("verify_ledger", "--vkey", stranger)
    assert code == 1
    assert "checkpoint cannot be trusted" in err


def test_verify_ledger_refuses_something_that_is_not_a_verifier_key(day):
    with pytest.raises(CommandError, match="not a note verifier key"):
        run("verify_ledger", "--vkey", "filmroom+00000000+AAAA")


def test_a_checkpoint_kept_in_a_file_exposes_a_truncated_ledger(day, tmp_path):
    out, _err = run("ledger_checkpoint")
    note_file = tmp_path / "checkpoint-5.txt"
    note_file.write_text(out)
    with triggers_lifted(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM tracker_ledgercheckpoint")
        cursor.execute("DELETE FROM tracker_custodyevent WHERE seq > 3")
    run("verify_ledger")  # the stored chain alone looks fine
    code, _out, err = refused("verify_ledger", "--checkpoint", str(note_file))
    assert code == 1
    assert "at seq 4:" in err and "covers 5 events" in err


# --- rebuild_projection ---------------------------------------------------------------------------


def test_rebuild_projection_check_passes_when_the_projection_matches(day):
    out, err = run("rebuild_projection", "--check")
    assert out.strip() == "The projection matches the ledger." and err == ""


def test_rebuild_projection_check_exits_1_and_changes_nothing(day):
    _jacket, disc = day
    Media.objects.filter(pk=disc.pk).update(status=MediaStatus.MISSING)
    loans = list(Loan.objects.values())
    code, _out, err = refused("rebuild_projection", "--check")
    assert code == 1
    assert f"media {disc.pk}:" in err and "nothing was changed" in err
    assert Media.objects.get(pk=disc.pk).status == MediaStatus.MISSING
    assert list(Loan.objects.values()) == loans


def test_rebuild_projection_check_notices_a_loan_closed_behind_the_ledgers_back(day, cast):
    jacket, _disc = day
    services.media_check_out(media=jacket, borrower=cast["doctor2"], actor=cast["staff"])
    Loan.objects.filter(returned_at__isnull=True).update(returned_at=timezone.now())
    code, _out, err = refused("rebuild_projection", "--check")
    assert code == 1 and "loans:" in err
    assert not Loan.objects.filter(returned_at__isnull=True).exists()


def test_rebuild_projection_repairs_the_projection_from_the_ledger(day):
    _jacket, disc = day
    Media.objects.filter(pk=disc.pk).update(status=MediaStatus.MISSING, current_location=None)
    out, _err = run("rebuild_projection")
    assert "Rebuilt the projection from the ledger (1 difference fixed)." in out
    disc.refresh_from_db()
    assert (disc.status, disc.current_location) == (MediaStatus.ON_SHELF, disc.home_location)
    run("rebuild_projection", "--check")
    run("verify_ledger")


# --- seed_demo ------------------------------------------------------------------------------------


def test_seed_demo_twice_gives_the_same_ledger(db):
    out, _err = run("seed_demo", "--media", "30")
    assert "Demo data ready: 30 media" in out
    events, head = CustodyEvent.objects.count(), head_hash()
    assert events > 60  # registrations, tag bindings and some loans
    run("seed_demo", "--media", "30")
    assert (CustodyEvent.objects.count(), head_hash(), Media.objects.count()) == (events, head, 30)
    assert Loan.objects.filter(returned_at__isnull=True).exists()
    # Every demo item holds its patient's studies (linked through the ledger), and the example
    # retention rules are there once, for the retention review to have something to apply.
    assert not Media.objects.filter(studies__isnull=True).exists()
    assert sorted(RetentionRule.objects.values_list("modality", "retain_years")) == [("", 8), ("MG", 10)]
    verified, _err = run("verify_ledger")
    assert f"Ledger intact: {events} events" in verified
    run("rebuild_projection", "--check")
