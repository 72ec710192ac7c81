"""Pages: the image of a signature drawn at a check-out or return, and signing at a station.

The image is personal data: staff and auditors see every one, a clinician only those on their
own loans; nobody else learns whether one exists."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import path

from .. import services
from ..models import Signature
from ..permissions import roles_of
from . import station_sign


@login_required
def signature_image(request, event_seq: int):
    if not roles_of(request.user):
        raise PermissionDenied
    signature = Signature.objects.filter(event_seq=event_seq).first()
    if signature is None or not services.signature_visible_to(request.user, event_seq):
        raise Http404
    response = HttpResponse(bytes(signature.image), content_type="image/png")
    response["Content-Disposition"] = f'inline; filename="signature-{event_seq}.png"'
    response["Cache-Control"] = "private, max-age=300"
    response["X-Content-Type-Options"] = "nosniff"
    return response


# Mounted at the site root through tracker/views/loan_requests.py.
urlpatterns: list = [
    path("signatures/<int:event_seq>.png", signature_image, name="signature-image"),
    path("station/<str:name>/sign/<int:scan_id>/", station_sign, name="station-sign"),
]
