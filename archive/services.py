"""Disc import and disc verification: the indexer's findings become rows and ledger events.

The disc is read first (worker processes, no database), then everything is written in one
transaction: patients, studies, series, the manifest with one entry per file, and one ledger event
through tracker.services. A verification re-hashes the disc (no parsing) against the item's latest
manifest and records the verdict the same way.
"""
from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Callable, Iterable

from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from archive import indexer
from archive.models import DiscManifest, DiscVerification, ManifestEntry, Patient, Series, Study
from tracker import services as tracker_services
from tracker.choices import DiscVerdict, MediaKind, StudySource
from tracker.exceptions import InvalidRequest
from tracker.models import CustodyEvent, Location, Media

logger = logging.getLogger(__name__)
Progress = Callable[[int, int, int, int], None]
DISC_KINDS = (MediaKind.CD, MediaKind.DVD, MediaKind.USB, MediaKind.OTHER)
# How many differing paths a ledger event names; the verification row keeps them all.
EVENT_PATHS = 5
# First key of the PostgreSQL advisory locks that serialise imports of one disc ("DISC").
DISC_LOCK_CLASS = 0x44495343


@dataclass
class ImportResult:
    """What an import found and wrote (or, when `unchanged`, the manifest it already had)."""

    manifest: DiscManifest
    media: Media
    unchanged: bool
    media_created: bool
    studies: list[Study]
    series_count: int
    patient_ids: list[str]
    problems: list[dict]
    seconds: float

    def as_dict(self) -> dict:
        return {
            "status": "unchanged" if self.unchanged else "imported",
            "media": self.media.code,
            "media_created": self.media_created,
            "manifest": self.manifest.pk,
            "event_seq": self.manifest.event_seq,
            "files": self.manifest.file_count,
            "bytes": self.manifest.total_bytes,
            "patients": self.patient_ids,
            "studies": [study.study_instance_uid for study in self.studies],
            "series": self.series_count,
            "problems": self.problems,
            "dicomdir_sha256": self.manifest.dicomdir_sha256,
            "seconds": round(self.seconds, 3),
        }


def media_patient_check(media: Media, patient_ids: Iterable[str]) -> None:
    """Refuse studies of another patient than the item's, or of several patients: an item holds
    one patient's films. Call it with the item locked (select_for_update) when linking."""
    patients = sorted(set(patient_ids))
    if media.patient is not None and patients != [media.patient.patient_id]:
        raise InvalidRequest(
            _("%(code)s belongs to patient %(mine)s; these studies are of %(theirs)s. "
              "Check the studies before linking.")
            % {"code": media.code, "mine": media.patient.patient_id, "theirs": ", ".join(patients)}
        )
    if len(patients) > 1:
        raise InvalidRequest(
            _("These studies are of several patients (%(theirs)s); link one patient's "
              "studies to %(code)s.")
            % {"code": media.code, "theirs": ", ".join(patients)}
        )


def media_link_known_studies(
    *, media: Media, studies: list[Study], actor, source: str = StudySource.MANUAL, note: str = "",
    event_id=None,
) -> CustodyEvent:
    """Link an item to studies Filmroom already knows (typed in by UID), as one ledger event;
    refused for another patient's studies, as a link from the PACS is."""
    with transaction.atomic():
        # The item's patient as stored now (an earlier link may have set it), held until commit.
        # No select_related: PostgreSQL refuses FOR UPDATE across the nullable patient join.
        media = Media.objects.select_for_update().get(pk=media.pk)
        media_patient_check(media, (study.patient.patient_id for study in studies))
        return tracker_services.media_studies_link(
            media=media, studies=studies, actor=actor, source=source, note=note, event_id=event_id,
        )


def _render(problems: list[dict]) -> list[dict]:
    return [{"path": p["path"], "reason": indexer.reason_text(p["code"], p["params"])} for p in problems]


def _dicom_date(text: str) -> date | None:
    text = (text or "").strip()
    if len(text) == 8 and text.isdigit():
        try:
            return date(int(text[:4]), int(text[4:6]), int(text[6:]))
        except ValueError:
            return None
    return None


def _int(text: str) -> int | None:
    try:
        return int(str(text).strip())
    except ValueError:
        return None


def _same_files(manifest: DiscManifest, entries: list[dict]) -> bool:
    recorded = set(manifest.entries.values_list("path", "sha256"))
    return recorded == {(e["path"], e["sha256"]) for e in entries}


def _prior_manifest(media: Media | None, disc: indexer.IndexedDisc) -> DiscManifest | None:
    """The manifest this very disc already has: the item's latest, or (with no item named) any
    manifest with the same files and hashes."""
    if media is not None:
        latest = media.manifests.order_by("-created_at", "-pk").first()
        return latest if latest and _same_files(latest, disc.entries) else None
    candidates = DiscManifest.objects.filter(
        file_count=disc.file_count, total_bytes=disc.total_bytes, dicomdir_sha256=disc.dicomdir_sha256
    ).order_by("-created_at", "-pk")
    return next((m for m in candidates if _same_files(m, disc.entries)), None)


def _disc_lock(disc: indexer.IndexedDisc) -> None:
    """Hold, until the transaction ends, a lock named after the disc's content (its DICOMDIR
    hash, file count and size). PostgreSQL: a transaction-scoped advisory lock, so imports of
    other discs and the stations' reads are not held up. SQLite: the transaction already holds
    the database's write lock (Filmroom opens every transaction with BEGIN IMMEDIATE)."""
    if connection.vendor != "postgresql":
        return
    name = f"{disc.dicomdir_sha256}:{disc.file_count}:{disc.total_bytes}".encode()
    key = int.from_bytes(hashlib.sha256(name).digest()[:4], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [DISC_LOCK_CLASS, key])


def _index(root: Path, progress: Progress | None) -> indexer.IndexedDisc:
    try:
        return indexer.index_disc(
            root,
            workers=settings.DISC_IMPORT_WORKERS,
            file_timeout=settings.DISC_FILE_TIMEOUT_SECONDS,
            memory_mb=settings.DISC_WORKER_MEMORY_MB,
            progress=progress,
        )
    except indexer.DiscReadError as exc:
        raise InvalidRequest(str(exc)) from exc


def _group(entries: list[dict]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Studies and series by the UIDs in the headers (files with a problem are left out)."""
    studies: dict[str, dict] = {}
    series: dict[str, dict] = {}
    for entry in entries:
        if entry["problem_code"] or not entry["study_instance_uid"] or not entry["series_instance_uid"]:
            continue
        study = studies.setdefault(entry["study_instance_uid"], {
            "first": entry, "count": 0, "patients": Counter(), "modalities": set(),
        })
        study["count"] += 1
        study["patients"][entry["patient_id"]] += 1
        if entry["modality"]:
            study["modalities"].add(entry["modality"])
        one = series.setdefault(entry["series_instance_uid"], {"first": entry, "count": 0})
        one["count"] += 1
    return studies, series


def _fill(row, **values) -> bool:
    """Set the fields that are still blank (what the PACS or a person entered stays)."""
    changed = False
    for name, value in values.items():
        if value not in ("", None) and getattr(row, name) in ("", None):
            setattr(row, name, value)
            changed = True
    return changed


def _record_studies(grouped: dict[str, dict], series: dict[str, dict], problems: list[dict]) -> list[Study]:
    rows: list[Study] = []
    by_uid: dict[str, Study] = {}
    for uid, found in sorted(grouped.items()):
        patient_id = found["patients"].most_common(1)[0][0]
        if not patient_id:
            problems.append({"path": found["first"]["path"], "reason": _(
                "Study %(uid)s has no Patient ID on the disc; it was not recorded."
            ) % {"uid": uid}})
            continue
        first = found["first"]
        patient, _created = Patient.objects.get_or_create(patient_id=patient_id[:64])
        if _fill(patient, name=first["patient_name"][:200], birth_date=_dicom_date(first["birth_date"]),
                 sex=first["sex"][:1]):
            patient.save()
        study = Study.objects.filter(study_instance_uid=uid).first()
        if study is None:
            study = Study.objects.create(study_instance_uid=uid, patient=patient)
        elif study.patient_id != patient.pk:
            # The same UID under two patients is a data error for people to untangle: neither the
            # record nor the item's links take the disc's word for it.
            problems.append({"path": first["path"], "reason": _(
                "Study %(uid)s is recorded for another patient than %(patient)s on this disc; the "
                "record was left as it was and the study was not linked."
            ) % {"uid": uid, "patient": patient_id}})
            continue
        _fill(study, study_date=_dicom_date(first["study_date"]),
              accession_number=first["accession_number"][:64],
              description=first["study_description"][:200],
              medical_record_locator=first["medical_record_locator"][:64])
        modalities = set(filter(None, study.modalities.split("\\"))) | found["modalities"]
        study.modalities = "\\".join(sorted(modalities))[:64]
        study.instance_count = max(study.instance_count, found["count"])
        study.save()
        rows.append(study)
        by_uid[uid] = study
    for uid, found in sorted(series.items()):
        first = found["first"]
        study = by_uid.get(first["study_instance_uid"])
        if study is None:
            continue
        row = Series.objects.filter(series_instance_uid=uid).first()
        if row is None:
            row = Series(series_instance_uid=uid, study=study)
        _fill(row, modality=first["modality"][:16], series_number=_int(first["series_number"]),
              description=first["series_description"][:200])
        row.instance_count = max(row.instance_count, found["count"])
        row.save()
    return rows


def _disc_patients_check(media: Media | None, grouped: dict[str, dict]) -> None:
    """Refuse, before anything is written, a disc with studies of another patient than its
    item's: recording it would put one patient's images on another's item. A disc of several
    patients (an export, a teaching disc) may only go on an item with no patient, which then gets
    none (tracker.services.catalogue names a patient only when there is exactly one)."""
    patients = {g["patients"].most_common(1)[0][0] for g in grouped.values()} - {""}
    if media is None or media.patient is None or not patients:
        return
    try:
        media_patient_check(media, patients)
    except InvalidRequest as refused:
        raise InvalidRequest(
            _("%(why)s Nothing was recorded: check that this is the right disc.") % {"why": refused.message}
        ) from refused


def _disc_code(kind: str, grouped: dict[str, dict]) -> str:
    """A code for a newly registered disc: kind, patient and study date, numbered if taken."""
    firsts = [g["first"] for g in grouped.values()]
    patient = next((f["patient_id"] for f in firsts if f["patient_id"]), "UNKNOWN")
    when = min((f["study_date"] for f in firsts if f["study_date"]), default="")
    base = "-".join(filter(None, [kind.upper(), patient, when]))[:56]
    code, n = base, 1
    while Media.objects.filter(code=code).exists():
        n += 1
        code = f"{base}-{n}"
    return code


def disc_import(
    *, root: Path, media: Media | None, actor, progress: Progress | None = None,
    register_kind: str = MediaKind.CD, register_home: Location | None = None,
) -> ImportResult:
    """Index a disc and record it on `media` (or on a newly registered disc item on
    `register_home` when media is None); the same disc imported again changes nothing."""
    root = Path(root)
    if media is not None and media.kind not in DISC_KINDS:
        raise InvalidRequest(_(
            "%(code)s is a film jacket; film jackets hold no files. Link its studies from the PACS "
            "instead, or name the disc's own code."
        ) % {"code": media.code})
    if media is None and register_home is None:
        raise InvalidRequest(_(
            "Name the disc item (its code), or give a home location to register the disc as a new item."
        ))
    if media is None and register_kind not in DISC_KINDS:
        raise InvalidRequest(_("“%(kind)s” is not a kind of disc.") % {"kind": register_kind})
    disc = _index(root, progress)
    problems = _render(disc.problems)
    grouped, series = _group(disc.entries)
    _disc_patients_check(media, grouped)
    with transaction.atomic():
        # Two imports of one disc at once (two clerks, a retried request): the second waits
        # here for the first to commit and then finds its manifest, so the disc is recorded once.
        _disc_lock(disc)
        prior = _prior_manifest(media, disc)
        if prior is not None:
            studies = list(Study.objects.filter(study_instance_uid__in=grouped).select_related("patient"))
            return ImportResult(
                manifest=prior, media=prior.media, unchanged=True, media_created=False,
                studies=studies, series_count=len(series),
                patient_ids=sorted({s.patient.patient_id for s in studies}),
                problems=prior.problems, seconds=disc.seconds,
            )
        created = media is None
        if created:
            media = tracker_services.media_register(
                code=_disc_code(register_kind, grouped), kind=register_kind,
                home_location=register_home, actor=actor,
                description=_("Registered by a disc import"),
            )
        studies = _record_studies(grouped, series, problems)
        manifest = DiscManifest.objects.create(
            media=media, file_count=disc.file_count, total_bytes=disc.total_bytes,
            dicomdir_sha256=disc.dicomdir_sha256, pdi_report=disc.pdi_report,
            source_path=str(root.resolve())[:1024], problems=problems, imported_by=actor,
        )
        ManifestEntry.objects.bulk_create(
            [
                ManifestEntry(
                    manifest=manifest, path=e["path"], size=e["size"], sha256=e["sha256"],
                    sop_class_uid=e["sop_class_uid"][:64], sop_instance_uid=e["sop_instance_uid"][:64],
                    transfer_syntax_uid=e["transfer_syntax_uid"][:64],
                    study_instance_uid=e["study_instance_uid"][:64],
                    series_instance_uid=e["series_instance_uid"][:64],
                    problem=indexer.reason_text(e["problem_code"], e["problem_params"])[:200]
                    if e["problem_code"] else "",
                )
                for e in disc.entries
            ],
            batch_size=1000,
        )
        event = tracker_services.media_disc_imported(
            media=media, manifest_id=manifest.pk, studies=studies, actor=actor,
            summary={
                "files": disc.file_count, "bytes": disc.total_bytes, "series": len(series),
                "problems": len(problems), "dicomdir_sha256": disc.dicomdir_sha256,
            },
        )
        manifest.event_seq = event.seq
        manifest.save(update_fields=["event_seq"])
    return ImportResult(
        manifest=manifest, media=media, unchanged=False, media_created=created, studies=studies,
        series_count=len(series), patient_ids=sorted({s.patient.patient_id for s in studies}),
        problems=problems, seconds=disc.seconds,
    )


# --- verification -------------------------------------------------------------------------

@dataclass
class DiscHashes:
    found: dict[str, tuple[int, str]] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)


def disc_hashes(
    root: Path, *, workers: int = 2, progress: Progress | None = None, file_timeout: float | None = None,
) -> DiscHashes:
    """Size and SHA-256 of every name on the disc, hashed in threads (hashlib and reads release
    the GIL); symbolic links and special files get the same stand-in hashes as the manifest.

    Each file has a deadline, as in the import: `file_timeout` (DISC_FILE_TIMEOUT_SECONDS) plus
    its size at 1 MB/s. A file still being read then (a scratched disc, a hung stick) is counted
    unreadable and the check goes on with the rest; the thread stuck in read() is left behind
    (a daemon thread: it holds no lock and does not keep the process alive)."""
    if file_timeout is None:
        file_timeout = settings.DISC_FILE_TIMEOUT_SECONDS
    walk = indexer.walk_disc(root)
    hashes = DiscHashes()
    hashes.unreadable.extend(p["path"] for p in walk.problems)
    files = []
    for item in walk.items:
        if len(item.path) > indexer.PATH_LIMIT:
            continue  # the import left it out of the manifest (and said so): not "extra" now
        if item.kind == "symlink":
            hashes.found[item.path] = (0, indexer.link_digest(os.readlink(Path(root) / item.os_path)))
        elif item.kind == "special":
            hashes.found[item.path] = (0, indexer.EMPTY_DIGEST)
        else:
            files.append(item)
    total_bytes = sum(item.size for item in files)
    done_files = done_bytes = 0
    with indexer.Hashers(root, workers) as hashers:
        for item, result in hashers.run(
            files, deadline=lambda item: file_timeout + item.size / indexer.SLOW_READ_BYTES_PER_SECOND
        ):
            if result is None:
                hashes.unreadable.append(item.path)
                hashes.found[item.path] = (item.size, "")
            else:
                hashes.found[item.path] = result
            done_files += 1
            done_bytes += item.size
            if progress:
                progress(done_files, len(files), done_bytes, total_bytes)
    return hashes


def disc_verify(
    *, root: Path, media: Media, actor, progress: Progress | None = None
) -> DiscVerification:
    """Re-hash a returned disc and compare it with the item's latest manifest: missing, changed
    and extra files by path; the verdict is a ledger event on the item."""
    root = Path(root)
    manifest = media.manifests.order_by("-created_at", "-pk").first()
    if manifest is None:
        raise InvalidRequest(_(
            "%(code)s has no disc manifest to compare with: import the disc first (import_disc)."
        ) % {"code": media.code})
    try:
        hashes = disc_hashes(root, workers=settings.DISC_IMPORT_WORKERS, progress=progress)
    except indexer.DiscReadError as exc:
        raise InvalidRequest(str(exc)) from exc
    expected = {path: (size, sha) for path, size, sha in manifest.entries.values_list("path", "size", "sha256")}
    found = hashes.found
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    # An unreadable file (hash "") cannot be shown to be the same, so it counts as changed.
    changed = sorted(
        path for path in set(expected) & set(found)
        if expected[path] != found[path] or not found[path][1]
    )
    verdict = DiscVerdict.IDENTICAL if not (missing or changed or extra) else DiscVerdict.ALTERED
    files_checked = len(found)
    bytes_checked = sum(size for size, _sha in found.values())
    with transaction.atomic():
        verification = DiscVerification.objects.create(
            manifest=manifest, media=media, verified_by=actor, verdict=verdict,
            files_checked=files_checked, bytes_checked=bytes_checked, missing=missing,
            changed=changed, extra=extra, source_path=str(root.resolve())[:1024],
        )
        event = tracker_services.media_disc_verified(
            media=media, manifest_id=manifest.pk, verdict=verdict, actor=actor,
            summary={
                "verification": verification.pk, "files_checked": files_checked,
                "bytes_checked": bytes_checked, "missing": len(missing), "changed": len(changed),
                "extra": len(extra), "missing_paths": missing[:EVENT_PATHS],
                "changed_paths": changed[:EVENT_PATHS], "extra_paths": extra[:EVENT_PATHS],
            },
        )
        verification.event_seq = event.seq
        verification.save(update_fields=["event_seq"])
    return verification
