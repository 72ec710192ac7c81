"""REST endpoints: hand-overs (a borrower hands an item on; the receiver accepts).

- GET /api/v1/handovers/?status=&media=CODE — clinicians see the hand-overs they give or
  receive; staff, auditors and admins see all of them. GET /api/v1/handovers/<id>/.
- POST /api/v1/handovers/ — offer: the borrower, or staff on their behalf.
- POST /api/v1/handovers/<id>/accept/ | decline/ (reason) | cancel/ — the receiver, whoever
  gave it, or staff, as tracker.services.handovers decides (anyone else: 403).
Auditors read and write nothing. Writes take an optional `event_id` for safe retries."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from .. import services
from ..choices import HandoverStatus
from ..exceptions import UnknownObject
from ..models import Handover
from ..permissions import EVERY_ROLE, READ_ALL_ROLES, has_role
from ..services.handovers import RECEIVER_ROLES
from .shapes import ERRORS, EventIdIn, ObjectActionApi, RoleAPIView, location_field, media_field

# Who may give, take, decline or withdraw a hand-over: everyone but auditors (the services say
# which hand-overs each person may act on).
HANDOVER_ROLES = RECEIVER_ROLES


def handover_list(*, user) -> QuerySet[Handover]:
    """Hand-overs the person may see: those they give or receive, or all for staff, auditors
    and admins."""
    handovers = Handover.objects.select_related(
        "media", "loan", "from_holder", "to_holder", "to_location", "offered_by", "closed_by"
    )
    if has_role(user, READ_ALL_ROLES):
        return handovers
    return handovers.filter(Q(from_holder=user) | Q(to_holder=user))


def handover_or_404(pk: int, user) -> Handover:
    found = handover_list(user=user).filter(pk=pk).first()
    if found is None:
        raise UnknownObject(
            _("There is no hand-over %(id)s that you may see.") % {"id": pk}, handover=pk
        )
    return found


class HandoverOut(serializers.ModelSerializer):
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    loan = serializers.PrimaryKeyRelatedField(read_only=True)
    from_holder = serializers.SlugRelatedField(slug_field="username", read_only=True)
    to_holder = serializers.SlugRelatedField(slug_field="username", read_only=True)
    to_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    offered_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    closed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Handover
        fields = [
            "id",
            "media",
            "loan",
            "from_holder",
            "to_holder",
            "to_location",
            "note",
            "status",
            "offered_by",
            "offered_at",
            "offered_seq",
            "closed_by",
            "closed_at",
            "closed_seq",
            "reason",
        ]


class HandoverFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=HandoverStatus.choices)
    media = filters.CharFilter(field_name="media__code")

    class Meta:
        model = Handover
        fields = ["status", "media"]


@extend_schema(
    description=gettext_lazy("Hand-overs, newest first; clinicians see those they give or receive.")
)
class HandoverListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    write_roles = HANDOVER_ROLES
    serializer_class = HandoverOut
    filterset_class = HandoverFilter
    queryset = Handover.objects.none()  # for the schema; get_queryset() answers requests

    class OfferIn(EventIdIn):
        media = media_field()
        to_holder = serializers.SlugRelatedField(
            slug_field="username",
            queryset=get_user_model().objects.all(),
            required=False,
            allow_null=True,
            default=None,
        )
        to_location = location_field(required=False, allow_null=True, default=None)
        note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
        queue_override = serializers.CharField(
            max_length=300, required=False, allow_blank=True, default=""
        )

    def get_queryset(self):
        return handover_list(user=self.request.user)

    @extend_schema(
        description=gettext_lazy(
            "Offer an item on loan to a colleague or a place (its borrower, or staff on their "
            "behalf); custody moves when the receiver accepts."
        ),
        request=OfferIn, responses={201: HandoverOut, **ERRORS},
    )
    def post(self, request):
        data = self.OfferIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        offered = services.handover_offer(
            media=values["media"],
            actor=request.user,
            to_holder=values["to_holder"],
            to_location=values["to_location"],
            note=values["note"],
            queue_override=values["queue_override"],
            event_id=values["event_id"],
        )
        return Response(HandoverOut(offered).data, status=status.HTTP_201_CREATED)


class HandoverDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = HandoverOut
    queryset = Handover.objects.none()  # for the schema; get_object() answers requests

    def get_object(self):
        return handover_or_404(self.kwargs["pk"], self.request.user)


@extend_schema(
    description=gettext_lazy(
        "Take the item: custody moves to "
        "the receiver now (the receiver, or staff)."
    )
)
class HandoverAcceptApi(ObjectActionApi):
    write_roles = HANDOVER_ROLES
    output_class = HandoverOut

    def find(self, user, pk):
        return handover_or_404(pk, user)

    def act(self, handover, values, actor):
        return services.handover_accept(handover=handover, actor=actor, event_id=values["event_id"])


@extend_schema(
    description=gettext_lazy(
        "Say no, with the reason the "
        "giver will read (the receiver, or staff)."
    )
)
class HandoverDeclineApi(ObjectActionApi):
    write_roles = HANDOVER_ROLES
    output_class = HandoverOut

    class DeclineIn(EventIdIn):
        reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    input_class = DeclineIn

    def find(self, user, pk):
        return handover_or_404(pk, user)

    def act(self, handover, values, actor):
        return services.handover_decline(
            handover=handover, actor=actor, reason=values["reason"], event_id=values["event_id"]
        )


@extend_schema(
    description=gettext_lazy("Withdraw a hand-over not yet accepted (whoever gave it, or staff).")
)
class HandoverCancelApi(ObjectActionApi):
    write_roles = HANDOVER_ROLES
    output_class = HandoverOut

    def find(self, user, pk):
        return handover_or_404(pk, user)

    def act(self, handover, values, actor):
        return services.handover_cancel(handover=handover, actor=actor, event_id=values["event_id"])


# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = [
    path("handovers/", HandoverListApi.as_view(), name="api-handover-list"),
    path("handovers/<int:pk>/", HandoverDetailApi.as_view(), name="api-handover-detail"),
    path("handovers/<int:pk>/accept/", HandoverAcceptApi.as_view(), name="api-handover-accept"),
    path("handovers/<int:pk>/decline/", HandoverDeclineApi.as_view(), name="api-handover-decline"),
    path("handovers/<int:pk>/cancel/", HandoverCancelApi.as_view(), name="api-handover-cancel"),
]
