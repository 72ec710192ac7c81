import json
from pathlib import Path

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracker import ledger
from tracker.audit import reason_text
from tracker.management import LocalizedCommand


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Recompute the custody ledger's hash chain and check it against every signed checkpoint. "
        "Exit 0 when intact, 1 naming the first bad seq."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help=_("Print the result as JSON."))
        parser.add_argument(
            "--checkpoint",
            action="append",
            default=[],
            metavar="FILE",
            help=_("Also check a checkpoint note kept outside the database (repeatable)."),
        )
        parser.add_argument(
            "--exact",
            action="store_true",
            help=_(
                "Recompute every event's body from its columns instead of trusting the bodies the "
                "database stored (slow: for someone who may have edited the database file or catalog)."
            ),
        )
        parser.add_argument(
            "--vkey",
            metavar="KEY_OR_FILE",
            help=_("Note verifier key (name+id+key) to trust instead of the local signing key."),
        )

    def handle(self, *args, **options):
        public_key = None
        if options["vkey"]:
            text = options["vkey"]
            if Path(text).is_file():
                text = Path(text).read_text()
            try:
                public_key = ledger.parse_verifier_key(text)
            except ValueError as exc:
                raise CommandError(
                    _("--vkey is not a note verifier key: %(error)s") % {"error": exc}
                ) from exc
        notes = [Path(path).read_text() for path in options["checkpoint"]]
        result = ledger.verify_ledger(public_key=public_key, extra_notes=notes, exact=options["exact"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            self.stdout.write(
                _(
                    "Ledger intact: %(events)s events, head %(head)s, %(checkpoints)s signed "
                    "checkpoint(s) match."
                ) % {"events": result.events, "head": result.head_hash, "checkpoints": result.checkpoints}
            )
        else:
            reason = reason_text({
                "reason": result.reason, "reason_code": result.reason_code,
                "reason_params": result.reason_params,
            })
            self.stderr.write(
                _("LEDGER BROKEN at seq %(seq)s: %(reason)s") % {"seq": result.first_bad_seq, "reason": reason}
            )
        if not result.ok:
            raise SystemExit(1)
