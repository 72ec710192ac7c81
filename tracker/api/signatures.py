"""REST endpoints: signatures drawn at check-out and return.

A signature travels as a PNG data URL ("data:image/png;base64,..."), in the field `signature`:
with the action itself (a loan's return, a request's check-out: see `signature_in`) or afterwards
for a station read (POST /signatures/). GET /signatures/<event_seq>/ says who signed, the image's
SHA-256 and whether the stored image is still the one the ledger recorded. Staff and auditors see
every signature, a clinician only those on their own loans; only staff add them."""

from __future__ import annotations

from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from .. import services
from ..exceptions import UnknownObject
from ..models import CustodyEvent, Signature
from ..permissions import EVERY_ROLE
from .shapes import ERRORS, EventIdIn, RoleAPIView

SIGNED_BY_MAX = Signature._meta.get_field("signed_by").max_length


def signature_field():
    """The optional `signature` input: a PNG data URL, or blank for none."""
    return serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=True,
        help_text=gettext_lazy(
            "A PNG data URL (data:image/png;base64,...) of the signature drawn on the page."
        ),
    )


def signed_by_field():
    return serializers.CharField(
        required=False, allow_blank=True, default="", max_length=SIGNED_BY_MAX
    )


def signature_in(value: str) -> bytes | None:
    """The PNG bytes of a `signature` field, None when it was left blank (InvalidRequest when it
    is not a PNG data URL)."""
    return services.signature_from_data_url(value) if value else None


SignatureOut = inline_serializer(
    "Signature",
    {
        "event_seq": serializers.IntegerField(),
        "event_kind": serializers.CharField(),
        "media": serializers.CharField(allow_null=True),
        "signed_by": serializers.CharField(),
        "sha256": serializers.CharField(),
        "created_at": serializers.DateTimeField(),
        "intact": serializers.BooleanField(),
        "image_url": serializers.CharField(),
    },
)


def signature_out(signature: Signature) -> dict:
    signed = CustodyEvent.objects.select_related("media").get(seq=signature.event_seq)
    return {
        "event_seq": signature.event_seq,
        "event_kind": signed.kind,
        "media": signed.media.code if signed.media else None,
        "signed_by": signature.signed_by,
        "sha256": signature.sha256,
        "created_at": serializers.DateTimeField().to_representation(signature.created_at),
        "intact": services.signature_intact(signature),
        "image_url": reverse("signature-image", args=[signature.event_seq]),
    }


@extend_schema(
    description=gettext_lazy(
        "Sign a check-out or return after the fact (a station read): the borrower signs on "
        "the tablet after the tap. One signature per event; staff only."
    )
)
class SignatureAddApi(RoleAPIView):
    class SignatureIn(EventIdIn):
        event_seq = serializers.IntegerField(min_value=1)
        signature = serializers.CharField()
        signed_by = signed_by_field()

    @extend_schema(request=SignatureIn, responses={201: SignatureOut, **ERRORS})
    def post(self, request):
        data = self.SignatureIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        signature = services.signature_add(
            event_seq=values["event_seq"],
            image=services.signature_from_data_url(values["signature"]),
            actor=request.user,
            signed_by=values["signed_by"],
            event_id=values["event_id"],
        )
        return Response(signature_out(signature), status=status.HTTP_201_CREATED)


@extend_schema(
    description=gettext_lazy(
        "Who signed an event, the image's "
        "SHA-256, and whether the image is intact."
    )
)
class SignatureDetailApi(RoleAPIView):
    read_roles = EVERY_ROLE

    @extend_schema(responses={200: SignatureOut, **ERRORS})
    def get(self, request, event_seq: int):
        signature = Signature.objects.filter(event_seq=event_seq).first()
        if signature is None or not services.signature_visible_to(request.user, event_seq):
            raise UnknownObject(
                _("There is no signature of event %(seq)s that you may see.") % {"seq": event_seq},
                event=event_seq,
            )
        return Response(signature_out(signature))


# Mounted under /api/v1/ by tracker/urls.py.
urlpatterns: list = [
    path("signatures/", SignatureAddApi.as_view(), name="api-signature-add"),
    path("signatures/<int:event_seq>/", SignatureDetailApi.as_view(), name="api-signature-detail"),
]
