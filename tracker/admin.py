from django.contrib import admin

from rest_framework_api_key.admin import APIKeyModelAdmin

from .models import (
    AccessLog,
    Badge,
    CustodyEvent,
    Flag,
    Handover,
    InventoryRead,
    InventorySession,
    LedgerCheckpoint,
    Loan,
    LoanPolicy,
    LoanRequest,
    Location,
    Media,
    ReaderDevice,
    ReaderKey,
    Reminder,
    ScanRecord,
    Signature,
    Tag,
    TagBinding,
    Transfer,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and projections change only through services and the ledger, never by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Location)
class LocationAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "kind", "parent", "shelf_order", "is_active"]
    list_filter = ["kind", "is_active"]
    search_fields = ["code", "name"]


@admin.register(ReaderDevice)
class ReaderDeviceAdmin(admin.ModelAdmin):
    list_display = ["name", "location", "mode", "uid_format", "is_active"]
    list_filter = ["mode", "is_active"]


@admin.register(LoanPolicy)
class LoanPolicyAdmin(admin.ModelAdmin):
    list_display = [
        "name", "media_kind", "destination_kind", "borrower_role", "loan_days", "max_renewals"
    ]


@admin.register(Media)
class MediaAdmin(admin.ModelAdmin):
    list_display = ["code", "kind", "patient", "status", "current_location", "current_holder"]
    list_filter = ["kind", "status"]
    search_fields = ["code", "patient__patient_id"]
    # Studies are linked through the ledger (disc import, PACS look-up), never edited here.
    readonly_fields = [
        "status", "current_location", "current_holder", "last_seen_at", "code", "home_location",
        "studies",
    ]

    def has_add_permission(self, request):
        return False  # registration goes through the ledger (API, station, seed)

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    list_display = ["uid", "technology", "last_counter", "created_at"]
    search_fields = ["uid"]


@admin.register(TagBinding)
class TagBindingAdmin(ReadOnlyAdmin):
    list_display = ["tag", "media", "bound_at", "unbound_at"]


@admin.register(Loan)
class LoanAdmin(ReadOnlyAdmin):
    list_display = ["media", "borrower", "out_at", "due_at", "returned_at"]
    list_filter = ["returned_at"]


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ["media", "from_location", "to_location", "from_holder", "to_holder", "at"]


@admin.register(CustodyEvent)
class CustodyEventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "kind", "media", "actor", "device", "to_location", "received_at"]
    list_filter = ["kind"]
    search_fields = ["media__code", "tag_uid", "event_id"]


@admin.register(LedgerCheckpoint)
class LedgerCheckpointAdmin(ReadOnlyAdmin):
    list_display = ["size", "hash", "key_id", "created_at"]


@admin.register(ReaderKey)
class ReaderKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "reader"]
    search_fields = [*APIKeyModelAdmin.search_fields, "reader__name"]


@admin.register(Badge)
class BadgeAdmin(admin.ModelAdmin):
    list_display = ["uid", "user", "is_active", "created_at"]
    search_fields = ["uid", "user__username"]


@admin.register(ScanRecord)
class ScanRecordAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "device", "uid", "mode", "outcome", "message"]
    list_filter = ["outcome", "mode", "device"]


@admin.register(LoanRequest)
class LoanRequestAdmin(ReadOnlyAdmin):
    list_display = ["pk", "requester", "media", "patient", "status", "needed_from", "needed_until"]
    list_filter = ["status"]


@admin.register(Flag)
class FlagAdmin(ReadOnlyAdmin):
    list_display = ["media", "kind", "raised_at", "cleared_at"]
    list_filter = ["kind"]


@admin.register(Reminder)
class ReminderAdmin(ReadOnlyAdmin):
    list_display = ["loan", "sent_at", "sent_to", "sent_by"]


@admin.register(InventorySession)
class InventorySessionAdmin(ReadOnlyAdmin):
    list_display = ["pk", "scope", "status", "started_at", "closed_at"]


@admin.register(InventoryRead)
class InventoryReadAdmin(ReadOnlyAdmin):
    list_display = ["session", "uid", "read_at"]


@admin.register(Handover)
class HandoverAdmin(ReadOnlyAdmin):
    list_display = ["offered_seq", "media", "from_holder", "to_holder", "to_location", "status", "offered_at"]
    list_filter = ["status"]


@admin.register(Signature)
class SignatureAdmin(ReadOnlyAdmin):
    list_display = ["event_seq", "signed_by", "sha256", "created_at"]
    exclude = ["image"]


@admin.register(AccessLog)
class AccessLogAdmin(ReadOnlyAdmin):
    list_display = ["at", "user", "action", "subject_kind", "subject"]
    list_filter = ["action", "subject_kind"]
