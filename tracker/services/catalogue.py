"""What an item holds: its links to DICOM studies, the discs imported from it and their checks.

Each service appends one ledger event; the projection keeps Media.studies (and the item's patient,
when it had none) in step with the events, so the catalogue of an item is history too. Callers in
archive/ pass study rows and manifest ids; nothing here reads DICOM.
"""
from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from archive.models import Study

from .. import ledger
from ..choices import DiscVerdict, EventKind, StudySource
from ..exceptions import InvalidRequest
from ..ledger import EventRequest
from ..models import CustodyEvent, Media
from .custody import User, _place_of, _record


def _study_uids(studies) -> list[str]:
    return sorted({study.study_instance_uid for study in studies})


def _record_on(
    media: Media, kind: str, *, actor: User, payload: dict, event_id=None, refuse=None
) -> CustodyEvent:
    """One catalogue event on an item; everything the caller chose is in the payload, so a replay
    must ask the same. `refuse()`, if given, raises when the event does not apply now; a replay
    is answered before it is asked (what it found is already recorded)."""
    request = EventRequest(kind, media=media, actor=actor, event_id=event_id, asked=payload)
    prior = ledger.replayed(request)
    if prior:
        return prior
    if refuse is not None:
        refuse()
    return _record(request, from_location=_place_of(media), payload=payload)


def _patient_id(studies) -> str:
    """The one patient the studies belong to, or "" when they are of several (never guessed)."""
    patients = {study.patient.patient_id for study in studies}
    return patients.pop() if len(patients) == 1 else ""


@transaction.atomic
def media_studies_link(
    *, media: Media, studies: list[Study], actor: User, source: str, note: str = "", event_id=None
) -> CustodyEvent:
    """Record that an item holds these studies (found in the PACS or entered by hand)."""
    if source not in StudySource.values:
        raise InvalidRequest(_("“%(source)s” is not a source of study links.") % {"source": source})
    uids = _study_uids(studies)
    if not uids:
        raise InvalidRequest(_("Choose at least one study to link to %(code)s.") % {"code": media.code})
    payload = {"studies": uids, "source": source, "patient_id": _patient_id(studies)}
    if note.strip():
        payload["note"] = note.strip()
    return _record_on(media, EventKind.STUDIES_LINKED, actor=actor, payload=payload, event_id=event_id)


@transaction.atomic
def media_studies_unlink(
    *, media: Media, studies: list[Study], actor: User, reason: str, event_id=None
) -> CustodyEvent:
    """Record that an item was linked to studies it does not hold; the old link stays in history."""
    uids = _study_uids(studies)
    if not uids:
        raise InvalidRequest(_("Choose at least one study to unlink from %(code)s.") % {"code": media.code})
    if not (reason or "").strip():
        raise InvalidRequest(_("Give a reason for unlinking studies from %(code)s.") % {"code": media.code})
    payload = {"studies": uids, "reason": reason.strip()}

    def refuse_studies_not_linked():
        linked = set(media.studies.filter(study_instance_uid__in=uids).values_list("study_instance_uid", flat=True))
        if not_linked := [uid for uid in uids if uid not in linked]:
            raise InvalidRequest(
                _("%(code)s is not linked to %(uids)s; nothing to unlink.")
                % {"code": media.code, "uids": ", ".join(not_linked)},
                studies=not_linked,
            )

    return _record_on(
        media, EventKind.STUDIES_UNLINKED, actor=actor, payload=payload, event_id=event_id,
        refuse=refuse_studies_not_linked,
    )


@transaction.atomic
def media_disc_imported(
    *, media: Media, manifest_id: int, studies: list[Study], summary: dict, actor: User, event_id=None
) -> CustodyEvent:
    """Record a disc's import: its manifest and the studies found on it (linked to the item).

    `summary` holds the import's figures (files, bytes, problems, DICOMDIR hash) as plain JSON."""
    payload = {
        "manifest": manifest_id,
        "studies": _study_uids(studies),
        "source": StudySource.DISC.value,
        "patient_id": _patient_id(studies),
        **summary,
    }
    return _record_on(media, EventKind.DISC_IMPORTED, actor=actor, payload=payload, event_id=event_id)


@transaction.atomic
def media_disc_verified(
    *, media: Media, manifest_id: int, verdict: str, summary: dict, actor: User, event_id=None
) -> CustodyEvent:
    """Record a returned disc compared with its manifest: identical, or altered (with counts and
    the first paths that differ, in `summary`)."""
    if verdict not in DiscVerdict.values:
        raise InvalidRequest(_("“%(verdict)s” is not a verification result.") % {"verdict": verdict})
    payload = {"manifest": manifest_id, "verdict": verdict, **summary}
    return _record_on(media, EventKind.DISC_VERIFIED, actor=actor, payload=payload, event_id=event_id)
