import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tracker import ledger
from tracker.exports import verify_csv


class Command(BaseCommand):
    help = (
        "Check an exported custody CSV offline against the ledger's public key: every byte signed, "
        "each row's hash, links, the range and the checkpoint it carries. Exit 0 when intact, 1 "
        "naming the first bad row or seq, 2 when the file or the key cannot be read."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", metavar="FILE", help="The .csv file downloaded from Filmroom.")
        parser.add_argument(
            "--vkey",
            metavar="KEY_OR_FILE",
            help=(
                "Note verifier key (name+id+key, as `ledger_checkpoint --vkey` prints it), or a "
                "file holding it. Without it, the key of this installation is used."
            ),
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        try:
            data = Path(options["file"]).read_bytes()
        except OSError as exc:
            message = f"Cannot read {options['file']}: {exc.strerror or exc}"
            raise CommandError(message, returncode=2) from exc
        result = verify_csv(data, self._public_key(options["vkey"]))
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.ok:
            self.stdout.write(self._summary(result))
        else:
            where = []
            if result.row is not None:
                where.append(f"row {result.row}")
            if result.seq is not None:
                where.append(f"seq {result.seq}")
            place = f" at {', '.join(where)}" if where else ""
            self.stderr.write(f"EXPORT REJECTED{place}: {result.reason}")
        if not result.ok:
            raise SystemExit(1)

    @staticmethod
    def _public_key(vkey: str | None):
        if vkey:
            text = Path(vkey).read_text() if Path(vkey).is_file() else vkey
            try:
                return ledger.parse_verifier_key(text)
            except ValueError as exc:
                raise CommandError(f"--vkey is not a note verifier key: {exc}", returncode=2) from exc
        if not Path(settings.LEDGER_SIGNING_KEY_FILE).is_file():
            raise CommandError(
                "No ledger key on this machine: give the ledger's verifier key with --vkey "
                "(an administrator prints it with `manage.py ledger_checkpoint --vkey`).",
                returncode=2,
            )
        return ledger.signing_key().public_key()

    @staticmethod
    def _summary(result) -> str:
        if result.rows:
            span = f"seq {result.first_seq}..{result.last_seq}"
            if result.from_genesis:
                span += ", every event from the first: the chain is recomputed from its start"
            elif result.contiguous:
                span += ", every event between them: each row links to the one before"
            else:
                span += ", a selection: rows link where their seqs follow each other"
        else:
            span = "no events matched its filters"
        lines = [
            f"Export intact: {result.rows} event(s), {span}.",
            f"Signed by {result.origin} (key {result.key_id}) at {result.generated_at} for "
            f"{result.generated_by}; filters {json.dumps(result.filters, ensure_ascii=False)}.",
            "Every byte is covered by the signature; each row's hash matches its content.",
        ]
        if result.checkpoint_size is None:
            lines.append("It carries no signed checkpoint (none had been taken).")
        elif result.checkpoint_in_rows:
            lines.append(
                f"Its checkpoint at {result.checkpoint_size} events is signed by the same key, and "
                f"seq {result.checkpoint_size} in the export has the hash it signed."
            )
        else:
            lines.append(
                f"Its checkpoint at {result.checkpoint_size} events is signed by the same key "
                "(the export does not hold that event, so its rows are vouched for by the "
                "export's signature alone)."
            )
        if not (result.from_genesis and result.last_seq == result.ledger_size):
            lines.append(
                "Not proven by the file alone: that no event matching its filters was left out "
                "(check the ledger with verify_ledger, or a full export)."
            )
        return "\n".join(lines)
