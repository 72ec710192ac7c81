"""Custody services: each is one transaction that checks the file room's rules, appends exactly
one ledger event and applies it to the projection. They raise tracker.exceptions errors.

custody.py: media, tags, loans and moves; stations.py: reads at reader stations, undo, SUN tags;
catalogue.py: which studies an item holds, disc imports and disc checks;
loan_requests.py: requests, holds and renewals; flags.py: the sweep and reminders;
inventory.py: shelf inventories; handovers.py: a borrower handing an item on, accepted by the
receiver; signatures.py: signatures drawn at check-out and return. Each of the last five lists
its services in __all__.
"""
from ..exceptions import Conflict
from . import flags, handovers, inventory, loan_requests, signatures
from .catalogue import (
    media_disc_imported,
    media_disc_verified,
    media_studies_link,
    media_studies_unlink,
)
from .custody import (
    loan_due_at,
    media_check_out,
    media_for_tag,
    media_register,
    media_retire,
    media_return,
    media_seen,
    media_transfer,
    tag_bind,
    tag_for,
    tag_unbind,
)
from .stations import (
    BORROWER_CHOICE_SECONDS,
    UNDO_SECONDS,
    StationRead,
    scan_can_undo,
    scan_record,
    scan_record_many,
    scan_undo,
    station_configure,
    tag_set_sun_key,
    tag_verify_sun,
)

from .flags import *  # noqa: E402,F401,F403
from .handovers import *  # noqa: E402,F401,F403
from .inventory import *  # noqa: E402,F401,F403
from .loan_requests import *  # noqa: E402,F401,F403
from .signatures import *  # noqa: E402,F401,F403

__all__ = [
    "BORROWER_CHOICE_SECONDS",
    "Conflict",
    "UNDO_SECONDS",
    "loan_due_at",
    "media_check_out",
    "media_disc_imported",
    "media_disc_verified",
    "media_for_tag",
    "media_register",
    "media_retire",
    "media_return",
    "media_seen",
    "media_studies_link",
    "media_studies_unlink",
    "media_transfer",
    "scan_can_undo",
    "scan_record",
    "scan_record_many",
    "StationRead",
    "scan_undo",
    "station_configure",
    "tag_bind",
    "tag_for",
    "tag_set_sun_key",
    "tag_unbind",
    "tag_verify_sun",
]
__all__ += (
    flags.__all__ + inventory.__all__ + loan_requests.__all__ + handovers.__all__ + signatures.__all__
)
