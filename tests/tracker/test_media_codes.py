"""A media code is the item's name in every address (/media/CODE/, the API, the QR on its label):
codes that could not be such a name are refused with a clear error, and nothing is recorded."""
import pytest
from django.urls import reverse

from tracker import services
from tracker.choices import MediaKind
from tracker.exceptions import InvalidRequest
from tracker.models import CustodyEvent, Media

REFUSED = [
    ("new", "kept for the site's own pages"),
    ("NEW", "kept for the site's own pages"),
    ("A/B", "slash"),
    ("A\\B", "slash"),
    ("..", "slash"),
    (".", "slash"),
    ("J-\x001", "control character"),
    ("J-\t1", "control character"),
    ("X" * 33, "at most 32 characters"),
]


@pytest.mark.parametrize("code, why", REFUSED)
def test_a_code_that_cannot_name_an_address_is_refused_and_nothing_is_recorded(cast, places, code, why):
    before = CustodyEvent.objects.count()
    with pytest.raises(InvalidRequest, match=why):
        services.media_register(
            code=code, kind=MediaKind.FILM_JACKET, home_location=places["shelf"], actor=cast["staff"]
        )
    assert CustodyEvent.objects.count() == before
    assert not Media.objects.exists()


@pytest.mark.parametrize("code", ["J-000123", "new-1", "renew", "光盘 7", "CD.2026.11", "X" * 32])
def test_ordinary_codes_are_registered_and_their_page_opens(cast, places, client_for, code):
    media = services.media_register(
        code=code, kind=MediaKind.CD, home_location=places["shelf"], actor=cast["staff"]
    )
    page = client_for("staff").get(reverse("media-detail", args=[media.code]))
    assert page.status_code == 200
    assert media.code in page.content.decode()


def test_the_api_answers_a_reserved_code_with_the_error_shape(client_for, places):
    answer = client_for("staff").post(
        "/api/v1/media/", {"code": "new", "kind": MediaKind.FILM_JACKET, "home_location": "FR-A1"},
        format="json",
    )
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "invalid"
    assert "new" in answer.json()["error"]["message"]
    assert not Media.objects.exists()
