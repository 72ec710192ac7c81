"""The pages: logging in (and being locked out), finding media, and an item's custody chain."""
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from archive.models import Patient
from tests.conftest import TEST_PASSWORD
from tracker import services
from tracker.views import server_error

pytestmark = pytest.mark.django_db


def log_in(client: Client, username: str, password: str):
    return client.post("/login/", {"username": username, "password": password})


# --- logging in ------------------------------------------------------------------------------


def test_it_shows_the_login_form():
    response = Client().get("/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html and 'name="password"' in html
    assert "Log in" in html


def test_it_lands_on_the_dashboard_with_its_search_box_after_logging_in(cast):
    client = Client()

    response = client.post(
        "/login/", {"username": "doctor", "password": TEST_PASSWORD}, follow=True
    )

    assert response.redirect_chain[-1][0] == "/home/"
    assert "tracker/home/home.html" in [t.name for t in response.templates]
    assert 'type="search"' in response.content.decode()
    assert response.context["user"].username == "doctor"


def test_it_returns_to_the_page_asked_for_after_logging_in(cast, make_media):
    make_media("J-100")
    client = Client()

    first = client.get("/media/J-100/")
    response = client.post(first["Location"], {"username": "staff", "password": TEST_PASSWORD})

    assert first.status_code == 302 and first["Location"].startswith("/login/?next=")
    assert response["Location"] == "/media/J-100/"


def test_it_says_so_when_the_password_is_wrong(cast):
    response = log_in(Client(), "doctor", "not the password")

    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert "_auth_user_id" not in response.wsgi_request.session


def test_it_locks_an_account_out_after_five_wrong_passwords(cast):
    client = Client()
    attempts = [log_in(client, "doctor", f"guess {n}") for n in range(settings.AXES_FAILURE_LIMIT)]

    right_password = log_in(client, "doctor", TEST_PASSWORD)

    # The first four failures show the form again; the fifth trips the lock (django-axes).
    assert [r.status_code for r in attempts] == [200, 200, 200, 200, 429]
    assert right_password.status_code == 429
    assert "too many login attempts" in right_password.content.decode().lower()
    assert "_auth_user_id" not in client.session
    assert Client().get("/", follow=True).redirect_chain[-1][0].startswith("/login/")


def test_it_has_a_lockout_page_of_its_own_for_axes_to_show(cast, settings):
    # django-axes shows its own plain English text unless AXES_LOCKOUT_TEMPLATE names a page.
    settings.AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "doctor", f"guess {n}")

    response = log_in(client, "doctor", TEST_PASSWORD)

    html = response.content.decode()
    assert response.status_code == 429
    assert "Too many login attempts: after 5 wrong passwords" in html
    assert "ask an administrator" in html
    assert '<html lang="en">' in html


def test_it_locks_out_only_the_account_that_was_guessed(cast):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, "doctor", f"guess {n}")

    response = log_in(client, "staff", TEST_PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == "/home/"


def test_it_forgets_earlier_failures_after_a_successful_login(cast):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "doctor", f"guess {n}")
    assert log_in(client, "doctor", TEST_PASSWORD).status_code == 302
    client.post("/logout/")

    # AXES_RESET_ON_SUCCESS: four more failures do not lock the account.
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "doctor", f"again {n}").status_code == 200
    assert log_in(client, "doctor", TEST_PASSWORD).status_code == 302


# --- sessions end when idle ------------------------------------------------------------------


def test_it_ends_sessions_after_half_an_hour_idle():
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True


def test_it_pushes_the_idle_expiry_forward_on_every_request(page_for):
    client = page_for("doctor")
    session = Session.objects.get(session_key=client.session.session_key)
    Session.objects.filter(pk=session.pk).update(expire_date=timezone.now() + timedelta(minutes=1))

    assert client.get("/").status_code == 200

    renewed = Session.objects.get(pk=session.pk).expire_date
    assert renewed > timezone.now() + timedelta(seconds=settings.SESSION_COOKIE_AGE - 60)


def test_it_logs_out_a_session_that_sat_idle_too_long(page_for):
    client = page_for("doctor")
    assert client.get("/").status_code == 200
    key = client.session.session_key
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )

    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


# --- anonymous visitors ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/?q=J-1", "/media/J-1/"])
def test_it_sends_anonymous_visitors_to_the_login_page(db, path):
    response = Client().get(path)

    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


# --- finding media ---------------------------------------------------------------------------


@pytest.fixture
def shelf(cast, make_media):
    patient = Patient.objects.create(patient_id="MRN-4711", name="Ada Lovelace")
    jacket = make_media("J-4711", patient=patient)
    services.tag_bind(uid="04A1B2C3D4E5F6", media=jacket, actor=cast["staff"])
    make_media("J-0815")
    make_media("CD-0001")
    return jacket


def found(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'href="/media/([^/"]+)/"', response.content.decode())


@pytest.mark.parametrize(
    "query",
    ["J-4711", "j-4711", "MRN-4711", "04:a1:b2:c3:d4:e5:f6", "04 A1 B2 C3 D4 E5 F6", "04-a1-b2-c3-d4-e5-f6"],
)
def test_it_finds_a_jacket_by_code_patient_id_or_tag_uid(page_for, shelf, query):
    assert found(page_for("doctor").get("/", {"q": query})) == ["J-4711"]


def test_it_lists_everything_without_a_query(page_for, shelf):
    assert found(page_for("doctor").get("/")) == ["CD-0001", "J-0815", "J-4711"]


def test_it_says_when_nothing_matches(page_for, shelf):
    response = page_for("doctor").get("/", {"q": "NOTHING-LIKE-THIS"})

    assert found(response) == []
    assert "Nothing matches" in response.content.decode()


def test_it_answers_a_live_search_with_the_result_rows_only(page_for, shelf):
    response = page_for("staff").get("/", {"q": "J-4711"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert found(response) == ["J-4711"]
    assert "<html" not in html


# --- an item's page and its custody chain ------------------------------------------------------


@pytest.fixture
def travelled(cast, shelf):
    """J-4711 went out to the doctor and came back: four events, newest last."""
    services.media_check_out(media=shelf, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=shelf, actor=cast["staff"])
    return list(shelf.events.order_by("seq"))


@pytest.mark.parametrize("role", ["staff", "auditor", "admin"])
def test_it_shows_the_custody_chain_newest_first_with_hashes(page_for, travelled, role):
    response = page_for(role).get("/media/J-4711/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Custody chain" in html
    positions = [html.index(event.hash[:16]) for event in travelled]
    assert positions == sorted(positions, reverse=True), "newest event first"
    for event in travelled:
        assert f'title="{event.hash}"' in html


def test_it_shows_a_clinician_the_item_but_not_its_custody_chain(page_for, travelled):
    response = page_for("doctor").get("/media/J-4711/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "J-4711" in html and "MRN-4711" in html
    assert "Custody chain" not in html
    for event in travelled:
        assert event.hash[:16] not in html


def test_it_shows_a_clinician_only_their_own_loans_of_an_item(page_for, cast, travelled, shelf):
    services.media_check_out(media=shelf, borrower=cast["doctor2"], actor=cast["staff"])

    def borrowers_seen_by(name):
        html = page_for(name).get("/media/J-4711/").content.decode()
        loans = html.split("<h2>Loans</h2>")[1]
        return re.findall(r"<tr><td>([^<]+)</td>", loans)

    assert borrowers_seen_by("doctor") == ["Doctor"]
    assert borrowers_seen_by("doctor2") == ["Doctor2"]
    assert borrowers_seen_by("auditor") == ["Doctor2", "Doctor"]


def test_it_answers_an_unknown_media_code_with_a_404_page(page_for, shelf):
    response = page_for("staff").get("/media/NOPE-1/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "There is nothing at this address" in response.content.decode()


def test_it_tells_a_clinician_who_asks_for_the_chain_that_their_role_may_not(page_for, travelled):
    response = page_for("doctor").get("/media/J-4711/", {"chain": "1"})

    assert response.status_code == 403
    assert "Your role does not allow this page" in response.content.decode()


def test_it_shows_its_own_page_when_the_server_fails(rf):
    response = server_error(rf.get("/media/J-1/"))

    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_a_doctor_can_request_an_item_from_its_page(page_for, make_media):
    item = make_media("FJ-ASK")
    page = page_for("doctor").get(f"/media/{item.code}/").content.decode()
    assert f'href="/requests/?media={item.code}"' in page
    form = page_for("doctor").get(f"/requests/?media={item.code}").content.decode()
    assert f'value="{item.code}"' in form  # the request form arrives filled in
    assert "/requests/?media=" not in page_for("auditor").get(f"/media/{item.code}/").content.decode()
