import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracker import ledger
from tracker.exports import verify_csv
from tracker.management import LocalizedCommand


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Check an exported custody CSV offline against the ledger's public key: every byte signed, "
        "each row's hash, links, the range and the checkpoint it carries. Exit 0 when intact, 1 "
        "naming the first bad row or seq, 2 when the file or the key cannot be read."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help=_("The .csv file downloaded from Filmroom."))
        parser.add_argument(
            "--vkey",
            metavar="KEY_OR_FILE",
            help=_(
                "Note verifier key (name+id+key, as `ledger_checkpoint --vkey` prints it), or a "
                "file holding it. Without it, the key of this installation is used."
            ),
        )
        parser.add_argument("--json", action="store_true", help=_("Print the result as JSON."))

    def handle(self, *args, **options):
        try:
            data = Path(options["file"]).read_bytes()
        except OSError as exc:
            message = _("Cannot read %(file)s: %(error)s") % {
                "file": options["file"], "error": exc.strerror or exc,
            }
            raise CommandError(message, returncode=2) from exc
        result = verify_csv(data, self._public_key(options["vkey"]))
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            self.stdout.write(self._summary(result))
        else:
            self.stderr.write(self._rejection(result))
        if not result.ok:
            raise SystemExit(1)

    @staticmethod
    def _public_key(vkey: str | None):
        if vkey:
            text = Path(vkey).read_text() if Path(vkey).is_file() else vkey
            try:
                return ledger.parse_verifier_key(text)
            except ValueError as exc:
                raise CommandError(
                    _("--vkey is not a note verifier key: %(error)s") % {"error": exc}, returncode=2
                ) from exc
        if not Path(settings.LEDGER_SIGNING_KEY_FILE).is_file():
            raise CommandError(
                _("No ledger key on this machine: give the ledger's verifier key with --vkey "
                  "(an administrator prints it with `manage.py ledger_checkpoint --vkey`)."),
                returncode=2,
            )
        return ledger.signing_key().public_key()

    @staticmethod
    def _rejection(result) -> str:
        values = {"row": result.row, "seq": result.seq, "reason": result.reason}
        if result.row is not None and result.seq is not None:
            return _("EXPORT REJECTED at row %(row)s, seq %(seq)s: %(reason)s") % values
        if result.row is not None:
            return _("EXPORT REJECTED at row %(row)s: %(reason)s") % values
        if result.seq is not None:
            return _("EXPORT REJECTED at seq %(seq)s: %(reason)s") % values
        return _("EXPORT REJECTED: %(reason)s") % values

    @staticmethod
    def _summary(result) -> str:
        if result.rows:
            values = {"first": result.first_seq, "last": result.last_seq}
            if result.from_genesis:
                span = _("seq %(first)s..%(last)s, every event from the first: the chain is "
                         "recomputed from its start") % values
            elif result.contiguous:
                span = _("seq %(first)s..%(last)s, every event between them: each row links to the "
                         "one before") % values
            else:
                span = _("seq %(first)s..%(last)s, a selection: rows link where their seqs follow "
                         "each other") % values
        else:
            span = _("no events matched its filters")
        lines = [
            _("Export intact: %(rows)s event(s), %(span)s.") % {"rows": result.rows, "span": span},
            _("Signed by %(origin)s (key %(key)s) at %(at)s for %(by)s; filters %(filters)s.") % {
                "origin": result.origin, "key": result.key_id, "at": result.generated_at,
                "by": result.generated_by, "filters": json.dumps(result.filters, ensure_ascii=False),
            },
            _("Every byte is covered by the signature; each row's hash matches its content."),
        ]
        if result.checkpoint_size is None:
            lines.append(_("It carries no signed checkpoint (none had been taken)."))
        elif result.checkpoint_in_rows:
            lines.append(_(
                "Its checkpoint at %(size)s events is signed by the same key, and seq %(size)s in "
                "the export has the hash it signed."
            ) % {"size": result.checkpoint_size})
        else:
            lines.append(_(
                "Its checkpoint at %(size)s events is signed by the same key (the export does not "
                "hold that event, so its rows are vouched for by the export's signature alone)."
            ) % {"size": result.checkpoint_size})
        if not (result.from_genesis and result.last_seq == result.ledger_size):
            lines.append(_(
                "Not proven by the file alone: that no event matching its filters was left out "
                "(check the ledger with verify_ledger, or a full export)."
            ))
        return "\n".join(lines)
