"""What the disc commands share: who is acting, and a progress bar for a terminal."""
from __future__ import annotations

import sys
import time

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db.models import Q
from django.utils.translation import gettext as _

from tracker.choices import Role


def command_actor(username: str | None):
    """The user named by --user, or else the first active administrator (the ledger needs one)."""
    users = get_user_model().objects.filter(is_active=True)
    if username:
        user = users.filter(username=username).first()
        if user is None:
            raise CommandError(
                _("No active user “%(name)s”. Name the person doing this with --user USERNAME.")
                % {"name": username},
                returncode=2,
            )
        return user
    user = users.filter(Q(is_superuser=True) | Q(groups__name=Role.ADMIN)).order_by("pk").first()
    if user is None:
        raise CommandError(
            _("No --user given and there is no administrator to act for. Name the person doing "
              "this with --user USERNAME."),
            returncode=2,
        )
    return user


class TerminalProgress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, label: str, stream=None):
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.last = 0.0

    def __call__(self, files: int, total_files: int, done_bytes: int, total_bytes: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if files < total_files and now - self.last < 0.1:
            return
        self.last = now
        share = done_bytes / total_bytes if total_bytes else files / max(total_files, 1)
        bar = "#" * int(share * 30)
        self.stream.write(
            f"\r{self.label} [{bar:<30}] {files}/{total_files} "
            f"{done_bytes / 1e6:.0f}/{total_bytes / 1e6:.0f} MB"
        )
        if files >= total_files:
            self.stream.write("\n")
        self.stream.flush()
