"""The language a person picks is remembered for them: their next login opens in it, and the
reminder e-mails they get are written in it."""
import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone, translation

from tests.conftest import TEST_PASSWORD
from tracker import services
from tracker.models import Preference

COOKIE = django_settings.LANGUAGE_COOKIE_NAME
CHINESE = re.compile(r"[\u4e00-\u9fff]")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page_language(client) -> str:
    html = client.get("/").content.decode()
    return re.search(r'<html lang="([^"]+)"', html).group(1)


def test_a_logged_in_person_picking_a_language_has_it_remembered(cast):
    client = logged_in(cast["doctor"])

    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})

    assert response.status_code == 302 and response.cookies[COOKIE].value == "zh-hans"
    assert Preference.language_of(cast["doctor"]) == "zh-hans"
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert Preference.language_of(cast["doctor"]) == "en"
    assert Preference.objects.filter(user=cast["doctor"]).count() == 1


def test_a_language_the_site_does_not_offer_is_not_remembered(cast):
    client = logged_in(cast["doctor"])
    client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})

    client.post("/i18n/setlang/", {"language": "fr", "next": "/"})

    assert Preference.language_of(cast["doctor"]) == "zh-hans"


def test_picking_a_language_before_logging_in_remembers_nothing(cast):
    response = Client().post("/i18n/setlang/", {"language": "zh-hans", "next": "/login/"})

    assert response.cookies[COOKIE].value == "zh-hans"  # the page still changes language
    assert not Preference.objects.exists()


def test_the_language_form_needs_its_csrf_token(cast):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cast["doctor"])

    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})

    assert response.status_code == 403 and not Preference.objects.exists()


def test_logging_in_opens_the_site_in_the_language_the_person_picked(cast):
    logged_in(cast["doctor"]).post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    browser = Client()  # another computer, set to English
    browser.cookies[COOKIE] = "en"

    response = browser.post("/login/", {"username": "doctor", "password": TEST_PASSWORD})

    assert response.status_code == 302, response.content
    assert response.cookies[COOKIE].value == "zh-hans"
    assert page_language(browser) == "zh-hans"


def test_logging_in_without_a_remembered_language_leaves_the_browsers(cast):
    browser = Client()
    browser.cookies[COOKIE] = "zh-hans"

    response = browser.post("/login/", {"username": "doctor", "password": TEST_PASSWORD})

    assert response.status_code == 302 and COOKIE not in response.cookies
    assert page_language(browser) == "zh-hans"


def test_a_failed_login_says_nothing_of_the_persons_language(cast):
    Preference.remember_language(user=cast["doctor"], language="zh-hans")

    response = Client().post("/login/", {"username": "doctor", "password": "wrong"})

    assert response.status_code == 200 and COOKIE not in response.cookies


# --- reminder e-mails ---------------------------------------------------------------------------


@pytest.fixture
def overdue_loan(make_media, cast):
    cast["doctor"].email = "doctor@hospital.example"
    cast["doctor"].save()
    media = make_media("FJ-500")
    return services.media_check_out(
        media=media, borrower=cast["doctor"], actor=cast["staff"], due_at=timezone.now() - timedelta(days=3)
    )


def test_a_reminder_is_written_in_the_borrowers_language(settings, overdue_loan, cast, mailoutbox):
    settings.LANGUAGE_CODE = "en"
    Preference.remember_language(user=cast["doctor"], language="zh-hans")

    services.reminders_send()

    [mail] = mailoutbox
    assert mail.subject.startswith("逾期：") and "FJ-500" in mail.subject, mail.subject
    assert CHINESE.search(mail.body) and "file room" not in mail.body, mail.body


def test_a_reminder_to_an_english_reader_on_a_chinese_site_is_in_english(settings, overdue_loan, cast, mailoutbox):
    settings.LANGUAGE_CODE = "zh-hans"
    Preference.remember_language(user=cast["doctor"], language="en")

    services.reminders_send()

    [mail] = mailoutbox
    assert mail.subject.startswith("Overdue: film jacket FJ-500"), mail.subject
    assert not CHINESE.search(mail.subject + mail.body), mail.body


def test_a_reminder_sent_from_a_chinese_page_is_in_the_borrowers_language(settings, overdue_loan, cast, mailoutbox):
    """Staff reading the site in Chinese remind an English-reading borrower: the mail is the
    borrower's, not the sender's."""
    settings.LANGUAGE_CODE = "en"
    Preference.remember_language(user=cast["doctor"], language="en")

    with translation.override("zh-hans"):
        services.loan_remind(loan=overdue_loan, actor=cast["staff"])

    [mail] = mailoutbox
    assert mail.subject.startswith("Overdue: film jacket FJ-500"), mail.subject


def test_a_borrower_without_a_remembered_language_gets_the_sites(settings, overdue_loan, cast, mailoutbox):
    settings.LANGUAGE_CODE = "zh-hans"

    with translation.override("en"):
        services.loan_remind(loan=overdue_loan, actor=cast["staff"])

    [mail] = mailoutbox
    assert mail.subject.startswith("逾期："), mail.subject
