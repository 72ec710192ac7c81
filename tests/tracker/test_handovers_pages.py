"""The hand-over pages: "My hand-overs", the offer form, and the item's page, as each person
sees them through the Django test client."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from tests.conftest import make_user
from tests.test_translations import chinese_catalogue, chinese_client, english_on, scene  # noqa: F401
from tests.tracker.form_errors import field_error, invalid_inputs, read, value_of
from tracker import services
from tracker.choices import HandoverStatus
from tracker.models import CustodyEvent, Handover, Media

pytestmark = pytest.mark.django_db


@pytest.fixture
def lent(cast, make_media):
    item = make_media("FJ-1")
    services.media_check_out(media=item, borrower=cast["doctor"], actor=cast["staff"])
    return item


def holder_of(code: str):
    return Media.objects.get(code=code).current_holder


def test_the_borrower_offers_from_the_item_page_and_the_receiver_accepts(page_for, cast, lent):
    doctor, doctor2 = page_for("doctor"), page_for("doctor2")
    item_page = doctor.get("/media/FJ-1/").content.decode()
    assert "/handovers/new/?media=FJ-1" in item_page

    form = doctor.get("/handovers/new/?media=FJ-1").content.decode()
    assert 'value="user:doctor2"' in form and 'value="user:doctor"' not in form  # not to oneself
    assert 'value="place:ORTHO"' in form and 'value="place:COURIER"' not in form
    assert "queue_override" not in form  # skipping the queue is the file room's
    offered = doctor.post(
        "/handovers/new/", {"media": "FJ-1", "to": "user:doctor2", "note": "Ward 3"}, follow=True
    )

    html = offered.content.decode()
    assert "FJ-1 is offered to Doctor2; it stays yours until they accept." in html
    assert "Hand-over waiting for the receiver" in html  # back on the item's page
    assert holder_of("FJ-1") == cast["doctor"]
    handover = Handover.objects.get()
    mine = doctor2.get("/handovers/").content.decode()
    assert "Handed to me" in mine and "Ward 3" in mine
    assert f'action="/handovers/{handover.pk}/accept/"' in mine
    givers = doctor.get("/handovers/").content.decode()
    assert f'action="/handovers/{handover.pk}/cancel/"' in givers
    assert f'action="/handovers/{handover.pk}/accept/"' not in givers  # the giver cannot take it

    accepted = doctor2.post(
        f"/handovers/{handover.pk}/accept/", {"next": "/handovers/"}, follow=True
    )

    assert "Hand-over of FJ-1 accepted: custody has moved to Doctor2." in accepted.content.decode()
    assert holder_of("FJ-1") == cast["doctor2"]
    assert Handover.objects.get().status == HandoverStatus.ACCEPTED


def test_the_receiver_declines_with_a_reason_and_the_item_stays_put(page_for, cast, lent):
    handover = services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["doctor2"])
    doctor2 = page_for("doctor2")

    without = doctor2.post(f"/handovers/{handover.pk}/decline/", {"reason": " "}, follow=True)
    declined = doctor2.post(
        f"/handovers/{handover.pk}/decline/", {"reason": "On nights this week"}, follow=True
    )

    assert "Give a reason for declining" in without.content.decode()
    assert "Hand-over of FJ-1 declined; it stays with its borrower." in declined.content.decode()
    assert holder_of("FJ-1") == cast["doctor"]
    closed = page_for("doctor").get("/handovers/").content.decode()
    assert "Recently closed" in closed and "On nights this week" in closed


def test_a_superseded_hand_over_says_why_in_the_readers_words(page_for, cast, lent):
    services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["doctor2"])
    services.media_return(media=lent, actor=cast["staff"])

    html = page_for("doctor2").get("/handovers/").content.decode()

    assert "The item was returned before the hand-over was accepted." in html
    assert "superseded: returned" not in html


def test_refusals_come_back_as_messages_a_person_can_act_on(page_for, cast, lent, make_media):
    make_media("FJ-2")
    doctor2 = page_for("doctor2")
    count = CustodyEvent.objects.count()

    not_theirs = doctor2.get("/handovers/new/?media=FJ-1").content.decode()
    on_shelf = doctor2.get("/handovers/new/?media=FJ-2").content.decode()
    unknown = doctor2.get("/handovers/new/?media=NOPE").content.decode()
    forced = doctor2.post("/handovers/new/", {"media": "FJ-1", "to": "user:staff"}).content.decode()
    nobody = (
        page_for("doctor").post("/handovers/new/", {"media": "FJ-1", "to": ""}).content.decode()
    )

    assert "Only Doctor, who has FJ-1 on loan, or the file room can hand it on." in not_theirs
    assert "FJ-2 is not on loan, so there is nothing to hand on." in on_shelf
    assert "No media has the code NOPE." in unknown
    assert "Only Doctor, who has FJ-1 on loan, or the file room can hand it on." in forced
    assert "Choose the colleague or the place to hand the item to." in nobody
    assert CustodyEvent.objects.count() == count


def test_staff_see_every_pending_hand_over_and_may_act_for_others(page_for, cast, lent, places):
    handover = services.handover_offer(
        media=lent, actor=cast["doctor"], to_location=places["external"]
    )
    staff = page_for("staff")

    html = staff.get("/handovers/").content.decode()
    assert "City General (EXT)" in html
    assert f'action="/handovers/{handover.pk}/accept/"' in html
    form = staff.get("/handovers/new/?media=FJ-1").content.decode()
    assert 'name="queue_override"' in form

    staff.post(f"/handovers/{handover.pk}/accept/")

    lent.refresh_from_db()
    assert (lent.current_location, lent.current_holder) == (places["external"], cast["doctor"])


def test_auditors_see_hand_overs_without_buttons_and_cannot_post(page_for, cast, lent):
    handover = services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["doctor2"])
    auditor = page_for("auditor")

    html = auditor.get("/handovers/").content.decode()
    item = auditor.get("/media/FJ-1/").content.decode()

    assert "FJ-1" in html and "/accept/" not in html and "/cancel/" not in html
    assert "Hand-over waiting for the receiver" in item and "/accept/" not in item
    assert auditor.post(f"/handovers/{handover.pk}/accept/").status_code == 403
    assert auditor.get("/handovers/new/?media=FJ-1").status_code == 403
    assert Handover.objects.get().status == HandoverStatus.PENDING


def test_other_clinicians_neither_see_nor_act_on_a_hand_over(page_for, cast, lent):
    handover = services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["doctor2"])
    third = Client()
    third.force_login(make_user("doctor3", "clinician"))

    assert "FJ-1" not in third.get("/handovers/").content.decode()
    assert "Hand-over waiting" not in third.get("/media/FJ-1/").content.decode()
    assert third.post(f"/handovers/{handover.pk}/accept/").status_code == 404
    assert Handover.objects.get().status == HandoverStatus.PENDING


def test_empty_states_and_the_login_wall(page_for, cast):
    html = page_for("doctor").get("/handovers/").content.decode()

    assert "Nobody is handing you an item right now." in html
    assert "You are not handing anything on." in html
    assert page_for(None).get("/handovers/").status_code == 302
    assert page_for("nobody").get("/handovers/").status_code == 403
    assert 'href="/handovers/"' in html  # the menu link


def test_forms_need_csrf(cast, lent):
    handover = services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["doctor2"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast["doctor2"])

    assert client.post(f"/handovers/{handover.pk}/accept/").status_code == 403
    assert client.get("/handovers/").content.decode().count("csrfmiddlewaretoken") >= 2
    assert Handover.objects.get().status == HandoverStatus.PENDING


# --- a refusal beside the field it concerns -------------------------------------------------------


def test_a_refused_offer_marks_the_receiver_or_the_note_and_keeps_what_was_typed(
    page_for, cast, lent, places
):
    doctor = page_for("doctor")
    cast["doctor2"].is_active = False
    cast["doctor2"].save()
    count = CustodyEvent.objects.count()

    nobody = doctor.post("/handovers/new/", {"media": "FJ-1", "to": "", "note": "Ward 3"})
    assert nobody.status_code == 400
    html = nobody.content.decode()
    assert field_error(html, "ho-to") == "Error: Choose the colleague or the place to hand the item to."
    assert invalid_inputs(html) == ["ho-to"] and value_of(html, "ho-note") == "Ward 3"
    assert "Nothing was changed." in read(html).text["handover-error"]

    disabled = doctor.post("/handovers/new/", {"media": "FJ-1", "to": "user:doctor2", "note": "x"})
    assert "Doctor2's account is disabled." in field_error(disabled.content.decode(), "ho-to")

    long_note = doctor.post("/handovers/new/", {"media": "FJ-1", "to": "place:ORTHO", "note": "n" * 301})
    html = long_note.content.decode()
    assert "Keep the note under 300 characters." in field_error(html, "ho-note")
    assert value_of(html, "ho-to") == ["place:ORTHO"] and value_of(html, "ho-note") == "n" * 301
    assert CustodyEvent.objects.count() == count


def test_lending_past_the_queue_asks_the_file_room_for_its_reason_beside_that_field(
    page_for, cast, lent
):
    today = timezone.localdate()
    queued = services.loan_request_make(
        requester=cast["doctor2"], media=lent, needed_from=today, needed_until=today, purpose="x"
    )
    services.loan_request_approve(request=queued, actor=cast["staff"])
    third = make_user("doctor3", "clinician")

    by_staff = page_for("staff").post("/handovers/new/", {"media": "FJ-1", "to": "user:doctor3"})
    by_borrower = page_for("doctor").post("/handovers/new/", {"media": "FJ-1", "to": "user:doctor3"})

    assert by_staff.status_code == by_borrower.status_code == 409
    assert "FJ-1 is held for Doctor2" in field_error(by_staff.content.decode(), "ho-override")
    assert "FJ-1 is held for Doctor2" in field_error(by_borrower.content.decode(), "ho-to")
    assert not Handover.objects.filter(to_holder=third).exists()


def test_an_offer_for_no_item_says_so_in_the_alert(page_for, lent):
    page = page_for("doctor").post("/handovers/new/", {"media": "NOPE", "to": "user:doctor2"})

    assert page.status_code == 400
    html = page.content.decode()
    assert "No media has the code NOPE." in read(html).text["handover-error"]
    assert read(html).attrs["handover-error"]["role"] == "alert" and invalid_inputs(html) == []


def test_a_decline_without_a_reason_is_marked_on_its_row(page_for, cast, lent):
    handover = services.handover_offer(media=lent, actor=cast["doctor"], to_holder=cast["doctor2"])

    page = page_for("doctor2").post(
        f"/handovers/{handover.pk}/decline/", {"reason": "  ", "next": "/media/FJ-1/"}
    )

    assert page.status_code == 400
    html = page.content.decode()
    assert "Give a reason for declining" in field_error(html, f"decline-{handover.pk}")
    assert invalid_inputs(html) == [f"decline-{handover.pk}"]
    assert read(html).attrs["handover-error"]["role"] == "alert"
    assert Handover.objects.get().status == HandoverStatus.PENDING
    too_long = page_for("doctor2").post(f"/handovers/{handover.pk}/decline/", {"reason": "r" * 301})
    assert value_of(too_long.content.decode(), f"decline-{handover.pk}") == "r" * 301


@pytest.mark.usefixtures("scene")
def test_refusals_beside_their_fields_are_in_chinese():
    doctor = chinese_client(get_user_model().objects.get(username="lidoc"))
    doctor2 = chinese_client(get_user_model().objects.get(username="chendoc"))
    pending = Handover.objects.get(status=HandoverStatus.PENDING)
    services.handover_cancel(handover=pending, actor=pending.offered_by)

    offered = doctor.post("/handovers/new/", {"media": "J-2", "to": ""}).content.decode()
    services.handover_offer(media=pending.media, actor=pending.offered_by, to_holder=pending.to_holder)
    again = Handover.objects.get(status=HandoverStatus.PENDING)
    declined = doctor2.post(f"/handovers/{again.pk}/decline/", {"reason": " "}).content.decode()

    assert field_error(offered, "ho-to") and field_error(declined, f"decline-{again.pk}")
    english = {name: found for name, html in (("offer", offered), ("decline", declined))
               if (found := english_on(html))}
    assert not english, f"English on the Chinese pages: {english}"
