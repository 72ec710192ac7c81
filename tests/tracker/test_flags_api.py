"""Flags, reminders and the dashboard through the API and the pages, with the role rules."""
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from tracker import services
from tracker.choices import FlagKind
from tracker.models import CustodyEvent, Reminder


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


def codes(response) -> list[str]:
    return sorted(row["media"] for row in response.json()["results"])


def test_staff_auditors_and_admins_see_every_flag_and_filter_them(client_for, flagged):
    for who in ("staff", "auditor", "admin"):
        response = client_for(who).get("/api/v1/flags/")
        assert response.status_code == 200 and codes(response) == ["CD-1", "FJ-1", "FJ-2"]
    staff = client_for("staff")
    assert codes(staff.get("/api/v1/flags/?kind=overdue")) == ["FJ-1", "FJ-2"]
    assert codes(staff.get("/api/v1/flags/?kind=in_transit&open=true")) == ["CD-1"]
    assert codes(staff.get("/api/v1/flags/?open=false")) == []
    row = staff.get("/api/v1/flags/?media=FJ-2").json()["results"][0]
    assert (row["kind"], row["open"], row["borrower"], row["loan"]) == (
        FlagKind.OVERDUE, True, "doctor2", flagged["FJ-2"].pk
    )


def test_a_clinician_sees_only_the_flags_on_their_own_loans(client_for, flagged):
    assert codes(client_for("doctor").get("/api/v1/flags/")) == ["FJ-1"]
    assert codes(client_for("doctor2").get("/api/v1/flags/")) == ["FJ-2"]


def test_without_login_401_and_without_a_role_403(client_for, flagged):
    for url in ("/api/v1/flags/", "/api/v1/dashboard/", "/api/v1/reminders/"):
        assert client_for(None).get(url).status_code == 401
        assert client_for("nobody").get(url).status_code == 403
    loan = flagged["FJ-1"].pk
    assert client_for(None).post(f"/api/v1/loans/{loan}/remind/").status_code == 401


def test_the_dashboard_counts_for_staff_only(client_for, flagged):
    response = client_for("staff").get("/api/v1/dashboard/")
    assert response.status_code == 200
    counts = response.json()
    assert counts["flags"] == {"overdue": 2, "in_transit": 1, "not_seen": 0, "inventory_missing": 0}
    assert (counts["open_flags"], counts["loans_out"], counts["in_transit"]) == (3, 2, 1)
    assert counts["loans_overdue"] == 0  # judged now: the loans fall due in an hour
    assert client_for("auditor").get("/api/v1/dashboard/").status_code == 200
    assert client_for("doctor").get("/api/v1/dashboard/").status_code == 403


def test_staff_send_a_reminder_and_others_may_not(client_for, flagged):
    loan = flagged["FJ-1"]
    for who in ("doctor", "auditor"):
        assert client_for(who).post(f"/api/v1/loans/{loan.pk}/remind/").status_code == 403
    assert not mail.outbox
    response = client_for("staff").post(f"/api/v1/loans/{loan.pk}/remind/", format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["media"], body["sent_to"], body["sent_by"], body["automatic"]) == (
        "FJ-1", "doctor@hospital.example", "staff", False
    )
    assert mail.outbox[0].to == ["doctor@hospital.example"]
    assert CustodyEvent.objects.get(seq=body["seq"]).actor.username == "staff"
    listed = client_for("doctor").get("/api/v1/reminders/").json()["results"]
    assert [r["media"] for r in listed] == ["FJ-1"]
    assert client_for("doctor2").get("/api/v1/reminders/").json()["results"] == []


def test_a_reminder_to_a_borrower_without_address_is_refused_in_words(client_for, flagged):
    response = client_for("staff").post(f"/api/v1/loans/{flagged['FJ-2'].pk}/remind/")
    assert response.status_code == 400
    assert "doctor2 has no e-mail address" in response.json()["error"]["message"]
    assert client_for("staff").post("/api/v1/loans/999999/remind/").status_code == 404
    assert not Reminder.objects.exists()
