from django.conf import settings
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracker import ledger
from tracker.management import LocalizedCommand


class Command(LocalizedCommand):
    help = gettext_lazy("Sign the ledger's current head (C2SP signed note) and store the checkpoint.")

    def add_arguments(self, parser):
        parser.add_argument("--vkey", action="store_true", help=_("Also print the verifier key."))

    def handle(self, *args, **options):
        checkpoint = ledger.checkpoint()
        self.stdout.write(checkpoint.note, ending="")
        if options["vkey"]:
            key = ledger.signing_key().public_key()
            self.stdout.write(ledger.verifier_key(settings.LEDGER_ORIGIN, key))
