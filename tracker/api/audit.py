"""REST endpoints of the auditors' workspace (auditors and admins; everyone else 403, no login 401).

- GET /api/v1/audit/events/?subject_kind=&subject=&from=&to=&kinds= — the events a question
  covers (tracker.audit.CustodyQuery, the same names as the chain page and the export links),
  newest first, paginated (limit/offset); every call is recorded in the access log.
- GET /api/v1/audit/access-log/?user=&action=&subject_kind=&subject=&from=&to= — who viewed,
  exported or verified what, newest first.
- POST /api/v1/audit/verify/ {first?, last?} — verify the whole ledger (and its signed
  checkpoints), or events first..last, and record the verdict; answers it.

File-room staff get 403, as on the pages (tracker.audit AUDIT_ROLES says why)."""
from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import generics, serializers
from rest_framework.response import Response

from ..audit import (
    AUDIT_ROLES,
    AccessLogQuery,
    CustodyQuery,
    ledger_verify_recorded,
    record_chain_view,
)
from ..choices import AccessAction, AccessSubject, EventKind
from ..exceptions import InvalidRequest, UnknownObject
from ..models import AccessLog, CustodyEvent
from .shapes import ERRORS, EventOut, RoleAPIView


def _query_errors(form) -> None:
    """Raise the API error for an invalid question: 404 for a subject that names nothing."""
    fields = {name: [str(e) for e in errors] for name, errors in form.errors.items()}
    if getattr(form, "unknown_subject", False):
        raise UnknownObject(form.errors["subject"][0], fields=fields)
    raise InvalidRequest(_("Some filters are not valid."), fields=fields)


PERIOD_PARAMETERS = [
    OpenApiParameter(
        "from", OpenApiTypes.DATE, OpenApiParameter.QUERY,
        description=gettext_lazy("First day (local time, included), YYYY-MM-DD."),
    ),
    OpenApiParameter(
        "to", OpenApiTypes.DATE, OpenApiParameter.QUERY,
        description=gettext_lazy("Last day (local time, included), YYYY-MM-DD."),
    ),
]


@extend_schema(
    description=gettext_lazy(
        "The custody events an auditor asks "
        "for, newest first; each call is recorded."
    )
)
class AuditEventsApi(RoleAPIView, generics.ListAPIView):
    read_roles = AUDIT_ROLES
    serializer_class = EventOut
    queryset = CustodyEvent.objects.none()  # for the schema; list() answers requests
    filter_backends: list = []  # CustodyQuery reads the query string

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "subject_kind", str, OpenApiParameter.QUERY,
                enum=[AccessSubject.MEDIA, AccessSubject.PATIENT, AccessSubject.BORROWER,
                      AccessSubject.LOCATION, AccessSubject.EVENTS],
                description=gettext_lazy("What `subject` names; `events` (or nothing, with no subject) for every event."),
            ),
            OpenApiParameter(
                "subject", str, OpenApiParameter.QUERY,
                description=gettext_lazy("Item code, patient ID, borrower username or location code."),
            ),
            *PERIOD_PARAMETERS,
            OpenApiParameter(
                "kinds", str, OpenApiParameter.QUERY, many=True, explode=True,
                enum=EventKind.values, description=gettext_lazy("Only these kinds of event (repeat the parameter)."),
            ),
        ],
        responses={200: EventOut(many=True), **ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        query = CustodyQuery(request.query_params)
        if not query.is_valid():
            _query_errors(query)
        page = self.paginate_queryset(query.events().order_by("-seq"))
        paginator = self.paginator
        record_chain_view(
            user=request.user, query=query, path=request.get_full_path(),
            offset=paginator.offset, limit=paginator.limit, events=paginator.count,
        )
        return self.get_paginated_response(EventOut(page, many=True).data)


class AccessLogOut(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AccessLog
        fields = ["id", "at", "user", "action", "subject_kind", "subject", "detail", "path"]


@extend_schema(description=gettext_lazy("Who viewed, exported or verified what, newest first."))
class AccessLogApi(RoleAPIView, generics.ListAPIView):
    read_roles = AUDIT_ROLES
    serializer_class = AccessLogOut
    queryset = AccessLog.objects.none()  # for the schema; get_queryset() answers requests
    filter_backends: list = []  # AccessLogQuery reads the query string

    @extend_schema(
        parameters=[
            OpenApiParameter("user", str, OpenApiParameter.QUERY, description=gettext_lazy("Username.")),
            OpenApiParameter("action", str, OpenApiParameter.QUERY, enum=AccessAction.values),
            OpenApiParameter("subject_kind", str, OpenApiParameter.QUERY, enum=AccessSubject.values),
            OpenApiParameter(
                "subject", str, OpenApiParameter.QUERY,
                description=gettext_lazy("Item code, patient ID, username, location code or seq range (any case)."),
            ),
            *PERIOD_PARAMETERS,
        ],
        responses={200: AccessLogOut(many=True), **ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        query = AccessLogQuery(self.request.query_params)
        if not query.is_valid():
            _query_errors(query)
        return query.entries()


class VerifyIn(serializers.Serializer):
    first = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    last = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)


@extend_schema_serializer(
    description=gettext_lazy(
        "A recorded verification: the verdict and "
        "the access-log row that keeps it."
    )
)
class AuditVerificationOut(serializers.Serializer):
    id = serializers.IntegerField(help_text=gettext_lazy("The access-log row that records this verification."))
    at = serializers.DateTimeField()
    user = serializers.CharField()
    scope = serializers.ChoiceField(choices=["ledger", "range"])
    ok = serializers.BooleanField()
    events = serializers.IntegerField()
    head_hash = serializers.CharField(help_text=gettext_lazy("Hash of the newest event checked."))
    first_bad_seq = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    checkpoints_checked = serializers.IntegerField(allow_null=True, help_text=gettext_lazy("Whole ledger only."))
    first = serializers.IntegerField(allow_null=True, help_text=gettext_lazy("Range only."))
    last = serializers.IntegerField(allow_null=True, help_text=gettext_lazy("Range only."))
    seconds = serializers.FloatField()


@extend_schema(
    description=gettext_lazy(
        "Verify the whole ledger and its signed checkpoints, or events `first`..`last`; the "
        "verdict is recorded in the access log and returned."
    )
)
class AuditVerifyApi(RoleAPIView):
    read_roles = AUDIT_ROLES
    write_roles = AUDIT_ROLES

    @extend_schema(request=VerifyIn, responses={200: AuditVerificationOut, **ERRORS})
    def post(self, request):
        data = VerifyIn(data=request.data)
        data.is_valid(raise_exception=True)
        entry = ledger_verify_recorded(
            user=request.user, first=data.validated_data["first"], last=data.validated_data["last"],
            path=request.path,
        )
        verdict = {"checkpoints_checked": None, "first": None, "last": None, **entry.detail}
        return Response(
            AuditVerificationOut({**verdict, "id": entry.pk, "at": entry.at, "user": request.user.get_username()}).data
        )


# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = [
    path("audit/events/", AuditEventsApi.as_view(), name="api-audit-events"),
    path("audit/access-log/", AccessLogApi.as_view(), name="api-audit-access-log"),
    path("audit/verify/", AuditVerifyApi.as_view(), name="api-audit-verify"),
]
