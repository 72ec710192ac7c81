"""QIDO-RS (DICOMweb) study search with httpx, within one deadline."""
from __future__ import annotations

import json
import threading
import time

import httpx
from django.utils.translation import gettext as _

from . import (
    MAX_RESPONSE_BYTES,
    MAX_RESULTS,
    Criteria,
    FoundStudy,
    PacsSettings,
    dicom_count,
    dicom_date,
    too_many,
    unavailable,
)

# DICOM JSON tags (PS3.18 F.2) of the attributes a study row shows.
_QIDO_FIELDS = {
    "study_instance_uid": "0020000D",
    "patient_id": "00100020",
    "patient_name": "00100010",
    "patient_birth_date": "00100030",
    "study_date": "00080020",
    "accession_number": "00080050",
    "description": "00081030",
    "modalities": "00080061",
    "medical_record_locator": "00101090",
    "number_of_instances": "00201208",
}


def qido(
    config: PacsSettings, criteria: Criteria, deadline: float, cancelled: threading.Event
) -> list[FoundStudy]:
    params = [
        (tag, value)
        for tag, value in (
            ("00100020", criteria.patient_id),
            ("00080050", criteria.accession_number),
            ("00080020", criteria.date_range),
            ("00101090", criteria.medical_record_locator),
        )
        if value
    ]
    params += [("includefield", tag) for tag in _QIDO_FIELDS.values()]
    params.append(("limit", str(MAX_RESULTS + 1)))

    body = bytearray()
    try:
        timeout = max(deadline - time.monotonic(), 0.001)
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            with client.stream(
                "GET", f"{config.base_url}/studies", params=params,
                headers={"Accept": "application/dicom+json"},
            ) as response:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        raise unavailable(
                            config, "failed",
                            _("its answer is larger than %(mb)d MB")
                            % {"mb": MAX_RESPONSE_BYTES // 2**20},
                        )
                    if cancelled.is_set() or time.monotonic() > deadline:
                        raise unavailable(config, "timeout")
                status = response.status_code
    except httpx.TimeoutException:
        raise unavailable(config, "timeout") from None
    except httpx.ConnectError as error:
        raise unavailable(config, "unreachable", str(error) or _("connection failed")) from None
    except httpx.HTTPError as error:
        raise unavailable(config, "failed", str(error) or type(error).__name__) from None
    if status == 204:
        return []
    if status in (401, 403):
        raise unavailable(config, "refused", _("HTTP %(status)d") % {"status": status})
    if status != 200:
        raise unavailable(config, "failed", _("HTTP %(status)d") % {"status": status})
    try:
        rows = json.loads(body) if body.strip() else []
    except ValueError:
        raise unavailable(config, "failed", _("its answer is not DICOM JSON")) from None
    if not isinstance(rows, list):
        raise unavailable(config, "failed", _("its answer is not a list of studies"))
    if len(rows) > MAX_RESULTS:
        raise too_many(config)
    return [_from_dicom_json(row) for row in rows if isinstance(row, dict)]


def _json_values(row: dict, tag: str) -> list:
    element = row.get(tag) or {}
    values = element.get("Value") if isinstance(element, dict) else None
    return values if isinstance(values, list) else []


def _json_text(row: dict, tag: str) -> str:
    values = _json_values(row, tag)
    first = values[0] if values else ""
    if isinstance(first, dict):  # a person name: {"Alphabetic": "DOE^JANE", ...}
        first = first.get("Alphabetic", "")
    return "" if first is None else str(first).strip()


def _from_dicom_json(row: dict) -> FoundStudy:
    def text(field: str) -> str:
        return _json_text(row, _QIDO_FIELDS[field])

    modalities = _json_values(row, _QIDO_FIELDS["modalities"])
    return FoundStudy(
        study_instance_uid=text("study_instance_uid"),
        patient_id=text("patient_id"),
        patient_name=text("patient_name"),
        patient_birth_date=dicom_date(text("patient_birth_date")),
        study_date=dicom_date(text("study_date")),
        accession_number=text("accession_number"),
        description=text("description"),
        modalities=tuple(sorted({str(m).strip() for m in modalities if m and str(m).strip()})),
        medical_record_locator=text("medical_record_locator"),
        number_of_instances=dicom_count(text("number_of_instances")),
    )


