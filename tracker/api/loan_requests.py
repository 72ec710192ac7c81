"""REST endpoints: loan requests, the request queue and renewals.

Clinicians see and make only their own requests and may cancel them and renew their own loans;
file-room staff and admins see every request and decide (approve, deny, mark ready); auditors
read everything and write nothing. Writes take an optional `event_id` for safe retries."""

from __future__ import annotations

from django.db.models import QuerySet
from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from archive.models import Patient, Study

from .. import selectors, services
from ..choices import RequestStatus, Role
from ..exceptions import RequestClosed, UnknownObject
from ..models import Loan, LoanRequest
from ..permissions import EVERY_ROLE, READ_ALL_ROLES, has_role
from .signatures import signature_field, signature_in, signed_by_field
from .shapes import (
    ERRORS,
    EventIdIn,
    LoanOut,
    ObjectActionApi,
    RoleAPIView,
    loan_or_404,
    location_field,
    media_field,
)

# Who may ask for media and withdraw their own asks: everyone but auditors.
REQUESTER_ROLES = frozenset({Role.CLINICIAN, Role.FILE_ROOM, Role.ADMIN})


def loan_request_list(*, user) -> QuerySet[LoanRequest]:
    """Requests the person may see: their own, or all of them for staff, auditors and admins."""
    requests = LoanRequest.objects.select_related(
        "requester", "media", "patient", "study", "destination", "decided_by", "loan"
    )
    if has_role(user, READ_ALL_ROLES):
        return requests
    return requests.filter(requester=user)


def loan_request_or_404(pk: int, user) -> LoanRequest:
    found = loan_request_list(user=user).filter(pk=pk).first()
    if found is None:
        raise UnknownObject(
            _("There is no loan request %(id)s that you may see.") % {"id": pk}, request=pk
        )
    return found


class LoanRequestOut(serializers.ModelSerializer):
    requester = serializers.SlugRelatedField(slug_field="username", read_only=True)
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    patient_id = serializers.CharField(source="patient.patient_id", default=None, read_only=True)
    study = serializers.CharField(source="study.study_instance_uid", default=None, read_only=True)
    destination = serializers.SlugRelatedField(slug_field="code", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    loan = serializers.PrimaryKeyRelatedField(read_only=True)
    queue_position = serializers.SerializerMethodField(
        help_text=gettext_lazy(
            "1 when the item goes to this request next; null when not queued (pending, closed)."
        )
    )

    class Meta:
        model = LoanRequest
        fields = [
            "id",
            "requester",
            "media",
            "patient_id",
            "study",
            "needed_from",
            "needed_until",
            "purpose",
            "destination",
            "status",
            "queue_position",
            "created_at",
            "expires_at",
            "decided_by",
            "decided_at",
            "reason",
            "loan",
        ]

    def get_queue_position(self, request) -> int | None:
        return services.queue_position(request)


class LoanRenewalOut(LoanOut):
    class Meta(LoanOut.Meta):
        fields = [*LoanOut.Meta.fields, "renewals"]


class LoanRequestFilter(filters.FilterSet):
    status = filters.ChoiceFilter(choices=RequestStatus.choices)
    media = filters.CharFilter(field_name="media__code")
    patient = filters.CharFilter(field_name="patient__patient_id")
    requester = filters.CharFilter(field_name="requester__username")
    open = filters.BooleanFilter(method="only_open", label=gettext_lazy("Open requests only"))

    class Meta:
        model = LoanRequest
        fields = ["status", "media", "patient", "requester", "open"]

    def only_open(self, queryset, name, value):
        statuses = [RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.READY]
        return (
            queryset.filter(status__in=statuses) if value else queryset.exclude(status__in=statuses)
        )


@extend_schema(
    description=gettext_lazy("Loan requests, oldest first; clinicians see only their own.")
)
class LoanRequestListApi(RoleAPIView, generics.ListAPIView):
    read_roles = EVERY_ROLE
    write_roles = REQUESTER_ROLES
    serializer_class = LoanRequestOut
    filterset_class = LoanRequestFilter
    queryset = LoanRequest.objects.none()  # for the schema; get_queryset() answers requests

    class LoanRequestIn(EventIdIn):
        media = media_field(required=False, allow_null=True, default=None)
        patient_id = serializers.CharField(required=False, allow_blank=True, default="")
        study = serializers.CharField(required=False, allow_blank=True, default="")
        needed_from = serializers.DateField()
        needed_until = serializers.DateField()
        purpose = serializers.CharField(max_length=200)
        destination = location_field(required=False, allow_null=True, default=None)

        def validate_patient_id(self, value):
            if not value:
                return None
            patient = Patient.objects.filter(patient_id=value).first()
            if patient is None:
                raise serializers.ValidationError(
                    _("No patient has the ID %(id)s.") % {"id": value}
                )
            return patient

        def validate_study(self, value):
            if not value:
                return None
            study = Study.objects.filter(study_instance_uid=value).first()
            if study is None:
                raise serializers.ValidationError(
                    _("No study has the UID %(uid)s. Find it from the patient's page first.")
                    % {"uid": value}
                )
            return study

    def get_queryset(self):
        return loan_request_list(user=self.request.user)

    @extend_schema(
        description=gettext_lazy(
            "Ask the file room for an item, a patient's media or a study's, for dates and a purpose."
        ),
        request=LoanRequestIn, responses={201: LoanRequestOut, **ERRORS},
    )
    def post(self, request):
        data = self.LoanRequestIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        made = services.loan_request_make(
            requester=request.user,
            media=values["media"],
            patient=values["patient_id"],
            study=values["study"],
            needed_from=values["needed_from"],
            needed_until=values["needed_until"],
            purpose=values["purpose"],
            destination=values["destination"],
            event_id=values["event_id"],
        )
        return Response(LoanRequestOut(made).data, status=status.HTTP_201_CREATED)


class LoanRequestDetailApi(RoleAPIView, generics.RetrieveAPIView):
    read_roles = EVERY_ROLE
    serializer_class = LoanRequestOut
    queryset = LoanRequest.objects.none()  # for the schema; get_object() answers requests

    def get_object(self):
        return loan_request_or_404(self.kwargs["pk"], self.request.user)


@extend_schema(
    description=gettext_lazy(
        "Approve a pending request; name the "
        "item for a patient or study request."
    )
)
class LoanRequestApproveApi(ObjectActionApi):
    output_class = LoanRequestOut

    class ApproveIn(EventIdIn):
        media = media_field(required=False, allow_null=True, default=None)

    input_class = ApproveIn

    def find(self, user, pk):
        return loan_request_or_404(pk, user)

    def act(self, loan_request, values, actor):
        return services.loan_request_approve(
            request=loan_request, actor=actor, media=values["media"], event_id=values["event_id"]
        )


@extend_schema(
    description=gettext_lazy("Deny a request, with the reason the requester will read.")
)
class LoanRequestDenyApi(ObjectActionApi):
    output_class = LoanRequestOut

    class DenyIn(EventIdIn):
        reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    input_class = DenyIn

    def find(self, user, pk):
        return loan_request_or_404(pk, user)

    def act(self, loan_request, values, actor):
        return services.loan_request_deny(
            request=loan_request, actor=actor, reason=values["reason"], event_id=values["event_id"]
        )


@extend_schema(description=gettext_lazy("The item is pulled and waiting at the desk."))
class LoanRequestReadyApi(ObjectActionApi):
    output_class = LoanRequestOut

    def find(self, user, pk):
        return loan_request_or_404(pk, user)

    def act(self, loan_request, values, actor):
        return services.loan_request_ready(
            request=loan_request, actor=actor, event_id=values["event_id"]
        )


@extend_schema(description=gettext_lazy("Withdraw a request (the requester's own; staff any)."))
class LoanRequestCancelApi(ObjectActionApi):
    write_roles = REQUESTER_ROLES
    output_class = LoanRequestOut

    def find(self, user, pk):
        return loan_request_or_404(pk, user)

    def act(self, loan_request, values, actor):
        return services.loan_request_cancel(
            request=loan_request, actor=actor, event_id=values["event_id"]
        )


@extend_schema(
    description=gettext_lazy(
        "Lend the request's item to its requester, to its destination: the hand-over at the "
        "desk (staff). The same as a check-out naming the request. `signature` (a PNG data "
        "URL) is the requester's, drawn at the desk."
    )
)
class LoanRequestCheckOutApi(ObjectActionApi):
    output_class = LoanOut
    answer_status = status.HTTP_201_CREATED

    class RequestCheckOutIn(EventIdIn):
        signature = signature_field()
        signed_by = signed_by_field()

    input_class = RequestCheckOutIn

    def find(self, user, pk):
        return loan_request_or_404(pk, user)

    def act(self, loan_request, values, actor):
        if loan_request.media is None:
            raise RequestClosed(
                _("Request %(id)s has no item yet: approve it with one first.")
                % {"id": loan_request.pk},
                request=loan_request.pk,
            )
        return services.media_check_out(
            media=loan_request.media,
            borrower=loan_request.requester,
            actor=actor,
            destination=loan_request.destination,
            request=loan_request,
            event_id=values["event_id"],
            signature=signature_in(values["signature"]),
            signed_by=values["signed_by"],
        )


@extend_schema(
    description=gettext_lazy("Renew a loan by one policy period (the borrower, or staff).")
)
class LoanRenewApi(ObjectActionApi):
    write_roles = REQUESTER_ROLES
    output_class = LoanRenewalOut

    def find(self, user, pk) -> Loan:
        return loan_or_404(pk, selectors.loan_list(user=user))

    def act(self, loan, values, actor):
        return services.loan_renew(loan=loan, actor=actor, event_id=values["event_id"])


# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = [
    path("loan-requests/", LoanRequestListApi.as_view(), name="api-loan-request-list"),
    path("loan-requests/<int:pk>/", LoanRequestDetailApi.as_view(), name="api-loan-request-detail"),
    path(
        "loan-requests/<int:pk>/approve/",
        LoanRequestApproveApi.as_view(),
        name="api-loan-request-approve",
    ),
    path(
        "loan-requests/<int:pk>/deny/", LoanRequestDenyApi.as_view(), name="api-loan-request-deny"
    ),
    path(
        "loan-requests/<int:pk>/ready/",
        LoanRequestReadyApi.as_view(),
        name="api-loan-request-ready",
    ),
    path(
        "loan-requests/<int:pk>/cancel/",
        LoanRequestCancelApi.as_view(),
        name="api-loan-request-cancel",
    ),
    path(
        "loan-requests/<int:pk>/check-out/",
        LoanRequestCheckOutApi.as_view(),
        name="api-loan-request-check-out",
    ),
    path("loans/<int:pk>/renew/", LoanRenewApi.as_view(), name="api-loan-renew"),
]
