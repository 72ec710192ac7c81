"""A real Orthanc for the PACS tests: Debian's `orthanc` with the `orthanc-dicomweb` plugin on free
loopback ports, a temporary configuration (no remote access, a DICOM modality whitelist that
allows C-FIND from Filmroom's AE title only) and temporary storage, loaded with a few patients'
studies built here with pydicom.

It never touches a system Orthanc on the default ports 4242/8042: every port is chosen free, and
storage, index and logs live in pytest's temporary directory. Import the fixtures explicitly:
`from tests.interop.orthanc import orthanc  # noqa: F401`."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from tests.conftest import free_port

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
ORTHANC_AE_TITLE = "ORTHANC-TEST"
CALLING_AE_TITLE = "FILMROOM"
UID_ROOT = "1.2.826.0.1.3680043.10.1234."


@dataclass(frozen=True)
class PacsStudy:
    """One study loaded into the test Orthanc: what a search should give back."""

    uid: str
    patient_id: str
    patient_name: str
    birth_date: date
    study_date: date
    accession: str
    description: str
    series_modalities: tuple[str, ...]  # one series per entry, INSTANCES_PER_SERIES instances each
    mrl: str = ""

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.series_modalities)))

    @property
    def instance_count(self) -> int:
        return len(self.series_modalities) * INSTANCES_PER_SERIES


INSTANCES_PER_SERIES = 2


def _uid(n: int) -> str:
    return f"{UID_ROOT}{n}"


# Two studies on one day for different patients, studies with and without a jacket number
# (0010,1090), a patient whose jacket number is on one study only, one study of two modalities.
STUDIES = (
    PacsStudy(_uid(1), "MRN-100", "DOE^JANE", date(1970, 1, 1), date(2019, 3, 4), "ACC-1001",
              "CT chest", ("CT",), mrl="FJ-100"),
    PacsStudy(_uid(2), "MRN-100", "DOE^JANE", date(1970, 1, 1), date(2021, 6, 10), "ACC-1002",
              "Knee", ("MR", "CR"), mrl="FJ-100"),
    PacsStudy(_uid(3), "MRN-100", "DOE^JANE", date(1970, 1, 1), date(2023, 1, 15), "ACC-1003",
              "Hand", ("CR",)),
    PacsStudy(_uid(4), "MRN-200", "ROE^RICHARD", date(1955, 7, 20), date(2021, 6, 10), "ACC-2001",
              "CT head", ("CT",), mrl="FJ-200"),
    PacsStudy(_uid(5), "MRN-200", "ROE^RICHARD", date(1955, 7, 20), date(2022, 11, 30), "ACC-2002",
              "Mammography", ("MG",)),
    PacsStudy(_uid(6), "MRN-300", "POE^EDGAR", date(2010, 2, 2), date(2020, 2, 2), "ACC-3001",
              "Abdomen", ("US",)),
)


def study_instances(study: PacsStudy) -> list[bytes]:
    """Small but complete DICOM files (2x2 pixels) for every instance of a study."""
    files = []
    for series_number, modality in enumerate(study.series_modalities, start=1):
        series_uid = f"{study.uid}.{series_number}"
        for instance_number in range(1, INSTANCES_PER_SERIES + 1):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = f"{series_uid}.{instance_number}"
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.PatientID = study.patient_id
            ds.PatientName = study.patient_name
            ds.PatientBirthDate = study.birth_date.strftime("%Y%m%d")
            if study.mrl:
                ds.MedicalRecordLocator = study.mrl
            ds.StudyInstanceUID = study.uid
            ds.StudyDate = study.study_date.strftime("%Y%m%d")
            ds.StudyTime = "101500"
            ds.AccessionNumber = study.accession
            ds.StudyDescription = study.description
            ds.StudyID = study.accession[-4:]
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = series_number
            ds.Modality = modality
            ds.InstanceNumber = instance_number
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = ds.Columns = 2
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 0
            ds.PixelData = bytes(8)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            files.append(buffer.getvalue())
    return files


@dataclass
class OrthancServer:
    """An Orthanc process owned by the tests."""

    workdir: Path
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    ae_title: str = ORTHANC_AE_TITLE
    allowed_ae_title: str = CALLING_AE_TITLE
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    @property
    def log_path(self) -> Path:
        return self.workdir / "logs"

    def config(self) -> dict:
        return {
            "Name": "filmroom-test",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,  # HTTP from loopback only
            "AuthenticationEnabled": False,  # loopback only, see above
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            # Only whitelisted modalities may search (or store); anyone else is refused.
            "DicomAlwaysAllowEcho": False,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowFindWorklist": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomCheckModalityHost": True,
            "DicomModalities": {
                "filmroom": {
                    "AET": self.allowed_ae_title,
                    "Host": "127.0.0.1",
                    "Port": 104,  # Orthanc never calls back for C-FIND; the port is unused
                    "AllowEcho": True,
                    "AllowFind": True,
                    "AllowStore": False,
                    "AllowGet": False,
                    "AllowMove": False,
                }
            },
            # For HTTP; DICOM sockets take it from the environment (see start()).
            "TcpNoDelay": True,
            "SaveJobs": False,
            "StorageAccessOnFind": "Always",  # (0010,1090) is not an indexed tag: read the files
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        }

    def start(self, timeout: float = 20.0) -> None:
        for binary in (ORTHANC, DICOMWEB_PLUGIN):
            if not Path(binary).exists():
                pytest.fail(f"{binary} is missing: apt-get install orthanc orthanc-dicomweb")
        self.log_path.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "orthanc.json"
        config.write_text(json.dumps(self.config(), indent=2))
        self.process = subprocess.Popen(
            [ORTHANC, f"--logdir={self.log_path}", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
            # DCMTK (Orthanc's DICOM layer) leaves Nagle's algorithm on unless TCP_NODELAY is
            # set: each C-FIND response then waited ~40 ms for our delayed ACK.
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"Orthanc exited with {self.process.returncode} while starting:\n{self.logs()}")
            try:
                if httpx.get(f"{self.url}/system", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Orthanc did not answer /system within {timeout:g} s:\n{self.logs()}")
            pause.wait(0.02)
        plugins = httpx.get(f"{self.url}/plugins", timeout=5).json()
        if "dicom-web" not in plugins:
            self.stop()
            pytest.fail(f"Orthanc started without its DICOMweb plugin ({plugins}):\n{self.logs()}")

    def logs(self) -> str:
        text = "\n".join(p.read_text(errors="replace") for p in sorted(self.log_path.glob("*")) if p.is_file())
        return text[-4000:]

    def load(self, studies=STUDIES) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for study in studies:
                for body in study_instances(study):
                    response = client.post("/instances", content=body, headers={"Content-Type": "application/dicom"})
                    assert response.status_code == 200, f"Orthanc refused an instance: {response.text}"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                pytest.fail(f"Orthanc did not stop within 15 s of SIGTERM:\n{self.logs()}")


def start_orthanc(workdir: Path, **kwargs) -> OrthancServer:
    server = OrthancServer(workdir=workdir, **kwargs)
    server.start()
    return server


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    """A running Orthanc holding STUDIES, for every test of the module; stopped afterwards."""
    server = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    try:
        server.load()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.workdir / "storage", ignore_errors=True)
