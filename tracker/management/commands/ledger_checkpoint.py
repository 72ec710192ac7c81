from django.conf import settings
from django.core.management.base import BaseCommand

from tracker import ledger


class Command(BaseCommand):
    help = "Sign the ledger's current head (C2SP signed note) and store the checkpoint."

    def add_arguments(self, parser):
        parser.add_argument("--vkey", action="store_true", help="Also print the verifier key.")

    def handle(self, *args, **options):
        checkpoint = ledger.checkpoint()
        self.stdout.write(checkpoint.note, ending="")
        if options["vkey"]:
            key = ledger.signing_key().public_key()
            self.stdout.write(ledger.verifier_key(settings.LEDGER_ORIGIN, key))
