"""REST endpoints: shelf inventories and their results.

Staff start, read, close and cancel; staff, auditors and admins read. A reader station posts
reads with its own key (`Authorization: Api-Key <key>`) to the inventory chosen for it on the
station page, while the station is in inventory mode."""
from __future__ import annotations

from django.db.models import Count
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from .. import services
from ..choices import InventoryStatus, ReaderMode
from ..exceptions import UnknownObject
from ..models import InventorySession, ReaderKey
from ..permissions import LoginSessionAuthentication, RoleRequired
from .shapes import ERRORS, EventIdIn, ObjectActionApi, RoleAPIView, location_field
from .stations import ReaderKeyAuthentication

# A whole room read at once fits in one request; an agent sends smaller batches anyway.
MAX_READS_PER_REQUEST = 10_000


class InventoryOut(serializers.ModelSerializer):
    scope = serializers.SlugRelatedField(slug_field="code", read_only=True)
    started_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    closed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    reads = serializers.IntegerField(source="read_count", read_only=True)
    # Plain text in the schema: an enum named "status" would collide with the media's.
    status = serializers.CharField(read_only=True, help_text=gettext_lazy("open, closed or cancelled"))

    class Meta:
        model = InventorySession
        fields = [
            "id", "scope", "status", "started_by", "started_at", "started_seq", "closed_by",
            "closed_at", "closed_seq", "reads", "result",
        ]


class InventoryLineOut(serializers.Serializer):
    code = serializers.CharField()
    uid = serializers.CharField()
    home = serializers.CharField(help_text=gettext_lazy("Where the item belongs (its home location's code)."))
    home_name = serializers.CharField()
    place = serializers.CharField(help_text=gettext_lazy("Where the ledger had it before this inventory."))


class InventoryResultOut(serializers.Serializer):
    counts = serializers.DictField(child=serializers.IntegerField())
    missing = InventoryLineOut(many=True)
    misplaced = InventoryLineOut(many=True)
    unknown = serializers.ListField(child=serializers.CharField())
    found = InventoryLineOut(many=True)
    on_loan = InventoryLineOut(many=True)
    retired = InventoryLineOut(many=True)


class InventoryDetailOut(InventoryOut):
    live = serializers.SerializerMethodField()

    class Meta(InventoryOut.Meta):
        fields = [*InventoryOut.Meta.fields, "live"]

    @extend_schema_field(InventoryResultOut(allow_null=True))
    def get_live(self, session) -> dict | None:
        """While the inventory is open: what closing it now would record, item by item."""
        if session.status != InventoryStatus.OPEN:
            return None
        return services.inventory_result(session).as_dict()


def inventory_or_404(pk: int) -> InventorySession:
    session = InventorySession.objects.select_related("scope", "started_by", "closed_by").filter(pk=pk).first()
    if session is None:
        raise UnknownObject(_("There is no inventory %(id)s.") % {"id": pk}, inventory=pk)
    return session


@extend_schema(
    description=gettext_lazy(
        "Inventories, newest first; staff start one for a shelf, a room or the whole file "
        "room."
    )
)
class InventoryListApi(RoleAPIView, generics.ListAPIView):
    serializer_class = InventoryOut
    filterset_fields = ["status"]

    class InventoryStartIn(EventIdIn):
        scope = location_field(help_text=gettext_lazy("The code of the shelf or room to inventory."))

    def get_queryset(self):
        return InventorySession.objects.select_related("scope", "started_by", "closed_by").annotate(
            read_count=Count("reads")
        )

    @extend_schema(
        description=gettext_lazy("Start an inventory of a shelf or a room (file room and admins)."),
        request=InventoryStartIn, responses={201: InventoryOut, **ERRORS},
    )
    def post(self, request):
        data = self.InventoryStartIn(data=request.data)
        data.is_valid(raise_exception=True)
        session = services.inventory_start(
            scope=data.validated_data["scope"], actor=request.user, event_id=data.validated_data["event_id"]
        )
        return Response(InventoryOut(session).data, status=status.HTTP_201_CREATED)


class InventoryDetailApi(RoleAPIView):
    @extend_schema(responses={200: InventoryDetailOut, **ERRORS})
    def get(self, request, pk):
        session = inventory_or_404(pk)
        session.read_count = session.reads.count()
        return Response(InventoryDetailOut(session).data)


class StaffOrItsReader(RoleRequired):
    """Staff by role, or the reader station whose key it is, if its reads go to this inventory."""

    message = gettext_lazy(
        "Only file-room staff, or a reader station in inventory mode set to this inventory, may post reads."
    )

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ReaderKey):
            reader = request.auth.reader
            return reader.mode == ReaderMode.INVENTORY and reader.inventory_id == view.kwargs["pk"]
        return super().has_permission(request, view)


@extend_schema(
    description=gettext_lazy(
        "Post tag reads in bulk. A tag read again is the same read; an unreadable UID is "
        "refused alone (listed in `refused`). A reader's key reads in its configured UID "
        "format."
    )
)
class InventoryReadsApi(RoleAPIView):
    authentication_classes = [LoginSessionAuthentication, ReaderKeyAuthentication]
    permission_classes = [StaffOrItsReader]

    class ReadsIn(serializers.Serializer):
        uids = serializers.ListField(
            child=serializers.CharField(max_length=64), allow_empty=False, max_length=MAX_READS_PER_REQUEST
        )
        read_at = serializers.DateTimeField(required=False, allow_null=True, default=None)

    class ReadsOut(serializers.Serializer):
        added = serializers.IntegerField()
        repeated = serializers.IntegerField()
        refused = serializers.ListField(child=serializers.DictField())
        reads = serializers.IntegerField(help_text=gettext_lazy("Tags read in this inventory so far."))

    @extend_schema(request=ReadsIn, responses={200: ReadsOut, **ERRORS})
    def post(self, request, pk):
        session = inventory_or_404(pk)
        data = self.ReadsIn(data=request.data)
        data.is_valid(raise_exception=True)
        reader = request.auth.reader if isinstance(request.auth, ReaderKey) else None
        recorded = services.inventory_record_reads(
            session=session,
            uids=data.validated_data["uids"],
            device=reader,
            read_at=data.validated_data["read_at"],
            **({"uid_format": reader.uid_format} if reader else {}),
        )
        return Response({
            "added": recorded.added,
            "repeated": recorded.repeated,
            "refused": [{"uid": raw, "message": why} for raw, why in recorded.refused],
            "reads": recorded.total,
        })


@extend_schema(
    description=gettext_lazy(
        "Close an open inventory: flags what is missing, clears what was found (refused "
        "twice)."
    )
)
class InventoryCloseApi(ObjectActionApi):
    output_class = InventoryOut

    def find(self, user, pk):
        return inventory_or_404(pk)

    def act(self, session, values, actor):
        return services.inventory_close(session=session, actor=actor, event_id=values["event_id"])


class InventoryCancelApi(ObjectActionApi):
    output_class = InventoryOut

    class CancelIn(EventIdIn):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)

    input_class = CancelIn

    def find(self, user, pk):
        return inventory_or_404(pk)

    def act(self, session, values, actor):
        return services.inventory_cancel(
            session=session, actor=actor, reason=values["reason"], event_id=values["event_id"]
        )


# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = [
    path("inventories/", InventoryListApi.as_view(), name="api-inventory-list"),
    path("inventories/<int:pk>/", InventoryDetailApi.as_view(), name="api-inventory-detail"),
    path("inventories/<int:pk>/reads/", InventoryReadsApi.as_view(), name="api-inventory-reads"),
    path("inventories/<int:pk>/close/", InventoryCloseApi.as_view(), name="api-inventory-close"),
    path("inventories/<int:pk>/cancel/", InventoryCancelApi.as_view(), name="api-inventory-cancel"),
]
