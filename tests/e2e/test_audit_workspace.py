"""The auditors' workspace in Debian's Chromium against a real server: "Verify now" by keyboard
shows the verdict in place (htmx, under the site's Content-Security-Policy), and on a tablet an
auditor asks for a patient's chain through the labelled form and the view is recorded."""
import re

import pytest
from playwright.sync_api import expect

from archive.models import Patient
from tests.conftest import TEST_PASSWORD
from tracker import services
from tracker.models import AccessLog, CustodyEvent

TABLET = {"width": 768, "height": 1024}


@pytest.fixture
def history(make_media, cast):
    patient = Patient.objects.create(patient_id="P-E2E", name="Chen Jing")
    jacket = make_media("FJ-E2E", patient=patient)
    services.media_check_out(media=jacket, borrower=cast["doctor"], actor=cast["staff"])
    services.media_return(media=jacket, actor=cast["staff"])
    return jacket


def log_in_as_auditor(page, to: str) -> None:
    page.goto(to)
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("Username").fill("auditor")
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(re.escape(to) + "$"))


def collect_policy_violations(page) -> list[str]:
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    return violations


def test_verify_now_by_keyboard_shows_the_verdict_in_place(page, history, shoot):
    violations = collect_policy_violations(page)
    log_in_as_auditor(page, "/audit/")
    expect(page.get_by_text("has not been verified from this workspace yet")).to_be_visible()
    page.evaluate("window.stillTheSamePage = true")

    button = page.get_by_role("button", name="Verify now")
    button.focus()
    page.keyboard.press("Enter")

    verdict = page.locator("#verdict [data-verdict]")
    expect(verdict).to_have_attribute("data-verdict", "intact")
    expect(verdict).to_contain_text("The ledger is intact")
    expect(verdict).to_contain_text(CustodyEvent.objects.get(seq=3).hash)
    assert page.evaluate("window.stillTheSamePage === true"), "htmx swapped the panel, no reload"
    expect(page.locator("#recent-verifications")).to_contain_text("whole ledger")
    assert AccessLog.objects.filter(action="verified").count() == 1
    shoot("verified")
    assert not violations, violations


def test_an_auditor_reads_a_patients_chain_on_a_tablet(page, history, shoot):
    violations = collect_policy_violations(page)
    page.set_viewport_size(TABLET)
    log_in_as_auditor(page, "/audit/chain/")

    page.get_by_label("Subject").select_option("patient")
    page.get_by_label("Code, ID or username").fill("P-E2E")
    page.get_by_role("button", name="Show events").click()

    expect(page.get_by_role("heading", name=re.compile("Patient P-E2E"))).to_be_visible()
    rows = page.locator("tr[data-seq]")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("Returned")
    main = page.evaluate("[document.querySelector('main').scrollWidth, document.querySelector('main').clientWidth]")
    assert main[0] <= main[1], "the workspace does not scroll sideways on a tablet; wide tables do"
    entry = AccessLog.objects.get()
    assert (entry.subject_kind, entry.subject) == ("patient", "P-E2E")
    shoot("tablet-chain")
    assert not violations, violations
