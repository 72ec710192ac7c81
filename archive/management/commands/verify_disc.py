import json
from pathlib import Path

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from archive.management import TerminalProgress, command_actor
from archive.services import disc_verify
from tracker.choices import DiscVerdict
from tracker.exceptions import DomainError
from tracker.management import LocalizedCommand
from tracker.models import Media


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Re-hash a returned disc (no parsing) and compare it with the item's latest manifest: "
        "missing, changed and extra files by path. The verdict is a ledger event on the item. "
        "--user names who checks (default: the first administrator). Exit 0 only when identical, "
        "1 when altered, 2 for a usage error."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help=_("The disc's mount point or a folder copied from it."))
        parser.add_argument("--media", metavar="CODE", required=True, help=_("Code of the disc item."))
        parser.add_argument("--user", metavar="USERNAME", help=_("Who verifies the disc."))
        parser.add_argument("--json", action="store_true", help=_("Print the result as one JSON object."))

    def handle(self, *args, **options):
        root = Path(options["path"])
        if not root.is_dir():
            raise CommandError(
                _("%(path)s is not a folder. Give the disc's mount point or a folder copied from it.")
                % {"path": root}, returncode=2,
            )
        actor = command_actor(options["user"])
        media = Media.objects.filter(code=options["media"]).first()
        if media is None:
            raise CommandError(_("No item with code %(code)s.") % {"code": options["media"]}, returncode=2)
        try:
            verification = disc_verify(
                root=root, media=media, actor=actor, progress=TerminalProgress(_("Hashing disc"))
            )
        except DomainError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        identical = verification.verdict == DiscVerdict.IDENTICAL
        if options["json"]:
            self.stdout.write(json.dumps({
                "verdict": verification.verdict, "media": media.code,
                "manifest": verification.manifest_id, "verification": verification.pk,
                "event_seq": verification.event_seq, "files_checked": verification.files_checked,
                "bytes_checked": verification.bytes_checked, "missing": verification.missing,
                "changed": verification.changed, "extra": verification.extra,
            }))
        elif identical:
            self.stdout.write(_(
                "Identical: %(files)s files match manifest %(manifest)s of %(code)s (ledger event %(seq)s)."
            ) % {"files": verification.files_checked, "manifest": verification.manifest_id,
                 "code": media.code, "seq": verification.event_seq})
        else:
            self.stdout.write(_(
                "ALTERED: %(code)s differs from manifest %(manifest)s (ledger event %(seq)s)."
            ) % {"code": media.code, "manifest": verification.manifest_id, "seq": verification.event_seq})
            for label, paths in ((_("missing"), verification.missing),
                                 (_("changed"), verification.changed), (_("extra"), verification.extra)):
                for path in paths:
                    self.stdout.write(f"  {label}: {path}")
        if not identical:
            raise SystemExit(1)
