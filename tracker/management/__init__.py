"""What Filmroom's management commands share."""
from django.core.management.base import BaseCommand


class LocalizedCommand(BaseCommand):
    """A command whose `help` is a gettext_lazy string, worded when its parser is made (in the
    language active then: the site's, FILMROOM_LANGUAGE_CODE), not once when the module is first
    imported (argparse itself needs a plain string)."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.description = str(self.help) if self.help else None
        return parser
