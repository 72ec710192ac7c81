"""PACS look-up against a real Orthanc: staff find a patient's studies by patient ID, accession,
date range or jacket number with C-FIND and with QIDO-RS, record them and link them to a film
jacket through the ledger; a PACS that is down, silent, slow or refusing gives a clear error
within its timeout."""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from datetime import date

import pytest

from archive import pacs
from archive.models import Patient, Study
from tests.conftest import free_port
from tests.interop.orthanc import (  # noqa: F401  (orthanc is a fixture)
    CALLING_AE_TITLE,
    INSTANCES_PER_SERIES,
    STUDIES,
    orthanc,
    start_orthanc,
)
from tracker import ledger
from tracker.choices import EventKind, StudySource
from tracker.exceptions import InvalidRequest

PROTOCOLS = ["dimse", "dicomweb"]
TIMEOUT = 1.5
# What a timed-out search may take beyond its timeout: closing the association, thread hand-offs.
MARGIN = 1.0


def uid(n: int) -> str:
    return STUDIES[n - 1].uid


def dimse(port: int, *, timeout: float = TIMEOUT, ae_title: str = "ORTHANC-TEST", **extra) -> dict:
    return {"protocol": "dimse", "host": "127.0.0.1", "port": port, "ae_title": ae_title,
            "timeout": timeout, **extra}


def dicomweb(base_url: str, *, timeout: float = TIMEOUT) -> dict:
    return {"protocol": "dicomweb", "base_url": base_url, "timeout": timeout}


@pytest.fixture
def configured(settings, orthanc):  # noqa: F811
    """settings.PACS naming the test Orthanc twice: "dimse" (C-FIND) and "dicomweb" (QIDO-RS)."""
    settings.PACS = {
        "dimse": dimse(orthanc.dicom_port, ae_title=orthanc.ae_title, timeout=5),
        "dicomweb": dicomweb(orthanc.dicomweb_url, timeout=5),
    }
    return settings


def uids(found) -> list[str]:
    return [study.study_instance_uid for study in found]


# --- finding --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("criteria", "expected"),
    [
        ({"patient_id": "MRN-100"}, [3, 2, 1]),
        ({"accession_number": "ACC-2001"}, [4]),
        ({"date_from": date(2021, 1, 1), "date_to": date(2021, 12, 31)}, [2, 4]),
        ({"medical_record_locator": "FJ-100"}, [2, 1]),
        ({"patient_id": "MRN-200", "date_from": date(2022, 1, 1)}, [5]),
        ({"patient_id": "MRN-100", "date_to": date(2020, 12, 31)}, [1]),
        ({"patient_id": "MRN-999"}, []),
    ],
    ids=["patient", "accession", "date-range", "jacket-number", "patient-since", "patient-until", "none"],
)
def test_it_finds_exactly_the_matching_studies_newest_first(configured, protocol, criteria, expected):
    found = pacs.find_studies(protocol, **criteria)
    assert uids(found) == [uid(n) for n in expected]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_found_study_carries_what_staff_need_to_recognise_it(configured, protocol):
    (found,) = pacs.find_studies(protocol, accession_number="ACC-1002")
    assert found == pacs.FoundStudy(
        study_instance_uid=uid(2),
        patient_id="MRN-100",
        patient_name="DOE^JANE",
        patient_birth_date=date(1970, 1, 1),
        study_date=date(2021, 6, 10),
        accession_number="ACC-1002",
        description="Knee",
        modalities=("CR", "MR"),
        medical_record_locator="FJ-100",
        number_of_instances=2 * INSTANCES_PER_SERIES,
    )


def test_both_protocols_give_the_same_answer(configured):
    criteria = {"date_from": date(2019, 1, 1), "date_to": date(2023, 12, 31)}
    assert pacs.find_studies("dimse", **criteria) == pacs.find_studies("dicomweb", **criteria)
    assert len(pacs.find_studies("dimse", **criteria)) == len(STUDIES)


# --- recording and linking -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_staff_link_a_film_jacket_to_the_studies_the_pacs_lists_under_its_number(
    configured, protocol, make_media, cast
):
    jacket = make_media("FJ-100")
    offered = pacs.jacket_candidates(jacket, pacs=protocol)
    assert [(c.study.study_instance_uid, c.matches_jacket, c.linked) for c in offered] == [
        (uid(2), True, False),
        (uid(1), True, False),
    ]

    event = pacs.media_link_pacs_studies(
        media=jacket, found=[c.study for c in offered], actor=cast["staff"]
    )

    jacket.refresh_from_db()
    assert event.kind == EventKind.STUDIES_LINKED
    assert event.payload == {
        "studies": sorted([uid(1), uid(2)]),
        "source": StudySource.PACS,
        "patient_id": "MRN-100",
    }
    assert set(jacket.studies.values_list("study_instance_uid", flat=True)) == {uid(1), uid(2)}
    assert jacket.patient.patient_id == "MRN-100"
    assert jacket.patient.name == "DOE^JANE"
    assert jacket.patient.birth_date == date(1970, 1, 1)
    knee = Study.objects.get(study_instance_uid=uid(2))
    assert (knee.study_date, knee.accession_number, knee.description, knee.modalities) == (
        date(2021, 6, 10), "ACC-1002", "Knee", "CR\\MR"
    )
    assert (knee.medical_record_locator, knee.instance_count) == ("FJ-100", 4)
    assert ledger.verify_ledger().ok

    # Now the jacket has a patient, the patient's other studies are offered too, unmarked.
    offered = pacs.jacket_candidates(jacket, pacs=protocol)
    assert [(c.study.study_instance_uid, c.matches_jacket, c.linked) for c in offered] == [
        (uid(2), True, True),
        (uid(1), True, True),
        (uid(3), False, False),
    ]


def test_recording_again_changes_nothing_and_never_blanks_what_is_known(configured, db):
    found = pacs.find_studies("dimse", patient_id="MRN-200")
    first = pacs.studies_record(found)
    stamps = {s.study_instance_uid: s.updated_at for s in Study.objects.all()}

    again = pacs.studies_record(found)
    sparse = [
        dataclasses.replace(s, patient_name="", description="", medical_record_locator="",
                            study_date=None, number_of_instances=None, modalities=())
        for s in found
    ]
    pacs.studies_record(sparse)

    assert [s.pk for s in again] == [s.pk for s in first]
    assert Patient.objects.count() == 1 and Study.objects.count() == 2
    assert {s.study_instance_uid: s.updated_at for s in Study.objects.all()} == stamps
    head = Study.objects.get(study_instance_uid=uid(4))
    assert (head.description, head.medical_record_locator, head.study_date, head.modalities) == (
        "CT head", "FJ-200", date(2021, 6, 10), "CT"
    )
    assert Patient.objects.get().name == "ROE^RICHARD"


def test_studies_of_another_patient_are_not_linked_to_a_jacket(configured, make_media, cast):
    jacket = make_media("FJ-200")
    pacs.media_link_pacs_studies(
        media=jacket, found=pacs.find_studies("dimse", accession_number="ACC-2001"), actor=cast["staff"]
    )
    with pytest.raises(InvalidRequest, match="FJ-200 belongs to patient MRN-200"):
        pacs.media_link_pacs_studies(
            media=jacket, found=pacs.find_studies("dimse", patient_id="MRN-100"), actor=cast["staff"]
        )
    mixed = pacs.find_studies("dimse", date_from=date(2021, 6, 10), date_to=date(2021, 6, 10))
    with pytest.raises(InvalidRequest, match="several patients"):
        pacs.media_link_pacs_studies(media=make_media("FJ-NEW"), found=mixed, actor=cast["staff"])
    assert ledger.verify_ledger().ok


# --- the PACS is down, silent, slow or refusing ----------------------------------------------


class SilentServer:
    """A loopback server that accepts connections and never says a word (a hung PACS)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                self.held.append(self.listener.accept()[0])
            except TimeoutError:
                continue

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        for conn in self.held:
            conn.close()
        self.listener.close()


class TricklingServer(SilentServer):
    """An HTTP server that starts a 200 answer at once and then sends one byte every 0.2 s."""

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn = self.listener.accept()[0]
            except TimeoutError:
                continue
            self.held.append(conn)
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        pause = threading.Event()
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
                         b"Content-Length: 100000\r\n\r\n[")
            while not self.stop.is_set():
                pause.wait(0.2)
                conn.sendall(b" ")
        except OSError:
            pass


@pytest.fixture
def silent_server():
    server = SilentServer()
    yield server
    server.close()


def search_failure(name: str) -> tuple[pacs.PacsUnavailable, float]:
    started = time.monotonic()
    with pytest.raises(pacs.PacsUnavailable) as caught:
        pacs.find_studies(name, patient_id="MRN-100")
    return caught.value, time.monotonic() - started


def test_a_pacs_that_accepts_but_never_answers_times_out_with_a_clear_error(settings, silent_server):
    settings.PACS = {
        "main": dimse(silent_server.port),
        "web": dicomweb(f"http://127.0.0.1:{silent_server.port}/dicom-web"),
    }
    for name in ("main", "web"):
        error, elapsed = search_failure(name)
        assert elapsed < TIMEOUT + MARGIN, f"{name} took {elapsed:.2f} s"
        assert error.details == {"pacs": name, "reason": "timeout"}
        assert error.status == 503
    assert str(search_failure("main")[0]) == (
        f"The PACS “main” did not answer within 1.5 s (127.0.0.1:{silent_server.port}). "
        "Try again, or link the studies by hand."
    )


def test_a_pacs_that_answers_too_slowly_times_out_within_the_timeout(settings):
    server = TricklingServer()
    try:
        settings.PACS = {"web": dicomweb(f"http://127.0.0.1:{server.port}/dicom-web")}
        error, elapsed = search_failure("web")
    finally:
        server.close()
    # Every byte arrives well within httpx's read timeout; only the overall deadline stops it.
    assert error.details["reason"] == "timeout"
    assert elapsed < TIMEOUT + MARGIN


def test_a_pacs_sending_matches_too_slowly_times_out_within_the_timeout(settings):
    """A real pynetdicom C-FIND SCP that sends a match every 0.3 s: each message comes well
    within the DIMSE timeout, only the search's deadline stops it."""
    from pydicom.dataset import Dataset
    from pynetdicom import AE, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

    stop = threading.Event()

    def slow_matches(event):
        n = 0
        while not stop.wait(0.3):
            n += 1
            match = Dataset()
            match.QueryRetrieveLevel = "STUDY"
            match.StudyInstanceUID = f"1.2.3.{n}"
            match.PatientID = "MRN-100"
            yield 0xFF00, match
        yield 0x0000, None

    scp = AE(ae_title="SLOW")
    scp.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    port = free_port()
    server = scp.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_C_FIND, slow_matches)]
    )
    try:
        settings.PACS = {"slow": dimse(port, ae_title="SLOW")}
        error, elapsed = search_failure("slow")
    finally:
        stop.set()
        server.shutdown()
    assert error.details["reason"] == "timeout"
    assert elapsed < TIMEOUT + MARGIN


def test_a_frozen_orthanc_times_out_and_answers_again_once_it_runs(configured, orthanc):  # noqa: F811
    configured.PACS = {
        "dimse": dimse(orthanc.dicom_port, ae_title=orthanc.ae_title),
        "dicomweb": dicomweb(orthanc.dicomweb_url),
    }
    os.kill(orthanc.process.pid, signal.SIGSTOP)
    try:
        for name in ("dimse", "dicomweb"):
            error, elapsed = search_failure(name)
            assert error.details["reason"] == "timeout"
            assert elapsed < TIMEOUT + MARGIN, f"{name} took {elapsed:.2f} s"
    finally:
        os.kill(orthanc.process.pid, signal.SIGCONT)
    assert uids(pacs.find_studies("dimse", accession_number="ACC-1001")) == [uid(1)]


def test_a_stopped_orthanc_or_an_empty_port_is_reported_unreachable_at_once(settings, tmp_path):
    stopped = start_orthanc(tmp_path)
    stopped.stop()
    nothing = free_port()
    settings.PACS = {
        "stopped": dimse(stopped.dicom_port),
        "stopped-web": dicomweb(stopped.dicomweb_url),
        "nothing": dimse(nothing),
    }
    for name in settings.PACS:
        error, elapsed = search_failure(name)
        assert error.details["reason"] == "unreachable", name
        assert elapsed < TIMEOUT, name
    assert str(search_failure("nothing")[0]) == (
        f"The PACS “nothing” could not be reached at 127.0.0.1:{nothing} (nothing accepts "
        "connections there). Check that it is running, or link the studies by hand."
    )


def test_a_calling_ae_title_the_pacs_does_not_know_is_refused(settings, orthanc):  # noqa: F811
    settings.PACS = {
        "main": dimse(orthanc.dicom_port, ae_title=orthanc.ae_title, calling_ae_title="STRANGER")
    }
    error, elapsed = search_failure("main")
    assert error.details["reason"] == "refused"
    assert "calling AE title “STRANGER”" in str(error)
    assert CALLING_AE_TITLE != "STRANGER" and elapsed < TIMEOUT


# --- asking wrongly ---------------------------------------------------------------------------


def test_an_unknown_pacs_or_a_search_without_criteria_is_refused_before_asking(configured):
    with pytest.raises(pacs.PacsNotConfigured, match="There is no PACS called “elsewhere”. Choose one of: dimse, dicomweb."):
        pacs.find_studies("elsewhere", patient_id="MRN-100")
    with pytest.raises(pacs.PacsError, match="Give a patient ID, an accession number"):
        pacs.find_studies("dimse")
    with pytest.raises(pacs.PacsError, match="Give a patient ID"):
        pacs.find_studies("dicomweb", date_from=date(2020, 1, 1))
    with pytest.raises(pacs.PacsError, match=r"Type the whole patient ID: \* \?"):
        pacs.find_studies("dimse", patient_id="*")
    with pytest.raises(pacs.PacsError, match="ends before it starts"):
        pacs.find_studies("dimse", patient_id="MRN-1", date_from=date(2021, 1, 2), date_to=date(2021, 1, 1))


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"protocol": "hl7"}, "“protocol” must be “dimse” or “dicomweb”"),
        ({"protocol": "dimse", "host": "pacs", "port": "104", "ae_title": "PACS"}, "“port” must be a TCP port"),
        ({"protocol": "dimse", "host": "pacs", "port": 104}, "“ae_title” must be an AE title"),
        ({"protocol": "dimse", "host": "pacs", "port": 104, "ae_title": "A-TITLE-LONGER-THAN-16"}, "“ae_title”"),
        ({"protocol": "dicomweb", "base_url": "pacs/dicom-web"}, "“base_url” must be the DICOMweb root"),
        ({"protocol": "dicomweb", "base_url": "http://pacs", "timeout": 0}, "“timeout” must be"),
    ],
)
def test_a_misconfigured_pacs_is_named_with_what_is_wrong(settings, entry, problem):
    settings.PACS = {"main": entry}
    with pytest.raises(pacs.PacsNotConfigured) as caught:
        pacs.find_studies("main", patient_id="MRN-100")
    assert str(caught.value).startswith("The PACS “main” is not set up correctly in FILMROOM_PACS: ")
    assert problem in str(caught.value)


def test_with_no_pacs_configured_staff_are_told_to_link_by_hand(settings, make_media):
    settings.PACS = {}
    with pytest.raises(pacs.PacsNotConfigured, match="No PACS is set up in Filmroom"):
        pacs.jacket_candidates(make_media("FJ-1"))


def test_searches_log_no_patient_names_even_at_debug(configured, caplog):
    caplog.set_level(logging.DEBUG)
    for protocol in PROTOCOLS:
        assert pacs.find_studies(protocol, patient_id="MRN-100")
    assert "pacs dimse (dimse): 3 studies" in caplog.text
    assert "DOE" not in caplog.text and "JANE" not in caplog.text
