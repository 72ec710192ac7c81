"""PACS look-up: find a patient's studies with DIMSE C-FIND or QIDO-RS and link them to an item.

Each PACS is named in settings.PACS (FILMROOM_PACS). A query always carries a criterion (never a
whole-archive search), ends within the PACS's timeout whatever the PACS does, and comes back in
a fixed order. Film jackets hold no files, so their studies come from here: `jacket_candidates`
searches by the jacket's code as (0010,1090) Medical Record Locator and by its patient's ID.
Logs carry PACS names, ids and counts, never patient names.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracker import services
from tracker.choices import StudySource
from tracker.exceptions import DomainError, InvalidRequest
from tracker.models import CustodyEvent, Media

from ..models import Patient, Study
from ..services import media_patient_check

log = logging.getLogger(__name__)

# pynetdicom logs each C-FIND's identifier (patient IDs) at INFO and whole responses (patient
# names) at DEBUG; keep it to warnings unless a site configured that logger on purpose.
_pynetdicom_log = logging.getLogger("pynetdicom")
if _pynetdicom_log.level == logging.NOTSET:
    _pynetdicom_log.setLevel(logging.WARNING)

# A search that matches more studies than this is refused: narrow it instead of paging a PACS.
MAX_RESULTS = 500
# A QIDO-RS answer larger than this is not a list of studies for one patient.
MAX_RESPONSE_BYTES = 20 * 1024 * 1024
DEFAULT_CALLING_AE_TITLE = "FILMROOM"
DEFAULT_TIMEOUT_SECONDS = 10
PROTOCOLS = ("dimse", "dicomweb")
# Characters that turn a DICOM match into a wildcard or a list (PS3.4 C.2.2.2): an identifier
# containing them would search far more than the person typed.
_WILDCARDS = set("*?\\")


class PacsError(DomainError):
    """A PACS search could not be made as asked (configuration or criteria); written for people."""

    code = "pacs_error"
    status = 400


class PacsNotConfigured(PacsError):
    code = "pacs_not_configured"
    status = 400


class PacsUnavailable(PacsError):
    """The PACS was down, refused us, or did not answer in time. `details["reason"]` is one of
    unreachable, timeout, refused, failed."""

    code = "pacs_unavailable"
    # The request was fine; the system behind us was not (a gateway failure, not the caller's).
    status = 503


@dataclass(frozen=True)
class PacsSettings:
    """One PACS from settings.PACS, checked."""

    name: str
    protocol: str
    host: str = ""
    port: int = 0
    ae_title: str = ""
    calling_ae_title: str = DEFAULT_CALLING_AE_TITLE
    base_url: str = ""
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}" if self.protocol == "dimse" else self.base_url


@dataclass(frozen=True)
class FoundStudy:
    """A study as the PACS describes it (nothing is stored until `studies_record`)."""

    study_instance_uid: str
    patient_id: str
    patient_name: str = ""
    patient_birth_date: date | None = None
    study_date: date | None = None
    accession_number: str = ""
    description: str = ""
    modalities: tuple[str, ...] = ()
    # (0010,1090) Medical Record Locator: the film jacket number on many sites.
    medical_record_locator: str = ""
    number_of_instances: int | None = None


@dataclass(frozen=True)
class JacketCandidate:
    """A study the PACS offers for a jacket: `matches_jacket` when its Medical Record Locator is
    the jacket's code, `linked` when the jacket already holds it."""

    study: FoundStudy
    matches_jacket: bool
    linked: bool


# --- configuration ----------------------------------------------------------------------------


def pacs_names() -> list[str]:
    """The configured PACS names, in the order settings list them (the first is the default)."""
    return list(getattr(settings, "PACS", None) or {})


def default_pacs() -> str:
    names = pacs_names()
    if not names:
        raise PacsNotConfigured(
            _("No PACS is set up in Filmroom. Ask an administrator to set FILMROOM_PACS, or "
              "link the studies by hand.")
        )
    return names[0]


def pacs_settings(name: str) -> PacsSettings:
    """The checked settings of the PACS called `name`; PacsNotConfigured says what is wrong."""
    configured = getattr(settings, "PACS", None) or {}
    if name not in configured:
        if not configured:
            default_pacs()  # raises the "none set up" error
        raise PacsNotConfigured(
            _("There is no PACS called “%(name)s”. Choose one of: %(names)s.")
            % {"name": name, "names": ", ".join(configured)},
            pacs=name,
        )
    entry = configured[name]

    def wrong(problem: str) -> PacsNotConfigured:
        return PacsNotConfigured(
            _("The PACS “%(name)s” is not set up correctly in FILMROOM_PACS: %(problem)s")
            % {"name": name, "problem": problem},
            pacs=name,
        )

    if not isinstance(entry, dict):
        raise wrong(_("its entry must be a JSON object."))
    protocol = entry.get("protocol")
    if protocol not in PROTOCOLS:
        raise wrong(
            _("“protocol” must be “dimse” or “dicomweb”, not “%(value)s”.") % {"value": protocol}
        )
    timeout = entry.get("timeout", DEFAULT_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
        raise wrong(
            _("“timeout” must be a number of seconds between 0 and 600, not “%(value)s”.")
            % {"value": timeout}
        )
    if protocol == "dicomweb":
        base_url = entry.get("base_url")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise wrong(_("“base_url” must be the DICOMweb root, such as https://pacs/dicom-web."))
        return PacsSettings(
            name=name, protocol=protocol, base_url=base_url.rstrip("/"), timeout=float(timeout)
        )
    host, port = entry.get("host"), entry.get("port")
    if not isinstance(host, str) or not host.strip():
        raise wrong(_("“host” is missing."))
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise wrong(_("“port” must be a TCP port number, not “%(value)s”.") % {"value": port})
    titles = {}
    for key, default in (("ae_title", None), ("calling_ae_title", DEFAULT_CALLING_AE_TITLE)):
        title = entry.get(key, default)
        if not isinstance(title, str) or not 0 < len(title.strip()) <= 16 or "\\" in title:
            raise wrong(_("“%(key)s” must be an AE title of 1 to 16 characters.") % {"key": key})
        titles[key] = title.strip()
    return PacsSettings(
        name=name, protocol=protocol, host=host.strip(), port=port, timeout=float(timeout), **titles
    )


# --- searching --------------------------------------------------------------------------------


def find_studies(
    pacs: str,
    *,
    patient_id: str = "",
    accession_number: str = "",
    date_from: date | None = None,
    date_to: date | None = None,
    medical_record_locator: str = "",
) -> list[FoundStudy]:
    """Studies the PACS holds that match every criterion given, newest first.

    Raises PacsError for missing or unusable criteria and PacsUnavailable when the PACS is down,
    refuses us or does not answer within its timeout."""
    config = pacs_settings(pacs)
    criteria = _criteria(
        patient_id=patient_id,
        accession_number=accession_number,
        date_from=date_from,
        date_to=date_to,
        medical_record_locator=medical_record_locator,
    )
    started = time.monotonic()
    # Imported here: pynetdicom and httpx load only when a PACS is asked.
    if config.protocol == "dimse":
        from .dimse import c_find as search
    else:
        from .qido import qido as search
    found = _in_order(_before_deadline(config, started + config.timeout, search, criteria))
    log.info(
        "pacs %s (%s): %d studies in %d ms",
        config.name, config.protocol, len(found), round((time.monotonic() - started) * 1000),
    )
    return found


@dataclass(frozen=True)
class Criteria:
    patient_id: str
    accession_number: str
    date_range: str  # DICOM range "YYYYMMDD-YYYYMMDD", open on one side, or ""
    medical_record_locator: str


def _criteria(
    *, patient_id: str, accession_number: str, date_from: date | None, date_to: date | None,
    medical_record_locator: str,
) -> Criteria:
    values = {
        "patient_id": (patient_id or "").strip(),
        "accession_number": (accession_number or "").strip(),
        "medical_record_locator": (medical_record_locator or "").strip(),
    }
    labels = {
        "patient_id": _("patient ID"),
        "accession_number": _("accession number"),
        "medical_record_locator": _("jacket number (medical record locator)"),
    }
    for key, value in values.items():
        if _WILDCARDS & set(value):
            raise PacsError(
                _("Type the whole %(field)s: * ? and \\ are not searched for.")
                % {"field": labels[key]}
            )
        if len(value) > 64:
            raise PacsError(
                _("The %(field)s is longer than 64 characters.") % {"field": labels[key]}
            )
    if date_from and date_to and date_from > date_to:
        raise PacsError(_("The date range ends before it starts."))
    # A date range alone is bounded only when it is closed on both sides.
    if not any(values.values()) and not (date_from and date_to):
        raise PacsError(
            _("Give a patient ID, an accession number, a jacket number or a date range with "
              "both ends to search the PACS.")
        )
    date_range = ""
    if date_from or date_to:
        date_range = "-".join(d.strftime("%Y%m%d") if d else "" for d in (date_from, date_to))
    return Criteria(date_range=date_range, **values)


def _in_order(found: Iterable[FoundStudy]) -> list[FoundStudy]:
    """One entry per study, newest first, undated last, then by UID (as archive.Study orders)."""
    unique = {study.study_instance_uid: study for study in found}

    def key(study: FoundStudy) -> tuple:
        newest_first = -study.study_date.toordinal() if study.study_date else 0
        return (study.study_date is None, newest_first, study.study_instance_uid)

    return sorted(unique.values(), key=key)


def _before_deadline(config: PacsSettings, deadline: float, search, criteria: Criteria) -> list:
    """Run `search` in a thread and give up on it at the deadline, whatever the PACS does.

    The protocols' own timeouts apply per step (connect, each read, each response), so a PACS
    that answers slowly but steadily could outlast them; the caller never waits past the
    deadline (plus a moment, so the search's own, more precise error wins)."""
    outcome: dict = {}
    cancelled = threading.Event()
    language = translation.get_language()

    def run() -> None:
        with translation.override(language):  # errors are written in the caller's language
            try:
                outcome["found"] = search(config, criteria, deadline, cancelled)
            except BaseException as error:  # handed to the caller's thread below
                outcome["error"] = error

    worker = threading.Thread(target=run, name=f"pacs-{config.name}", daemon=True)
    worker.start()
    worker.join(max(deadline - time.monotonic(), 0) + 0.25)
    if worker.is_alive():
        cancelled.set()  # the search stops at its next step; nobody waits for it
        raise unavailable(config, "timeout")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["found"]


_PROBLEMS = {
    "timeout": gettext_lazy(
        "The PACS “%(name)s” did not answer within %(seconds)s s (%(where)s). "
        "Try again, or link the studies by hand."
    ),
    "unreachable": gettext_lazy(
        "The PACS “%(name)s” could not be reached at %(where)s (%(detail)s). "
        "Check that it is running, or link the studies by hand."
    ),
    "refused": gettext_lazy(
        "The PACS “%(name)s” (%(where)s) refused Filmroom's search: %(detail)s. "
        "Ask the PACS administrator to allow it, or link the studies by hand."
    ),
    "failed": gettext_lazy(
        "The PACS “%(name)s” (%(where)s) could not answer the search: %(detail)s. "
        "Try again, or link the studies by hand."
    ),
}


def unavailable(config: PacsSettings, reason: str, detail: str = "") -> PacsUnavailable:
    log.warning("pacs %s (%s) unavailable: %s %s", config.name, config.where, reason, detail)
    message = str(_PROBLEMS[reason]) % {
        "name": config.name,
        "where": config.where,
        "seconds": f"{config.timeout:g}",
        "detail": detail,
    }
    return PacsUnavailable(message, pacs=config.name, reason=reason)


def too_many(config: PacsSettings) -> PacsError:
    return PacsError(
        _("More than %(count)d studies in the PACS “%(name)s” match. Narrow the search.")
        % {"count": MAX_RESULTS, "name": config.name},
        pacs=config.name,
    )


def dicom_date(value: str) -> date | None:
    value = (value or "").strip()
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def dicom_count(value) -> int | None:
    text = str(value if value is not None else "").strip()
    return int(text) if text.isdigit() else None



# --- recording and linking --------------------------------------------------------------------


@transaction.atomic
def studies_record(found: list[FoundStudy]) -> list[Study]:
    """Create or update the Patient and Study rows for studies found in the PACS, in the order
    given. Idempotent; a value the PACS leaves empty never blanks one already known.

    A study already recorded under another patient keeps that patient (a disc from elsewhere may
    use another ID for the same study); the difference is logged by ids."""
    studies: dict[str, Study] = {}
    for item in found:
        if item.study_instance_uid in studies:
            continue
        if not item.study_instance_uid or not item.patient_id:
            raise PacsError(
                _("The PACS gave a study without a Study Instance UID or patient ID (%(uid)s); "
                  "it cannot be recorded.")
                % {"uid": item.study_instance_uid or "?"}
            )
        patient, _created = Patient.objects.get_or_create(patient_id=item.patient_id)
        _fill(patient, name=item.patient_name, birth_date=item.patient_birth_date)
        study = Study.objects.filter(study_instance_uid=item.study_instance_uid).first()
        if study is None:
            study = Study(study_instance_uid=item.study_instance_uid, patient=patient)
        elif study.patient_id != patient.pk:
            log.warning(
                "pacs study %s is patient %s in the PACS but %s here; kept %s",
                item.study_instance_uid, item.patient_id, study.patient.patient_id,
                study.patient.patient_id,
            )
        _fill(
            study,
            study_date=item.study_date,
            accession_number=item.accession_number,
            description=item.description[:200],
            modalities="\\".join(item.modalities)[:64],
            medical_record_locator=item.medical_record_locator,
            instance_count=item.number_of_instances or None,
        )
        studies[item.study_instance_uid] = study
    return list(studies.values())


def _fill(row, **values) -> None:
    """Set the non-empty values that differ; save only if something changed or the row is new."""
    changed = [
        name
        for name, value in values.items()
        if value not in ("", None) and getattr(row, name) != value
    ]
    for name in changed:
        setattr(row, name, values[name])
    if row.pk is None:
        row.save()
    elif changed:
        row.save(update_fields=[*changed, *(["updated_at"] if isinstance(row, Study) else [])])


def media_link_pacs_studies(
    *, media: Media, found: list[FoundStudy], actor, note: str = "", event_id=None
) -> CustodyEvent:
    """Record studies found in the PACS and link them to the item, as one ledger event.

    Refused when the studies belong to another patient than the item's, or to several patients:
    a film jacket holds one patient's films."""
    if not found:
        raise InvalidRequest(
            _("Choose at least one study to link to %(code)s.") % {"code": media.code}
        )
    with transaction.atomic():
        # The item's patient as stored now (an earlier link may have set it), held until commit.
        media = Media.objects.select_for_update().get(pk=media.pk)
        media_patient_check(media, (item.patient_id for item in found))
        studies = studies_record(found)
        return services.media_studies_link(
            media=media, studies=studies, actor=actor, source=StudySource.PACS, note=note,
            event_id=event_id,
        )


def jacket_candidates(media: Media, *, pacs: str | None = None) -> list[JacketCandidate]:
    """Studies the PACS offers for an item: those whose Medical Record Locator is its code, and
    those of its patient. Studies naming this jacket come first, then newest first.

    Two searches when the item has a patient (by MRL, by patient ID), one otherwise; a study
    whose MRL names another jacket is still offered (its films may be in this one) but unmarked."""
    name = pacs or default_pacs()
    found = find_studies(name, medical_record_locator=media.code)
    if media.patient_id is not None:
        found += find_studies(name, patient_id=media.patient.patient_id)
    linked = set(media.studies.values_list("study_instance_uid", flat=True))
    code = media.code.strip().upper()
    candidates = [
        JacketCandidate(
            study=study,
            matches_jacket=study.medical_record_locator.strip().upper() == code,
            linked=study.study_instance_uid in linked,
        )
        for study in _in_order(found)
    ]
    # sorted() is stable: within each group the newest-first order stays.
    return sorted(candidates, key=lambda c: not c.matches_jacket)
