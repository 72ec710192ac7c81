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
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView
from django.contrib.auth.models import AnonymousUser
from rest_framework import exceptions as drf_exceptions
from rest_framework import generics, serializers, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from archive.models import Patient

from . import ledger, selectors, services
from .choices import MediaKind, MediaStatus, Role, TagTechnology
from .exceptions import DomainError, NotOnLoan, UnknownObject, error_body
from .models import CustodyEvent, Loan, Location, Media, ReaderKey, Tag, Transfer
from .permissions import (
    EVERY_ROLE,
    READ_ALL_ROLES,
    STAFF_ROLES,
    LoginSessionAuthentication,
    RoleRequired,
)
from .tags import UidError, normalise_uid

User = get_user_model()


class ErrorSerializer(serializers.Serializer):
    error = inline_serializer(
        "ErrorDetail",
        {
            "code": serializers.CharField(),
            "message": serializers.CharField(),
            "details": serializers.DictField(required=False),
        },
    )


ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 404, 409)}


class RoleAPIView(APIView):
    authentication_classes = [LoginSessionAuthentication]
    permission_classes = [RoleRequired]
    read_roles = READ_ALL_ROLES
    write_roles = STAFF_ROLES


# --- output serializers ------------------------------------------------------------------------


class LocationOut(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Location
        fields = ["code", "name", "kind", "parent", "shelf_order", "is_active"]


class MediaOut(serializers.ModelSerializer):
    patient_id = serializers.CharField(source="patient.patient_id", default=None, read_only=True)
    patient_name = serializers.CharField(source="patient.name", default=None, read_only=True)
    home_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    current_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    current_holder = serializers.SlugRelatedField(slug_field="username", read_only=True)
    studies = serializers.SlugRelatedField(slug_field="study_instance_uid", many=True, read_only=True)
    tag_uid = serializers.SerializerMethodField()

    class Meta:
        model = Media
        fields = [
            "code", "kind", "description", "patient_id", "patient_name", "studies",
            "home_location", "status", "current_location", "current_holder", "last_seen_at",
            "tag_uid",
        ]

    def get_tag_uid(self, media) -> str | None:
        for binding in media.tag_bindings.all():
            if binding.unbound_at is None:
                return binding.tag.uid
        return None


class EventOut(serializers.ModelSerializer):
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)
    device = serializers.SlugRelatedField(slug_field="name", read_only=True)
    from_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    to_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    holder = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = CustodyEvent
        fields = [
            "seq", "event_id", "kind", "media", "tag_uid", "actor", "device", "from_location",
            "to_location", "holder", "device_time", "device_counter", "received_at", "payload",
            "prev_hash", "hash",
        ]


class LoanOut(serializers.ModelSerializer):
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    borrower = serializers.SlugRelatedField(slug_field="username", read_only=True)
    destination = serializers.SlugRelatedField(slug_field="code", read_only=True)

    class Meta:
        model = Loan
        fields = ["id", "media", "borrower", "destination", "out_at", "due_at", "returned_at"]


class TransferOut(serializers.ModelSerializer):
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    from_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    to_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    from_holder = serializers.SlugRelatedField(slug_field="username", read_only=True)
    to_holder = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Transfer
        fields = ["media", "from_location", "to_location", "from_holder", "to_holder", "at", "seq"]


class TagOut(serializers.ModelSerializer):
    media = serializers.SerializerMethodField()

    class Meta:
        model = Tag
        fields = ["uid", "technology", "media", "created_at"]

    def get_media(self, tag) -> str | None:
        for binding in tag.bindings.all():
            if binding.unbound_at is None:
                return binding.media.code
        return None


# --- look-ups that answer 404 in words a person can act on ------------------------------------


def media_or_404(code: str, media=None) -> Media:
    found = (Media.objects if media is None else media).filter(code=code).first()
    if found is None:
        raise UnknownObject(
            _("No media has the code %(code)s. Check the label, or search by patient ID or tag UID.")
            % {"code": code},
            media=code,
        )
    return found


def loan_or_404(pk: int, loans) -> Loan:
    found = loans.filter(pk=pk).first()
    if found is None:
        raise UnknownObject(_("There is no loan %(id)s that you may see.") % {"id": pk}, loan=pk)
    return found


def location_or_404(code: str, locations) -> Location:
    found = locations.filter(code=code).first()
    if found is None:
        raise UnknownObject(_("No location has the code %(code)s.") % {"code": code}, location=code)
    return found


# --- input fields ------------------------------------------------------------------------------


def media_field(**kwargs):
    return serializers.SlugRelatedField(slug_field="code", queryset=Media.objects.all(), **kwargs)


def location_field(**kwargs):
    return serializers.SlugRelatedField(slug_field="code", queryset=Location.objects.all(), **kwargs)


def user_field(**kwargs):
    return serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), **kwargs
    )


class EventIdIn(serializers.Serializer):
    event_id = serializers.UUIDField(required=False, allow_null=True, default=None)


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


class MediaChainApi(RoleAPIView, generics.ListAPIView):
    """The custody chain of one item, newest first (staff, auditors, admins)."""

    serializer_class = EventOut
    queryset = CustodyEvent.objects.none()  # for the schema; get_queryset() answers requests

    def get_queryset(self):
        media = media_or_404(self.kwargs["code"], selectors.media_list(user=self.request.user))
        return selectors.custody_chain_for(media=media)


class MediaSeenApi(RoleAPIView):
    class MediaSeenIn(EventIdIn):
        location = location_field()

    @extend_schema(request=MediaSeenIn, responses={200: MediaOut, **ERRORS})
    def post(self, request, code):
        media = media_or_404(code)
        data = self.MediaSeenIn(data=request.data)
        data.is_valid(raise_exception=True)
        media = services.media_seen(
            media=media,
            location=data.validated_data["location"],
            actor=request.user,
            event_id=data.validated_data["event_id"],
        )
        return Response(MediaOut(media).data)


class MediaRetireApi(RoleAPIView):
    class MediaRetireIn(EventIdIn):
        reason = serializers.CharField(max_length=500)

    @extend_schema(request=MediaRetireIn, responses={200: MediaOut, **ERRORS})
    def post(self, request, code):
        media = media_or_404(code)
        data = self.MediaRetireIn(data=request.data)
        data.is_valid(raise_exception=True)
        media = services.media_retire(
            media=media,
            reason=data.validated_data["reason"],
            actor=request.user,
            event_id=data.validated_data["event_id"],
        )
        return Response(MediaOut(media).data)


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


class LoanListApi(RoleAPIView, generics.ListAPIView):
    """Loans; clinicians see only their own. POST checks an item out."""

    read_roles = EVERY_ROLE
    serializer_class = LoanOut
    filterset_class = LoanFilter
    queryset = Loan.objects.none()  # for the schema; get_queryset() answers requests

    class CheckOutIn(EventIdIn):
        media = media_field()
        borrower = user_field()
        due_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
        destination = location_field(required=False, allow_null=True, default=None)

        def validate_due_at(self, value):
            if value is not None and value <= timezone.now():
                raise serializers.ValidationError(
                    _("The due date must be in the future; leave it out to use the loan policy.")
                )
            return value

    def get_queryset(self):
        return selectors.loan_list(user=self.request.user)

    @extend_schema(request=CheckOutIn, responses={201: LoanOut, **ERRORS})
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


class LoanReturnApi(RoleAPIView):
    class LoanReturnIn(EventIdIn):
        location = location_field(required=False, allow_null=True, default=None)

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


class LedgerVerifyApi(RoleAPIView):
    """Recompute the whole chain and check it against the signed checkpoints."""

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


# --- reader stations ---------------------------------------------------------------------------

MAX_SCANS_PER_BATCH = 500


class ReaderKeyAuthentication(BaseAuthentication):
    """`Authorization: Api-Key <key>`: the request comes from the reader station owning the key."""

    keyword = "Api-Key"

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        keyword, _sep, key = header.partition(" ")
        if keyword != self.keyword:
            return None
        try:
            row = ReaderKey.objects.get_from_key(key.strip())
        except ReaderKey.DoesNotExist:
            raise drf_exceptions.AuthenticationFailed(_("This reader key is unknown or was revoked.")) from None
        if row.has_expired or not row.reader.is_active:
            raise drf_exceptions.AuthenticationFailed(_("This reader key has expired or its reader is disabled."))
        return AnonymousUser(), row

    def authenticate_header(self, request):
        return self.keyword


class IsReader(BasePermission):
    message = gettext_lazy("Only a reader station's key may post scans.")

    def has_permission(self, request, view) -> bool:
        return isinstance(request.auth, ReaderKey)


class ScanIn(serializers.Serializer):
    event_id = serializers.UUIDField()
    uid = serializers.CharField(max_length=64, trim_whitespace=True)
    read_at = serializers.DateTimeField()
    counter = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=2**53)


class ScanBatchIn(serializers.Serializer):
    reader = serializers.CharField(required=False, help_text="Must be the key's own reader, if given.")
    scans = serializers.ListField(child=serializers.DictField(), allow_empty=False)


class ScanResultOut(serializers.Serializer):
    event_id = serializers.CharField()
    stored = serializers.BooleanField(help_text="The server holds this read; the agent may forget it.")
    status = serializers.IntegerField()
    outcome = serializers.CharField(required=False)
    code = serializers.CharField()
    message = serializers.CharField()
    media = serializers.CharField(required=False, allow_null=True)
    seq = serializers.IntegerField(required=False, allow_null=True)
    replayed = serializers.BooleanField(required=False)


class ScanBatchOut(serializers.Serializer):
    reader = serializers.CharField()
    results = ScanResultOut(many=True)


class ScanIngestApi(APIView):
    """A reader station delivers a batch of reads (up to 500). Each read is idempotent by its
    event_id; each gets its own result, and a bad read never stops the rest of the batch."""

    authentication_classes = [ReaderKeyAuthentication]
    permission_classes = [IsReader]

    @extend_schema(request=ScanBatchIn, responses={200: ScanBatchOut, 413: ErrorSerializer, **ERRORS})
    def post(self, request):
        reader = request.auth.reader
        batch = ScanBatchIn(data=request.data)
        batch.is_valid(raise_exception=True)
        claimed = batch.validated_data.get("reader")
        if claimed and claimed != reader.name:
            raise drf_exceptions.PermissionDenied(
                _("This key belongs to reader %(name)s; it cannot post as %(other)s.")
                % {"name": reader.name, "other": claimed}
            )
        scans = batch.validated_data["scans"]
        if len(scans) > MAX_SCANS_PER_BATCH:
            return Response(
                error_body("batch_too_large", _("At most %(n)d scans per request.") % {"n": MAX_SCANS_PER_BATCH}),
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        results = [self.one(reader, item) for item in scans]
        return Response({"reader": reader.name, "results": results})

    def one(self, reader, item: dict) -> dict:
        scan = ScanIn(data=item)
        event_id = str(item.get("event_id", ""))[:64]
        if not scan.is_valid():
            fields = "; ".join(f"{name}: {' '.join(map(str, errs))}" for name, errs in scan.errors.items())
            return {"event_id": event_id, "stored": False, "status": 400, "code": "invalid", "message": fields}
        data = scan.validated_data
        try:
            record, replayed = services.scan_record(
                device=reader, event_id=data["event_id"], raw_uid=data["uid"],
                read_at=data["read_at"], counter=data.get("counter"),
            )
        except DomainError as error:
            return {"event_id": event_id, "stored": False, "status": error.status, "code": error.code,
                    "message": error.message}
        return {
            "event_id": str(record.event_id),
            "stored": True,
            "status": 200 if replayed else 201,
            "outcome": record.outcome,
            "code": record.code,
            "message": record.message,
            "media": record.media.code if record.media_id else None,
            "seq": record.event_seq,
            "replayed": replayed,
        }


class ReaderKeyScheme(OpenApiAuthenticationExtension):
    """Describe the reader key in the OpenAPI schema: `Authorization: Api-Key <key>`."""

    target_class = ReaderKeyAuthentication
    name = "ReaderKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Api-Key <key>` as printed by `manage.py register_reader`."}
