import json
from pathlib import Path

from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from archive.pdi import pdi_check
from tracker.management import LocalizedCommand

MARKS = {True: "ok  ", False: "FAIL", None: "--  "}


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Report how far a disc (a mounted CD/DVD/USB or a folder copied from one) follows IHE PDI "
        "and DICOM PS3.10-12: DICOMDIR, file names, transfer syntaxes per profile, README.TXT and "
        "INDEX.HTM. It only reads the disc. Exit 0 when it meets a general-purpose profile, "
        "1 when it deviates, 2 when PATH is not a folder."
    )
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "path", metavar="PATH", help=_("Folder where the disc is mounted or copied.")
        )
        parser.add_argument(
            "--json", action="store_true", help=_("Print the report as one JSON object.")
        )

    def handle(self, *args, path, **options):
        root = Path(path)
        if not root.is_dir():
            raise CommandError(
                _("%(path)s is not a folder. Give the folder where the disc is mounted "
                  "(e.g. /media/cdrom) or a copy of it.") % {"path": path},
                returncode=2,
            )
        report = pdi_check(root)
        if options["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False))
        else:
            self._print(root, report)
        if not report["conformant"]:
            raise SystemExit(1)

    def _print(self, root: Path, report: dict) -> None:
        counts = report["counts"]
        self.stdout.write(
            _("IHE PDI check of %(root)s: %(files)d files, %(dicom)d DICOM files.")
            % {"root": root, "files": counts["files"], "dicom": counts["dicom_files"]}
        )
        for check in report["checks"]:
            mark = MARKS[check["ok"]]
            if check["ok"] is False and check["severity"] != "required":
                # Information, or a profile limit (CD only): neither alone makes a disc deviate.
                mark = "note" if check["severity"] == "info" else "warn"
            self.stdout.write(f"  {mark} {check['code']}: {check['message']}")
            for shown in check["paths"][:5]:
                self.stdout.write(f"         {shown}")
            if check["count"] > 5:
                self.stdout.write("         " + _("... and %(more)d more") % {
                    "more": check["count"] - 5})
        self.stdout.write(_("Profiles:"))
        for name, profile in report["profiles"].items():
            reasons = list(profile["failed_checks"])
            if profile["violations"]:
                reasons.append(ngettext(
                    "%(n)d file in another transfer syntax",
                    "%(n)d files in other transfer syntaxes", profile["violations"],
                ) % {"n": profile["violations"]})
            detail = ""
            if reasons:
                detail = " " + _("not met: %(reasons)s") % {"reasons": ", ".join(reasons)}
            mark = "ok  " if profile["ok"] else "no  "
            self.stdout.write(f"  {mark} {name} [{profile['media']}]{detail}")
        if report["conformant"]:
            self.stdout.write(
                _("Conformant: the disc meets %(profile)s.") % {"profile": report["best_profile"]}
            )
        else:
            self.stdout.write(
                _("Not conformant: the disc meets no general-purpose profile. Viewers may still "
                  "open it; the lines marked FAIL say what deviates.")
            )
