"""Signatures on the pages: signing at the station after a tap, lending at the desk with a
signature, the "signed" mark on the item's page, and who may see the image."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.tracker.signature_images import blank, data_url, drawn
from tracker import services
from tracker.choices import EventKind, ReaderMode, RequestStatus
from tracker.models import CustodyEvent, LoanRequest, ReaderDevice, ScanRecord, Signature

pytestmark = pytest.mark.django_db

TAG = "04A1B2C3D4E5F6"


@pytest.fixture
def device(places, cast):
    call_command(
        "register_reader", "counter-1", "--location", "FR", stdout=StringIO(), stderr=StringIO()
    )
    device = ReaderDevice.objects.get(name="counter-1")
    return services.station_configure(
        device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"]
    )


@pytest.fixture
def jacket(make_media, cast):
    media = make_media("FJ-300")
    services.tag_bind(uid=TAG, media=media, actor=cast["staff"])
    return media


@pytest.fixture
def tapped(device, jacket, page_for):
    """A check-out tapped at the station (typed in, as a wedge reader does): its scan as sent."""
    scan = page_for("staff").post("/station/counter-1/scan/", {"uid": TAG}).json()["scan"]
    assert scan["outcome"] == "ok", scan
    return scan


def nothing_inline(html: str) -> bool:
    """Every <script> loads a file, and no style or event handler sits in the markup (the pages
    run under a strict Content-Security-Policy)."""
    scripts = re.findall(r"<script\b[^>]*>", html)
    return (
        bool(scripts)
        and all("src=" in tag for tag in scripts)
        and not re.search(r"\sstyle\s*=|<style\b|<[^>]+\son[a-z]+\s*=", html)
    )


def test_a_check_out_at_the_station_offers_sign_and_the_pad_page_loads_its_script(page_for, tapped):
    staff = page_for("staff")
    assert tapped["sign_url"] == f"/station/counter-1/sign/{tapped['id']}/"
    assert 'class="sign"' in staff.get("/station/counter-1/").content.decode()

    html = staff.get(tapped["sign_url"]).content.decode()

    assert "<canvas" in html and 'name="signature"' in html and 'value="Doctor"' in html
    assert "/static/js/signature-pad.js" in html and nothing_inline(html)
    assert 'aria-labelledby="station-signature-label"' in html


def test_the_borrower_signs_after_the_tap_and_the_station_stops_offering_it(page_for, tapped, cast):
    staff = page_for("staff")
    image = drawn()

    response = staff.post(
        tapped["sign_url"], {"signature": data_url(image), "signed_by": "Dana Osei"}
    )

    assert response.status_code == 302 and response["Location"] == "/station/counter-1/"
    scan = ScanRecord.objects.get(pk=tapped["id"])
    signature = Signature.objects.get(event_seq=scan.event_seq)
    assert (bytes(signature.image), signature.signed_by) == (image, "Dana Osei")
    added = CustodyEvent.objects.latest("seq")
    assert (added.kind, added.actor) == (EventKind.SIGNATURE_ADDED, cast["staff"])
    assert 'class="sign"' not in staff.get("/station/counter-1/").content.decode()
    chain = staff.get("/media/FJ-300/").content.decode()
    assert f"for event {scan.event_seq}" in chain and "Signed by Dana Osei" in chain
    again = staff.post(tapped["sign_url"], {"signature": data_url(drawn(seed=2))})
    assert again.status_code == 409 and "already signed" in again.content.decode()


def test_a_blank_pad_is_refused_and_may_be_signed_again(page_for, tapped):
    staff = page_for("staff")
    before = CustodyEvent.objects.count()

    refused = staff.post(tapped["sign_url"], {"signature": data_url(blank()), "signed_by": "Dana"})

    html = refused.content.decode()
    assert (
        refused.status_code == 400
        and "blank" in html
        and "<canvas" in html
        and 'value="Dana"' in html
    )
    assert CustodyEvent.objects.count() == before
    nothing = staff.post(tapped["sign_url"], {"signature": ""})
    assert nothing.status_code == 400 and "PNG data URL" in nothing.content.decode()


def test_only_a_recent_check_out_or_check_in_that_was_not_undone_can_be_signed(
    page_for, device, tapped, cast
):
    staff = page_for("staff")
    services.station_configure(device=device, mode=ReaderMode.LOCATE)
    located = staff.post("/station/counter-1/scan/", {"uid": "04:A1:B2:C3:D4:E5:F6"}).json()["scan"]
    assert located["sign_url"] is None
    assert staff.get(f"/station/counter-1/sign/{located['id']}/").status_code == 409

    ScanRecord.objects.filter(pk=tapped["id"]).update(
        received_at=timezone.now() - timedelta(minutes=8)
    )
    late = staff.post(tapped["sign_url"], {"signature": data_url(drawn())})
    assert late.status_code == 409 and "no longer be signed" in late.content.decode()
    assert not Signature.objects.exists()


def test_an_undone_check_out_cannot_be_signed(page_for, tapped):
    staff = page_for("staff")
    assert staff.post("/station/counter-1/undo/", {"scan": tapped["id"]}).status_code == 200

    assert staff.post(tapped["sign_url"], {"signature": data_url(drawn())}).status_code == 409
    assert not Signature.objects.exists()


def test_a_check_in_is_signed_by_whoever_brings_it_back(page_for, device, tapped):
    staff = page_for("staff")
    services.station_configure(device=device, mode=ReaderMode.CHECK_IN)
    back = staff.post("/station/counter-1/scan/", {"uid": TAG}).json()["scan"]

    assert back["sign_url"]
    assert 'value=""' in staff.get(back["sign_url"]).content.decode()  # nobody named: type it
    assert (
        staff.post(
            back["sign_url"], {"signature": data_url(drawn()), "signed_by": "Porter"}
        ).status_code
        == 302
    )
    assert (
        Signature.objects.get(event_seq=ScanRecord.objects.get(pk=back["id"]).event_seq).signed_by
        == "Porter"
    )


@pytest.mark.parametrize("who, status", [("doctor", 403), ("auditor", 403), (None, 302)])
def test_only_the_file_room_signs_at_a_station(page_for, tapped, who, status):
    assert (
        page_for(who).post(tapped["sign_url"], {"signature": data_url(drawn())}).status_code
        == status
    )
    assert not Signature.objects.exists()


# --- lending at the desk ------------------------------------------------------------------------


@pytest.fixture
def ready(cast, jacket):
    today = timezone.localdate()
    made = services.loan_request_make(
        requester=cast["doctor"],
        media=jacket,
        purpose="Clinic",
        needed_from=today,
        needed_until=today,
    )
    services.loan_request_approve(request=made, actor=cast["staff"])
    return services.loan_request_ready(request=made, actor=cast["staff"])


def test_the_desk_lends_a_ready_request_with_the_requesters_signature(page_for, ready):
    staff = page_for("staff")
    queue = staff.get("/requests/queue/").content.decode()
    assert f'id="signature-{ready.pk}"' in queue and nothing_inline(queue)

    response = staff.post(
        f"/requests/{ready.pk}/check-out/", {"signature": data_url(drawn())}, follow=True
    )

    lent = LoanRequest.objects.get(pk=ready.pk)
    assert lent.status == RequestStatus.FULFILLED, response.content.decode()
    signature = Signature.objects.get(event_seq=lent.loan.out_seq)
    assert signature.signed_by == "Doctor" and services.signature_intact(signature)


def test_the_desk_lends_without_a_signature_when_none_is_drawn_and_refuses_a_broken_one(
    page_for, ready
):
    staff = page_for("staff")

    broken = staff.post(
        f"/requests/{ready.pk}/check-out/", {"signature": "data:image/png;base64,!!"}, follow=True
    )
    assert "not valid base64" in broken.content.decode()
    assert LoanRequest.objects.get(pk=ready.pk).status == RequestStatus.READY

    staff.post(f"/requests/{ready.pk}/check-out/", {"signature": ""})
    assert LoanRequest.objects.get(pk=ready.pk).status == RequestStatus.FULFILLED
    assert not Signature.objects.exists()


# --- the item's page and the image ----------------------------------------------------------------


@pytest.fixture
def signed_loan(cast, jacket):
    return services.media_check_out(
        media=jacket, borrower=cast["doctor"], actor=cast["staff"], signature=drawn()
    )


def test_the_custody_chain_marks_a_signed_event_with_its_image_and_that_it_is_intact(
    page_for, signed_loan
):
    html = page_for("auditor").get("/media/FJ-300/").content.decode()

    assert f'src="/signatures/{signed_loan.out_seq}.png"' in html
    assert "Signed by Doctor" in html and "intact" in html and "altered" not in html


def test_a_clinician_sees_the_signature_on_their_own_loan(page_for, signed_loan):
    html = page_for("doctor").get("/media/FJ-300/").content.decode()
    assert f'src="/signatures/{signed_loan.out_seq}.png"' in html

    assert (
        f"/signatures/{signed_loan.out_seq}.png"
        not in page_for("doctor2").get("/media/FJ-300/").content.decode()
    )


def test_an_altered_image_is_flagged_on_the_page(page_for, signed_loan):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE tracker_signature SET image = %s", [drawn(seed=9)])

    assert (
        "altered: the image no longer matches the ledger"
        in page_for("staff").get("/media/FJ-300/").content.decode()
    )


@pytest.mark.parametrize(
    "who, status",
    [
        ("staff", 200),
        ("auditor", 200),
        ("admin", 200),
        ("doctor", 200),
        ("doctor2", 404),
        ("nobody", 403),
    ],
)
def test_the_image_is_served_to_staff_auditors_and_the_borrower_only(
    page_for, signed_loan, who, status
):
    response = page_for(who).get(f"/signatures/{signed_loan.out_seq}.png")

    assert response.status_code == status
    if status == 200:
        assert response["Content-Type"] == "image/png"
        assert response.content == bytes(Signature.objects.get().image)
        assert "private" in response["Cache-Control"]


def test_the_image_needs_a_login_and_an_unsigned_event_has_none(page_for, signed_loan):
    assert page_for(None).get(f"/signatures/{signed_loan.out_seq}.png").status_code == 302
    assert page_for("staff").get(f"/signatures/{signed_loan.out_seq + 100}.png").status_code == 404
