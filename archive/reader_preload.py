"""Imported once by the fork server the disc readers come from (see archive.indexer._context).

Django is set up there, so every reader forked from it can run the PDI check (which needs the
translations, hence the app registry) without paying for django.setup() on each import. Nothing
else imports this module; without Django settings it does nothing.
"""
import os

if os.environ.get("DJANGO_SETTINGS_MODULE"):
    try:
        import django
        from django.apps import apps

        if not apps.ready and not apps.loading:
            django.setup()
        from django.utils import translation

        from archive import pdi  # noqa: F401

        translation.gettext("DICOMDIR")  # loads the catalogues here once, not in every reader
    except Exception:  # noqa: BLE001  a reader that needs Django sets it up itself, and says why not
        pass
