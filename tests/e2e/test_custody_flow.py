"""Issue 7: the whole custody flow in Debian's Chromium against a real server, in English and in
Simplified Chinese, each person in their own browser, logging in through the login form.

A doctor asks for a jacket; the file room approves it and checks it out at the station (the
reader posts the tap, as the agent does); the doctor hands it to a colleague, who accepts; the
file room checks it in (a keyboard-wedge reader types the UID into the station page); the
auditor reads the whole chain, downloads it as PDF and CSV, and `manage.py verify_export`
accepts the CSV and rejects it with one byte changed.

On every page: no Content-Security-Policy violation, no script error and no request refused; in
zh-Hans, no English in the visible text, nor in the PDF (tests/e2e/untranslated.py says how it is
found). Each page is saved as
test-artifacts/e2e/test_the_custody_flow_<language>-NN-<person>-<step>.png."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO, StringIO
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone, translation
from playwright.sync_api import expect
from pypdf import PdfReader

from archive.models import Patient
from tests.conftest import TEST_PASSWORD, make_user
from tests.e2e.conftest import ARTIFACTS, TIMEOUT_MS, _safe
from tests.e2e.untranslated import Catalogue
from tracker import services
from tracker.choices import (
    EventKind,
    HandoverStatus,
    LocationKind,
    MediaKind,
    MediaStatus,
    RequestStatus,
    Role,
)
from tracker.models import CustodyEvent, Handover, Loan, LoanRequest, Location

ROOT = Path(__file__).resolve().parents[2]
PO = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
STATION = "desk-1"
TAG = "04C1D2E3F4A5B6"
JACKET = "FJ-20431"
GREEN = "rgb(232, 245, 236)"  # tr.outcome-ok in filmroom.css
# Each browser's own language setting, as Chromium sends it (Accept-Language).
BROWSER_LOCALE = {"en": "en-GB", "zh-hans": "zh-CN"}
PEOPLE = {  # role in the story: username, group, first and last name
    "staff": ("lin", Role.FILE_ROOM, "Lin", "Fang"),
    "doctor": ("chen", Role.CLINICIAN, "Chen", "Jing"),
    "doctor2": ("zhou", Role.CLINICIAN, "Zhou", "Min"),
    "auditor": ("wu", Role.AUDITOR, "Wu", "Lei"),
}
THE_CHAIN = [  # the jacket's custody events, oldest first
    EventKind.MEDIA_REGISTERED,
    EventKind.TAG_BOUND,
    EventKind.REQUEST_MADE,
    EventKind.REQUEST_APPROVED,
    EventKind.CHECKED_OUT,
    EventKind.HANDOVER_OFFERED,
    EventKind.TRANSFERRED,  # the hand-over accepted
    EventKind.RETURNED,
]
CSP_PROBE = """() => new Promise((resolve) => {
  document.addEventListener(
    "securitypolicyviolation", (e) => resolve(e.violatedDirective), {once: true}
  );
  const script = document.createElement("script");
  script.textContent = "window.cspProbeRan = true";
  document.body.append(script);
})"""
REPORT_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) => {
  const blocked = e.blockedURI || "inline";
  window.reportPolicyViolation(`${e.violatedDirective} blocked ${blocked} on ${location.pathname}`);
});"""


@dataclass
class Archive:
    """The starting data: people, a file room, a patient's jacket with its tag, a station."""

    people: dict
    places: dict
    patient: Patient
    jacket: object
    reader_key: str

    def user(self, who: str):
        return self.people[who]

    def name(self, who: str) -> str:
        return self.people[who].get_full_name()

    def data(self) -> list[str]:
        """What the pages show that is data, not the site's words."""
        values = [JACKET, TAG, STATION, self.patient.patient_id, self.patient.name]
        for user in self.people.values():
            values += [user.get_username(), user.get_full_name(), user.first_name, user.last_name]
        for place in self.places.values():
            values += [place.code, place.name]
        return values


@pytest.fixture
def archive(db) -> Archive:
    people = {}
    for who, (username, role, first, last) in PEOPLE.items():
        user = make_user(username, role)
        user.first_name, user.last_name = first, last
        user.save(update_fields=["first_name", "last_name"])
        people[who] = user
    room = Location.objects.create(code="FR", name="Film library", kind=LocationKind.ROOM)
    places = {
        "room": room,
        "shelf": Location.objects.create(
            code="FR-A1", name="Bay A1", kind=LocationKind.SHELF, parent=room
        ),
        "clinic": Location.objects.create(
            code="ORTHO", name="Ortho clinic", kind=LocationKind.DEPARTMENT
        ),
    }
    patient = Patient.objects.create(patient_id="P-20431", name="Liu Yang")
    jacket = services.media_register(
        code=JACKET, kind=MediaKind.FILM_JACKET, home_location=places["shelf"],
        actor=people["staff"], patient=patient,
    )
    services.tag_bind(uid=TAG, media=jacket, actor=people["staff"])
    out = StringIO()  # the desk's reader, registered as an admin would: the key is printed once
    call_command("register_reader", STATION, "--location", "FR", stdout=out, stderr=StringIO())
    return Archive(people, places, patient, jacket, out.getvalue().strip())


@dataclass
class Flow:
    """The people's browsers, and what every page they saw showed."""

    browser: object
    site: str
    language: str
    test_name: str
    archive: Archive
    catalogue: Catalogue | None
    contexts: list = field(default_factory=list)
    shots: list = field(default_factory=list)
    english: dict = field(default_factory=dict)  # page -> the catalogue's English found on it
    violations: list = field(default_factory=list)
    script_errors: list = field(default_factory=list)
    refused: list = field(default_factory=list)  # answers >= 400 to the pages' own requests

    def browser_for(self, who: str):
        """A person's own browser window (cookies and all), in the flow's language."""
        context = self.browser.new_context(
            base_url=self.site, locale=BROWSER_LOCALE[self.language], accept_downloads=True,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        context.expose_binding(
            "reportPolicyViolation",
            lambda source, text: self.violations.append(f"{who}: event: {text}"),
        )
        context.add_init_script(REPORT_VIOLATIONS)
        context.on("console", lambda message: self.violations.append(
            f"{who}: console: {message.text}"
        ) if "Content Security Policy" in message.text else None)
        context.on("response", lambda response: self.refused.append(
            f"{who}: {response.status} {response.request.method} "
            f"{response.url.removeprefix(self.site)}"
        ) if response.status >= 400 else None)
        page = context.new_page()
        page.on("pageerror", lambda error: self.script_errors.append(
            f"{who} on {page.url}: {error}"
        ))
        return page

    def log_in(self, page, who: str, path: str) -> None:
        """Open a page as a stranger, and log in on the login page it sends them to."""
        page.goto(path)
        expect(page).to_have_url(re.compile(r"/login/\?next="))
        page.fill("#id_username", self.archive.user(who).get_username())
        page.fill("#id_password", TEST_PASSWORD)
        self.look(page, who, "login")
        page.locator("main form button[type=submit]").click()
        expect(page).to_have_url(re.compile(re.escape(path) + "$"))

    def look(self, page, who: str, step: str) -> None:
        """What this person sees now: in the flow's language, saved as a screenshot, and in
        zh-Hans without English from the catalogue."""
        expect(page.locator("html")).to_have_attribute("lang", self.language)
        label = f"{len(self.shots) + 1:02d}-{who}-{step}"
        path = ARTIFACTS / f"{_safe(self.test_name).strip('_')}-{label}.png"
        page.screenshot(path=path, full_page=True)
        self.shots.append(path)
        # The language menu names each language in its own language, English too: by design.
        self.read(f"{label} ({page.url.removeprefix(self.site)})", page.inner_text("body"),
                  page.locator("#language option").all_inner_texts())

    def read(self, where: str, text: str, data=()) -> None:
        """In zh-Hans, note the catalogue's English found in a page's or a file's text."""
        if self.catalogue is None:
            return
        # The chain shows each event's payload keys as the ledger holds them.
        keys = {f"{key}:" for event in CustodyEvent.objects.all() for key in event.payload or {}}
        found = self.catalogue.english_in(
            text, [*self.archive.data(), *data, *keys, settings.LEDGER_ORIGIN]
        )
        if found:
            self.english[where] = found

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def flow(browser, site, archive, request, settings, compiled_messages):
    """The flow in one language: each person's browser asks for it, and the site is set up in it
    (FILMROOM_LANGUAGE_CODE), as a hospital speaking it would run Filmroom: what is written with
    no person asking, such as a station agent's reads, is in that language too."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    language = request.param
    settings.LANGUAGE_CODE = language
    catalogue = None if language == "en" else Catalogue(PO)
    made = Flow(browser, site, language, request.node.name, archive, catalogue)
    yield made
    made.close()


def reader_posts(site: str, key: str, uid: str) -> dict:
    """What the agent does for one tap: POST it to the scan API with the reader's key."""
    read = {"event_id": str(uuid.uuid4()), "uid": uid, "read_at": datetime.now(UTC).isoformat()}
    response = httpx.post(f"{site}/api/v1/scans/", json={"scans": [read]},
                          headers={"Authorization": f"Api-Key {key}"}, timeout=10)
    response.raise_for_status()
    (result,) = response.json()["results"]
    return result


def database_url() -> str:
    """The database the live server uses, for a command run in another process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def verify_export(path: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`manage.py verify_export FILE` as an auditor runs it on the server's machine: the same
    database and ledger key as the server that made the file."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "FILMROOM_LEDGER_SIGNING_KEY_FILE": str(settings.LEDGER_SIGNING_KEY_FILE),
        "FILMROOM_LANGUAGE_CODE": settings.LANGUAGE_CODE,
        "FILMROOM_VAR_DIR": str(tmp_path / "var"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", "verify_export", str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def wait_for_the_stream(page) -> None:
    """The station page says it is live (in its own language) once its event stream is open."""
    live = page.locator("#i18n").get_attribute("data-live")
    expect(page.locator("#connection")).to_have_text(live)


def set_station_mode(page, mode: str, borrower: str = "") -> None:
    """Choose what a tap means, and wait for the page the settings come back on."""
    page.check(f"input[name=mode][value={mode}]")
    page.select_option("#borrower", borrower)
    with page.expect_navigation(url=re.compile(rf"/station/{STATION}/$")):
        page.locator("form.station-setup button[type=submit]").click()
    expect(page.locator(f"input[name=mode][value={mode}]")).to_be_checked()
    expect(page.locator("#borrower")).to_have_value(borrower)
    wait_for_the_stream(page)


def row_of(page, code: str, selector: str = "tr"):
    """The table row that links to an item."""
    return page.locator(selector, has=page.locator(f'a[href="/media/{code}/"]'))


@pytest.mark.parametrize("flow", ["en", "zh-hans"], indirect=True)
def test_the_custody_flow(flow, archive, site, tmp_path):
    english = flow.language == "en"
    jacket = archive.jacket
    today = timezone.localdate()

    # 1. The doctor asks the file room for the jacket, for a week in the clinic.
    doctor = flow.browser_for("doctor")
    flow.log_in(doctor, "doctor", "/requests/")
    flow.look(doctor, "doctor", "my-requests")
    doctor.fill("#rq-media", JACKET)
    doctor.fill("#rq-from", today.isoformat())
    doctor.fill("#rq-until", (today + timedelta(days=7)).isoformat())
    doctor.fill("#rq-purpose", "Follow-up of the fracture" if english else "骨折复查")
    doctor.select_option("#rq-destination", "ORTHO")
    flow.look(doctor, "doctor", "request-form")
    doctor.locator("form.request-form button[type=submit]").click()

    expect(doctor).to_have_url(re.compile(r"/requests/$"))
    pending = row_of(doctor, JACKET, "tr.request")
    expect(pending).to_have_class(re.compile(r"\brequest-pending\b"))
    made = LoanRequest.objects.get()
    assert (made.media, made.requester, made.status, made.destination.code) == (
        jacket, archive.user("doctor"), RequestStatus.PENDING, "ORTHO"
    )
    assert made.needed_until == today + timedelta(days=7)
    if english:
        expect(doctor.get_by_text(f"Request {made.pk} sent to the file room.")).to_be_visible()
        expect(pending.locator(".status")).to_have_text("Waiting for the file room")
    flow.look(doctor, "doctor", "request-pending")

    # 2. The file room approves it, then checks the jacket out to the doctor at the station.
    staff = flow.browser_for("staff")
    flow.log_in(staff, "staff", "/requests/queue/")
    flow.look(staff, "staff", "queue-pending")
    row_of(staff, JACKET).locator(f'form[action="/requests/{made.pk}/approve/"] button').click()
    expect(staff).to_have_url(re.compile(r"/requests/queue/$"))
    to_pull = row_of(staff, JACKET).locator(f'form[action="/requests/{made.pk}/ready/"]')
    expect(to_pull).to_be_visible()
    made.refresh_from_db()
    assert made.status == RequestStatus.APPROVED
    if english:
        expect(staff.get_by_text(f"Request {made.pk} approved.")).to_be_visible()
    flow.look(staff, "staff", "queue-approved")

    staff.goto(f"/station/{STATION}/")
    wait_for_the_stream(staff)
    flow.look(staff, "staff", "station")
    set_station_mode(staff, "check_out", borrower="chen")
    flow.look(staff, "staff", "station-check-out-mode")
    result = reader_posts(site, archive.reader_key, TAG)
    assert (result["status"], result["media"]) == (201, JACKET)

    newest = staff.locator("#scans tr.scan").first
    expect(newest.locator(".media")).to_have_text(JACKET)
    expect(newest.locator(".uid")).to_have_text(TAG)
    expect(newest).to_have_class(re.compile(r"\boutcome-ok\b"))
    expect(newest).to_have_css("background-color", GREEN)
    if english:
        expect(newest.locator(".message")).to_have_text(
            re.compile(rf"^{JACKET} checked out to Chen Jing, due \d{{4}}-\d\d-\d\d$")
        )
    flow.look(staff, "staff", "station-checked-out")
    loan = Loan.objects.get(media=jacket, returned_at__isnull=True)
    made.refresh_from_db()
    assert loan.borrower == archive.user("doctor")
    assert (made.status, made.loan) == (RequestStatus.FULFILLED, loan)

    doctor.goto("/requests/")
    expect(row_of(doctor, JACKET, "tr.request")).to_have_class(re.compile(r"\brequest-fulfilled\b"))
    expect(row_of(doctor, JACKET)).to_have_count(2)  # the request, and the loan under "My loans"
    if english:
        expect(row_of(doctor, JACKET, "tr.request").locator(".status")).to_have_text("Lent")
    flow.look(doctor, "doctor", "request-fulfilled")

    # 3. The doctor hands the jacket on to a colleague, from the item's page.
    row_of(doctor, JACKET).last.locator(f'a[href="/media/{JACKET}/"]').click()
    expect(doctor).to_have_url(re.compile(rf"/media/{JACKET}/$"))
    expect(doctor.locator("h1 .status")).to_have_class(re.compile(r"\bstatus-on_loan\b"))
    flow.look(doctor, "doctor", "item-on-loan")
    doctor.locator(f'a[href="/handovers/new/?media={JACKET}"]').click()
    expect(doctor).to_have_url(re.compile(rf"/handovers/new/\?media={JACKET}$"))
    doctor.select_option("#ho-to", "user:zhou")
    doctor.fill("#ho-note", "For Monday's clinic" if english else "周一门诊用")
    flow.look(doctor, "doctor", "handover-form")
    doctor.locator('form[action="/handovers/new/"] button[type=submit]').click()

    expect(doctor).to_have_url(re.compile(rf"/media/{JACKET}/$"))
    offered = Handover.objects.get()
    expect(doctor.locator("tr.handover")).to_have_class(re.compile(r"\bhandover-pending\b"))
    jacket.refresh_from_db()
    assert (offered.status, offered.to_holder) == (HandoverStatus.PENDING, archive.user("doctor2"))
    assert jacket.current_holder == archive.user("doctor"), "custody moves only on acceptance"
    if english:
        expect(doctor.get_by_text(
            f"{JACKET} is offered to Zhou Min; it stays yours until they accept."
        )).to_be_visible()
    flow.look(doctor, "doctor", "handover-offered")

    # 4. The colleague accepts it: custody moves to them.
    doctor2 = flow.browser_for("doctor2")
    flow.log_in(doctor2, "doctor2", "/handovers/")
    waiting = row_of(doctor2, JACKET, "tr.handover-pending")
    expect(waiting).to_be_visible()
    flow.look(doctor2, "doctor2", "handovers-to-me")
    waiting.locator(f'form[action="/handovers/{offered.pk}/accept/"] button').click()

    expect(doctor2).to_have_url(re.compile(r"/handovers/$"))
    accepted = row_of(doctor2, JACKET, "tr.handover-accepted")
    expect(accepted).to_be_visible()
    expect(row_of(doctor2, JACKET, "tr.handover-pending")).to_have_count(0)
    if english:
        expect(doctor2.get_by_text(
            f"Hand-over of {JACKET} accepted: custody has moved to Zhou Min."
        )).to_be_visible()
    flow.look(doctor2, "doctor2", "handover-accepted")
    accepted.locator(f'a[href="/media/{JACKET}/"]').click()
    expect(doctor2).to_have_url(re.compile(rf"/media/{JACKET}/$"))
    expect(doctor2.locator("dl.facts")).to_contain_text("Zhou Min")  # held by
    expect(doctor2.locator("dl.facts")).not_to_contain_text("Chen Jing")
    flow.look(doctor2, "doctor2", "item-held-by-receiver")
    jacket.refresh_from_db()
    assert jacket.current_holder == archive.user("doctor2")
    loan = Loan.objects.get(media=jacket, returned_at__isnull=True)
    assert loan.borrower == archive.user("doctor2")

    # 5. The jacket comes back: the file room checks it in, the wedge reader typing its UID.
    staff.goto(f"/station/{STATION}/")
    wait_for_the_stream(staff)
    set_station_mode(staff, "check_in")
    flow.look(staff, "staff", "station-check-in-mode")
    wedge = staff.locator("#wedge-uid")
    expect(wedge).to_be_focused()
    staff.keyboard.type(TAG)
    staff.keyboard.press("Enter")

    expect(staff.locator("#scans tr.scan")).to_have_count(2)
    newest = staff.locator("#scans tr.scan").first
    expect(newest.locator(".media")).to_have_text(JACKET)
    expect(newest).to_have_class(re.compile(r"\boutcome-ok\b"))
    expect(newest).to_have_css("background-color", GREEN)
    if english:
        expect(newest.locator(".message")).to_have_text(f"{JACKET} checked in at Film library")
    flow.look(staff, "staff", "station-checked-in")
    newest.locator(".media a").click()
    expect(staff).to_have_url(re.compile(rf"/media/{JACKET}/$"))
    expect(staff.locator("h1 .status")).to_have_class(re.compile(r"\bstatus-on_shelf\b"))
    if english:
        expect(staff.locator("h1 .status")).to_have_text("On shelf")
    flow.look(staff, "staff", "item-back-on-shelf")
    jacket.refresh_from_db()
    assert (jacket.status, jacket.current_holder) == (MediaStatus.ON_SHELF, None)

    # 6. The auditor reads the whole chain and exports it.
    chain = list(CustodyEvent.objects.filter(media=jacket).order_by("seq"))
    assert [event.kind for event in chain] == THE_CHAIN
    auditor = flow.browser_for("auditor")
    question = f"/audit/chain/?subject_kind=media&subject={JACKET}"
    flow.log_in(auditor, "auditor", question)
    rows = auditor.locator("tr[data-seq]")
    expect(rows).to_have_count(len(chain))
    shown = [int(seq) for seq in rows.evaluate_all("rows => rows.map(r => r.dataset.seq)")]
    assert shown == [event.seq for event in reversed(chain)], "newest first, every step"
    with translation.override(flow.language):
        for row, event in zip(rows.all(), reversed(chain), strict=True):
            expect(row.locator("td").nth(2)).to_contain_text(str(EventKind(event.kind).label))
            expect(row.locator("td.hash")).to_have_attribute("title", event.hash)
    flow.look(auditor, "auditor", "chain")

    with auditor.expect_download() as downloading:
        auditor.locator('a[href^="/audit/export.pdf?"]').click()
    pdf = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(pdf)
    assert pdf.suffix == ".pdf" and pdf.read_bytes().startswith(b"%PDF-")
    text = "\n".join(page.extract_text() for page in PdfReader(BytesIO(pdf.read_bytes())).pages)
    squashed = "".join(text.split())
    first, last = chain[0], chain[-1]
    assert f"{first.seq}·{first.hash}" in squashed and f"{last.seq}·{last.hash}" in squashed
    for event in chain:  # its row: seq, received (local time), ..., the whole hash
        received = timezone.localtime(event.received_at).strftime("%Y-%m-%d%H:%M:%S")
        assert f"{event.seq}{received}" in squashed, f"the PDF lacks the row of seq {event.seq}"
        assert event.hash in squashed, f"the PDF lacks the hash of seq {event.seq}"
    flow.read("custody PDF export", text)

    with auditor.expect_download() as downloading:
        auditor.locator('a[href^="/audit/export.csv?"]').click()
    csv = tmp_path / downloading.value.suggested_filename
    downloading.value.save_as(csv)
    assert csv.suffix == ".csv"
    flow.look(auditor, "auditor", "chain-exported")

    checked = verify_export(csv, tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The command speaks the site's language (FILMROOM_LANGUAGE_CODE), as the pages do.
    intact = {
        "en": f"Export intact: {len(chain)} event(s), seq {first.seq}..{last.seq}",
        "zh-hans": f"导出文件完好：{len(chain)} 个事件，序号 {first.seq}..{last.seq}",
    }
    assert intact[flow.language] in checked.stdout

    data = bytearray(csv.read_bytes())
    at = data.index(chain[3].hash.encode()) + 10  # one character of one event's hash
    data[at] = ord("0") if data[at] != ord("0") else ord("1")
    tampered = tmp_path / "tampered.csv"
    tampered.write_bytes(bytes(data))
    refused = verify_export(tampered, tmp_path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert {"en": "EXPORT REJECTED", "zh-hans": "导出文件未通过核验"}[flow.language] in refused.stderr

    # 7-9. Every page: no policy violation, no script error, in zh-Hans no English left.
    assert not flow.violations, "Content-Security-Policy violations:\n" + "\n".join(flow.violations)
    assert not flow.script_errors, "\n".join(flow.script_errors)
    assert not flow.refused, "\n".join(flow.refused)
    assert not flow.english, "English left on zh-Hans pages:\n" + "\n".join(
        f"{page}:\n  " + "\n  ".join(found) for page, found in flow.english.items()
    )
    assert len(flow.shots) >= 20 and all(shot.stat().st_size > 0 for shot in flow.shots)


def test_the_policy_check_sees_a_violation(browser, site, archive):
    """The CSP check above can fail: an inline script added to a page is refused and reported
    both ways (the page's event and Chromium's console)."""
    flow = Flow(browser, site, "en", "csp-probe", archive, None)
    try:
        page = flow.browser_for("doctor")
        page.goto("/login/")
        with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
            directive = page.evaluate(CSP_PROBE)
        assert directive.startswith("script-src")
        assert page.evaluate("window.cspProbeRan") is None
        expect(page.locator("html")).to_have_attribute("lang", "en")
        assert any(": console: " in violation for violation in flow.violations), flow.violations
        assert any(": event: script-src" in v for v in flow.violations), flow.violations
    finally:
        flow.close()
