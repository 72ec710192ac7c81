from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from tracker import projection
from tracker.management import LocalizedCommand


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Replay the custody ledger into the projection (media status/place/holder, loans, tag "
        "bindings, transfers). With --check nothing is written; exit 1 on any difference."
    )

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help=_("Compare only; change nothing."))

    def handle(self, *args, **options):
        found = projection.rebuild(check_only=options["check"])
        if not found:
            self.stdout.write(_("The projection matches the ledger."))
            return
        for line in found:
            self.stderr.write(line)
        if options["check"]:
            self.stderr.write(_("The projection differs from the ledger (nothing was changed)."))
            raise SystemExit(1)
        self.stdout.write(ngettext(
            "Rebuilt the projection from the ledger (%(n)s difference fixed).",
            "Rebuilt the projection from the ledger (%(n)s differences fixed).",
            len(found),
        ) % {"n": len(found)})
