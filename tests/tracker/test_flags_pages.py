"""The flags page, the dashboard and the reminder button, with the role rules."""
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.utils import timezone

from tracker import services


@pytest.fixture(autouse=True)
def _mail(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


@pytest.fixture
def flagged(make_media, cast, places):
    """Two overdue loans (the doctor's FJ-1, doctor2's FJ-2) and a disc stuck with the courier,
    all flagged by a sweep two days on."""
    cast["doctor"].email = "doctor@hospital.example"
    cast["doctor"].save()
    due = timezone.now() + timedelta(hours=1)
    loans = {}
    for code, who in (("FJ-1", "doctor"), ("FJ-2", "doctor2")):
        loans[code] = services.media_check_out(
            media=make_media(code), borrower=cast[who], actor=cast["staff"], due_at=due
        )
    services.media_transfer(media=make_media("CD-1"), to_location=places["courier"], actor=cast["staff"])
    services.sweep(now=timezone.now() + timedelta(days=3), remind=False)
    return loans


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_flags_page_and_dashboard_for_staff(cast, flagged):
    client = page_client(cast["staff"])
    page = client.get("/flags/?kind=overdue")
    assert page.status_code == 200
    text = page.content.decode()
    assert "FJ-1" in text and "FJ-2" in text and "CD-1" not in text
    assert "Send reminder" in text
    dashboard = client.get("/dashboard/").content.decode()
    assert 'data-count="overdue">2<' in dashboard and 'data-count="in_transit">1<' in dashboard


def test_the_auditor_reads_the_pages_but_sends_nothing(cast, flagged):
    client = page_client(cast["auditor"])
    assert "Send reminder" not in client.get("/flags/").content.decode()
    assert client.post(f"/loans/{flagged['FJ-1'].pk}/remind/").status_code == 403
    assert not mail.outbox


def test_clinicians_and_strangers_are_kept_off_the_pages(cast, flagged):
    assert page_client(cast["doctor"]).get("/flags/").status_code == 403
    assert page_client(cast["doctor"]).get("/dashboard/").status_code == 403
    assert Client().get("/flags/").status_code == 302  # to the login page


def test_the_reminder_button_sends_and_says_so(cast, flagged):
    client = page_client(cast["staff"])
    response = client.post(
        f"/loans/{flagged['FJ-1'].pk}/remind/", {"next": "/flags/?kind=overdue"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/flags/?kind=overdue"
    assert "Reminder about FJ-1 sent to doctor@hospital.example." in response.content.decode()
    assert len(mail.outbox) == 1
    response = client.post(f"/loans/{flagged['FJ-2'].pk}/remind/", follow=True)
    assert "doctor2 has no e-mail address" in response.content.decode()
    assert len(mail.outbox) == 1


def test_a_refusal_is_announced_as_an_alert_and_a_success_as_a_status(cast, flagged):
    """Screen readers interrupt for role="alert" and wait for role="status"."""
    client = page_client(cast["staff"])
    refused = client.post(f"/loans/{flagged['FJ-2'].pk}/remind/", follow=True).content.decode()
    alert = refused[refused.index('role="alert"'):]
    assert alert.index("doctor2 has no e-mail address") < alert.index("</div>")
    sent = client.post(f"/loans/{flagged['FJ-1'].pk}/remind/", follow=True).content.decode()
    status = sent[sent.index('role="status"'):]
    assert status.index("Reminder about FJ-1 sent") < status.index("</div>")
    assert 'role="alert"' not in sent
