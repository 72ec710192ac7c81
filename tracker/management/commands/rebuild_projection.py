from django.core.management.base import BaseCommand

from tracker import projection


class Command(BaseCommand):
    help = (
        "Replay the custody ledger into the projection (media status/place/holder, loans, tag "
        "bindings, transfers). With --check nothing is written; exit 1 on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="Compare only; change nothing.")

    def handle(self, *args, **options):
        found = projection.rebuild(check_only=options["check"])
        if not found:
            self.stdout.write("The projection matches the ledger.")
            return
        for line in found:
            self.stderr.write(line)
        if options["check"]:
            self.stderr.write("The projection differs from the ledger (nothing was changed).")
            raise SystemExit(1)
        self.stdout.write(f"Rebuilt the projection from the ledger ({len(found)} difference(s) fixed).")
