"""DIMSE C-FIND (Study Root, STUDY level) with pynetdicom, within one deadline."""
from __future__ import annotations

import socket
import threading
import time

from django.utils.translation import gettext as _
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as StudyFind

from . import (
    MAX_RESULTS,
    Criteria,
    FoundStudy,
    PacsSettings,
    dicom_count,
    dicom_date,
    too_many,
    unavailable,
)

# C-FIND statuses (PS3.4 C.4.1.1.4) that mean "not you", as opposed to "not now".
_REFUSED_STATUSES = {0x0122: "SOP class not supported", 0x0124: "not authorised"}


def c_find(
    config: PacsSettings, criteria: Criteria, deadline: float, cancelled: threading.Event
) -> list[FoundStudy]:
    opened = threading.Event()

    def on_open(event) -> None:
        # Nagle's algorithm held each C-FIND message back until the peer's delayed ACK (~40 ms).
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One deadline for the whole search: what the connection used, the answer cannot.
        event.assoc.acse_timeout = max(deadline - time.monotonic(), 0.001)
        opened.set()

    def left() -> float:
        return max(deadline - time.monotonic(), 0.001)

    ae = AE(ae_title=config.calling_ae_title)
    ae.add_requested_context(StudyFind)
    ae.connection_timeout = ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = left()

    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    for keyword in ("StudyInstanceUID", "PatientName", "PatientBirthDate", "StudyDescription",
                    "ModalitiesInStudy", "NumberOfStudyRelatedInstances"):
        setattr(query, keyword, "")  # return keys
    query.PatientID = criteria.patient_id
    query.StudyDate = criteria.date_range
    query.AccessionNumber = criteria.accession_number
    query.MedicalRecordLocator = criteria.medical_record_locator

    assoc = ae.associate(
        config.host, config.port, ae_title=config.ae_title,
        evt_handlers=[(evt.EVT_CONN_OPEN, on_open)],
    )
    finished = False
    try:
        if not assoc.is_established:
            if assoc.is_rejected:
                raise unavailable(
                    config, "refused",
                    _("it does not accept the calling AE title “%(calling)s” for the called AE "
                      "title “%(called)s”")
                    % {"calling": config.calling_ae_title, "called": config.ae_title},
                )
            if time.monotonic() >= deadline - 0.05:
                raise unavailable(config, "timeout")
            if not opened.is_set():
                raise unavailable(config, "unreachable", _("nothing accepts connections there"))
            raise unavailable(config, "failed", _("it closed the connection"))
        if not assoc.accepted_contexts:
            raise unavailable(config, "refused", _("it does not offer Study Root C-FIND"))
        assoc.dimse_timeout = left()
        found: list[FoundStudy] = []
        for status, identifier in assoc.send_c_find(query, StudyFind):
            if cancelled.is_set():
                raise unavailable(config, "timeout")
            if "Status" not in status:  # pynetdicom's sign of a timeout or an aborted association
                if time.monotonic() >= deadline - 0.05:
                    raise unavailable(config, "timeout")
                raise unavailable(config, "failed", _("it broke off the search"))
            code = status.Status
            if code in (0xFF00, 0xFF01):
                if identifier is not None:
                    found.append(_from_dataset(identifier))
                if len(found) > MAX_RESULTS:
                    raise too_many(config)
                if time.monotonic() > deadline:
                    raise unavailable(config, "timeout")
                assoc.dimse_timeout = left()
            elif code == 0x0000:
                finished = True
            else:
                detail = _("C-FIND status 0x%(code)04X") % {"code": code}
                reason = "refused" if code in _REFUSED_STATUSES else "failed"
                raise unavailable(config, reason, detail)
        return found
    finally:
        if assoc.is_established and finished:
            assoc.release()
        elif assoc.is_established:
            # An abandoned search ends at once: a release would wait for a PACS we gave up on.
            assoc.abort()


def _from_dataset(identifier) -> FoundStudy:
    def text(keyword: str) -> str:
        value = identifier.get(keyword, "")
        return "" if value is None else str(value).strip()

    modalities = identifier.get("ModalitiesInStudy", "") or []
    if isinstance(modalities, str):
        modalities = [modalities]
    return FoundStudy(
        study_instance_uid=text("StudyInstanceUID"),
        patient_id=text("PatientID"),
        patient_name=text("PatientName"),
        patient_birth_date=dicom_date(text("PatientBirthDate")),
        study_date=dicom_date(text("StudyDate")),
        accession_number=text("AccessionNumber"),
        description=text("StudyDescription"),
        modalities=tuple(sorted({str(m).strip() for m in modalities if str(m).strip()})),
        medical_record_locator=text("MedicalRecordLocator"),
        number_of_instances=dicom_count(identifier.get("NumberOfStudyRelatedInstances", "")),
    )


