"""Signed exports: what an auditor downloads is accepted by `manage.py verify_export`, and any
change to the file (one byte anywhere, a row dropped or moved, another checkpoint, another key)
is rejected with the first bad row or seq named. A ledger tampered with before the export is
caught too: the export carries the bad row as stored and the check names it."""
import csv
import io
import random
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.http import QueryDict
from django.utils import timezone
from django.utils.http import urlencode
from pypdf import PdfReader

from archive.models import Patient
from tests.conftest import make_user
from tests.tracker.test_ledger import rehash_from, rewrite_stored_rows, triggers_lifted
from tracker import exports, ledger, services
from tracker.choices import AccessAction, AccessSubject, EventKind
from tracker.exports import writing
from tracker.models import AccessLog, CustodyEvent, ReaderDevice

pytestmark = pytest.mark.django_db


@pytest.fixture
def history(cast, places, make_media):
    """Two patients' items moving about, a checkpoint in the middle, and more events after it."""
    patient = Patient.objects.create(patient_id="P-1001", name="Wang Fang")
    other = Patient.objects.create(patient_id="P-2002")
    jacket = make_media("FJ-1", patient=patient)
    disc = make_media("CD-7", kind="cd", patient=other)
    services.tag_bind(uid="04A1B2C3D4E5F6", media=jacket, actor=cast["staff"])
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_check_out(media=disc, borrower=cast["doctor2"], actor=cast["staff"])
    checkpoint = ledger.checkpoint()
    services.media_transfer(media=jacket, actor=cast["staff"], to_location=places["clinic"])
    services.media_return(media=jacket, actor=cast["staff"])
    services.media_return(media=disc, actor=cast["staff"])
    services.media_retire(media=disc, actor=cast["staff"], reason="水渍损坏 (water damage)")
    return {"patient": patient, "jacket": jacket, "disc": disc, "checkpoint": checkpoint}


def vkey() -> str:
    return ledger.verifier_key(settings.LEDGER_ORIGIN, ledger.signing_key().public_key())


def public_key():
    return ledger.signing_key().public_key()


def export_bytes(user, **query) -> bytes:
    params = QueryDict(mutable=True)
    for name, value in query.items():
        params.setlist(name, value if isinstance(value, list) else [value])
    export = exports.Export.snapshot(exports.parse_filters(params), user=user)
    return exports.write_csv(export).read()


def verify(tmp_path: Path, data: bytes, *extra) -> tuple[int, str, str]:
    """Run `manage.py verify_export` on `data`: (exit code, stdout, stderr)."""
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_export", str(path), *(extra or ("--vkey", vkey())), stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    except CommandError as exc:
        code, err = exc.returncode, io.StringIO(str(exc))
    return code, out.getvalue(), err.getvalue()


def table(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def event_rows(data: bytes) -> list[list[str]]:
    rows = table(data)
    start = next(i for i, row in enumerate(rows) if row[0] == "#columns") + 2
    end = next(i for i in range(start, len(rows)) if rows[i][0].startswith("#"))
    return rows[start:end]


def rebuild(data: bytes, mutate) -> bytes:
    """The export's rows changed by `mutate(rows)` and written back as the exporter writes them
    (the signature row kept as it was)."""
    rows = table(data)
    mutate(rows)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return exports.BOM.encode() + out.getvalue().encode()


# --- a good export ----------------------------------------------------------------------------------


def test_it_downloads_an_items_chain_that_verify_export_accepts(client_for, history, tmp_path):
    query = {"subject_kind": "media", "subject": "FJ-1"}
    response = client_for("auditor").get("/audit/export.csv?" + urlencode(query))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert f"custody-media-FJ-1-{timezone.localdate().isoformat()}.csv" in disposition
    data = b"".join(response.streaming_content)
    assert data.startswith(b"\xef\xbb\xbf#filmroom-export,1,")
    assert int(response["Content-Length"]) == len(data)

    rows = event_rows(data)
    expected = list(CustodyEvent.objects.filter(media=history["jacket"]).values_list("seq", "hash"))
    assert [(int(r[0]), r[-1]) for r in rows] == expected
    code, out, err = verify(tmp_path, data)
    assert (code, err) == (0, "")
    assert f"Export intact: {len(expected)} event(s)" in out
    assert "left out" in out  # a filtered export says what it cannot prove

    log = AccessLog.objects.get(action=AccessAction.EXPORTED)
    assert (log.user.username, log.subject_kind, log.subject) == ("auditor", "media", "FJ-1")
    assert log.detail["format"] == "csv"
    assert (log.detail["rows"], log.detail["first_seq"], log.detail["last_seq"]) == (
        len(expected), expected[0][0], expected[-1][0]
    )
    assert log.detail["filters"]["subject"] == "FJ-1"


def test_a_full_export_is_checked_from_the_genesis_hash_and_against_the_checkpoint(
    cast, history, tmp_path
):
    data = export_bytes(cast["auditor"], subject_kind="events")
    check = exports.verify_csv(data, public_key())
    assert check.ok, check.reason
    assert check.rows == CustodyEvent.objects.count()
    assert check.contiguous and check.from_genesis
    assert check.checkpoint_size == history["checkpoint"].size and check.checkpoint_in_rows
    code, out, _ = verify(tmp_path, data)
    assert code == 0
    assert "recomputed from its start" in out
    assert f"seq {history['checkpoint'].size} in the export has the hash it signed" in out
    assert "left out" not in out  # every event up to the ledger's size is in the file


def test_filters_narrow_the_rows_and_are_recorded_in_the_file(cast, history):
    data = export_bytes(
        cast["auditor"], subject_kind="patient", subject="P-1001", kinds=[EventKind.CHECKED_OUT]
    )
    rows = event_rows(data)
    columns = table(data)[[r[0] for r in table(data)].index("#columns")][1:]
    kinds = [row[columns.index("kind")] for row in rows]
    assert kinds == ["checked_out"]
    assert rows[0][columns.index("media_code")] == "FJ-1"
    assert rows[0][columns.index("holder_username")] == "doctor"
    check = exports.verify_csv(data, public_key())
    assert check.ok and check.rows == 1
    assert check.filters == {
        "subject_kind": "patient", "subject": "P-1001", "from": None, "to": None,
        "kinds": ["checked_out"],
    }


def test_an_empty_export_verifies(cast, history, tmp_path):
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    data = export_bytes(cast["auditor"], subject_kind="events", **{"from": tomorrow})
    assert event_rows(data) == []
    code, out, _ = verify(tmp_path, data)
    assert code == 0 and "no events matched" in out


def test_chinese_text_survives_and_a_cell_excel_would_run_is_defused(cast, places, history):
    sneaky = make_user("@SUM", "clinician")  # a username Django accepts and Excel would evaluate
    services.media_check_out(media=history["jacket"], borrower=sneaky, actor=cast["staff"])
    data = export_bytes(cast["auditor"], subject_kind="events")
    text = data.decode("utf-8")
    assert "水渍损坏" in text
    columns = exports.COLUMNS
    last = event_rows(data)[-1]
    assert last[columns.index("holder_username")] == "'@SUM"
    assert exports.verify_csv(data, public_key()).ok


# --- what verify_export rejects -------------------------------------------------------------------------


def test_every_single_byte_alteration_is_rejected(cast, history, tmp_path):
    """200 random positions over the whole file (BOM, header, rows, trailer, signature, final
    CRLF), each given another byte value: no alteration is harmless, none passes."""
    data = export_bytes(cast["auditor"], subject_kind="events")
    key = public_key()
    assert exports.verify_csv(data, key).ok
    rng = random.Random(7)
    positions = rng.sample(range(len(data)), 200)
    for position in positions:
        altered = bytearray(data)
        altered[position] = (altered[position] + rng.randrange(1, 256)) % 256
        check = exports.verify_csv(bytes(altered), key)
        assert not check.ok, f"byte {position} ({data[position:position + 1]!r}) changed unnoticed"
    # The command itself exits 1 and names the row for a change inside an event's fields.
    first_hash_cell = data.index(event_rows(data)[2][exports.COLUMNS.index("payload")].encode())
    altered = bytearray(data)
    altered[first_hash_cell] = ord("[")
    code, _, err = verify(tmp_path, bytes(altered))
    assert code == 1
    assert "EXPORT REJECTED at row 3, seq 3" in err


def test_a_dropped_row_is_rejected(cast, history, tmp_path):
    data = export_bytes(cast["auditor"], subject_kind="media", subject="FJ-1")

    def drop_second_event(rows):
        start = next(i for i, row in enumerate(rows) if row[0] == "#columns") + 2
        del rows[start + 1]

    code, _, err = verify(tmp_path, rebuild(data, drop_second_event))
    assert code == 1
    assert "trailer says rows is" in err


def test_a_swapped_pair_is_rejected_naming_the_row(cast, history, tmp_path):
    data = export_bytes(cast["auditor"], subject_kind="events")

    def swap(rows):
        start = next(i for i, row in enumerate(rows) if row[0] == "#columns") + 2
        rows[start + 3], rows[start + 4] = rows[start + 4], rows[start + 3]

    code, _, err = verify(tmp_path, rebuild(data, swap))
    assert code == 1
    assert "row 5, seq 4" in err and "out of order" in err


def test_another_checkpoint_in_the_file_is_rejected(cast, history, tmp_path):
    data = export_bytes(cast["auditor"], subject_kind="events")
    later = ledger.checkpoint()  # a genuine note, signed by the same key, for a later size

    def other_checkpoint(rows):
        for row in rows:
            if row[0] == "#checkpoint_note":
                row[1] = later.note

    code, _, err = verify(tmp_path, rebuild(data, other_checkpoint))
    assert code == 1
    assert "differs from its signed note" in err

    def forged_checkpoint(rows):
        for row in rows:
            if row[0] == "#checkpoint_note":
                row[1] = row[1].replace(str(history["checkpoint"].size), "1", 1)

    code, _, err = verify(tmp_path, rebuild(data, forged_checkpoint))
    assert code == 1
    assert "checkpoint in the export cannot be trusted" in err


def test_another_key_is_rejected(cast, history, tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = export_bytes(cast["auditor"], subject_kind="media", subject="CD-7")
    stranger = ledger.verifier_key(settings.LEDGER_ORIGIN, Ed25519PrivateKey.generate().public_key())
    code, _, err = verify(tmp_path, data, "--vkey", stranger)
    assert code == 1
    assert "not by the key given" in err


def test_a_re_signed_export_with_a_stolen_name_but_another_key_is_rejected(cast, history):
    """Someone rewrites the file and signs it with their own key under the ledger's name: the
    key id in the header may be copied, the signature cannot."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data = export_bytes(cast["auditor"], subject_kind="media", subject="FJ-1")
    forger = Ed25519PrivateKey.generate()
    body = data[: data.rindex(b"#signature,")]
    import base64
    import hashlib

    signature = forger.sign(exports.SIGNATURE_CONTEXT + hashlib.sha256(body).digest())
    forged = body + b"#signature," + base64.b64encode(signature) + b"\r\n"
    check = exports.verify_csv(forged, public_key())
    assert not check.ok and "signature does not match" in check.reason


def test_a_ledger_row_altered_in_the_database_is_named(cast, history, tmp_path):
    """The database was changed before the export (a holder swapped, hashes left alone): the
    export carries the row as stored, signed, and the check names it."""
    victim = CustodyEvent.objects.filter(kind=EventKind.CHECKED_OUT, media=history["jacket"]).get()
    with triggers_lifted():
        rows = list(CustodyEvent.objects.filter(seq=victim.seq).values(*ledger.BODY_FIELDS))
        rows[0]["holder_id"] = cast["doctor2"].pk
        rewrite_stored_rows(rows, columns=("holder_id",))
    data = export_bytes(cast["auditor"], subject_kind="media", subject="FJ-1")
    code, _, err = verify(tmp_path, data)
    assert code == 1
    assert f"seq {victim.seq}" in err and "was altered" in err


def test_a_ledger_rewritten_after_its_checkpoint_is_caught_by_the_checkpoint(cast, history):
    """A careful forger recomputes every hash after changing an event before the checkpoint:
    each row is then consistent, but the checkpoint signed earlier names another hash."""
    all_rows = list(CustodyEvent.objects.order_by("seq").values(*ledger.BODY_FIELDS))
    index = next(i for i, r in enumerate(all_rows) if r["kind"] == EventKind.CHECKED_OUT)
    all_rows[index]["holder_id"] = cast["doctor2"].pk
    rehash_from(all_rows, index)
    with triggers_lifted():
        rewrite_stored_rows(all_rows[index:], columns=("holder_id", "prev_hash", "hash"))
    data = export_bytes(cast["auditor"], subject_kind="events")
    check = exports.verify_csv(data, public_key())
    assert not check.ok
    assert check.seq == history["checkpoint"].size
    assert "differs from the signed checkpoint" in check.reason


def test_unreadable_files_and_bad_keys_exit_2(cast, history, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as missing:
        call_command("verify_export", str(tmp_path / "nope.csv"), "--vkey", vkey(), stdout=out, stderr=err)
    assert missing.value.returncode == 2
    path = tmp_path / "export.csv"
    path.write_bytes(export_bytes(cast["auditor"], subject_kind="events"))
    with pytest.raises(CommandError) as bad_key:
        call_command("verify_export", str(path), "--vkey", "not-a-key", stdout=out, stderr=err)
    assert bad_key.value.returncode == 2


def test_without_vkey_it_uses_this_installations_key(cast, history, tmp_path):
    data = export_bytes(cast["auditor"], subject_kind="media", subject="FJ-1")
    path = tmp_path / "export.csv"
    path.write_bytes(data)
    out = io.StringIO()
    call_command("verify_export", str(path), "--json", stdout=out)
    assert '"ok": true' in out.getvalue()


def test_something_that_is_not_an_export_is_rejected(tmp_path):
    code, _, err = verify(tmp_path, b"seq,kind\r\n1,checked_out\r\n")
    assert code == 1 and "not a Filmroom export" in err


# --- the PDF ------------------------------------------------------------------------------------


def test_the_pdf_shows_the_events_their_hashes_and_the_range(client_for, history):
    response = client_for("auditor").get("/audit/export.pdf?subject_kind=media&subject=FJ-1")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "attachment;" in response["Content-Disposition"]
    assert ".pdf" in response["Content-Disposition"]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.content)).pages)
    events = list(CustodyEvent.objects.filter(media=history["jacket"]).order_by("seq"))
    assert "Custody chain of item FJ-1" in text
    squashed = text.replace("\n", "")
    for event in events:
        assert event.hash in squashed
    assert history["checkpoint"].hash in squashed
    assert "verify_export" in squashed
    log = AccessLog.objects.get(action=AccessAction.EXPORTED)
    assert log.detail["format"] == "pdf" and log.detail["rows"] == len(events)


def test_the_pdf_says_what_each_event_did_in_the_readers_words(client_for, history, cast):
    cast["doctor"].first_name, cast["doctor"].last_name = "Li", "Ming"
    cast["doctor"].save()
    english = client_for("auditor").get("/audit/export.pdf?subject_kind=media&subject=FJ-1")
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(english.content)).pages)
    text = " ".join(text.split())
    assert "checked out to Li Ming" in text, text[:2000]
    assert "moved to Orthopaedics (ORTHO)" in text, text[:2000]
    auditor = client_for("auditor")
    auditor.cookies["django_language"] = "zh-hans"
    chinese = auditor.get("/audit/export.pdf?subject_kind=media&subject=FJ-1")
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(chinese.content)).pages)
    assert "checked out to" not in text and "借给 Li Ming" in text and "转移至" in text, text[:2000]


def test_the_pdf_reads_each_event_as_the_csv_writes_it(cast, places, history):
    """The PDF reads model rows once (for their words too); the CSV reads plain values. Each
    event, a station's read with its device included, must come out the same both ways."""
    reader = ReaderDevice.objects.create(name="desk-1", location=places["shelf"], mode="locate")
    services.media_seen(media=history["jacket"], location=places["shelf"], actor=cast["staff"], device=reader)
    export = exports.Export.snapshot(exports.parse_filters(QueryDict()), user=cast["auditor"])
    related = ("media", "holder", "actor", "from_location", "to_location", "device")

    as_pdf = [writing._row_of(event) for event in export.events().select_related(*related)]

    assert as_pdf == list(export.rows())
    assert {row["device_name"] for row in as_pdf} == {"", "desk-1"}
    assert {row["holder_username"] for row in as_pdf} >= {"doctor", "doctor2"}


def test_too_many_events_for_a_pdf_is_a_clear_400(client_for, history, monkeypatch):
    monkeypatch.setattr("tracker.exports.writing.PDF_MAX_ROWS", 3)
    response = client_for("auditor").get("/audit/export.pdf?subject_kind=events")
    assert response.status_code == 400
    assert "narrow the period" in response.content.decode()
    assert not AccessLog.objects.filter(action=AccessAction.EXPORTED).exists()


# --- questions that cannot be answered -------------------------------------------------------------


def test_an_unknown_subject_is_a_404_page_that_says_so(client_for, history):
    response = client_for("auditor").get("/audit/export.csv?subject_kind=media&subject=NOPE-9")
    assert response.status_code == 404
    assert "NOPE-9" in response.content.decode()
    assert not AccessLog.objects.exists()


def test_a_bad_period_is_a_400_page(client_for, history):
    response = client_for("auditor").get(
        "/audit/export.csv?subject_kind=events&from=2026-05-02&to=2026-05-01"
    )
    assert response.status_code == 400
    assert not AccessLog.objects.exists()


def test_the_access_log_names_the_subject_kind_of_each_question(client_for, history):
    client = client_for("auditor")
    for query in ("subject_kind=patient&subject=P-1001", "subject_kind=location&subject=ORTHO",
                  "subject_kind=borrower&subject=doctor", "subject_kind=events"):
        assert client.get("/audit/export.csv?" + query).status_code == 200
    kinds = list(AccessLog.objects.order_by("id").values_list("subject_kind", "subject"))
    assert kinds == [
        (AccessSubject.PATIENT, "P-1001"), (AccessSubject.LOCATION, "ORTHO"),
        (AccessSubject.BORROWER, "doctor"), (AccessSubject.EVENTS, ""),
    ]
