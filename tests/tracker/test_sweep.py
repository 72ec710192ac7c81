"""The sweep with a frozen clock moving across due dates: flags raised once, cleared with their own
event when the item turns up, reminders logged and spaced out; running it twice adds nothing."""
import json
import socket
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from tracker import ledger, projection, services
from tracker.choices import EventKind, FlagKind, RequestStatus
from tracker.exceptions import InvalidRequest, NotOnLoan
from tracker.models import CustodyEvent, Flag, Reminder


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def events(kind=None) -> int:
    found = CustodyEvent.objects.all()
    return (found.filter(kind=kind) if kind else found).count()


def open_flags(kind=None):
    found = Flag.objects.filter(cleared_at__isnull=True)
    return found.filter(kind=kind) if kind else found


@pytest.fixture
def lent(make_media, cast):
    """FJ-1 lent to the doctor (who has an e-mail address), due in one hour."""
    cast["doctor"].email = "doctor@hospital.example"
    cast["doctor"].save()
    media = make_media("FJ-1")
    start = timezone.now()
    loan = services.media_check_out(
        media=media, borrower=cast["doctor"], actor=cast["staff"], due_at=start + timedelta(hours=1)
    )
    return media, loan, start


def test_an_overdue_flag_rises_once_the_clock_passes_the_due_date_and_clears_on_return(lent, cast):
    media, loan, start = lent
    before = events()
    assert services.sweep(now=start + timedelta(minutes=59), remind=False).changes == 0
    assert events() == before and not open_flags().exists()

    result = services.sweep(now=start + timedelta(hours=2), remind=False)
    assert result.raised[FlagKind.OVERDUE] == 1
    flag = open_flags().get()
    assert (flag.kind, flag.media, flag.loan, flag.raised_at) == (
        FlagKind.OVERDUE, media, loan, start + timedelta(hours=2)
    )
    assert flag.details == {"due_at": ledger.format_time(loan.due_at), "borrower": "doctor"}
    assert events() == before + 1

    # The same pass again, and a later one: nothing new.
    assert services.sweep(now=start + timedelta(hours=2), remind=False).changes == 0
    assert services.sweep(now=start + timedelta(days=2), remind=False).changes == 0
    assert events() == before + 1

    services.media_return(media=media, actor=cast["staff"])
    result = services.sweep(now=start + timedelta(days=2, hours=1), remind=False)
    assert result.cleared[FlagKind.OVERDUE] == 1 and not open_flags().exists()
    cleared = CustodyEvent.objects.get(kind=EventKind.FLAG_CLEARED)
    assert cleared.payload["flag_seq"] == flag.raised_seq and cleared.media == media
    assert services.sweep(now=start + timedelta(days=3), remind=False).changes == 0
    assert projection.rebuild(check_only=True) == []


def test_an_overdue_flag_clears_when_the_loan_is_renewed_past_the_clock(lent, cast):
    media, loan, start = lent
    services.sweep(now=start + timedelta(hours=2), remind=False)
    renewed = services.loan_renew(loan=loan, actor=cast["doctor"], now=start + timedelta(hours=3))
    assert renewed.due_at > start + timedelta(days=7)
    result = services.sweep(now=start + timedelta(hours=4), remind=False)
    assert result.cleared[FlagKind.OVERDUE] == 1 and not open_flags().exists()
    # The renewed loan falls due again: a new flag, on the same loan.
    result = services.sweep(now=renewed.due_at + timedelta(minutes=1), remind=False)
    assert result.raised[FlagKind.OVERDUE] == 1 and open_flags().get().loan == loan
    assert projection.rebuild(check_only=True) == []


def test_an_overdue_item_handed_to_a_colleague_is_flagged_on_the_colleagues_loan(lent, cast):
    media, loan, start = lent
    services.sweep(now=start + timedelta(hours=2), remind=False)
    services.media_transfer(media=media, to_holder=cast["doctor2"], actor=cast["staff"])
    result = services.sweep(now=start + timedelta(hours=3), remind=False)
    assert (result.cleared[FlagKind.OVERDUE], result.raised[FlagKind.OVERDUE]) == (1, 1)
    flag = open_flags(FlagKind.OVERDUE).get()
    assert flag.loan.borrower == cast["doctor2"] and flag.loan.due_at == loan.due_at
    assert services.sweep(now=start + timedelta(hours=3), remind=False).changes == 0


def test_an_item_with_a_courier_past_the_limit_is_flagged_until_it_arrives(make_media, cast, places, settings):
    settings.FLAG_TRANSIT_HOURS = 48
    media = make_media("CD-1")
    services.media_transfer(media=media, to_location=places["courier"], actor=cast["staff"])
    start = timezone.now()
    assert services.sweep(now=start + timedelta(hours=47), remind=False).changes == 0
    result = services.sweep(now=start + timedelta(hours=49), remind=False)
    assert result.raised == {FlagKind.OVERDUE: 0, FlagKind.IN_TRANSIT: 1, FlagKind.NOT_SEEN: 0}
    assert open_flags(FlagKind.IN_TRANSIT).get().details["location"] == "COURIER"
    services.media_seen(media=media, location=places["clinic"], actor=cast["staff"])
    result = services.sweep(now=start + timedelta(hours=50), remind=False)
    assert result.cleared[FlagKind.IN_TRANSIT] == 1 and not open_flags().exists()


def test_an_item_not_seen_on_its_shelf_for_the_set_days_is_flagged_until_it_moves(make_media, cast, settings):
    settings.FLAG_NOT_SEEN_DAYS = 30
    shelved, lent_out = make_media("FJ-1"), make_media("FJ-2")
    services.media_check_out(
        media=lent_out, borrower=cast["doctor"], actor=cast["staff"],
        due_at=timezone.now() + timedelta(days=90),
    )
    start = timezone.now()
    assert services.sweep(now=start + timedelta(days=29), remind=False).changes == 0
    services.sweep(now=start + timedelta(days=31), remind=False)
    # Only the item on its shelf: one on loan is not expected on a shelf.
    flag = open_flags().get()
    assert (flag.kind, flag.media) == (FlagKind.NOT_SEEN, shelved)
    services.media_check_out(media=shelved, borrower=cast["doctor"], actor=cast["staff"])
    assert services.sweep(now=start + timedelta(days=32), remind=False).cleared[FlagKind.NOT_SEEN] == 1


def test_a_sighting_clears_not_seen_when_the_sweep_next_looks(make_media, places, settings):
    settings.FLAG_NOT_SEEN_DAYS = 30
    media = make_media("FJ-1")
    services.sweep(now=timezone.now() + timedelta(days=31), remind=False)
    assert open_flags(FlagKind.NOT_SEEN).exists()
    services.media_seen(media=media, location=places["shelf"])
    # The sweep after the sighting (judged on the real clock: the sighting is recorded at it).
    assert services.sweep(remind=False).cleared[FlagKind.NOT_SEEN] == 1


def test_an_item_an_inventory_missed_is_cleared_when_it_turns_up(make_media, cast, places):
    missed, still_missing = make_media("FJ-1"), make_media("FJ-2")
    for media in (missed, still_missing):
        services.flag_raise(
            media=media, kind=FlagKind.INVENTORY_MISSING, actor=cast["staff"], details={"inventory": 1}
        )
    assert services.sweep(remind=False).changes == 0  # the sweep never raises these itself
    services.media_seen(media=missed, location=places["shelf2"], actor=cast["staff"])
    assert services.sweep(remind=False).cleared[FlagKind.INVENTORY_MISSING] == 1
    assert list(open_flags().values_list("media__code", flat=True)) == ["FJ-2"]
    assert services.sweep(remind=False).changes == 0


def test_the_sweep_twice_adds_nothing_across_every_kind(make_media, cast, places, settings):
    settings.FLAG_NOT_SEEN_DAYS = 10
    for n in range(3):
        media = make_media(f"FJ-{n}")
        services.media_check_out(
            media=media, borrower=cast["doctor"], actor=cast["staff"], due_at=timezone.now() + timedelta(days=1)
        )
    services.media_transfer(media=make_media("CD-1"), to_location=places["courier"], actor=cast["staff"])
    make_media("FJ-9")
    later = timezone.now() + timedelta(days=11)
    first = services.sweep(now=later)
    assert first.raised == {FlagKind.OVERDUE: 3, FlagKind.IN_TRANSIT: 1, FlagKind.NOT_SEEN: 1}
    count = events()
    assert services.sweep(now=later).changes == 0
    assert events() == count
    assert projection.rebuild(check_only=True) == []


def test_the_sweep_expires_loan_requests_whose_dates_have_passed(make_media, cast):
    today = timezone.localdate()
    request = services.loan_request_make(
        requester=cast["doctor"], media=make_media("FJ-1"), needed_from=today, needed_until=today,
        purpose="fracture follow-up",
    )
    assert services.sweep(remind=False).requests_expired == 0
    assert services.sweep(now=timezone.now() + timedelta(days=2), remind=False).requests_expired == 1
    assert services.sweep(now=timezone.now() + timedelta(days=2), remind=False).requests_expired == 0
    request.refresh_from_db()
    assert request.status == RequestStatus.EXPIRED


# --- reminders -----------------------------------------------------------------------------------


def test_reminders_are_sent_logged_and_spaced_out(lent, cast, settings):
    settings.REMINDER_EVERY_DAYS = 3
    media, loan, start = lent
    assert services.sweep(now=start + timedelta(minutes=30)).reminders_sent == 0  # not due yet
    result = services.sweep(now=start + timedelta(hours=2))
    assert result.reminders_sent == 1 and len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["doctor@hospital.example"]
    assert "FJ-1" in message.subject and "FJ-1" in message.body
    reminder = Reminder.objects.get()
    assert (reminder.loan, reminder.sent_to, reminder.sent_by) == (loan, "doctor@hospital.example", None)
    event = CustodyEvent.objects.get(kind=EventKind.REMINDER_SENT)
    assert event.seq == reminder.seq and event.media == media
    assert event.payload["loan_seq"] == loan.out_seq and event.payload["automatic"] is True

    for days in (1, 2, 3):  # within three days of the last one: none
        assert services.sweep(now=start + timedelta(days=days)).reminders_sent == 0
    assert services.sweep(now=start + timedelta(days=3, hours=3)).reminders_sent == 1
    assert len(mail.outbox) == 2 and Reminder.objects.count() == 2
    services.media_return(media=media, actor=cast["staff"])
    assert services.sweep(now=start + timedelta(days=30)).reminders_sent == 0
    assert projection.rebuild(check_only=True) == []


def test_no_patient_name_in_a_reminder(make_media, cast):
    from archive.models import Patient

    patient = Patient.objects.create(patient_id="MRN-77", name="Ada Lovelace")
    cast["doctor"].email = "doctor@hospital.example"
    cast["doctor"].save()
    media = make_media("FJ-77", patient=patient)
    services.media_check_out(
        media=media, borrower=cast["doctor"], actor=cast["staff"], due_at=timezone.now() - timedelta(days=1)
    )
    services.sweep()
    message = mail.outbox[0]
    assert "FJ-77" in message.body
    for text in (message.subject, message.body):
        assert "Lovelace" not in text and "MRN-77" not in text


def test_staff_send_a_reminder_by_hand_and_the_sweep_counts_it(lent, cast):
    media, loan, start = lent
    reminder = services.loan_remind(loan=loan, actor=cast["staff"], now=start + timedelta(hours=2))
    assert reminder.sent_by == cast["staff"] and len(mail.outbox) == 1
    assert CustodyEvent.objects.get(kind=EventKind.REMINDER_SENT).payload["automatic"] is False
    assert services.sweep(now=start + timedelta(hours=3)).reminders_sent == 0


def test_a_manual_reminder_retried_with_its_event_id_sends_one_mail(lent, cast):
    media, loan, start = lent
    first = services.loan_remind(loan=loan, actor=cast["staff"], event_id="7a0d3f64-0e2a-4bd5-9b9c-2f0c3a1e5d11")
    again = services.loan_remind(loan=loan, actor=cast["staff"], event_id="7a0d3f64-0e2a-4bd5-9b9c-2f0c3a1e5d11")
    assert first.pk == again.pk and len(mail.outbox) == 1


def test_a_borrower_without_an_address_gets_a_clear_note_not_a_crash(make_media, cast):
    media = make_media("FJ-1")
    loan = services.media_check_out(
        media=media, borrower=cast["doctor2"], actor=cast["staff"], due_at=timezone.now() - timedelta(hours=1)
    )
    result = services.sweep()
    assert (result.reminders_sent, result.without_address) == (0, ["doctor2"])
    assert not Reminder.objects.exists() and not mail.outbox
    with pytest.raises(InvalidRequest, match="doctor2 has no e-mail address"):
        services.loan_remind(loan=loan, actor=cast["staff"])
    services.media_return(media=media, actor=cast["staff"])
    loan.refresh_from_db()
    with pytest.raises(NotOnLoan):
        services.loan_remind(loan=loan, actor=cast["staff"])
    assert events(EventKind.REMINDER_SENT) == 0


def test_a_mail_server_that_cannot_be_reached_records_nothing_and_the_next_pass_retries(lent, settings):
    media, loan, start = lent
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    result = services.sweep(now=start + timedelta(hours=2))
    assert (result.reminders_sent, result.reminders_failed) == (0, 1)
    assert result.raised[FlagKind.OVERDUE] == 1  # the flags do not wait for the mail
    assert not Reminder.objects.exists() and events(EventKind.REMINDER_SENT) == 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    result = services.sweep(now=start + timedelta(hours=3))
    assert (result.reminders_sent, result.reminders_failed) == (1, 0)


# --- the command ---------------------------------------------------------------------------------


def test_the_command_prints_counts_and_runs_idempotently(lent, cast):
    media, loan, start = lent
    at = (start + timedelta(hours=2)).isoformat()
    out = StringIO()
    call_command("sweep", "--json", "--now", at, stdout=out)
    first = json.loads(out.getvalue())
    assert first["raised"][FlagKind.OVERDUE] == 1 and first["reminders_sent"] == 1
    out = StringIO()
    call_command("sweep", "--now", at, stdout=out)
    assert "0 reminders sent." in out.getvalue()
    assert "Overdue: 0 raised, 0 cleared" in out.getvalue()
    assert open_flags().count() == 1 and Reminder.objects.count() == 1


def test_the_command_explains_itself(capsys):
    with pytest.raises(SystemExit) as stopped:
        call_command("sweep", "--help")
    assert stopped.value.code == 0
    text = capsys.readouterr().out
    assert "--loop SECONDS" in text and "Running it twice adds nothing." in text
    assert "--now" not in text  # for tests only
