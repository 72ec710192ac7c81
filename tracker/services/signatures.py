"""Signatures drawn on the page at a check-out or a return, bound into the ledger by their SHA-256.

Two ways in:
- with the action itself: media_check_out / media_return take `signature` (PNG bytes); the
  event's payload then carries {"signature": sha256} and the image is stored in the same
  transaction;
- after a station read (the borrower signs on the tablet after the tap): `signature_add` appends
  one `signature_added` event for the signed event's item, payload {"event": seq, "signature":
  sha256}.
Either way the image lives in a Signature row keyed by the signed event's seq (one per event), and
`signature_intact` compares it with the hash the ledger holds (the chain vouches for that hash).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from io import BytesIO

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _
from PIL import Image, ImageChops, UnidentifiedImageError

from .. import ledger
from ..choices import EventKind
from ..exceptions import Conflict, InvalidRequest, NotAllowed, UnknownObject
from ..ledger import EventRequest
from ..models import CustodyEvent, Loan, Media, Signature
from ..permissions import READ_ALL_ROLES, STAFF_ROLES, has_role
from .custody import User, _record

__all__ = [
    "SignatureCheck",
    "signature_add",
    "signature_checks",
    "signature_from_data_url",
    "signature_intact",
    "signature_visible_to",
]

# What a drawn signature may be: a PNG of at most this many bytes and pixels.
MAX_BYTES = 200_000
MAX_WIDTH, MAX_HEIGHT = 2000, 1000
# Fewer pixels than this differing from the background is a blank pad (or a stray tap).
MIN_INK_PIXELS = 20
# How far (0-255, per channel) a pixel must differ from the background to count as ink.
INK_THRESHOLD = 40
DATA_URL_PREFIX = "data:image/png;base64,"
SIGNABLE_KINDS = (EventKind.CHECKED_OUT, EventKind.RETURNED)
SIGNED_BY_MAX = Signature._meta.get_field("signed_by").max_length


def signature_digest(image: bytes) -> str:
    """The SHA-256 the ledger records for a signature image (hex)."""
    return hashlib.sha256(bytes(image)).hexdigest()


def signature_from_data_url(text: str) -> bytes:
    """The PNG bytes of a data URL as a signature pad posts it ("data:image/png;base64,...")."""
    text = (text or "").strip()
    if not text.startswith(DATA_URL_PREFIX):
        raise InvalidRequest(
            _("A signature is sent as a PNG data URL (data:image/png;base64,...); this is not one.")
        )
    encoded = text[len(DATA_URL_PREFIX) :]
    if len(encoded) > (MAX_BYTES * 4) // 3 + 4:
        raise InvalidRequest(_too_big(len(encoded) * 3 // 4))
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(_("The signature's data URL is not valid base64.")) from None


def _too_big(size: int) -> str:
    return _(
        "The signature image is %(size)d kB; at most %(limit)d kB is accepted. Clear the pad and "
        "sign again."
    ) % {"size": size // 1000, "limit": MAX_BYTES // 1000}


def signature_check(image: bytes) -> None:
    """Refuse (InvalidRequest) anything but a real, non-blank PNG within the size limits."""
    if not image:
        raise InvalidRequest(_("The signature is empty: sign on the pad, or leave it out."))
    if len(image) > MAX_BYTES:
        raise InvalidRequest(_too_big(len(image)))
    try:
        # Only the PNG decoder is tried, and the header's size is checked before any pixel is
        # decoded, so a hostile file cannot make the server inflate a huge image.
        with Image.open(BytesIO(image), formats=["PNG"]) as probe:
            width, height = probe.size
            probe.verify()  # chunk checksums
        if width > MAX_WIDTH or height > MAX_HEIGHT:
            raise InvalidRequest(
                _("The signature is %(w)d×%(h)d pixels; at most %(mw)d×%(mh)d is accepted.")
                % {"w": width, "h": height, "mw": MAX_WIDTH, "mh": MAX_HEIGHT}
            )
        with Image.open(BytesIO(image), formats=["PNG"]) as picture:
            picture.load()
            ink = _ink_pixels(picture)
    except InvalidRequest:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidRequest(_("The signature is not a readable PNG image.")) from None
    if ink < MIN_INK_PIXELS:
        raise InvalidRequest(
            _("The signature pad is blank: sign on it, or leave the signature out.")
        )


def _ink_pixels(picture: Image.Image) -> int:
    """Pixels that differ from the background (the commonest colour, transparency seen on white)."""
    rgba = picture.convert("RGBA")
    flat = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert(
        "RGB"
    )
    colours = flat.getcolors(maxcolors=flat.width * flat.height)
    background = max(colours)[1]
    difference = ImageChops.difference(flat, Image.new("RGB", flat.size, background))
    channel_max = ImageChops.lighter(
        ImageChops.lighter(difference.getchannel(0), difference.getchannel(1)),
        difference.getchannel(2),
    )
    return sum(channel_max.histogram()[INK_THRESHOLD + 1 :])


def signature_keep(*, event_seq: int, image: bytes, signed_by: str = "") -> Signature:
    """Store the image signing event `event_seq`, whose hash the ledger has just recorded (in the
    caller's transaction)."""
    try:
        with transaction.atomic():
            return Signature.objects.create(
                event_seq=event_seq,
                sha256=signature_digest(image),
                image=bytes(image),
                signed_by=(signed_by or "").strip()[:SIGNED_BY_MAX],
            )
    except IntegrityError as exc:  # one signature per event, should a check above be bypassed
        raise Conflict(_("This event is already signed; a signature cannot be replaced.")) from exc


def _signed_by_checked(signed_by: str) -> str:
    signed_by = (signed_by or "").strip()
    if len(signed_by) > SIGNED_BY_MAX:
        raise InvalidRequest(
            _("Keep the signer's name under %(n)d characters.") % {"n": SIGNED_BY_MAX}
        )
    return signed_by


@transaction.atomic
def signature_add(
    *, event_seq: int, image: bytes, actor: User, signed_by: str = "", event_id=None
) -> Signature:
    """Store a signature drawn after the check-out or return it signs (staff): one
    `signature_added` event binding the image's SHA-256 into the ledger."""
    signed = CustodyEvent.objects.filter(seq=event_seq).first()
    digest = signature_digest(image or b"")
    request = EventRequest(
        EventKind.SIGNATURE_ADDED,
        media=Media(pk=signed.media_id) if signed and signed.media_id else None,
        actor=actor,
        event_id=event_id,
        asked={"event": event_seq, "signature": digest},
    )
    if ledger.replayed(request):
        return Signature.objects.get(event_seq=event_seq)
    if not has_role(actor, STAFF_ROLES):
        raise NotAllowed(_("Only the file room can add a signature to a check-out or return."))
    if signed is None:
        raise UnknownObject(
            _("There is no ledger event %(seq)s.") % {"seq": event_seq}, event=event_seq
        )
    if signed.kind not in SIGNABLE_KINDS:
        raise InvalidRequest(
            _("Only a check-out or a return can be signed; event %(seq)s is “%(kind)s”.")
            % {"seq": event_seq, "kind": signed.get_kind_display()},
            event=event_seq,
        )
    if Signature.objects.filter(event_seq=event_seq).exists():
        raise Conflict(
            _("Event %(seq)s is already signed; a signature cannot be replaced.")
            % {"seq": event_seq},
            event=event_seq,
        )
    signed_by = _signed_by_checked(signed_by)
    signature_check(image)
    _record(request, payload={"event": event_seq, "signature": digest})
    return signature_keep(event_seq=event_seq, image=image, signed_by=signed_by)


# --- read side: is it intact, who may see it ----------------------------------------------------


def _ledger_digests(seqs) -> dict[int, str]:
    """The SHA-256 the ledger holds for the signature of each signed event: in the signed event's
    own payload, or in the first signature_added event naming it."""
    seqs = list(seqs)
    found: dict[int, str] = {}
    for event in CustodyEvent.objects.filter(
        kind=EventKind.SIGNATURE_ADDED, payload__event__in=seqs
    ).order_by("-seq"):
        found[event.payload["event"]] = event.payload.get("signature")
    for seq, payload in CustodyEvent.objects.filter(seq__in=seqs).values_list("seq", "payload"):
        if payload and payload.get("signature"):
            found[seq] = payload["signature"]
    return found


def _intact(signature: Signature, ledger_digest: str | None) -> bool:
    digest = signature_digest(signature.image)
    return ledger_digest is not None and digest == ledger_digest == signature.sha256


def signature_intact(signature: Signature) -> bool:
    """Whether the stored image is exactly the one whose SHA-256 the ledger recorded."""
    return _intact(signature, _ledger_digests([signature.event_seq]).get(signature.event_seq))


@dataclass(frozen=True)
class SignatureCheck:
    signature: Signature
    intact: bool

    @property
    def event_seq(self) -> int:
        return self.signature.event_seq


def signature_checks(seqs) -> dict[int, SignatureCheck]:
    """The signatures of these events (those that have one), each checked against the ledger."""
    signatures = list(Signature.objects.filter(event_seq__in=list(seqs)))
    digests = _ledger_digests(s.event_seq for s in signatures)
    return {
        s.event_seq: SignatureCheck(s, _intact(s, digests.get(s.event_seq))) for s in signatures
    }


def signature_visible_to(user, event_seq: int) -> bool:
    """Staff and auditors see every signature; a clinician only those on their own loans."""
    if has_role(user, READ_ALL_ROLES):
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    own = Loan.objects.filter(borrower=user)
    return own.filter(out_seq=event_seq).exists() or own.filter(returned_seq=event_seq).exists()
