"""The shapes the API speaks: the error body, output serializers, input fields, the role-checked
base views and look-ups that answer 404 in words a person can act on."""
from django.contrib.auth import get_user_model
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
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
    parent = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = Location
        fields = ["code", "name", "kind", "parent", "shelf_order", "is_active"]


class MediaOut(serializers.ModelSerializer):
    patient_id = serializers.CharField(source="patient.patient_id", default=None, read_only=True, allow_null=True)
    patient_name = serializers.CharField(source="patient.name", default=None, read_only=True, allow_null=True)
    home_location = serializers.SlugRelatedField(slug_field="code", read_only=True)
    current_location = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    current_holder = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
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
    media = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    device = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    from_location = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    to_location = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    holder = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

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
    destination = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)

    class Meta:
        model = Loan
        fields = ["id", "media", "borrower", "destination", "out_at", "due_at", "returned_at"]


class TransferOut(serializers.ModelSerializer):
    media = serializers.SlugRelatedField(slug_field="code", read_only=True)
    from_location = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    to_location = serializers.SlugRelatedField(slug_field="code", read_only=True, allow_null=True)
    from_holder = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    to_holder = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

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


# --- actions on one thing named in the address ---------------------------------------------------


class ObjectActionSchema(AutoSchema):
    """Documents an ObjectActionApi from its own attributes, so an endpoint names its input and
    its answer once."""

    def get_request_serializer(self):
        return self.view.input_class

    def get_response_serializers(self):
        return {self.view.answer_status: self.view.output_class, **ERRORS}


class ObjectActionApi(RoleAPIView):
    # A POST that acts on one thing named in the address: find it (404 when the person may not
    # see it), validate `input_class`, call one service in act(), answer `output_class`.
    # (A comment, not a docstring: the schema would show a docstring as the description of every
    # action that has none of its own.)
    schema = ObjectActionSchema()
    input_class: type[serializers.Serializer] = EventIdIn
    output_class: type[serializers.Serializer]
    answer_status = status.HTTP_200_OK

    def find(self, user, **address):
        raise NotImplementedError

    def act(self, found, values: dict, actor):
        raise NotImplementedError

    def post(self, request, **address):
        found = self.find(request.user, **address)
        data = self.input_class(data=request.data)
        data.is_valid(raise_exception=True)
        done = self.act(found, data.validated_data, actor=request.user)
        return Response(self.output_class(done).data, status=self.answer_status)



_ERROR_TEXTS = {
    "400": gettext_lazy("The request is malformed or a value is not allowed; the message says which."),
    "401": gettext_lazy("Not logged in (the API uses the login session; reader stations use their key)."),
    "403": gettext_lazy("Logged in, but this role may not do this."),
    "404": gettext_lazy("Nothing with that key, or nothing this person may see."),
    "415": gettext_lazy("The body is not JSON, a form or multipart: say which in Content-Type."),
}


def document_errors(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every operation can answer with the one error shape
    `{"error": {"code", "message"}}` — 401 and 403 anywhere (every endpoint needs a login or a
    reader key), 404 where the address names something, 400 where there are path or query
    parameters or a body to get wrong (a value the database refuses, such as a NUL character),
    415 where a body is read (a Content-Type no parser takes). Adds those an operation's own
    declaration leaves out, so the schema documents every answer (schemathesis checks it)."""
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    assert "Error" in result.get("components", {}).get("schemas", {}), "the Error component is missing"
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            wanted = ["401", "403"]
            if "{" in path:
                wanted.append("404")
            if "{" in path or operation.get("requestBody") or any(
                p.get("in") == "query" for p in operation.get("parameters", [])
            ):
                wanted.append("400")
            if method in {"post", "put", "patch"}:  # a body of a type no parser takes
                wanted.append("415")
            responses = operation.setdefault("responses", {})
            for code in wanted:
                responses.setdefault(code, {"description": str(_ERROR_TEXTS[code]), **error})
    return result
