"""Clearing a flag by hand: the API (POST /api/v1/flags/<id>/clear/) and the page
(/flags/<id>/clear/), for the file room and admins only, with a reason kept in the ledger."""
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from tests.test_translations import chinese_catalogue, chinese_client, english_on, scene  # noqa: F401
from tracker import services
from tracker.choices import EventKind, FlagKind
from tracker.models import CustodyEvent, Flag

pytestmark = pytest.mark.django_db


@pytest.fixture
def flag(make_media, cast, places) -> Flag:
    """The doctor's loan of FJ-1, overdue and flagged by a sweep three days on."""
    services.media_check_out(
        media=make_media("FJ-1"), borrower=cast["doctor"], actor=cast["staff"],
        due_at=timezone.now() + timedelta(hours=1),
    )
    services.sweep(now=timezone.now() + timedelta(days=3), remind=False)
    return Flag.objects.get(media__code="FJ-1", kind=FlagKind.OVERDUE)


def cleared_events() -> list[CustodyEvent]:
    return list(CustodyEvent.objects.filter(kind=EventKind.FLAG_CLEARED).order_by("seq"))


def url(flag) -> str:
    return f"/api/v1/flags/{flag.pk}/clear/"


# --- the API --------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["staff", "admin"])
def test_it_clears_a_flag_for_staff_and_admins_with_the_reason_in_the_ledger(
    client_for, cast, flag, who
):
    reason = "Found on the ward, back tomorrow"
    response = client_for(who).post(url(flag), {"reason": reason}, format="json")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["media"], body["kind"], body["open"]) == (
        flag.pk, "FJ-1", "overdue", False
    )
    assert body["cleared_seq"] is not None and body["cleared_at"] is not None
    [event] = cleared_events()
    assert event.seq == body["cleared_seq"] and event.actor == cast[who]
    assert event.payload["reason"] == reason
    assert event.payload["flag_seq"] == flag.raised_seq
    # the answer is the row as the flags list shows it
    listed = client_for(who).get("/api/v1/flags/?media=FJ-1").json()["results"][0]
    assert listed == body


@pytest.mark.parametrize("who", ["auditor", "doctor", "nobody"])
def test_it_refuses_auditors_and_clinicians_with_403_in_the_error_shape(client_for, flag, who):
    response = client_for(who).post(url(flag), {"reason": "Seen it"}, format="json")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not cleared_events()
    assert client_for(None).post(url(flag), {"reason": "x"}, format="json").status_code == 401


def test_it_answers_404_for_an_unknown_flag(client_for, flag):
    response = client_for("staff").post(
        "/api/v1/flags/999999/clear/", {"reason": "x"}, format="json"
    )

    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "not_found", "message": "There is no flag 999999 that you may see.",
        "details": {"flag": 999999},
    }


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "   "}])
def test_it_needs_a_reason(client_for, flag, body):
    response = client_for("staff").post(url(flag), body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "reason" in error["details"]["fields"]
    assert not cleared_events() and Flag.objects.get(pk=flag.pk).cleared_at is None


def test_a_retry_with_the_same_event_id_clears_once(client_for, flag):
    staff = client_for("staff")
    body = {"reason": "Found on the ward", "event_id": str(uuid.uuid4())}

    first = staff.post(url(flag), body, format="json")
    again = staff.post(url(flag), body, format="json")

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(cleared_events()) == 1


def test_clearing_a_cleared_flag_answers_it_unchanged_and_records_nothing(client_for, flag):
    staff = client_for("staff")
    first = staff.post(url(flag), {"reason": "Found on the ward"}, format="json").json()

    again = staff.post(url(flag), {"reason": "Someone else found it too"}, format="json")

    assert again.status_code == 200 and again.json() == first
    [event] = cleared_events()
    assert event.payload["reason"] == "Found on the ward"


# --- the page -------------------------------------------------------------------------------------


def test_the_flags_page_links_each_open_flag_to_its_clear_page_for_staff_only(page_for, flag):
    staff = page_for("staff").get("/flags/").content.decode()
    assert f'href="/flags/{flag.pk}/clear/"' in staff and "Clear the flag on FJ-1" in staff

    auditor = page_for("auditor").get("/flags/").content.decode()
    assert "FJ-1" in auditor and f"/flags/{flag.pk}/clear/" not in auditor


@pytest.mark.parametrize(
    ("who", "status"), [("staff", 200), ("admin", 200), ("auditor", 403), ("doctor", 403)]
)
def test_only_staff_and_admins_open_the_clear_page(page_for, flag, who, status):
    assert page_for(who).get(f"/flags/{flag.pk}/clear/").status_code == status
    assert page_for(who).post(f"/flags/{flag.pk}/clear/", {"reason": "x"}).status_code in (status, 302)
    if status == 403:
        assert not cleared_events()
    assert page_for("staff").get("/flags/999999/clear/").status_code == 404
    assert page_for(None).get(f"/flags/{flag.pk}/clear/").status_code == 302  # to log in


def test_the_form_clears_the_flag_and_returns_to_the_flags(page_for, cast, flag):
    staff = page_for("staff")
    form = staff.get(f"/flags/{flag.pk}/clear/").content.decode()
    assert "FJ-1" in form and "Overdue" in form and flag.raised_at.strftime("%Y-%m-%d") in form
    assert 'name="csrfmiddlewaretoken"' in form and '<label for="clear-reason">' in form
    assert '<textarea id="clear-reason" name="reason"' in form

    page = staff.post(
        f"/flags/{flag.pk}/clear/", {"reason": "  Found in the ward's cupboard "}, follow=True
    )

    assert page.redirect_chain == [("/flags/", 302)]
    assert "FJ-1: the flag “Overdue” is cleared." in page.content.decode()
    [event] = cleared_events()
    assert (event.actor, event.media.code, event.payload["reason"]) == (
        cast["staff"], "FJ-1", "Found in the ward's cupboard",
    )
    assert Flag.objects.get(pk=flag.pk).cleared_seq == event.seq
    after = staff.get(f"/flags/{flag.pk}/clear/").content.decode()
    assert "This flag was cleared on" in after
    assert "Found in the ward&#x27;s cupboard" in after
    assert "<textarea" not in after


def test_the_form_without_a_reason_says_so_beside_the_field(page_for, flag):
    page = page_for("staff").post(f"/flags/{flag.pk}/clear/", {"reason": "   "})

    assert page.status_code == 400
    html = page.content.decode()
    assert 'aria-invalid="true" aria-describedby="clear-reason-error"' in html
    assert (
        '<p class="field-error" id="clear-reason-error"><span class="visually-hidden">Error: </span>'
        "Say why the flag on FJ-1 is cleared.</p>"
    ) in html
    assert not cleared_events()

    too_long = page_for("staff").post(f"/flags/{flag.pk}/clear/", {"reason": "x" * 301})
    assert too_long.status_code == 400
    assert "Keep the reason under 300 characters." in too_long.content.decode()
    assert "x" * 301 in too_long.content.decode()  # what was typed stays
    assert not cleared_events()


@pytest.mark.usefixtures("scene")
def test_the_clear_page_and_its_refusal_are_in_chinese():
    staff = get_user_model().objects.get(username="wangfang")
    flag = Flag.objects.get(media__code="J-2", cleared_at__isnull=True)
    browser = chinese_client(staff)

    listed = browser.get("/flags/").content.decode()
    form = browser.get(f"/flags/{flag.pk}/clear/")
    refused = browser.post(f"/flags/{flag.pk}/clear/", {"reason": ""})
    done = browser.post(f"/flags/{flag.pk}/clear/", {"reason": "已在病房找到"}, follow=True)

    assert form.status_code == 200 and refused.status_code == 400
    assert "解除 J-2 的异常标记" in listed
    assert "请说明解除 J-2 异常标记的原因。" in refused.content.decode()
    assert done.redirect_chain == [("/flags/", 302)]
    english = {
        name: found
        for name, html in (("form", form.content.decode()), ("refused", refused.content.decode()),
                           ("done", done.content.decode()))
        if (found := english_on(html))
    }
    assert not english, f"English on the Chinese pages: {english}"
    assert Flag.objects.get(pk=flag.pk).cleared_at is not None
