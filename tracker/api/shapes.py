"""The shapes the API speaks: the error body, output serializers, input fields, the role-checked
base view and look-ups that answer 404 in words a person can act on."""
from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers
from rest_framework.views import APIView

from ..exceptions import UnknownObject
from ..models import CustodyEvent, Loan, Location, Media, Tag, Transfer
from ..permissions import (
    READ_ALL_ROLES,
    STAFF_ROLES,
    LoginSessionAuthentication,
    RoleRequired,
)

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

