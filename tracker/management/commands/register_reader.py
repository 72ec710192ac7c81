from django.core.management.base import CommandError
from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from tracker.choices import ReaderMode, UidFormat
from tracker.management import LocalizedCommand
from tracker.models import Location, ReaderDevice, ReaderKey


class Command(LocalizedCommand):
    help = gettext_lazy(
        "Register a reader station (or give an existing one a new key) and print its API key "
        "once. Only a hash of the key is stored: keep it in the agent's key file."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help=_("Unique station name, e.g. fileroom-counter-1"))
        parser.add_argument("--location", required=True, metavar="CODE", help=_("Location code where it stands"))
        parser.add_argument("--mode", choices=ReaderMode.values, help=_("What a tap means (default locate)"))
        parser.add_argument("--uid-format", choices=UidFormat.values, help=_("How the reader reports UIDs"))
        parser.add_argument("--revoke-old", action="store_true", help=_("Revoke the station's earlier keys"))

    @transaction.atomic
    def handle(self, *args, name, location, mode, uid_format, revoke_old, **options):
        place = Location.objects.filter(code=location).first()
        if place is None:
            raise CommandError(
                _("No location with code “%(code)s”; create it in the admin first.") % {"code": location}
            )
        reader, created = ReaderDevice.objects.get_or_create(
            name=name,
            defaults={"location": place, "mode": mode or ReaderMode.LOCATE,
                      "uid_format": uid_format or UidFormat.HEX},
        )
        if not created:
            reader.location = place
            reader.mode = mode or reader.mode
            reader.uid_format = uid_format or reader.uid_format
            reader.is_active = True
            reader.save()
        if revoke_old:
            for old in reader.keys.filter(revoked=False):
                old.revoked = True
                old.save()
        _key_row, key = ReaderKey.objects.create_key(name=name[:50], reader=reader)
        told = (
            _("Registered reader %(name)s at %(place)s (mode: %(mode)s). Its API key follows; it is "
              "shown only this once.")
            if created else
            _("Updated reader %(name)s at %(place)s (mode: %(mode)s). Its API key follows; it is "
              "shown only this once.")
        )
        self.stderr.write(told % {"name": name, "place": place.code, "mode": reader.get_mode_display()})
        self.stdout.write(key)
