"""The signature pad in Debian's Chromium against a real server: the borrower signs on the station
screen right after a tap, and at the desk when a ready request is handed over (with Clear, the
Delete key, and a pen's or finger's pointer events as well as the mouse's)."""

import base64
import re
import uuid
from datetime import UTC, datetime
from io import BytesIO, StringIO

import httpx
import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD
from tracker import services
from tracker.choices import ReaderMode, RequestStatus
from tracker.models import LoanRequest, ReaderDevice, Signature

STATION = "counter-sign"
TAG = "04A1B2C3D4E5F7"


@pytest.fixture
def reader_key(cast, places):
    out = StringIO()
    call_command("register_reader", STATION, "--location", "FR", stdout=out, stderr=StringIO())
    return out.getvalue().strip()


@pytest.fixture
def jacket(make_media, cast):
    media = make_media("FJ-800")
    services.tag_bind(uid=TAG, media=media, actor=cast["staff"])
    return media


def log_in(page, next_path: str) -> None:
    page.goto(next_path)
    page.fill("#id_username", "staff")
    page.fill("#id_password", TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(next_path) + "$"))


def draw(page, canvas, *, start=0.15, end=0.85, wave=0.25) -> None:
    """A signature's worth of mouse strokes across the canvas, once its pad's script has set it
    up (it restyles the canvas, so a box measured before would miss it)."""
    pad = canvas.locator("xpath=ancestor::*[@data-signature-pad][1]")
    expect(pad).to_have_attribute("data-ready", "true")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * start, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    for step in range(1, 21):
        x = start + (end - start) * step / 20
        y = 0.5 + (wave if step % 2 else -wave)
        page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=3)
    page.mouse.up()


def ink_pixels(png: bytes) -> int:
    picture = Image.open(BytesIO(png)).convert("L")
    return sum(picture.histogram()[:128])


def test_the_borrower_signs_on_the_station_screen_after_the_tap(
    page, site, reader_key, jacket, cast, shoot
):
    services.station_configure(
        device=ReaderDevice.objects.get(name=STATION),
        mode=ReaderMode.CHECK_OUT,
        borrower=cast["doctor"],
    )
    log_in(page, f"/station/{STATION}/")
    expect(page.locator("#connection")).to_have_text("Live")
    read = {"event_id": str(uuid.uuid4()), "uid": TAG, "read_at": datetime.now(UTC).isoformat()}
    httpx.post(
        f"{site}/api/v1/scans/",
        json={"scans": [read]},
        headers={"Authorization": f"Api-Key {reader_key}"},
        timeout=10,
    ).raise_for_status()

    sign = page.locator("#scans tr.scan").first.get_by_role("link", name="Sign")
    expect(sign).to_be_visible()
    shoot("live-row-offers-sign")
    sign.click()

    canvas = page.locator("canvas#station-signature")
    expect(canvas).to_be_visible()
    expect(page.locator("#signed_by")).to_have_value("Doctor")
    draw(page, canvas)
    value = page.locator("input[name=signature]").input_value()
    assert value.startswith("data:image/png;base64,")
    shoot("signed")
    page.get_by_role("button", name="Save the signature").click()

    expect(page).to_have_url(re.compile(rf"/station/{STATION}/$"))
    expect(page.get_by_text("Signature saved for FJ-800.")).to_be_visible()
    signature = Signature.objects.get()
    assert bytes(signature.image) == base64.b64decode(value.split(",", 1)[1])
    assert ink_pixels(bytes(signature.image)) > 200 and services.signature_intact(signature)

    page.goto("/media/FJ-800/")
    image = page.locator(f'img[src="/signatures/{signature.event_seq}.png"]').first
    expect(image).to_be_visible()
    assert page.evaluate("(img) => img.naturalWidth", image.element_handle()) == 600
    expect(page.get_by_text("Signed by Doctor · intact").first).to_be_visible()
    shoot("item-page-shows-the-signature")


def test_the_desk_hands_over_a_ready_request_with_a_signature_cleared_and_redrawn(
    page, jacket, cast, shoot
):
    today = timezone.localdate()
    made = services.loan_request_make(
        requester=cast["doctor"],
        media=jacket,
        purpose="Clinic",
        needed_from=today,
        needed_until=today,
    )
    services.loan_request_approve(request=made, actor=cast["staff"])
    services.loan_request_ready(request=made, actor=cast["staff"])
    log_in(page, "/requests/queue/")

    page.get_by_text("The borrower signs (optional)").click()
    canvas = page.locator(f"canvas#signature-{made.pk}")
    field = page.locator(f"#signature-{made.pk} ~ input[name=signature]")
    expect(canvas).to_be_visible()

    draw(page, canvas)
    assert field.input_value().startswith("data:image/png")
    page.get_by_role("button", name="Clear").click()
    assert field.input_value() == ""

    draw(page, canvas, wave=0.1)
    canvas.focus()
    page.keyboard.press("Delete")
    assert field.input_value() == ""

    # A pen (or a finger): the same pointer events with another pointerType.
    box = canvas.bounding_box()
    points = [
        (
            box["x"] + box["width"] * (0.2 + i * 0.03),
            box["y"] + box["height"] * (0.3 + (i % 3) * 0.2),
        )
        for i in range(20)
    ]
    canvas.dispatch_event(
        "pointerdown",
        {
            "pointerType": "pen",
            "pointerId": 7,
            "button": 0,
            "isPrimary": True,
            "clientX": points[0][0],
            "clientY": points[0][1],
            "pressure": 0.6,
        },
    )
    for x, y in points[1:]:
        canvas.dispatch_event(
            "pointermove",
            {"pointerType": "pen", "pointerId": 7, "clientX": x, "clientY": y, "pressure": 0.6},
        )
    canvas.dispatch_event(
        "pointerup",
        {"pointerType": "pen", "pointerId": 7, "clientX": points[-1][0], "clientY": points[-1][1]},
    )
    assert field.input_value().startswith("data:image/png")
    shoot("pen-signature")
    page.get_by_role("button", name="Hand over (check out)").click()

    expect(page.get_by_text("FJ-800 lent to Doctor.")).to_be_visible()
    lent = LoanRequest.objects.get(pk=made.pk)
    assert lent.status == RequestStatus.FULFILLED
    signature = Signature.objects.get(event_seq=lent.loan.out_seq)
    assert ink_pixels(bytes(signature.image)) > 50 and services.signature_intact(signature)
