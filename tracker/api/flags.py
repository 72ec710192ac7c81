"""REST endpoints: flags, reminders and the staff dashboard counts.

- GET /api/v1/flags/?kind=&open=true|false&media=CODE — staff, auditors, admins see all flags;
  a clinician sees the flags on their own loans.
- GET /api/v1/reminders/?loan=ID — the same rule.
- POST /api/v1/flags/<id>/clear/ — file room and admins clear a flag by hand, with a reason.
- POST /api/v1/loans/<id>/remind/ — file room and admins e-mail the borrower now.
- GET /api/v1/dashboard/ — counts for staff, auditors and admins.
"""
from __future__ import annotations

from django.urls import path
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from .. import selectors, services
from ..choices import FlagKind
from ..exceptions import UnknownObject
from ..models import Flag, Reminder
from ..permissions import EVERY_ROLE, READ_ALL_ROLES
from ..services.flags import dashboard_counts, flag_clear, flag_list, reminder_list
from .shapes import ERRORS, EventIdIn, ObjectActionApi, RoleAPIView, loan_or_404


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


@extend_schema(description=gettext_lazy("Flags, newest first; clinicians see only those on their own loans."))
class FlagListApi(RoleAPIView, generics.ListAPIView):

    read_roles = EVERY_ROLE
    serializer_class = FlagOut
    filterset_class = FlagFilter
    queryset = Flag.objects.none()  # for the schema; get_queryset() answers requests

    def get_queryset(self):
        return flag_list(user=self.request.user)


@extend_schema(
    description=gettext_lazy("Reminders sent, newest first; clinicians see only those about their own loans.")
)
class ReminderListApi(RoleAPIView, generics.ListAPIView):

    read_roles = EVERY_ROLE
    serializer_class = ReminderOut
    filterset_fields = ["loan"]
    queryset = Reminder.objects.none()

    def get_queryset(self):
        return reminder_list(user=self.request.user)


def flag_or_404(pk: int, user) -> Flag:
    found = flag_list(user=user).filter(pk=pk).first()
    if found is None:
        raise UnknownObject(_("There is no flag %(id)s that you may see.") % {"id": pk}, flag=pk)
    return found


@extend_schema(
    description=gettext_lazy(
        "Clear an open flag by hand, saying why (file room and admins): one `flag_cleared` "
        "event. A flag already cleared (by the sweep or by someone else) is answered as it "
        "is, with 200 and no new event: whoever asked wanted it cleared, and it is. A retry "
        "with the same `event_id` answers the same way."
    )
)
class FlagClearApi(ObjectActionApi):
    output_class = FlagOut

    class FlagClearIn(EventIdIn):
        reason = serializers.CharField(
            max_length=300, help_text=gettext_lazy("Why the flag is cleared; kept in the ledger.")
        )

    input_class = FlagClearIn

    def find(self, user, pk):
        return flag_or_404(pk, user)

    def act(self, flag, values, actor):
        cleared = flag_clear(
            flag=flag, actor=actor, reason=values["reason"], event_id=values["event_id"]
        )
        # Read back as the list reads it: FlagOut names the borrower and the place.
        return flag_list(user=actor).get(pk=cleared.pk)


@extend_schema(
    description=gettext_lazy("E-mail the borrower of an open loan a reminder now (file room and admins).")
)
class LoanRemindApi(ObjectActionApi):
    output_class = ReminderOut
    answer_status = status.HTTP_201_CREATED

    def find(self, user, pk):
        return loan_or_404(pk, selectors.loan_list(user=user))

    def act(self, loan, values, actor):
        return services.loan_remind(loan=loan, actor=actor, event_id=values["event_id"])


def count(text) -> serializers.IntegerField:
    return serializers.IntegerField(help_text=text)


DASHBOARD_COUNTS = {
    "open_flags": gettext_lazy("Flags not yet cleared, of every kind."),
    "loans_out": gettext_lazy("Items on loan now."),
    "loans_overdue": gettext_lazy("Loans past their due date."),
    "in_transit": gettext_lazy("Items with a courier or on their way."),
    "missing": gettext_lazy("Items marked missing."),
    "requests_pending": gettext_lazy("Loan requests waiting for a decision."),
    "requests_approved": gettext_lazy("Approved loan requests not yet ready for pick-up."),
    "requests_ready": gettext_lazy("Loan requests ready for pick-up."),
    "reminders_last_day": gettext_lazy("Reminders sent in the last 24 hours."),
}


class DashboardApi(RoleAPIView):
    read_roles = READ_ALL_ROLES

    @extend_schema(
        description=gettext_lazy("Counts the file room looks at first (file room, auditors, admins)."),
        responses={
            200: inline_serializer(
                "DashboardCounts",
                {
                    "flags": inline_serializer(
                        "OpenFlagsByKind",
                        {k: count(gettext_lazy("Open flags of this kind.")) for k in FlagKind.values},
                    ),
                    **{name: count(text) for name, text in DASHBOARD_COUNTS.items()},
                    "at": serializers.DateTimeField(help_text=gettext_lazy("When the counts were taken.")),
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
    path("flags/<int:pk>/clear/", FlagClearApi.as_view(), name="api-flag-clear"),
    path("reminders/", ReminderListApi.as_view(), name="api-reminder-list"),
    path("loans/<int:pk>/remind/", LoanRemindApi.as_view(), name="api-loan-remind"),
    path("dashboard/", DashboardApi.as_view(), name="api-dashboard"),
]
