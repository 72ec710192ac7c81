import json
from pathlib import Path

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from archive.management import TerminalProgress, command_actor
from archive.services import DISC_KINDS, disc_import
from tracker.exceptions import DomainError
from tracker.management import LocalizedCommand
from tracker.models import Location, Media


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Index a disc (a mounted CD/DVD/USB or a folder copied from one): read every file once, "
        "hash it and parse its header in worker processes, record patients, studies, series and "
        "a manifest, link the item to its studies and add one ledger event. --media names the "
        "registered disc item; without it the disc is registered as a new item (code from its "
        "patient and study date) on the shelf given by --home. Importing the same disc again "
        "changes nothing. --user names who imports (default: the first administrator). "
        "Exit 0 when imported or unchanged (per-file problems are reported, not fatal), "
        "2 for a usage error."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help=_("The disc's mount point or a folder copied from it."))
        parser.add_argument("--media", metavar="CODE", help=_("Code of the registered disc item."))
        parser.add_argument("--home", metavar="LOCATION",
                            help=_("Without --media: register the disc as a new item on this shelf."))
        parser.add_argument("--kind", default="cd", choices=[str(k) for k in DISC_KINDS],
                            help=_("Without --media: the new item's kind (default cd)."))
        parser.add_argument("--user", metavar="USERNAME", help=_("Who imports the disc."))
        parser.add_argument("--json", action="store_true", help=_("Print the summary as one JSON object."))

    def handle(self, *args, **options):
        root = Path(options["path"])
        if not root.is_dir():
            raise CommandError(
                _("%(path)s is not a folder. Give the disc's mount point or a folder copied from it.")
                % {"path": root}, returncode=2,
            )
        actor = command_actor(options["user"])
        media = home = None
        if options["media"]:
            media = Media.objects.filter(code=options["media"]).first()
            if media is None:
                raise CommandError(
                    _("No item with code %(code)s. Register it first, or leave out --media and give "
                      "--home to register the disc as a new item.") % {"code": options["media"]},
                    returncode=2,
                )
        else:
            if not options["home"]:
                raise CommandError(
                    _("Name the disc item with --media CODE, or give --home LOCATION to register the "
                      "disc as a new item on that shelf."), returncode=2,
                )
            home = Location.objects.filter(code=options["home"]).first()
            if home is None:
                raise CommandError(_("No location with code %(code)s.") % {"code": options["home"]},
                                   returncode=2)
        try:
            result = disc_import(
                root=root, media=media, actor=actor, register_kind=options["kind"],
                register_home=home, progress=TerminalProgress(_("Reading disc")),
            )
        except DomainError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        summary = result.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(summary))
            return
        if result.unchanged:
            self.stdout.write(_(
                "Unchanged: this disc was already imported as manifest %(manifest)s of %(code)s; "
                "nothing was written."
            ) % {"manifest": result.manifest.pk, "code": result.media.code})
        else:
            if result.media_created:
                self.stdout.write(_("Registered the disc as new item %(code)s.") % {"code": result.media.code})
            self.stdout.write(_(
                "Imported %(files)s files (%(mb)s MB) into manifest %(manifest)s of %(code)s: "
                "%(studies)s studies, %(series)s series, ledger event %(seq)s, %(seconds)s s."
            ) % {
                "files": summary["files"], "mb": round(summary["bytes"] / 1e6, 1),
                "manifest": summary["manifest"], "code": summary["media"],
                "studies": len(summary["studies"]), "series": summary["series"],
                "seq": summary["event_seq"], "seconds": summary["seconds"],
            })
        if summary["problems"]:
            self.stdout.write(_("%(n)s problems:") % {"n": len(summary["problems"])})
            for problem in summary["problems"]:
                self.stdout.write(f"  {problem['path']}: {problem['reason']}")
