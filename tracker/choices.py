"""Choice classes for the custody domain; code compares against these, never bare strings."""
from django.db import models
from django.utils.translation import gettext_lazy as _


class LocationKind(models.TextChoices):
    SHELF = "shelf", _("Shelf")
    ROOM = "room", _("Room")
    DEPARTMENT = "department", _("Department")
    EXTERNAL = "external", _("External (another hospital)")
    TRANSIT = "transit", _("In transit")


class MediaKind(models.TextChoices):
    FILM_JACKET = "film_jacket", _("Film jacket")
    CD = "cd", _("CD")
    DVD = "dvd", _("DVD")
    USB = "usb", _("USB stick")
    OTHER = "other", _("Other")


class MediaStatus(models.TextChoices):
    ON_SHELF = "on_shelf", _("On shelf")
    ON_LOAN = "on_loan", _("On loan")
    IN_TRANSIT = "in_transit", _("In transit")
    MISSING = "missing", _("Missing")
    RETIRED = "retired", _("Retired")


class TagTechnology(models.TextChoices):
    ISO14443A = "iso14443a", _("ISO 14443-A (NTAG, MIFARE)")
    NTAG424 = "ntag424", _("NTAG 424 DNA (SUN)")
    ISO15693 = "iso15693", _("ISO 15693 (ICODE SLIX)")
    OTHER = "other", _("Other")


class ReaderMode(models.TextChoices):
    LOCATE = "locate", _("Locate (seen here)")
    CHECK_IN = "check_in", _("Check in")
    CHECK_OUT = "check_out", _("Check out")
    TRANSFER = "transfer", _("Transfer")
    INVENTORY = "inventory", _("Inventory")


class EventKind(models.TextChoices):
    """What a custody event records. Each kind has one projection rule in tracker.projection."""

    MEDIA_REGISTERED = "media_registered", _("Registered")
    TAG_BOUND = "tag_bound", _("Tag bound")
    TAG_UNBOUND = "tag_unbound", _("Tag unbound")
    CHECKED_OUT = "checked_out", _("Checked out")
    RETURNED = "returned", _("Returned")
    TRANSFERRED = "transferred", _("Transferred")
    SEEN = "seen", _("Seen")
    RETIRED = "retired", _("Retired")
    DISC_IMPORTED = "disc_imported", _("Disc imported")
    DISC_VERIFIED = "disc_verified", _("Disc verified")
    STUDIES_LINKED = "studies_linked", _("Studies linked")
    STUDIES_UNLINKED = "studies_unlinked", _("Studies unlinked")
    LOAN_RENEWED = "loan_renewed", _("Loan renewed")
    REQUEST_MADE = "request_made", _("Loan requested")
    REQUEST_APPROVED = "request_approved", _("Request approved")
    REQUEST_DENIED = "request_denied", _("Request denied")
    REQUEST_READY = "request_ready", _("Request ready for pick-up")
    REQUEST_CANCELLED = "request_cancelled", _("Request cancelled")
    REQUEST_EXPIRED = "request_expired", _("Request expired")
    FLAG_RAISED = "flag_raised", _("Flag raised")
    FLAG_CLEARED = "flag_cleared", _("Flag cleared")
    REMINDER_SENT = "reminder_sent", _("Reminder sent")
    INVENTORY_STARTED = "inventory_started", _("Inventory started")
    INVENTORY_CLOSED = "inventory_closed", _("Inventory closed")
    HANDOVER_OFFERED = "handover_offered", _("Hand-over offered")
    HANDOVER_DECLINED = "handover_declined", _("Hand-over declined")
    HANDOVER_CANCELLED = "handover_cancelled", _("Hand-over cancelled")
    SIGNATURE_ADDED = "signature_added", _("Signature added")


class StudySource(models.TextChoices):
    """Where a media item's link to a study came from."""

    DISC = "disc", _("Indexed from the disc")
    PACS = "pacs", _("Found in the PACS")
    MANUAL = "manual", _("Entered by hand")


class DiscVerdict(models.TextChoices):
    """A returned disc compared with its manifest."""

    IDENTICAL = "identical", _("Identical to its manifest")
    ALTERED = "altered", _("Altered: files missing, changed or added")


class Role(models.TextChoices):
    """Django groups that carry a person's role."""

    FILE_ROOM = "file_room", _("File-room staff")
    CLINICIAN = "clinician", _("Clinician")
    AUDITOR = "auditor", _("Auditor")
    ADMIN = "admin", _("Administrator")


class UidFormat(models.TextChoices):
    """How a reader reports a tag's UID (keyboard-wedge readers are configurable)."""

    HEX = "hex", _("Hex, in order")
    HEX_REVERSED = "hex_reversed", _("Hex, byte-reversed")
    DECIMAL = "decimal", _("Decimal, in order")
    DECIMAL_REVERSED_4 = "decimal_reversed_4", _("10-digit decimal of the reversed first 4 bytes")
    WIEGAND_26 = "wiegand_26", _("Wiegand-26 (facility + card; lossy)")


class ScanOutcome(models.TextChoices):
    """How a station read ended, as the person at the counter sees it (green/amber/red)."""

    OK = "ok", _("Done")
    WARNING = "warning", _("Check this")
    ERROR = "error", _("Refused")
    UNKNOWN_TAG = "unknown_tag", _("Unknown tag")
    BADGE = "badge", _("Badge")


class RequestStatus(models.TextChoices):
    """Where a clinician's loan request stands; projected from request_* ledger events."""

    PENDING = "pending", _("Waiting for the file room")
    APPROVED = "approved", _("Approved (queued)")
    READY = "ready", _("Ready for pick-up")
    FULFILLED = "fulfilled", _("Lent")
    DENIED = "denied", _("Denied")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")


class FlagKind(models.TextChoices):
    """What the sweep or an inventory found wrong with an item."""

    OVERDUE = "overdue", _("Overdue")
    IN_TRANSIT = "in_transit", _("In transit too long")
    NOT_SEEN = "not_seen", _("Not seen where it should be")
    INVENTORY_MISSING = "inventory_missing", _("Not found by an inventory")


class InventoryStatus(models.TextChoices):
    OPEN = "open", _("Open: reading tags")
    CLOSED = "closed", _("Closed")
    CANCELLED = "cancelled", _("Cancelled")


class HandoverStatus(models.TextChoices):
    """A borrower handing an item on; custody moves only when the receiver accepts (the
    acceptance is a `transferred` event naming the hand-over)."""

    PENDING = "pending", _("Waiting for the receiver")
    ACCEPTED = "accepted", _("Accepted")
    DECLINED = "declined", _("Declined")
    CANCELLED = "cancelled", _("Cancelled")


class AccessAction(models.TextChoices):
    """What someone did with custody data that the access log records (auditors' reads of
    patient data, exports, verifications)."""

    VIEWED = "viewed", _("Viewed")
    EXPORTED = "exported", _("Exported")
    VERIFIED = "verified", _("Verified")


class AccessSubject(models.TextChoices):
    """Whose or what custody data was read."""

    MEDIA = "media", _("Item")
    PATIENT = "patient", _("Patient")
    BORROWER = "borrower", _("Borrower")
    LOCATION = "location", _("Location")
    EVENTS = "events", _("Event list")
    LEDGER = "ledger", _("Ledger")
