"""The auditors' Django forms (templates/tracker/audit/_field.html) show each error beside its
field: the input says aria-invalid="true" and its aria-describedby (as Django 5.2 writes it)
names the element that holds the message; what was typed stays."""
import pytest
from django.test import Client

from tracker import services

from .form_errors import field_error, invalid_inputs, value_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def auditor(cast, make_media) -> Client:
    jacket = make_media("FJ-1")
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    client = Client()
    client.force_login(cast["auditor"])
    return client


def test_a_wrong_range_is_marked_on_the_field_it_concerns(auditor):
    page = auditor.post("/audit/verify/", {"scope": "range", "first": 2, "last": 1})

    html = page.content.decode()
    assert "the last event must not be below the first" in field_error(html, "id_last")
    assert invalid_inputs(html) == ["id_last"]
    assert (value_of(html, "id_first"), value_of(html, "id_last")) == ("2", "1")


def test_a_missing_bound_is_marked_too(auditor):
    page = auditor.post("/audit/verify/", {"scope": "range", "first": "", "last": 2})

    html = page.content.decode()
    assert "This field is required." in field_error(html, "id_first")


def test_an_unknown_subject_and_a_backwards_period_are_marked_on_their_fields(auditor):
    page = auditor.get(
        "/audit/chain/",
        {"subject_kind": "media", "subject": "FJ-404", "from": "2026-02-02", "to": "2026-02-01"},
    )

    html = page.content.decode()
    assert "FJ-404" in field_error(html, "id_subject")
    assert "ends before it starts" in field_error(html, "id_to")
    assert sorted(invalid_inputs(html)) == ["id_subject", "id_to"]
    assert value_of(html, "id_subject") == "FJ-404"


def test_the_access_log_filter_marks_an_unknown_user(auditor):
    html = auditor.get("/audit/access-log/", {"user": "ghost"}).content.decode()

    assert "ghost" in field_error(html, "id_user")
