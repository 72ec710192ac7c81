"""Custody domain: where media are, which tags they carry, who holds them, and the ledger.

Media.status/current_location/current_holder, open Loans, TagBindings and Transfers are a
projection of the CustodyEvent ledger (tracker.projection applies one event to them); the
ledger is the source of truth and `manage.py rebuild_projection --check` proves they agree.
"""
import functools

from django.conf import settings
from django.db import models
from django.core.signals import setting_changed
from django.db.models import Q
from django.dispatch import receiver
from django.utils import translation
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey

from .choices import (
    AccessAction,
    AccessSubject,
    EventKind,
    FlagKind,
    HandoverStatus,
    InventoryStatus,
    LocationKind,
    MediaKind,
    MediaStatus,
    ReaderMode,
    RequestStatus,
    Role,
    ScanOutcome,
    TagTechnology,
    UidFormat,
)
from .event_body_sql import EventBody


class Location(models.Model):
    """A place media can be: a shelf in the file room, a clinic, another hospital, a courier."""

    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=16, choices=LocationKind.choices)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name=_("inside"),
    )
    shelf_order = models.PositiveIntegerField(
        _("shelf order"), default=0, help_text=_("Walking order in the file room (pull lists).")
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["shelf_order", "code"]
        verbose_name = _("location")
        verbose_name_plural = _("locations")

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class ReaderDevice(models.Model):
    """A reader station: where it stands and what a tap there means."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="readers", verbose_name=_("location")
    )
    mode = models.CharField(
        _("mode"), max_length=16, choices=ReaderMode.choices, default=ReaderMode.LOCATE
    )
    uid_format = models.CharField(
        _("UID output format"), max_length=24, choices=UidFormat.choices, default=UidFormat.HEX
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    # What the station page chose for the next taps (check-out borrower, transfer destination).
    borrower = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("borrower for check-outs"),
    )
    borrower_chosen_at = models.DateTimeField(null=True, blank=True)
    destination = models.ForeignKey(
        Location,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("destination for check-outs and transfers"),
    )
    destination_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("person for transfers"),
    )
    # In inventory mode, the open inventory this station's reads go to.
    inventory = models.ForeignKey(
        "InventorySession",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="stations",
        verbose_name=_("inventory"),
    )

    class Meta:
        ordering = ["name"]
        verbose_name = _("reader device")
        verbose_name_plural = _("reader devices")

    def __str__(self) -> str:
        return self.name


class ReaderKey(AbstractAPIKey):
    """A reader's API key (only its hash is stored); revoke it to cut the reader off."""

    reader = models.ForeignKey(ReaderDevice, on_delete=models.CASCADE, related_name="keys")

    class Meta(AbstractAPIKey.Meta):
        verbose_name = _("reader key")
        verbose_name_plural = _("reader keys")


class Badge(models.Model):
    """A staff or doctor badge: tapping it at a check-out station names the borrower."""

    uid = models.CharField(_("UID"), max_length=20, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="badges"
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("issued"), auto_now_add=True)

    class Meta:
        ordering = ["uid"]
        verbose_name = _("badge")
        verbose_name_plural = _("badges")

    def __str__(self) -> str:
        return self.uid


class Preference(models.Model):
    """What a person chose for themselves: the language Filmroom speaks to them in (pages after
    they log in, reminder e-mails)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    language = models.CharField(_("language"), max_length=16)

    class Meta:
        verbose_name = _("preference")
        verbose_name_plural = _("preferences")

    def __str__(self) -> str:
        return f"{self.user_id}:{self.language}"

    @classmethod
    def remember_language(cls, *, user, language: str) -> None:
        """Remember the language a logged-in person picked (one of settings.LANGUAGES)."""
        if language not in dict(settings.LANGUAGES):
            raise ValueError(f"{language!r} is not one of the site's languages.")
        cls.objects.update_or_create(user=user, defaults={"language": language})

    @classmethod
    def language_of(cls, user) -> str | None:
        """The language this person picked, if it is still one of the site's; else None."""
        language = cls.objects.filter(user_id=user.pk).values_list("language", flat=True).first()
        return language if language in dict(settings.LANGUAGES) else None


class Tag(models.Model):
    """An RFID/NFC tag, known by its canonical UID (uppercase hex, see tracker.tags)."""

    uid = models.CharField(_("UID"), max_length=20, unique=True)
    technology = models.CharField(
        _("technology"), max_length=16, choices=TagTechnology.choices, default=TagTechnology.ISO14443A
    )
    sun_key_encrypted = models.BinaryField(_("SUN key (encrypted)"), null=True, blank=True)
    last_counter = models.PositiveIntegerField(_("last SUN counter"), null=True, blank=True)
    created_at = models.DateTimeField(_("first seen"), auto_now_add=True)

    class Meta:
        ordering = ["uid"]
        verbose_name = _("tag")
        verbose_name_plural = _("tags")

    def __str__(self) -> str:
        return self.uid


class Media(models.Model):
    """A film jacket, disc or stick. Status, location and holder are projected from the ledger."""

    code = models.CharField(_("code"), max_length=32, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=MediaKind.choices)
    patient = models.ForeignKey(
        "archive.Patient",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="media",
        verbose_name=_("patient"),
    )
    studies = models.ManyToManyField(
        "archive.Study", blank=True, related_name="media", verbose_name=_("studies")
    )
    description = models.CharField(_("description"), max_length=200, blank=True)
    home_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="home_media", verbose_name=_("home")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=MediaStatus.choices, default=MediaStatus.ON_SHELF
    )
    current_location = models.ForeignKey(
        Location,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="present_media",
        verbose_name=_("current location"),
    )
    current_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="held_media",
        verbose_name=_("current holder"),
    )
    last_seen_at = models.DateTimeField(_("last seen"), null=True, blank=True)
    created_at = models.DateTimeField(_("registered"), auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("media")
        verbose_name_plural = _("media")
        # status alone is its prefix; the sweep looks for items on the shelf unseen since a date.
        indexes = [models.Index(fields=["status", "last_seen_at"], name="media_status_seen")]

    def __str__(self) -> str:
        return self.code


class TagBinding(models.Model):
    """Which media a tag was on, and when: history, never overwritten."""

    tag = models.ForeignKey(Tag, on_delete=models.PROTECT, related_name="bindings")
    media = models.ForeignKey(Media, on_delete=models.PROTECT, related_name="tag_bindings")
    bound_at = models.DateTimeField(_("bound"))
    unbound_at = models.DateTimeField(_("unbound"), null=True, blank=True)
    bound_seq = models.BigIntegerField(_("bound by event"))
    unbound_seq = models.BigIntegerField(_("unbound by event"), null=True, blank=True)

    class Meta:
        ordering = ["-bound_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["tag"], condition=Q(unbound_at__isnull=True), name="one_active_binding_per_tag"
            ),
            models.UniqueConstraint(
                fields=["media"],
                condition=Q(unbound_at__isnull=True),
                name="one_active_tag_per_media",
            ),
        ]
        verbose_name = _("tag binding")
        verbose_name_plural = _("tag bindings")

    def __str__(self) -> str:
        return f"{self.tag_id} → {self.media_id}"


class LoanPolicy(models.Model):
    """How long a loan runs. The most specific matching rule wins; no rule → DEFAULT_LOAN_DAYS."""

    name = models.CharField(_("name"), max_length=80)
    media_kind = models.CharField(
        _("media kind"), max_length=16, choices=MediaKind.choices, blank=True
    )
    destination_kind = models.CharField(
        _("destination kind"), max_length=16, choices=LocationKind.choices, blank=True
    )
    # The borrower's role (a Django group, e.g. clinician); blank: anyone.
    borrower_role = models.CharField(
        _("borrower role"), max_length=16, choices=Role.choices, blank=True
    )
    loan_days = models.PositiveIntegerField(_("loan days"))
    max_renewals = models.PositiveIntegerField(_("renewals allowed"), default=1)

    class Meta:
        ordering = ["name"]
        verbose_name = _("loan policy")
        verbose_name_plural = _("loan policies")

    def __str__(self) -> str:
        return self.name


class Loan(models.Model):
    """A borrower's custody of one item; at most one open loan per media (database-enforced)."""

    media = models.ForeignKey(Media, on_delete=models.PROTECT, related_name="loans")
    borrower = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="loans"
    )
    destination = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    out_at = models.DateTimeField(_("out"))
    due_at = models.DateTimeField(_("due"))
    returned_at = models.DateTimeField(_("returned"), null=True, blank=True)
    out_seq = models.BigIntegerField(_("checked out by event"))
    returned_seq = models.BigIntegerField(_("closed by event"), null=True, blank=True)
    renewals = models.PositiveIntegerField(_("renewals"), default=0)

    class Meta:
        ordering = ["-out_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["media"], condition=Q(returned_at__isnull=True), name="one_open_loan_per_media"
            )
        ]
        # The sweep's overdue set: open loans by due date.
        indexes = [
            models.Index(fields=["due_at"], condition=Q(returned_at__isnull=True), name="open_loan_due")
        ]
        verbose_name = _("loan")
        verbose_name_plural = _("loans")

    def __str__(self) -> str:
        return f"{self.media_id} → {self.borrower_id}"


class Transfer(models.Model):
    """A move of custody to another place or person, as the ledger recorded it."""

    media = models.ForeignKey(Media, on_delete=models.PROTECT, related_name="transfers")
    from_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    from_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    at = models.DateTimeField(_("at"))
    seq = models.BigIntegerField(_("event"), unique=True)

    class Meta:
        ordering = ["-at"]
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")


class ScanRecord(models.Model):
    """Every read a station delivered, with what it meant. Keyed by the read's event_id, which
    is also the ledger event's id when the read changed custody; a replayed read returns this."""

    event_id = models.UUIDField(_("event ID"), unique=True)
    device = models.ForeignKey(ReaderDevice, on_delete=models.PROTECT, related_name="scans")
    raw_uid = models.CharField(_("as read"), max_length=64)
    uid = models.CharField(_("UID"), max_length=20, blank=True)
    read_at = models.DateTimeField(_("read at (device clock)"))
    counter = models.BigIntegerField(_("device counter"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"), auto_now_add=True)
    mode = models.CharField(_("mode"), max_length=16, choices=ReaderMode.choices)
    outcome = models.CharField(_("outcome"), max_length=16, choices=ScanOutcome.choices)
    code = models.CharField(_("code"), max_length=32, blank=True)
    # `message` is written once, in the site's language; `message_source` keeps what it means
    # ({"msgid": ..., "args": {...}}) so each person reads it in their own language.
    message = models.CharField(_("message"), max_length=300, blank=True)
    message_source = models.JSONField(_("message and its arguments"), default=dict, blank=True)
    media = models.ForeignKey(Media, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    event_seq = models.BigIntegerField(_("ledger event"), null=True, blank=True)
    undo_seq = models.BigIntegerField(_("undone by event"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["device", "-id"])]
        verbose_name = _("scan")
        verbose_name_plural = _("scans")

    def __str__(self) -> str:
        return f"{self.device_id}:{self.uid or self.raw_uid}"

    def say(self, msgid: str, **args) -> None:
        """Set what the scan says: `msgid` (marked with gettext_noop) filled with `args`. An
        argument that is itself a sentence worded elsewhere is {"texts": {language: text}}, in
        every language of the site."""
        self.message_source = {"msgid": msgid, "args": args}
        language = settings.LANGUAGE_CODE
        values = {name: _argument_in(language, value) for name, value in args.items()}
        self.message = (_site_wording(language, msgid) % values)[:300]

    def get_message_display(self) -> str:
        """The message in the active language. The stored words when there is nothing to
        translate (scans recorded before messages kept their source, refusals worded elsewhere)
        or when the source no longer renders (a message reworded or removed since)."""
        return message_text(self.message_source) or self.message


# Messages are written in English in the code: in English their msgid is their text.
SOURCE_LANGUAGE = "en"


@functools.cache
def _site_wording(language: str, msgid: str) -> str:
    # Every read says something: activating a language costs more than the rest of say(), and
    # Django keeps each catalogue for the life of the process anyway.
    with translation.override(language):
        return translation.gettext(msgid)


@receiver(setting_changed)
def _forget_site_wordings(*, setting, **kwargs) -> None:
    # As Django drops its cached catalogues when a test changes where they come from.
    if setting in {"LANGUAGES", "LOCALE_PATHS", "INSTALLED_APPS"}:
        _site_wording.cache_clear()


def _argument_in(language: str, value):
    """An argument of a message, a sentence of its own ({"texts": ...}) in `language`; None if
    it has no wording in that language."""
    if not isinstance(value, dict):
        return value
    texts = value.get("texts")
    if not isinstance(texts, dict):
        return None
    return texts.get(language, texts.get(language.split("-")[0]))


def message_text(source, *, untranslated: bool = False) -> str | None:
    """`source` ({"msgid", "args"}) in the active language, or None if it cannot be said: its
    msgid is missing from the language's catalogue (unless `untranslated` English will do), an
    argument is missing or does not fit."""
    if not isinstance(source, dict) or not isinstance(source.get("msgid"), str):
        return None
    msgid, args = source["msgid"], source.get("args") or {}
    if not isinstance(args, dict):
        return None
    text = translation.gettext(msgid)
    language = translation.get_language() or settings.LANGUAGE_CODE
    if text == msgid and language.split("-")[0] != SOURCE_LANGUAGE and not untranslated:
        return None  # not in this language's catalogue (any more): English would be wrong here
    values = {name: _argument_in(language, value) for name, value in args.items()}
    if None in values.values():
        return None
    try:
        return text % values
    except (KeyError, TypeError, ValueError):
        return None


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove ledger history through the ORM."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("The custody ledger is append-only: rows cannot be updated.")

    def delete(self):
        raise AppendOnlyError("The custody ledger is append-only: rows cannot be deleted.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("The custody ledger is append-only: rows cannot be updated.")

    def _raw_delete(self, using):
        raise AppendOnlyError("The custody ledger is append-only: rows cannot be deleted.")

    _update = update


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True
        base_manager_name = "objects"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")


class CustodyEvent(AppendOnlyModel):
    """One entry of the hash-chained custody ledger. Written only by tracker.ledger.append()."""

    class Events(models.Manager.from_queryset(AppendOnlyQuerySet)):
        """Reads leave out `body`, which only verification needs (a few hundred bytes a row)."""

        def get_queryset(self):
            return super().get_queryset().defer("body")

    seq = models.BigIntegerField(_("sequence"), primary_key=True)
    event_id = models.UUIDField(_("event ID"), unique=True)
    kind = models.CharField(_("kind"), max_length=24, choices=EventKind.choices)
    media = models.ForeignKey(
        Media, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    tag_uid = models.CharField(_("tag UID"), max_length=20, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    device = models.ForeignKey(
        ReaderDevice, on_delete=models.PROTECT, null=True, blank=True, related_name="events"
    )
    from_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    device_time = models.DateTimeField(_("device time"), null=True, blank=True)
    device_counter = models.BigIntegerField(_("device counter"), null=True, blank=True)
    received_at = models.DateTimeField(_("received"))
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64)
    # The hashed bytes, written by the database from the columns above (NULL for unusual rows):
    # tracker/event_body_sql.py. Kept last: ledger.append() builds events from positional values.
    body = models.GeneratedField(
        verbose_name=_("canonical body"),
        expression=EventBody(),
        output_field=models.BinaryField(),
        db_persist=True,
        null=True,
    )

    objects = Events()

    class Meta:
        ordering = ["seq"]
        verbose_name = _("custody event")
        verbose_name_plural = _("custody events")
        # media+seq: an item's chain. received_at: the auditors' period filters and exports (on
        # a ledger of millions of events they would otherwise read the whole table). Each index
        # is paid by every append, so kind filters ride on these (a subject or a period) rather
        # than on an index of their own.
        indexes = [
            models.Index(fields=["media", "seq"]),
            models.Index(fields=["received_at"], name="tracker_event_received"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind}"


class LedgerCheckpoint(AppendOnlyModel):
    """A signed statement "the ledger had `size` events ending in `hash`" (C2SP tlog-checkpoint)."""

    size = models.BigIntegerField(_("events"), unique=True)
    hash = models.CharField(_("chain hash"), max_length=64)
    key_id = models.CharField(_("key ID"), max_length=8)
    note = models.TextField(_("signed note"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["size"]
        verbose_name = _("ledger checkpoint")
        verbose_name_plural = _("ledger checkpoints")

    def __str__(self) -> str:
        return f"checkpoint @ {self.size}"


class LoanRequest(models.Model):
    """A clinician's request to borrow media for dates: for a patient's media, a study or one
    item. Requests for one item queue in the order they were made. Projected from the ledger."""

    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="loan_requests",
        verbose_name=_("requested by"),
    )
    patient = models.ForeignKey(
        "archive.Patient", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("patient"),
    )
    study = models.ForeignKey(
        "archive.Study", on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("study"),
    )
    # The item asked for, or the one the file room assigned to the request.
    media = models.ForeignKey(
        Media, on_delete=models.PROTECT, null=True, blank=True, related_name="requests",
        verbose_name=_("media"),
    )
    needed_from = models.DateField(_("needed from"))
    needed_until = models.DateField(_("needed until"))
    purpose = models.CharField(_("purpose"), max_length=200)
    destination = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("destination"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    created_at = models.DateTimeField(_("requested"))
    created_seq = models.BigIntegerField(_("requested by event"))
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=300, blank=True)
    loan = models.ForeignKey(
        Loan, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("loan")
    )

    class Meta:
        ordering = ["created_seq"]
        indexes = [
            models.Index(fields=["media", "status", "created_seq"]),
            models.Index(fields=["status", "expires_at"], name="request_status_expiry"),
        ]
        verbose_name = _("loan request")
        verbose_name_plural = _("loan requests")

    def __str__(self) -> str:
        return f"request {self.pk} ({self.status})"


class Flag(models.Model):
    """Something about an item staff must look at (overdue, in transit too long, not seen, not
    found by an inventory). Raised and cleared by ledger events; one open flag per item and kind."""

    media = models.ForeignKey(Media, on_delete=models.PROTECT, related_name="flags")
    kind = models.CharField(_("kind"), max_length=24, choices=FlagKind.choices)
    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, null=True, blank=True, related_name="flags")
    raised_at = models.DateTimeField(_("raised"))
    raised_seq = models.BigIntegerField(_("raised by event"))
    cleared_at = models.DateTimeField(_("cleared"), null=True, blank=True)
    cleared_seq = models.BigIntegerField(_("cleared by event"), null=True, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        ordering = ["-raised_seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["media", "kind"], condition=Q(cleared_at__isnull=True), name="one_open_flag_per_kind"
            )
        ]
        indexes = [models.Index(fields=["kind", "cleared_at"])]
        verbose_name = _("flag")
        verbose_name_plural = _("flags")

    def __str__(self) -> str:
        return f"{self.kind} on {self.media_id}"


class Reminder(models.Model):
    """A reminder sent to a borrower about a loan (by the sweep, or by staff); the ledger holds
    the event."""

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="reminders")
    sent_at = models.DateTimeField(_("sent"))
    sent_to = models.CharField(_("sent to"), max_length=254)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("sent by"),
    )
    seq = models.BigIntegerField(_("ledger event"))

    class Meta:
        ordering = ["-sent_at"]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")

    def __str__(self) -> str:
        return f"reminder for loan {self.loan_id}"


class InventorySession(models.Model):
    """A shelf, room or the whole file room read tag by tag; closing it appends what was found
    missing, misplaced or unknown. Only items whose home lies within `scope` are expected."""

    scope = models.ForeignKey(
        Location, on_delete=models.PROTECT, related_name="inventories", verbose_name=_("scope")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=InventoryStatus.choices, default=InventoryStatus.OPEN
    )
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("started by")
    )
    started_at = models.DateTimeField(_("started"))
    started_seq = models.BigIntegerField(_("started by event"))
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("closed by"),
    )
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    closed_seq = models.BigIntegerField(_("closed by event"), null=True, blank=True)
    result = models.JSONField(_("result"), default=dict, blank=True)

    class Meta:
        ordering = ["-started_seq"]
        verbose_name = _("inventory")
        verbose_name_plural = _("inventories")

    def __str__(self) -> str:
        return f"inventory {self.pk} of {self.scope_id}"


class InventoryRead(models.Model):
    """One tag read during an inventory (the same tag read again is the same row)."""

    session = models.ForeignKey(InventorySession, on_delete=models.PROTECT, related_name="reads")
    uid = models.CharField(_("UID"), max_length=20)
    device = models.ForeignKey(
        ReaderDevice, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    read_at = models.DateTimeField(_("read at"))
    received_at = models.DateTimeField(_("received"), auto_now_add=True)

    class Meta:
        ordering = ["session", "read_at"]
        constraints = [
            models.UniqueConstraint(fields=["session", "uid"], name="one_read_per_tag_per_inventory")
        ]
        verbose_name = _("inventory read")
        verbose_name_plural = _("inventory reads")

    def __str__(self) -> str:
        return f"{self.session_id}:{self.uid}"


class Handover(models.Model):
    """A borrower handing an item on to a colleague or a place, projected from handover_* events
    (named by `offered_seq`, the seq of its handover_offered event, which a rebuild keeps).
    Custody moves only on acceptance: a `transferred` event whose payload names the hand-over."""

    media = models.ForeignKey(Media, on_delete=models.PROTECT, related_name="handovers")
    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="+", verbose_name=_("loan"))
    from_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="handovers_given",
        verbose_name=_("from"),
    )
    to_holder = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
        related_name="handovers_received", verbose_name=_("to person"),
    )
    to_location = models.ForeignKey(
        Location, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("to place"),
    )
    offered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+",
        verbose_name=_("offered by"),
    )
    offered_at = models.DateTimeField(_("offered"))
    offered_seq = models.BigIntegerField(_("offered by event"), unique=True)
    note = models.CharField(_("note"), max_length=300, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=HandoverStatus.choices, default=HandoverStatus.PENDING
    )
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    closed_seq = models.BigIntegerField(_("closed by event"), null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+",
        verbose_name=_("closed by"),
    )
    reason = models.CharField(_("reason"), max_length=300, blank=True)

    class Meta:
        ordering = ["-offered_seq"]
        constraints = [
            models.UniqueConstraint(
                fields=["media"], condition=Q(status=HandoverStatus.PENDING),
                name="one_pending_handover_per_media",
            )
        ]
        indexes = [
            models.Index(fields=["to_holder", "status"]),
            models.Index(fields=["from_holder", "status"]),
        ]
        verbose_name = _("hand-over")
        verbose_name_plural = _("hand-overs")

    def __str__(self) -> str:
        return f"hand-over {self.offered_seq} ({self.status})"


class Signature(AppendOnlyModel):
    """A signature drawn on the page at a check-out or return. The image lives here; the event's
    payload carries its SHA-256 ("signature"), so the ledger vouches for the exact image."""

    event_seq = models.BigIntegerField(_("signed event"), unique=True)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    image = models.BinaryField(_("image (PNG)"))
    signed_by = models.CharField(_("signed by"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-event_seq"]
        verbose_name = _("signature")
        verbose_name_plural = _("signatures")

    def __str__(self) -> str:
        return f"signature of event {self.event_seq}"


class AccessLog(AppendOnlyModel):
    """Who viewed which custody chain or export, and when: every auditor read of patient data is
    itself recorded (append-only; shown on the auditors' access-log page)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", verbose_name=_("user")
    )
    at = models.DateTimeField(_("when"), auto_now_add=True)
    action = models.CharField(_("action"), max_length=16, choices=AccessAction.choices)
    subject_kind = models.CharField(_("subject"), max_length=16, choices=AccessSubject.choices)
    subject = models.CharField(_("which"), max_length=100, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    path = models.CharField(_("address"), max_length=300, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["user", "-at"]),
            models.Index(fields=["subject_kind", "subject", "-at"]),
        ]
        verbose_name = _("access log entry")
        verbose_name_plural = _("access log")

    def __str__(self) -> str:
        return f"{self.user_id} {self.action} {self.subject_kind}:{self.subject}"
