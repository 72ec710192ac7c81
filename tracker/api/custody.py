"""REST API v1: thin views that validate input, call one service or selector, and answer.

Every error has the shape {"error": {"code", "message"}} (tracker.exceptions). Writes accept an
optional `event_id` (UUID) so a client can retry safely.
"""
from django.contrib.auth import get_user_model
from django.http import JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from rest_framework import generics, serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from archive.models import Patient

from .. import ledger, selectors, services
from ..choices import MediaKind, MediaStatus, Role, TagTechnology
from ..exceptions import NotOnLoan, error_body
from ..audit import record_chain_read
from ..models import CustodyEvent, Loan, LoanRequest, Media, Tag, Transfer
from ..permissions import (
    EVERY_ROLE,
    LoginSessionAuthentication,
)
from ..tags import UidError, normalise_uid
from .signatures import signature_field, signature_in, signed_by_field
from .shapes import (
    ERRORS,
    EventIdIn,
    EventOut,
    LoanOut,
    LocationOut,
    MediaOut,
    ObjectActionApi,
    RoleAPIView,
    TagOut,
    TransferOut,
    loan_or_404,
    location_field,
    location_or_404,
    media_field,
    media_or_404,
    user_field,
)

User = get_user_model()

# --- media ---------------------------------------------------------------------------------------


class MediaFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=MediaKind.choices)
    status = filters.ChoiceFilter(choices=MediaStatus.choices)
    patient = filters.CharFilter(field_name="patient__patient_id")
    location = filters.CharFilter(field_name="current_location__code")
    home = filters.CharFilter(field_name="home_location__code")
    holder = filters.CharFilter(field_name="current_holder__username")
    q = filters.CharFilter(
        method="search", label=gettext_lazy("Code, patient ID or name, tag UID, accession number")
    )

    class Meta:
        model = Media
        fields = ["kind", "status", "patient", "location", "home", "holder", "q"]

    def search(self, queryset, name, value):
        found = selectors.media_search(user=self.request.user, query=value)
        return queryset.filter(pk__in=found.values("pk"))


class MediaListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = MediaOut
    filterset_class = MediaFilter

    class MediaRegisterIn(EventIdIn):
        code = serializers.CharField(max_length=32)
        kind = serializers.ChoiceField(choices=MediaKind.choices)
        home_location = location_field()
        patient_id = serializers.CharField(required=False, allow_blank=True, default="")
        description = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)

        def validate_patient_id(self, value):
            if not value:
                return None
            patient = Patient.objects.filter(patient_id=value).first()
            if patient is None:
                raise serializers.ValidationError(
                    _("No patient has the ID %(id)s. Register the patient first.") % {"id": value}
                )
            return patient

    def get_queryset(self):
        return selectors.media_list(user=self.request.user).prefetch_related("tag_bindings__tag")

    @extend_schema(request=MediaRegisterIn, responses={201: MediaOut, **ERRORS})
    def post(self, request):
        data = self.MediaRegisterIn(data=request.data)
        data.is_valid(raise_exception=True)
        media = services.media_register(
            code=data.validated_data["code"],
            kind=data.validated_data["kind"],
            home_location=data.validated_data["home_location"],
            patient=data.validated_data["patient_id"],
            description=data.validated_data["description"],
            actor=request.user,
            event_id=data.validated_data["event_id"],
        )
        return Response(MediaOut(media).data, status=status.HTTP_201_CREATED)


class MediaDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = MediaOut
    lookup_field = "code"

    def get_queryset(self):
        return selectors.media_list(user=self.request.user).prefetch_related("tag_bindings__tag")

    def get_object(self):
        return media_or_404(self.kwargs["code"], self.get_queryset())


@extend_schema(
    description=gettext_lazy(
        "The custody chain of one "
        "item, newest first (staff, auditors, admins)."
    )
)
class MediaChainApi(RoleAPIView, generics.ListAPIView):
    serializer_class = EventOut
    queryset = CustodyEvent.objects.none()  # for the schema; get_queryset() answers requests

    def get_queryset(self):
        media = media_or_404(self.kwargs["code"], selectors.media_list(user=self.request.user))
        return selectors.custody_chain_for(media=media)

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        record_chain_read(request, self.kwargs["code"])  # an auditor's read is recorded
        return response


class MediaSeenApi(ObjectActionApi):
    output_class = MediaOut

    class MediaSeenIn(EventIdIn):
        location = location_field()

    input_class = MediaSeenIn

    def find(self, user, code):
        return media_or_404(code)

    def act(self, media, values, actor):
        return services.media_seen(
            media=media, location=values["location"], actor=actor, event_id=values["event_id"]
        )


class MediaRetireApi(ObjectActionApi):
    output_class = MediaOut

    class MediaRetireIn(EventIdIn):
        reason = serializers.CharField(max_length=500)

    input_class = MediaRetireIn

    def find(self, user, code):
        return media_or_404(code)

    def act(self, media, values, actor):
        return services.media_retire(
            media=media, reason=values["reason"], actor=actor, event_id=values["event_id"]
        )


# --- locations and tags --------------------------------------------------------------------------


class LocationListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = LocationOut
    filterset_fields = ["kind"]

    def get_queryset(self):
        return selectors.location_list(user=self.request.user)


class LocationDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = LocationOut
    lookup_field = "code"

    def get_queryset(self):
        return selectors.location_list(user=self.request.user)

    def get_object(self):
        return location_or_404(self.kwargs["code"], self.get_queryset())


class TagListApi(RoleAPIView, generics.ListAPIView):
    serializer_class = TagOut

    def get_queryset(self):
        return selectors.tag_list(user=self.request.user)


class TagBindApi(RoleAPIView):
    class TagBindIn(EventIdIn):
        uid = serializers.CharField(max_length=64)
        media = media_field()
        technology = serializers.ChoiceField(choices=TagTechnology.choices, required=False)

        def validate_uid(self, value):
            try:
                return normalise_uid(value)
            except UidError as exc:
                raise serializers.ValidationError(str(exc)) from exc

    @extend_schema(request=TagBindIn, responses={201: TagOut, **ERRORS})
    def post(self, request):
        data = self.TagBindIn(data=request.data)
        data.is_valid(raise_exception=True)
        binding = services.tag_bind(
            uid=data.validated_data["uid"],
            media=data.validated_data["media"],
            technology=data.validated_data.get("technology"),
            actor=request.user,
            event_id=data.validated_data["event_id"],
        )
        tag = Tag.objects.prefetch_related("bindings__media").get(pk=binding.tag_id)
        return Response(TagOut(tag).data, status=status.HTTP_201_CREATED)


class TagUnbindApi(RoleAPIView):
    class TagUnbindIn(EventIdIn):
        reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)

    @extend_schema(request=TagUnbindIn, responses={200: TagOut, **ERRORS})
    def post(self, request, uid):
        data = self.TagUnbindIn(data=request.data)
        data.is_valid(raise_exception=True)
        binding = services.tag_unbind(
            uid=uid,
            reason=data.validated_data["reason"],
            actor=request.user,
            event_id=data.validated_data["event_id"],
        )
        tag = Tag.objects.prefetch_related("bindings__media").get(pk=binding.tag_id)
        return Response(TagOut(tag).data)


# --- loans and transfers -------------------------------------------------------------------------


class LoanFilter(filters.FilterSet):
    open = filters.BooleanFilter(
        field_name="returned_at", lookup_expr="isnull", label=gettext_lazy("Open loans only")
    )
    media = filters.CharFilter(field_name="media__code")
    borrower = filters.CharFilter(field_name="borrower__username")

    class Meta:
        model = Loan
        fields = ["open", "media", "borrower"]


@extend_schema(
    description=gettext_lazy("Loans; clinicians see only their own.")
)
class LoanListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = LoanOut
    filterset_class = LoanFilter
    queryset = Loan.objects.none()  # for the schema; get_queryset() answers requests

    class CheckOutIn(EventIdIn):
        media = media_field()
        borrower = user_field()
        due_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        destination = location_field(required=False, allow_null=True, default=None)
        # The loan request this check-out serves; lending past an item's queue needs a reason.
        request = serializers.PrimaryKeyRelatedField(
            queryset=LoanRequest.objects.all(), required=False, allow_null=True, default=None
        )
        queue_override = serializers.CharField(
            required=False, allow_blank=True, default="", max_length=300
        )

        def validate_due_at(self, value):
            if value is not None and value <= timezone.now():
                raise serializers.ValidationError(
                    _("The due date must be in the future; leave it out to use the loan policy.")
                )
            return value

    def get_queryset(self):
        return selectors.loan_list(user=self.request.user)

    @extend_schema(
        description=gettext_lazy("Check an item out to a borrower (file room and admins)."),
        request=CheckOutIn, responses={201: LoanOut, **ERRORS},
    )
    def post(self, request):
        data = self.CheckOutIn(data=request.data)
        data.is_valid(raise_exception=True)
        loan = services.media_check_out(actor=request.user, **data.validated_data)
        return Response(LoanOut(loan).data, status=status.HTTP_201_CREATED)


class LoanDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = LoanOut
    queryset = Loan.objects.none()  # for the schema; get_queryset() answers requests

    def get_queryset(self):
        return selectors.loan_list(user=self.request.user)

    def get_object(self):
        return loan_or_404(self.kwargs["pk"], self.get_queryset())


@extend_schema(
    description=gettext_lazy(
        "Take a loan's item back; `signature` (a PNG data URL) is the returner's, if they "
        "sign."
    )
)
class LoanReturnApi(RoleAPIView):
    class LoanReturnIn(EventIdIn):
        location = location_field(required=False, allow_null=True, default=None)
        signature = signature_field()
        signed_by = signed_by_field()

    @extend_schema(request=LoanReturnIn, responses={200: LoanOut, **ERRORS})
    def post(self, request, pk):
        loans = selectors.loan_list(user=request.user).select_related("media__home_location")
        loan = loan_or_404(pk, loans)
        data = self.LoanReturnIn(data=request.data)
        data.is_valid(raise_exception=True)
        event_id = data.validated_data["event_id"]
        if loan.returned_at is not None:
            # A closed loan accepts only a retry of the event that closed it; the service then
            # answers the replay (or event_conflict if the retry asks for something else).
            closing = CustodyEvent.objects.filter(seq=loan.returned_seq).first()
            if event_id is None or closing is None or closing.event_id != event_id:
                raise NotOnLoan(
                    _("Loan %(id)s of %(code)s was already closed on %(when)s.")
                    % {
                        "id": loan.pk,
                        "code": loan.media.code,
                        "when": timezone.localtime(loan.returned_at).strftime("%Y-%m-%d %H:%M"),
                    },
                    loan=loan.pk,
                    media=loan.media.code,
                )
        services.media_return(
            media=loan.media,
            location=data.validated_data["location"],
            actor=request.user,
            event_id=event_id,
            signature=signature_in(data.validated_data["signature"]),
            signed_by=data.validated_data["signed_by"],
        )
        loan.refresh_from_db()
        return Response(LoanOut(loan).data)


class TransferListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    serializer_class = TransferOut
    queryset = Transfer.objects.none()  # for the schema; get_queryset() answers requests

    class TransferIn(EventIdIn):
        media = media_field()
        to_location = location_field(required=False, allow_null=True, default=None)
        to_holder = user_field(required=False, allow_null=True, default=None)

    def get_queryset(self):
        return selectors.transfer_list(user=self.request.user)

    @extend_schema(request=TransferIn, responses={201: MediaOut, **ERRORS})
    def post(self, request):
        data = self.TransferIn(data=request.data)
        data.is_valid(raise_exception=True)
        media = services.media_transfer(actor=request.user, **data.validated_data)
        return Response(MediaOut(media).data, status=status.HTTP_201_CREATED)


# --- ledger ------------------------------------------------------------------------------------


@extend_schema(
    description=gettext_lazy(
        "Recompute the whole chain and "
        "check it against the signed checkpoints."
    )
)
class LedgerVerifyApi(RoleAPIView):
    read_roles = frozenset({Role.AUDITOR, Role.ADMIN})

    @extend_schema(
        responses={
            200: inline_serializer(
                "LedgerVerification",
                {
                    "ok": serializers.BooleanField(),
                    "events": serializers.IntegerField(),
                    "head_hash": serializers.CharField(),
                    "first_bad_seq": serializers.IntegerField(allow_null=True),
                    "reason": serializers.CharField(),
                    "checkpoints_checked": serializers.IntegerField(),
                },
            ),
            **ERRORS,
        }
    )
    def get(self, request):
        return Response(ledger.verify_ledger().as_dict())


# --- the schema and addresses that name no endpoint ----------------------------------------------


class SchemaApi(SpectacularAPIView):
    """The OpenAPI schema, for any logged-in user."""

    authentication_classes = [LoginSessionAuthentication]
    permission_classes = [IsAuthenticated]

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # An error is JSON like every other API error, whichever schema format was asked for.
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return response


def not_found(request, *args, **kwargs) -> JsonResponse:
    """Any address under /api/ that names no endpoint: a JSON 404, like every other API error."""
    message = _("There is no API endpoint at %(path)s. The endpoints are listed at %(docs)s.") % {
        "path": request.path,
        "docs": reverse("api-docs"),
    }
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            message = _("There is no API endpoint at %(path)s; did you mean %(path)s/ ?") % {
                "path": request.path
            }
    return JsonResponse(error_body("not_found", message), status=404)

