"""Write the DICOM PS3.15 audit messages of new custody events, and send them to the audit
repository by syslog.

Each run picks up where the last one stopped: the output folder holds `state.json` with the last
seq written to files and, per repository (tcp://host:port or tls://host:port), the last seq the
repository took. Messages go in batches of BATCH_EVENTS events, one connection each; a batch
counts as taken when the repository has read to the end of the connection and closed its side
(SyslogSender), and only then does the state move on. So running the command again sends nothing
twice, and a failure part-way (the repository down, a certificate refused) loses nothing: the
next run sends that batch again whole, which may repeat messages the repository had already
read before the failure (syslog has no acknowledgement: at least once, never lost). --since SEQ
starts after SEQ instead, on purpose re-writing and re-sending what follows it.
"""
import json
import os
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracker.audit_messages import (
    Repository,
    SyslogSender,
    Unreportable,
    messages_for,
    reportable_events,
)
from tracker.management import LocalizedCommand
from tracker.models import CustodyEvent

STATE_FILE = "state.json"
# Events sent over one connection: the repository having read to the end of it is what moves the
# state on, so a failure re-sends at most this many events' messages, and never loses one.
BATCH_EVENTS = 500


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Write one DICOM PS3.15 audit message XML file per export, import and transfer in the "
        "ledger since the last run, and send each to the audit repository (RFC 5424 syslog over "
        "TCP or TLS) when one is configured. Exit 0 when done, 1 when the repository could not "
        "take them (run again: what it took is not sent again, the rest is)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since", type=int, metavar="SEQ",
            help=_("Start after this seq (default: after the last event this folder handled)."),
        )
        parser.add_argument(
            "--out", metavar="DIR", default=None,
            help=_("Folder for the XML files and state.json (default %(dir)s).")
            % {"dir": settings.AUDIT_MESSAGES_DIR},
        )
        parser.add_argument(
            "--syslog", metavar="HOST:PORT", default=None,
            help=_("Audit repository to send to (default FILMROOM_AUDIT_REPOSITORY; none if empty)."),
        )
        parser.add_argument("--tls", action="store_true", help=_("Send over TLS (RFC 5425)."))
        parser.add_argument("--ca", metavar="FILE", help=_("CA certificates to trust for --tls."))
        parser.add_argument("--json", action="store_true", help=_("Print the summary as JSON."))

    def handle(self, *args, **options):
        out = Path(options["out"] or settings.AUDIT_MESSAGES_DIR)
        try:
            out.mkdir(parents=True, exist_ok=True)
            state = _load(out)
        except (OSError, ValueError) as exc:
            raise CommandError(
                _("Cannot use %(dir)s: %(error)s") % {"dir": out, "error": exc}, returncode=2
            ) from exc
        repository = self._repository(options)
        key = repository.name if repository else None
        since = options["since"]
        written_to = state["files"] if since is None else since
        sent_to = (state["syslog"].get(key, 0) if since is None else since) if key else None
        start = min(p for p in (written_to, sent_to) if p is not None)
        head = CustodyEvent.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
        summary = {"events": 0, "files": 0, "sent": 0, "skipped": [], "last_seq": head}
        events = reportable_events(after=start, up_to=head)
        while batch := list(islice(events, BATCH_EVENTS)):
            summary["events"] += len(batch)
            built = []
            for event in batch:
                try:
                    built.append((event.seq, messages_for(event)))
                except Unreportable as exc:
                    summary["skipped"].append(str(exc))
                    built.append((event.seq, []))
            for seq, messages in built:
                if seq > written_to:
                    for message in messages:
                        _write(out / message.filename, message.xml, durable=False)
                        summary["files"] += 1
            written_to = state["files"] = max(written_to, built[-1][0])
            if repository and built[-1][0] > sent_to:
                unsent = [m for seq, messages in built if seq > sent_to for m in messages]
                try:
                    if unsent:
                        with SyslogSender(repository) as sender:
                            for message in unsent:
                                sender.send(message)
                except OSError as exc:
                    _save(out, state)
                    raise CommandError(
                        _("The audit repository %(repository)s did not take the messages "
                          "(%(error)s). %(sent)s sent this run; run again to send the rest.")
                        % {"repository": key, "error": exc, "sent": summary["sent"]},
                    ) from exc
                summary["sent"] += len(unsent)
                sent_to = state["syslog"][key] = built[-1][0]
            _save(out, state)
        state["files"] = max(state["files"], head)
        if key:
            state["syslog"][key] = max(state["syslog"].get(key, 0), head)
        _save(out, state)
        self._report(summary, out, key, options["json"])

    @staticmethod
    def _repository(options) -> Repository | None:
        address = options["syslog"] if options["syslog"] is not None else settings.AUDIT_REPOSITORY
        if not address:
            return None
        try:
            return Repository.parse(
                address,
                tls=options["tls"] or settings.AUDIT_REPOSITORY_TLS,
                ca_file=options["ca"] or settings.AUDIT_REPOSITORY_CA,
                cert_file=settings.AUDIT_REPOSITORY_CERT,
                key_file=settings.AUDIT_REPOSITORY_KEY,
            )
        except ValueError as exc:
            raise CommandError(_("--syslog: %(error)s") % {"error": exc}, returncode=2) from exc

    def _report(self, summary: dict, out: Path, key: str | None, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps({**summary, "out": str(out), "repository": key}))
            return
        values = {
            "events": summary["events"], "seq": summary["last_seq"], "files": summary["files"],
            "dir": out, "sent": summary["sent"], "repository": key,
        }
        if key:
            self.stdout.write(_(
                "%(events)s event(s) up to seq %(seq)s: wrote %(files)s message file(s) in %(dir)s "
                "and sent %(sent)s to %(repository)s."
            ) % values)
        else:
            self.stdout.write(_(
                "%(events)s event(s) up to seq %(seq)s: wrote %(files)s message file(s) in %(dir)s."
            ) % values)
        for reason in summary["skipped"]:
            self.stderr.write(_("No message for %(reason)s.") % {"reason": reason})


def _load(out: Path) -> dict:
    path = out / STATE_FILE
    if not path.exists():
        return {"files": 0, "syslog": {}}
    state = json.loads(path.read_text())
    if not isinstance(state.get("files"), int) or not isinstance(state.get("syslog"), dict):
        raise ValueError(f"{path} is not this command's state file")
    return state


def _save(out: Path, state: dict) -> None:
    _write(out / STATE_FILE, json.dumps(state, sort_keys=True).encode())


def _write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` atomically (a reader sees the old file or the new one, never half);
    `durable` waits for the disk, as the record of what was sent must survive a power cut."""
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(partial, path)
