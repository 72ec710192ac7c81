"""The auditors' side: which custody events a question covers, the access log, and proving a
stretch of the ledger intact.

`custody_events()` is the one definition of "the custody chain of an item, a patient, a
borrower or a place over a period": the auditors' pages, their API and the exports all ask it,
so what an auditor sees on screen is what an export carries. `CustodyQuery` reads that question
from a query string (`subject_kind`, `subject`, `from`, `to`, `kinds`), the same names on the
pages, the API and the export links. `record_access()` writes the access log: every auditor
read of patient data, every export and every verification. `verify_range()` checks seq
first..last row by row; `ledger_verify_recorded()` runs it or the whole `verify_ledger()` and
keeps the verdict as an access-log row (action "verified"), which is how the workspace knows
who verified last, when, and what they found."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import rfc8785
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Max, Q, QuerySet
from django.utils import formats, timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from archive.models import Patient

from . import ledger
from .choices import AccessAction, AccessSubject, EventKind, Role
from .exceptions import InvalidRequest
from .ledger.verify import reason_sentence
from .models import AccessLog, CustodyEvent, Location, Media
from .permissions import has_role

logger = logging.getLogger(__name__)

# Who may use the auditors' workspace (pages and API). File-room staff read custody chains on
# an item's page and the flags; they do not need the ledger's verification, other people's
# chains across the whole archive, or the access log, so they get 403 here, as clinicians do.
AUDIT_ROLES = frozenset({Role.AUDITOR, Role.ADMIN})


def custody_events(
    *,
    media=None,
    patient=None,
    borrower=None,
    location=None,
    since: datetime | None = None,
    until: datetime | None = None,
    kinds: list[str] | None = None,
) -> QuerySet[CustodyEvent]:
    """Ledger events in seq order, narrowed by whichever of these are given:
    - media: a Media (its events);
    - patient: an archive.Patient (the events of every item that is or was theirs);
    - borrower: a user (events that handed something to them, or that they did);
    - location: a Location (events that moved something from or to it, or read there);
    - since / until: received time, `since` inclusive, `until` exclusive;
    - kinds: EventKind values."""
    events = CustodyEvent.objects.select_related(
        "media", "actor", "device", "from_location", "to_location", "holder"
    ).order_by("seq")
    if media is not None:
        events = events.filter(media=media)
    if patient is not None:
        events = events.filter(media__patient=patient)
    if borrower is not None:
        events = events.filter(Q(holder=borrower) | Q(actor=borrower))
    if location is not None:
        events = events.filter(Q(from_location=location) | Q(to_location=location))
    if since is not None:
        events = events.filter(received_at__gte=since)
    if until is not None:
        events = events.filter(received_at__lt=until)
    if kinds:
        events = events.filter(kind__in=kinds)
    return events


def record_access(
    *, user, action: str, subject_kind: str, subject: str = "", detail: dict | None = None, path: str = ""
) -> AccessLog:
    """Write one access-log row (AccessAction, AccessSubject; `subject` names which item,
    patient, borrower or place; `detail` holds the filters, the format or the range)."""
    if action not in AccessAction.values or subject_kind not in AccessSubject.values:
        raise ValueError(f"unknown access action/subject: {action}/{subject_kind}")
    return AccessLog.objects.create(
        user=user, action=action, subject_kind=subject_kind, subject=str(subject)[:100],
        detail=detail or {}, path=path[:300],
    )


# --- the auditor's question, from a query string --------------------------------------------------

# Subjects a chain can be asked about; "events" asks about no one in particular (every event in
# the period and kinds chosen).
CHAIN_SUBJECTS = (
    (AccessSubject.MEDIA, _("Item code")),
    (AccessSubject.PATIENT, _("Patient ID")),
    (AccessSubject.BORROWER, _("Borrower username")),
    (AccessSubject.LOCATION, _("Location code")),
    (AccessSubject.EVENTS, _("Every event (no subject)")),
)
_NEEDS_SUBJECT = {
    AccessSubject.MEDIA: _("Type the item's code (the number on its label)."),
    AccessSubject.PATIENT: _("Type the patient's ID (medical record number)."),
    AccessSubject.BORROWER: _("Type the borrower's username."),
    AccessSubject.LOCATION: _("Type the location's code."),
}
_UNKNOWN_SUBJECT = {
    AccessSubject.MEDIA: _("No item has the code “%(subject)s”. Check the label, or find the item first."),
    AccessSubject.PATIENT: _("No patient has the ID “%(subject)s”. Check the medical record number."),
    AccessSubject.BORROWER: _("Nobody has the username “%(subject)s”. Check the spelling."),
    AccessSubject.LOCATION: _("No location has the code “%(subject)s”. Check the shelf or room label."),
}


def local_period(since: date | None, until: date | None) -> tuple[datetime | None, datetime | None]:
    """Dates from a form as time bounds: local midnight of `since` (inclusive) and local
    midnight after `until` (exclusive), in the site's time zone."""
    def midnight(day: date) -> datetime:
        return timezone.make_aware(datetime.combine(day, datetime.min.time()))

    return (midnight(since) if since else None, midnight(until + timedelta(days=1)) if until else None)


def _one(queryset: QuerySet, field: str, value: str):
    """The row whose `field` is `value`, or the only one that matches ignoring case."""
    found = queryset.filter(**{field: value}).first()
    if found is None:
        matches = list(queryset.filter(**{f"{field}__iexact": value})[:2])
        found = matches[0] if len(matches) == 1 else None
    return found


class CustodyQuery(forms.Form):
    """Which custody events an auditor asks for: `subject_kind` (media, patient, borrower,
    location, or events for no subject) with `subject` (item code, patient ID, username or
    location code), `from` and `to` (local dates, both included) and `kinds` (repeatable).
    Valid, it names its subject row in `subject_object` and `events()` answers the question."""

    subject_kind = forms.ChoiceField(
        label=_("Subject"), choices=CHAIN_SUBJECTS, required=False, initial=AccessSubject.MEDIA
    )
    subject = forms.CharField(label=_("Code, ID or username"), max_length=100, required=False)
    kinds = forms.MultipleChoiceField(
        label=_("Kinds of event"), choices=EventKind.choices, required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("Leave all unticked for every kind."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, so these two fields are named here rather than above.
        date_input = {"type": "date"}
        self.fields["from"] = forms.DateField(
            label=_("From (date)"), required=False, widget=forms.DateInput(date_input, format="%Y-%m-%d"),
        )
        self.fields["to"] = forms.DateField(
            label=_("To (date, included)"), required=False,
            widget=forms.DateInput(date_input, format="%Y-%m-%d"),
        )
        self.order_fields(["subject_kind", "subject", "from", "to", "kinds"])
        self.subject_object = None

    def clean(self):
        data = super().clean()
        kind, subject = data.get("subject_kind") or "", data.get("subject") or ""
        if not kind:
            if subject:
                self.add_error("subject_kind", gettext(
                    "Say whether “%(subject)s” is an item code, a patient ID, a borrower's username "
                    "or a location code."
                ) % {"subject": subject})
                return data
            kind = data["subject_kind"] = AccessSubject.EVENTS
        if kind == AccessSubject.EVENTS:
            if subject:
                self.add_error("subject", gettext(
                    "Leave this empty to list every event, or choose what “%(subject)s” is."
                ) % {"subject": subject})
        elif not subject:
            self.add_error("subject", _NEEDS_SUBJECT[kind])
        else:
            self.subject_object = self._subject(kind, subject)
            if self.subject_object is None:
                self.add_error("subject", forms.ValidationError(
                    _UNKNOWN_SUBJECT[kind] % {"subject": subject}, code="unknown_subject"
                ))
        since, until = data.get("from"), data.get("to")
        if since and until and since > until:
            self.add_error("to", gettext("The period ends before it starts: choose a later “to” date."))
        return data

    @staticmethod
    def _subject(kind: str, subject: str):
        if kind == AccessSubject.MEDIA:
            return _one(Media.objects.select_related("patient"), "code", subject)
        if kind == AccessSubject.PATIENT:
            return _one(Patient.objects.all(), "patient_id", subject)
        if kind == AccessSubject.BORROWER:
            return _one(get_user_model().objects.all(), "username", subject)
        return _one(Location.objects.all(), "code", subject)

    @property
    def unknown_subject(self) -> bool:
        return self.has_error("subject", code="unknown_subject")

    @property
    def kind(self) -> str:
        return self.cleaned_data["subject_kind"]

    @property
    def subject_label(self) -> str:
        """What the access log names: the code, patient ID or username (never a patient name)."""
        found = self.subject_object
        if found is None:
            return ""
        return {
            AccessSubject.MEDIA: lambda: found.code,
            AccessSubject.PATIENT: lambda: found.patient_id,
            AccessSubject.BORROWER: lambda: found.get_username(),
            AccessSubject.LOCATION: lambda: found.code,
        }[self.kind]()

    def period(self) -> tuple[datetime | None, datetime | None]:
        """`from` and `to` as received-time bounds (local_period)."""
        since, until = self.cleaned_data.get("from"), self.cleaned_data.get("to")
        return local_period(since, until)

    def events(self) -> QuerySet[CustodyEvent]:
        """The events this question covers, in seq order (custody_events)."""
        since, until = self.period()
        subject = {self.kind: self.subject_object} if self.subject_object is not None else {}
        return custody_events(
            **subject, since=since, until=until, kinds=self.cleaned_data.get("kinds") or None
        )

    def filters(self) -> dict:
        """The question as plain data: the access log's detail, and the query string's values."""
        since, until = self.cleaned_data.get("from"), self.cleaned_data.get("to")
        return {
            "subject_kind": self.kind,
            "subject": self.subject_label,
            "from": since.isoformat() if since else None,
            "to": until.isoformat() if until else None,
            "kinds": list(self.cleaned_data.get("kinds") or []),
        }

    def query_items(self) -> list[tuple[str, str]]:
        """The question as query-string pairs (for export links and pagination)."""
        values = self.filters()
        pairs = [("subject_kind", values["subject_kind"])]
        if values["subject"]:
            pairs.append(("subject", values["subject"]))
        pairs += [(name, values[name]) for name in ("from", "to") if values[name]]
        pairs += [("kinds", kind) for kind in values["kinds"]]
        return pairs


def record_chain_view(*, user, query: CustodyQuery, path: str = "", **extra) -> AccessLog:
    """Record that `user` read the events `query` covers (`extra`: the page, the count...)."""
    entry = record_access(
        user=user, action=AccessAction.VIEWED, subject_kind=query.kind, subject=query.subject_label,
        detail={**query.filters(), **extra}, path=path,
    )
    logger.info("custody chain read recorded (access log %s, user %s)", entry.pk, user.pk)
    return entry


# --- proving the ledger intact -------------------------------------------------------------------

# A range is checked in the request that asks for it; the whole ledger is verify_ledger's job.
RANGE_LIMIT = 100_000


@dataclass
class RangeVerification:
    """The verdict on events first..last: each row's hash recomputed from its body and
    prev_hash, and each row linked to the stored hash of the row before."""

    first: int
    last: int
    ok: bool = True
    events: int = 0
    head_hash: str = ""
    first_bad_seq: int | None = None
    reason: str = ""
    reason_code: str = ""
    reason_params: dict = field(default_factory=dict, repr=False)

    def fail(self, seq: int, code: str, /, **params) -> RangeVerification:
        """Record the first bad seq and why (a code of ledger.verify.REASONS and its values)."""
        self.ok, self.first_bad_seq = False, seq
        self.reason_code, self.reason_params = code, params
        self.reason = reason_sentence(code, params)
        return self

    def as_dict(self) -> dict:
        return {
            "first": self.first, "last": self.last, "ok": self.ok, "events": self.events,
            "head_hash": self.head_hash, "first_bad_seq": self.first_bad_seq, "reason": self.reason,
        }


def ledger_size() -> int:
    """The newest seq (the number of events in an intact ledger)."""
    return CustodyEvent.objects.aggregate(head=Max("seq"))["head"] or 0


def verify_range(*, first: int, last: int) -> RangeVerification:
    """Check events first..last (inclusive) on their own: recompute each row's hash from its
    body and prev_hash, check each links to the stored hash of the row before (event first-1's
    for the first one, zeros before seq 1) and that no seq is missing. Names the first bad seq
    with the same reasons as verify_ledger. Raises InvalidRequest for a range the ledger does
    not span or one longer than RANGE_LIMIT."""
    size = ledger_size()
    if size == 0:
        raise InvalidRequest(gettext("The ledger holds no events yet: there is nothing to verify."))
    if not (1 <= first <= last <= size):
        raise InvalidRequest(
            gettext("Choose a range within 1..%(size)s, the first number not above the last.")
            % {"size": size},
            first=first, last=last, size=size,
        )
    if last - first + 1 > RANGE_LIMIT:
        raise InvalidRequest(
            gettext(
                "A range can cover at most %(limit)s events. Choose a shorter one, or verify the "
                "whole ledger."
            ) % {"limit": RANGE_LIMIT},
            first=first, last=last,
        )
    result = RangeVerification(first=first, last=last)
    if first == 1:
        prev = ledger.GENESIS_HASH
    else:
        prev = CustodyEvent.objects.filter(seq=first - 1).values_list("hash", flat=True).first()
        if prev is None:
            return result.fail(first, "link_missing", seq=first, before=first - 1)
    expected = first
    rows = (
        CustodyEvent.objects.filter(seq__gte=first, seq__lte=last).order_by("seq")
        .values(*ledger.BODY_FIELDS).iterator(chunk_size=2000)
    )
    for row in rows:
        seq = row["seq"]
        if seq != expected:
            return result.fail(expected, "gap", seq=expected, found=seq)
        if row["prev_hash"] != prev:
            return result.fail(seq, "unlinked", seq=seq, before=seq - 1)
        try:
            digest = ledger.chain_hash(row["prev_hash"], ledger.event_body(row))
        except (TypeError, ValueError, InvalidRequest, rfc8785.CanonicalizationError) as exc:
            return result.fail(seq, "unreadable", seq=seq, error=str(exc))
        if digest != row["hash"]:
            return result.fail(seq, "altered", seq=seq)
        prev, expected = row["hash"], expected + 1
        result.events += 1
    if expected <= last:
        return result.fail(expected, "gap", seq=expected, found=None)
    result.head_hash = prev
    return result


def ledger_verify_recorded(
    *, user, first: int | None = None, last: int | None = None, path: str = ""
) -> AccessLog:
    """Verify the whole ledger (verify_ledger: the chain and every signed checkpoint) or, given
    `first` and `last`, that range (verify_range), and keep the verdict as an access-log row
    (action "verified"; `detail` holds the verdict, with `scope` "ledger" or "range")."""
    started = time.monotonic()
    if first is None and last is None:
        result = ledger.verify_ledger()
        verdict = {"scope": "ledger", **result.as_dict()}
        subject = ""
    else:
        if first is None or last is None:
            raise InvalidRequest(gettext("Give both the first and the last event of the range."))
        result = verify_range(first=first, last=last)
        verdict = {"scope": "range", **result.as_dict()}
        subject = f"{first}..{last}"
    if not result.ok:  # kept so pages can say why in the reader's language (reason_text)
        verdict.update(reason_code=result.reason_code, reason_params=result.reason_params)
    verdict["seconds"] = round(time.monotonic() - started, 3)
    entry = record_access(
        user=user, action=AccessAction.VERIFIED, subject_kind=AccessSubject.LEDGER, subject=subject,
        detail=verdict, path=path,
    )
    if verdict["ok"]:
        logger.info("ledger verified intact (access log %s, %s events)", entry.pk, verdict["events"])
    else:
        logger.warning(
            "ledger verification FAILED at seq %s (access log %s): %s",
            verdict["first_bad_seq"], entry.pk, verdict["reason"],
        )
    return entry


# The reasons of ledger.verify.REASONS in the reader's language, by code.
_REASON_TEXT = {
    "gap": _("Event %(seq)s is missing or out of order (found %(found)s)."),
    "unlinked": _("Event %(seq)s does not link to the hash of event %(before)s."),
    "link_missing": _("Event %(before)s, which event %(seq)s links to, is missing."),
    "unreadable": _("Event %(seq)s cannot be read: %(error)s"),
    "altered": _("Event %(seq)s was altered: its hash does not match its content."),
    "checkpoint_untrusted": _("A signed checkpoint cannot be trusted: %(error)s"),
    "checkpoint_ahead": _(
        "A signed checkpoint covers %(size)s events but the ledger holds %(events)s."
    ),
    "rewritten": _(
        "Events %(first)s–%(size)s were rewritten: the chain hash at %(size)s differs from the "
        "signed checkpoint."
    ),
}


def reason_text(verdict: dict) -> str:
    """Why a recorded verification failed, in the active language: from the reason's code and
    values when the row keeps them; a row that keeps only the English sentence shows it."""
    if not isinstance(verdict, dict):
        return ""
    code, params = verdict.get("reason_code"), verdict.get("reason_params")
    text = _REASON_TEXT.get(code) if isinstance(code, str) else None
    if text is not None and isinstance(params, dict):
        values = {k: (gettext("none") if v is None else formats.localize(v)) for k, v in params.items()}
        try:
            return str(text) % values
        except (KeyError, TypeError, ValueError):
            pass  # a row written otherwise: its sentence below
    return str(verdict.get("reason") or "")


def verifications() -> QuerySet[AccessLog]:
    """Recorded verifications, newest first."""
    return AccessLog.objects.filter(action=AccessAction.VERIFIED).select_related("user")


def last_verification() -> AccessLog | None:
    """The newest verification of the whole ledger."""
    return verifications().filter(subject_kind=AccessSubject.LEDGER, subject="").first()


# --- the access log, filtered ----------------------------------------------------------------------


class AccessLogQuery(forms.Form):
    """Filters for the access log: `user` (username), `action`, `subject_kind`, `subject`, and
    `from` / `to` (local dates, both included)."""

    user = forms.CharField(label=_("User"), max_length=150, required=False)
    action = forms.ChoiceField(
        label=_("Action"), choices=[("", _("Any action"))] + AccessAction.choices, required=False
    )
    subject_kind = forms.ChoiceField(
        label=_("Subject"), choices=[("", _("Any subject"))] + AccessSubject.choices, required=False
    )
    subject = forms.CharField(label=_("Code, ID or username"), max_length=100, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        date_input = {"type": "date"}
        self.fields["from"] = forms.DateField(
            label=_("From (date)"), required=False, widget=forms.DateInput(date_input, format="%Y-%m-%d"),
        )
        self.fields["to"] = forms.DateField(
            label=_("To (date, included)"), required=False,
            widget=forms.DateInput(date_input, format="%Y-%m-%d"),
        )
        self.order_fields(["user", "action", "subject_kind", "subject", "from", "to"])
        self.user_object = None

    def clean(self):
        data = super().clean()
        username = data.get("user") or ""
        if username:
            self.user_object = _one(get_user_model().objects.all(), "username", username)
            if self.user_object is None:
                self.add_error("user", gettext("Nobody has the username “%(user)s”. Check the spelling.")
                               % {"user": username})
        since, until = data.get("from"), data.get("to")
        if since and until and since > until:
            self.add_error("to", gettext("The period ends before it starts: choose a later “to” date."))
        return data

    def entries(self) -> QuerySet[AccessLog]:
        """Access-log rows these filters select, newest first."""
        data = self.cleaned_data
        entries = AccessLog.objects.select_related("user")
        if self.user_object is not None:
            entries = entries.filter(user=self.user_object)
        if data.get("action"):
            entries = entries.filter(action=data["action"])
        if data.get("subject_kind"):
            entries = entries.filter(subject_kind=data["subject_kind"])
        if data.get("subject"):
            entries = entries.filter(subject__iexact=data["subject"])
        since, until = local_period(data.get("from"), data.get("to"))
        if since is not None:
            entries = entries.filter(at__gte=since)
        if until is not None:
            entries = entries.filter(at__lt=until)
        return entries


def record_chain_read(request, code: str) -> None:
    """An auditor (or admin) reading an item's custody chain on its page or through the API is
    itself recorded; staff reading it at the counter all day are not (their work is the chain)."""
    if has_role(request.user, AUDIT_ROLES):
        record_access(
            user=request.user, action=AccessAction.VIEWED, subject_kind=AccessSubject.MEDIA,
            subject=code, path=request.get_full_path(),
        )
