"""REST endpoints: flags, reminders and the staff dashboard counts.

- GET /api/v1/flags/?kind=&open=true|false&media=CODE — staff, auditors, admins see all flags;
  a clinician sees the flags on their own loans.
- GET /api/v1/reminders/?loan=ID — the same rule.
- POST /api/v1/loans/<id>/remind/ — file room and admins e-mail the borrower now.
- GET /api/v1/dashboard/ — counts for staff, auditors and admins.
"""
from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from .. import selectors, services
from ..choices import FlagKind
from ..models import Flag, Reminder
from ..permissions import EVERY_ROLE, READ_ALL_ROLES
from ..services.flags import dashboard_counts, flag_list, reminder_list
from .shapes import ERRORS, EventIdIn, RoleAPIView, loan_or_404


class FlagOut(serializers.ModelSerializer):
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    loan = serializers.PrimaryKeyRelatedField(read_only=True)
    borrower = serializers.CharField(source="loan.borrower.username", default=None, read_only=True)
    location = serializers.CharField(source="media.current_location.code", default=None, read_only=True)
    open = serializers.SerializerMethodField()

    class Meta:
        model = Flag
        fields = [
            "id", "media", "kind", "open", "loan", "borrower", "location", "details", "raised_at",
            "raised_seq", "cleared_at", "cleared_seq",
        ]

    def get_open(self, flag) -> bool:
        return flag.cleared_at is None


class ReminderOut(serializers.ModelSerializer):
    media = serializers.CharField(source="loan.media.code", read_only=True)
    borrower = serializers.CharField(source="loan.borrower.username", read_only=True)
    sent_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    automatic = serializers.SerializerMethodField()

    class Meta:
        model = Reminder
        fields = ["id", "loan", "media", "borrower", "sent_to", "sent_at", "sent_by", "automatic", "seq"]

    def get_automatic(self, reminder) -> bool:
        return reminder.sent_by_id is None


class FlagFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=FlagKind.choices)
    open = filters.BooleanFilter(
        field_name="cleared_at", lookup_expr="isnull", label=gettext_lazy("Only open (true) or only cleared (false) flags")
    )
    media = filters.CharFilter(field_name="media__code")

    class Meta:
        model = Flag
        fields = ["kind", "open", "media"]


class FlagListApi(RoleAPIView, generics.ListAPIView):
    """Flags, newest first; clinicians see only those on their own loans."""

    read_roles = EVERY_ROLE
    serializer_class = FlagOut
    filterset_class = FlagFilter
    queryset = Flag.objects.none()  # for the schema; get_queryset() answers requests

    def get_queryset(self):
        return flag_list(user=self.request.user)


class ReminderListApi(RoleAPIView, generics.ListAPIView):
    """Reminders sent, newest first; clinicians see only those about their own loans."""

    read_roles = EVERY_ROLE
    serializer_class = ReminderOut
    filterset_fields = ["loan"]
    queryset = Reminder.objects.none()

    def get_queryset(self):
        return reminder_list(user=self.request.user)


class LoanRemindApi(RoleAPIView):
    """E-mail the borrower of an open loan a reminder now (file room and admins)."""

    @extend_schema(request=EventIdIn, responses={201: ReminderOut, **ERRORS})
    def post(self, request, pk):
        loan = loan_or_404(pk, selectors.loan_list(user=request.user))
        data = EventIdIn(data=request.data)
        data.is_valid(raise_exception=True)
        reminder = services.loan_remind(
            loan=loan, actor=request.user, event_id=data.validated_data["event_id"]
        )
        return Response(ReminderOut(reminder).data, status=status.HTTP_201_CREATED)


COUNT = serializers.IntegerField()


class DashboardApi(RoleAPIView):
    """Counts the file room looks at first."""

    read_roles = READ_ALL_ROLES

    @extend_schema(
        responses={
            200: inline_serializer(
                "DashboardCounts",
                {
                    "flags": inline_serializer("OpenFlagsByKind", {k: COUNT for k in FlagKind.values}),
                    **{
                        name: COUNT for name in (
                            "open_flags", "loans_out", "loans_overdue", "in_transit", "missing",
                            "requests_pending", "requests_approved", "requests_ready",
                            "reminders_last_day",
                        )
                    },
                    "at": serializers.DateTimeField(),
                },
            ),
            **ERRORS,
        }
    )
    def get(self, request):
        counts = dashboard_counts()
        return Response({**counts, "at": counts["at"].isoformat()})


# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = [
    path("flags/", FlagListApi.as_view(), name="api-flag-list"),
    path("reminders/", ReminderListApi.as_view(), name="api-reminder-list"),
    path("loans/<int:pk>/remind/", LoanRemindApi.as_view(), name="api-loan-remind"),
    path("dashboard/", DashboardApi.as_view(), name="api-dashboard"),
]
