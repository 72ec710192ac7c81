"""Flags and reminders: the sweep that finds overdue, stuck and unseen items, and reminders to borrowers.

A flag is raised by one `flag_raised` event and cleared by one `flag_cleared` event; at most one
flag of a kind is open on an item (a database constraint). The sweep works on sets (a few queries
whatever the size of the file room) and still appends one event per flag it raises or clears.

What each kind means (the conditions the sweep checks at `now`):
- overdue: an open loan is due before `now`; the flag names that loan. Clears when the loan is
  returned or renewed past `now`; handed to a colleague, the item's new loan keeps the due date,
  so that flag clears and the same pass raises one naming the colleague's loan.
- in_transit: the item is with a courier (in transit) and was last seen more than
  FLAG_TRANSIT_HOURS ago. Clears when it arrives or is seen again.
- not_seen: the item is on its shelf (as the ledger has it) but no reader has seen it there for
  FLAG_NOT_SEEN_DAYS. Items on loan, in transit, missing or retired are never "not seen": their
  own flags cover them. Clears when a reader sees it or it moves.
- inventory_missing: raised by an inventory that expected the item and did not read it. Clears
  when the item turns up: seen, returned, lent, moved or retired after the flag was raised (by
  ledger order, not by clocks).

Reminders go to the borrower of an overdue loan at most once every REMINDER_EVERY_DAYS (a manual
one counts too); each is a Reminder row and a `reminder_sent` event. Mails name the item by its
code, never the patient.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from smtplib import SMTPException

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from .. import ledger, projection
from ..choices import EventKind, FlagKind, MediaStatus, RequestStatus
from ..exceptions import InvalidRequest, NotOnLoan
from ..ledger import EventRequest
from ..models import CustodyEvent, Flag, Loan, LoanRequest, Media, Preference, Reminder
from ..permissions import READ_ALL_ROLES, has_role
from .custody import User, _record

__all__ = [
    "flag_clear",
    "flag_raise",
    "loan_remind",
    "reminders_send",
    "sweep",
]

log = logging.getLogger(__name__)

# Defaults; a site changes them in settings (FLAG_TRANSIT_HOURS, FLAG_NOT_SEEN_DAYS,
# REMINDER_EVERY_DAYS), read at each call so tests and a running loop see a change.
TRANSIT_HOURS = 48
NOT_SEEN_DAYS = 365
REMINDER_EVERY_DAYS = 3
# Flags raised or cleared per transaction: the ledger lock is held for one batch at a time, so
# stations keep scanning while a first sweep over a large file room raises its flags.
BATCH = 500


def transit_limit() -> timedelta:
    return timedelta(hours=int(getattr(settings, "FLAG_TRANSIT_HOURS", TRANSIT_HOURS)))


def not_seen_limit() -> timedelta:
    return timedelta(days=int(getattr(settings, "FLAG_NOT_SEEN_DAYS", NOT_SEEN_DAYS)))


def reminder_interval() -> timedelta:
    return timedelta(days=int(getattr(settings, "REMINDER_EVERY_DAYS", REMINDER_EVERY_DAYS)))


def _now(now: datetime | None) -> datetime:
    return now or timezone.now()


def _flag_payload(*, kind: str, details: dict | None, loan: Loan | None, now: datetime) -> dict:
    # A loan is named by the seq of the event that opened it: loan ids change when the
    # projection is rebuilt, that seq never does.
    payload = {"kind": str(kind), "details": details or {}, "at": ledger.format_time(now)}
    if loan is not None:
        payload["loan_seq"] = loan.out_seq
    return payload


# --- raising and clearing one flag --------------------------------------------------------------


@transaction.atomic
def flag_raise(
    *,
    media: Media,
    kind: str,
    actor: User | None = None,
    details: dict | None = None,
    loan: Loan | None = None,
    now: datetime | None = None,
    event_id=None,
) -> Flag:
    """Raise a flag of `kind` on an item (one `flag_raised` event). An open flag of that kind is
    returned as it is: raising twice adds nothing."""
    if kind not in FlagKind.values:
        raise InvalidRequest(_("“%(kind)s” is not a kind of flag.") % {"kind": kind})
    request = EventRequest(
        EventKind.FLAG_RAISED, media=media, actor=actor, event_id=event_id, asked={"kind": str(kind)}
    )
    if prior := ledger.replayed(request):
        return Flag.objects.get(raised_seq=prior.seq)
    open_flag = Flag.objects.filter(media=media, kind=kind, cleared_at__isnull=True).first()
    if open_flag is not None:
        return open_flag
    payload = _flag_payload(kind=kind, details=details, loan=loan, now=_now(now))
    event = _record(request, payload=payload)
    return Flag.objects.get(raised_seq=event.seq)


@transaction.atomic
def flag_clear(
    *, flag: Flag, actor: User | None = None, reason: str, now: datetime | None = None, event_id=None
) -> Flag:
    """Clear an open flag (one `flag_cleared` event naming the event that raised it); a flag
    already cleared is returned as it is."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidRequest(_("Say why the flag on %(code)s is cleared.") % {"code": flag.media.code})
    request = EventRequest(
        EventKind.FLAG_CLEARED, media=flag.media, actor=actor, event_id=event_id,
        asked={"flag_seq": flag.raised_seq},
    )
    if ledger.replayed(request):
        return Flag.objects.get(pk=flag.pk)
    flag = Flag.objects.get(pk=flag.pk)
    if flag.cleared_at is not None:
        return flag
    payload = {
        "kind": flag.kind, "flag_seq": flag.raised_seq, "reason": reason,
        "at": ledger.format_time(_now(now)),
    }
    _record(request, payload=payload)
    return Flag.objects.get(pk=flag.pk)


# --- the sweep: conditions as sets ---------------------------------------------------------------

# Why the sweep clears each kind (kept in the ledger as written: plain English, not translated;
# gettext_noop only puts them in the catalogue, so the pages can show them in the reader's language).
CLEAR_REASONS = {
    FlagKind.OVERDUE: gettext_noop("no longer overdue: returned, renewed or handed over"),
    FlagKind.IN_TRANSIT: gettext_noop("arrived or seen again"),
    FlagKind.NOT_SEEN: gettext_noop("seen or moved"),
    FlagKind.INVENTORY_MISSING: gettext_noop("turned up: seen, returned or moved after the inventory"),
}


# Events that put an item in someone's hands or in a reader's field: after any of them an item an
# inventory missed has turned up. Judged by ledger order, not by clocks (the inventory's and the
# station's may differ); retiring it ends the search too.
TURNED_UP = (
    EventKind.SEEN, EventKind.RETURNED, EventKind.CHECKED_OUT, EventKind.TRANSFERRED,
    EventKind.RETIRED,
)


def _open_flags(kind: str):
    return Flag.objects.filter(kind=kind, cleared_at__isnull=True)


def _flagged(kind: str):
    """Exists(): the item of the outer row has an open flag of `kind` (the partial unique index
    of one_open_flag_per_kind answers it)."""
    return Exists(_open_flags(kind).filter(media_id=OuterRef("media_id")))


def _overdue_loans(now: datetime):
    return Loan.objects.filter(returned_at__isnull=True, due_at__lt=now)


def _in_transit_too_long(now: datetime):
    return Media.objects.filter(status=MediaStatus.IN_TRANSIT).filter(
        Q(last_seen_at__lt=now - transit_limit()) | Q(last_seen_at__isnull=True)
    )


def _not_seen(now: datetime):
    return Media.objects.filter(status=MediaStatus.ON_SHELF).filter(
        Q(last_seen_at__lt=now - not_seen_limit()) | Q(last_seen_at__isnull=True)
    )


def _to_raise(kind: str, now: datetime) -> list[dict]:
    """Up to BATCH items whose condition holds and that have no open flag of `kind` yet, with
    what their flag records."""
    if kind == FlagKind.OVERDUE:
        rows = (
            _overdue_loans(now).filter(~_flagged(kind))
            .values("media_id", "pk", "out_seq", "due_at", "borrower__username")
            .order_by("media_id")[:BATCH]
        )
        return [
            {
                "media_id": row["media_id"], "loan_id": row["pk"], "loan_seq": row["out_seq"],
                "details": {
                    "due_at": ledger.format_time(row["due_at"]), "borrower": row["borrower__username"],
                },
            }
            for row in rows
        ]
    found = _in_transit_too_long(now) if kind == FlagKind.IN_TRANSIT else _not_seen(now)
    rows = (
        found.annotate(flagged=Exists(_open_flags(kind).filter(media_id=OuterRef("pk"))))
        .filter(flagged=False)
        .values("pk", "last_seen_at", "current_location__code")
        .order_by("pk")[:BATCH]
    )
    return [
        {
            "media_id": row["pk"], "loan_id": None, "loan_seq": None,
            "details": {
                "last_seen_at": ledger.format_time(row["last_seen_at"]),
                "location": row["current_location__code"],
            },
        }
        for row in rows
    ]


def _to_clear(kind: str, now: datetime) -> list[Flag]:
    """Up to BATCH open flags of `kind` whose condition no longer holds."""
    flags = _open_flags(kind)
    if kind == FlagKind.OVERDUE:
        flags = flags.filter(~Exists(_overdue_loans(now).filter(pk=OuterRef("loan_id"))))
    elif kind == FlagKind.IN_TRANSIT:
        flags = flags.filter(~Exists(_in_transit_too_long(now).filter(pk=OuterRef("media_id"))))
    elif kind == FlagKind.NOT_SEEN:
        flags = flags.filter(~Exists(_not_seen(now).filter(pk=OuterRef("media_id"))))
    else:  # not found by an inventory: it turns up when the ledger has it in hand afterwards
        flags = flags.filter(
            Exists(
                CustodyEvent.objects.filter(
                    media_id=OuterRef("media_id"), seq__gt=OuterRef("raised_seq"), kind__in=TURNED_UP
                )
            )
        )
    return list(flags.order_by("pk")[:BATCH])


def _raise_batch(kind: str, now: datetime) -> int:
    """Raise one batch of flags of `kind`: one event each, the Flag rows created together."""
    with transaction.atomic():
        ledger.lock()  # decide under the ledger lock, so two sweeps never raise one flag twice
        rows = _to_raise(kind, now)
        flags = []
        for row in rows:
            request = EventRequest(EventKind.FLAG_RAISED, media=Media(pk=row["media_id"]))
            payload = {"kind": str(kind), "details": row["details"], "at": ledger.format_time(now)}
            if row["loan_seq"] is not None:
                payload["loan_seq"] = row["loan_seq"]
            event = ledger.append(request, payload=payload)
            flags.append(projection.flags.flag_row(event, loan_id=row["loan_id"]))
        Flag.objects.bulk_create(flags)
    return len(rows)


def _clear_batch(kind: str, now: datetime) -> int:
    with transaction.atomic():
        ledger.lock()
        flags = _to_clear(kind, now)
        for flag in flags:
            request = EventRequest(EventKind.FLAG_CLEARED, media=Media(pk=flag.media_id))
            payload = {
                "kind": flag.kind, "flag_seq": flag.raised_seq, "reason": CLEAR_REASONS[kind],
                "at": ledger.format_time(now),
            }
            event = ledger.append(request, payload=payload)
            flag.cleared_at, flag.cleared_seq = now, event.seq
        Flag.objects.bulk_update(flags, ["cleared_at", "cleared_seq"])
    return len(flags)


def _until_done(step, kind: str, now: datetime) -> int:
    total = 0
    while True:
        done = step(kind, now)
        total += done
        if done < BATCH:
            return total


@dataclass
class SweepResult:
    """What one pass did, for the command's output and the tests."""

    raised: dict = field(default_factory=dict)
    cleared: dict = field(default_factory=dict)
    reminders_sent: int = 0
    # Borrowers of overdue loans who could not be reminded: they have no e-mail address.
    without_address: list = field(default_factory=list)
    reminders_failed: int = 0  # the mail server refused or could not be reached
    requests_expired: int = 0

    def as_json(self) -> dict:
        return asdict(self)

    @property
    def changes(self) -> int:
        return (
            sum(self.raised.values()) + sum(self.cleared.values()) + self.reminders_sent
            + self.requests_expired
        )


def sweep(*, now: datetime | None = None, remind: bool = True) -> SweepResult:
    """One pass: clear the flags whose condition ended, raise the new ones, expire loan requests,
    send the reminders that are due. Idempotent: a second pass at the same `now` adds nothing."""
    now = _now(now)
    result = SweepResult()
    for kind in FlagKind.values:
        result.cleared[kind] = _until_done(_clear_batch, kind, now)
    for kind in (FlagKind.OVERDUE, FlagKind.IN_TRANSIT, FlagKind.NOT_SEEN):
        result.raised[kind] = _until_done(_raise_batch, kind, now)
    result.requests_expired = _expire_requests(now)
    if remind:
        reminders = reminders_send(now=now)
        result.reminders_sent, result.without_address = reminders.sent, reminders.without_address
        result.reminders_failed = reminders.failed
    return result


def _expire_requests(now: datetime) -> int:
    """The loan requests part decides what expires; the sweep only runs it."""
    from .loan_requests import loan_requests_expire

    return len(loan_requests_expire(now=now))


# --- reminders ---------------------------------------------------------------------------------


def _reminded_since(since: datetime):
    return Exists(Reminder.objects.filter(loan_id=OuterRef("pk"), sent_at__gt=since))


def reminders_due(*, now: datetime | None = None):
    """Overdue loans whose borrower has had no reminder (automatic or manual) for
    REMINDER_EVERY_DAYS."""
    now = _now(now)
    return _overdue_loans(now).filter(~_reminded_since(now - reminder_interval()))


@dataclass
class Reminders:
    sent: int
    without_address: list  # usernames of borrowers with no e-mail address
    failed: int  # the mail server refused or could not be reached


def reminders_send(*, now: datetime | None = None) -> Reminders:
    """Send the automatic reminders that are due (one mail and one event each); a mail that
    cannot be sent records nothing and is tried again by the next pass."""
    now = _now(now)
    due = reminders_due(now=now)
    without_address = sorted(
        set(due.filter(borrower__email="").values_list("borrower__username", flat=True))
    )
    sent = failed = 0
    for loan in due.exclude(borrower__email="").select_related("borrower").order_by("due_at", "pk"):
        try:
            reminder = _remind(loan=loan, actor=None, now=now, automatic=True)
        except (SMTPException, OSError) as exc:
            # Nothing was recorded for this loan; the next pass tries again.
            failed += 1
            log.warning("Reminder for loan %s not sent: %s", loan.pk, exc)
            continue
        sent += reminder is not None
    return Reminders(sent, without_address, failed)


@transaction.atomic
def loan_remind(*, loan: Loan, actor: User, now: datetime | None = None, event_id=None) -> Reminder:
    """Staff send the borrower of an open loan a reminder now (one `reminder_sent` event)."""
    request = EventRequest(EventKind.REMINDER_SENT, media=loan.media, actor=actor, event_id=event_id)
    # Only a retry needs the look-up (which takes the ledger lock): otherwise the lock is taken
    # after the mail has gone, so stations never wait on the mail server.
    if event_id is not None and (prior := ledger.replayed(request)):
        return Reminder.objects.get(seq=prior.seq)
    if loan.returned_at is not None:
        raise NotOnLoan(
            _("%(code)s has been returned; there is nothing to remind %(name)s of.")
            % {"code": loan.media.code, "name": loan.borrower.get_username()},
            media=loan.media.code,
        )
    if not loan.borrower.email:
        raise InvalidRequest(
            _("%(name)s has no e-mail address, so no reminder can be sent. Add one to their "
              "account, or call them about %(code)s.")
            % {"name": loan.borrower.get_username(), "code": loan.media.code},
            borrower=loan.borrower.get_username(),
        )
    return _remind(loan=loan, actor=actor, now=_now(now), automatic=False, request=request)


def _remind(
    *, loan: Loan, actor: User | None, now: datetime, automatic: bool, request: EventRequest | None = None
) -> Reminder | None:
    """Send the mail, then record it, in one transaction: a mail that fails records nothing.
    The loan's row lock makes a second sweep wait, then see the reminder and send none."""
    with transaction.atomic():
        lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
        locked = list(Loan.objects.raw(f"SELECT * FROM {Loan._meta.db_table} WHERE id = %s{lock}", [loan.pk]))
        if not locked or locked[0].returned_at is not None:
            return None
        if automatic and Reminder.objects.filter(loan=loan, sent_at__gt=now - reminder_interval()).exists():
            return None
        media = Media.objects.get(pk=loan.media_id)
        _send_reminder(loan=loan, media=media, to=loan.borrower.email, now=now)
        request = request or EventRequest(EventKind.REMINDER_SENT, media=media, actor=actor)
        payload = {
            "loan_seq": loan.out_seq, "to": loan.borrower.email,
            "borrower": loan.borrower.get_username(), "automatic": automatic,
            "at": ledger.format_time(now),
        }
        event = ledger.append(request, payload=payload)
        reminder = projection.flags.reminder_row(event, loan_id=loan.pk)
        reminder.save(force_insert=True)
        return reminder


def _send_reminder(*, loan: Loan, media: Media, to: str, now: datetime) -> None:
    """The mail names the item by its code and kind, never the patient (it may be read by anyone
    with access to the mailbox). It is written in the borrower's language, else the site's."""
    due = timezone.localtime(loan.due_at).strftime("%Y-%m-%d")
    overdue = loan.due_at < now
    with translation.override(Preference.language_of(loan.borrower) or settings.LANGUAGE_CODE):
        names = {"kind": media.get_kind_display().lower(), "code": media.code, "due": due}
        subject = (
            _("Overdue: %(kind)s %(code)s was due back on %(due)s")
            if overdue else _("Reminder: %(kind)s %(code)s is due back on %(due)s")
        ) % names
        body = _(
            "You borrowed %(kind)s %(code)s from the file room; it is due back on %(due)s.\n\n"
            "Please bring it back to the file room, renew the loan if you still need it, or hand it "
            "over to a colleague through Filmroom so the custody record stays right.\n\n"
            "This message was sent by Filmroom for the file room."
        ) % names
    send_mail(subject, body, None, [to])


# --- read side (selectors for the flags API and pages; no side effects) -------------------------


def flag_list(*, user) -> QuerySet[Flag]:
    """Staff, auditors and admins see every flag; a clinician sees the flags on their own loans
    (an overdue item they hold) and nothing else."""
    flags = Flag.objects.select_related("media", "loan__borrower", "media__current_location")
    if has_role(user, READ_ALL_ROLES):
        return flags
    return flags.filter(loan__borrower=user)


def reminder_list(*, user) -> QuerySet[Reminder]:
    reminders = Reminder.objects.select_related("loan__media", "loan__borrower", "sent_by")
    if has_role(user, READ_ALL_ROLES):
        return reminders
    return reminders.filter(loan__borrower=user)


def dashboard_counts(*, now: datetime | None = None) -> dict:
    """What the file room looks at first (a handful of COUNTs): open flags by kind, loans out and
    overdue, items with a courier or missing, requests waiting, reminders sent in the last day."""
    now = _now(now)
    flags = dict.fromkeys(FlagKind.values, 0)
    for kind, count in (
        Flag.objects.filter(cleared_at__isnull=True).values_list("kind").annotate(n=Count("pk"))
    ):
        flags[kind] = count
    open_loans = Loan.objects.filter(returned_at__isnull=True)
    statuses = dict(
        Media.objects.filter(status__in=[MediaStatus.IN_TRANSIT, MediaStatus.MISSING])
        .values_list("status").annotate(n=Count("pk"))
    )
    requests = dict(
        LoanRequest.objects.filter(
            status__in=[RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.READY]
        ).values_list("status").annotate(n=Count("pk"))
    )
    return {
        "flags": flags,
        "open_flags": sum(flags.values()),
        "loans_out": open_loans.count(),
        "loans_overdue": open_loans.filter(due_at__lt=now).count(),
        "in_transit": statuses.get(MediaStatus.IN_TRANSIT, 0),
        "missing": statuses.get(MediaStatus.MISSING, 0),
        "requests_pending": requests.get(RequestStatus.PENDING, 0),
        "requests_approved": requests.get(RequestStatus.APPROVED, 0),
        "requests_ready": requests.get(RequestStatus.READY, 0),
        "reminders_last_day": Reminder.objects.filter(sent_at__gt=now - timedelta(days=1)).count(),
        "at": now,
    }
