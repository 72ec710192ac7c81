"""manage.py sweep [--loop SECONDS] [--json]: raise and clear flags, expire loan requests, send the
reminders that are due. Each pass is idempotent, so cron, systemd or --loop may run it as often
as they like."""
import argparse
import json
import threading

from django.core.management.base import CommandError
from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from agent.signals import stop_on_signals
from tracker.choices import FlagKind
from tracker.management import LocalizedCommand
from tracker.services.flags import SweepResult, sweep


class Command(LocalizedCommand):
    help = gettext_lazy(  # as the other commands: argparse needs a plain string
        "Flag overdue loans, items in transit too long and items not seen on their shelf; clear "
        "flags whose item turned up; expire loan requests; e-mail the reminders that are due. "
        "Running it twice adds nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--loop", type=float, metavar="SECONDS",
            help=_("Run a pass every SECONDS until stopped (SIGTERM or Ctrl-C end it cleanly)."),
        )
        parser.add_argument("--json", action="store_true", help=_("Print each pass as one JSON line."))
        parser.add_argument(
            "--no-reminders", action="store_true", help=_("Raise and clear flags but send no e-mail."),
        )
        # Tests judge a pass at a chosen time; not for people.
        parser.add_argument("--now", help=argparse.SUPPRESS)

    def handle(self, *args, **options):
        now = None
        if options["now"]:
            now = parse_datetime(options["now"])
            if now is None or timezone.is_naive(now):
                raise CommandError(_("--now must be an ISO 8601 time with a time zone."))
        remind = not options["no_reminders"]
        if options["loop"] is None:
            self._report(sweep(now=now, remind=remind), options["json"])
            return
        if options["loop"] <= 0:
            raise CommandError(_("--loop needs a number of seconds above zero."))
        stop = threading.Event()
        stop_on_signals(stop)
        while not stop.is_set():
            close_old_connections()  # a restarted database is met by a fresh connection
            try:
                self._report(sweep(now=now, remind=remind), options["json"])
            except DatabaseError as exc:
                # Keep looping: the next pass redoes whatever this one did not commit.
                self.stderr.write(_("Sweep pass failed, retrying in %(s)s s: %(e)s") % {
                    "s": options["loop"], "e": exc,
                })
            stop.wait(options["loop"])
        self.stdout.write(_("Sweep stopped."))

    def _report(self, result: SweepResult, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(result.as_json(), sort_keys=True))
            self.stdout.flush()
            return
        names = dict(FlagKind.choices)
        parts = [
            _("%(kind)s: %(raised)d raised, %(cleared)d cleared") % {
                "kind": names[kind], "raised": result.raised.get(kind, 0),
                "cleared": result.cleared.get(kind, 0),
            }
            for kind in FlagKind.values
        ]
        self.stdout.write(_("Flags — %(parts)s.") % {"parts": "; ".join(parts)})
        self.stdout.write(
            ngettext("%(n)d reminder sent.", "%(n)d reminders sent.", result.reminders_sent)
            % {"n": result.reminders_sent}
        )
        if result.without_address:
            self.stdout.write(
                _("No e-mail address, so not reminded of overdue loans: %(names)s. Add an address "
                  "to their accounts or call them.") % {"names": ", ".join(result.without_address)}
            )
        if result.reminders_failed:
            self.stderr.write(
                ngettext(
                    "%(n)d reminder could not be sent (mail server unreachable or refusing); the "
                    "next pass tries again. Check the EMAIL_* settings.",
                    "%(n)d reminders could not be sent (mail server unreachable or refusing); the "
                    "next pass tries again. Check the EMAIL_* settings.",
                    result.reminders_failed,
                ) % {"n": result.reminders_failed}
            )
        if result.requests_expired:
            self.stdout.write(
                ngettext("%(n)d loan request expired.", "%(n)d loan requests expired.",
                         result.requests_expired) % {"n": result.requests_expired}
            )
        self.stdout.flush()
