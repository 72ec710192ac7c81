"""Accessibility of the whole web interface, in Debian's Chromium against a real server.

axe-core's WCAG 2.0 and 2.1 A and AA rules (colour contrast among them) find nothing on any page,
in English and in Simplified Chinese; the forms work from the keyboard, after a "skip to content"
link, with a focus one can see; and on a tablet at the counter no page scrolls sideways and the
main menu takes at most two lines (it folds into a menu button).

The pages are found as tests/test_csp.py and tests/test_translations.py find them: by walking the
URL configuration, so a page added later is checked too. Addresses with parameters are filled
from the scene of tests/test_translations.py (an item, a place, a person, a station, a disc's
manifest and check, ...); a new kind of parameter makes the test fail until it is given a value.
Each page is opened as the first role allowed to read it, and /home/ as every role."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone, translation
from playwright.sync_api import expect

from archive.models import DiscManifest, DiscVerification
from archive.services import disc_import, disc_verify
from tests.archive import discs
from tests.e2e.conftest import ARTIFACTS, TIMEOUT_MS, _safe
from tests.test_translations import (  # noqa: F401 (fixtures this module's tests use)
    chinese_catalogue,
    pages_of,
    scene,
)
from tracker import services
from tracker.choices import MediaKind, ReaderMode
from tracker.models import Flag, Handover, Loan, LoanRequest, Location, Media, ReaderDevice

pytestmark = pytest.mark.timeout(300)

WCAG_AA = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    # Best practices held too: a table column a screen reader would announce without a name.
    "rules": {"empty-table-header": {"enabled": True}},
    "resultTypes": ["violations"],
}
LANGUAGES = {"en": "en-GB", "zh-hans": "zh-CN"}  # the site's language: the browser's locale
ROLES = ("staff", "doctor", "auditor", "admin")  # the order in which a page finds its reader
DESKTOP = {"width": 1280, "height": 900}
TABLETS = ({"width": 768, "height": 1024}, {"width": 1024, "height": 768})
SIGN_STATION = "counter-sign"
# Not pages of ours (the API and its third-party docs, Django's admin) or not pages at all.
NOT_PAGES = re.compile(r"(api/|admin/|i18n/|logout/|static/)")
SIGN_TAG = "04D1D2D3D4D5D6"

# How the browser measures a page at the counter: whether it scrolls sideways, and on how many
# lines the header's visible controls (brand, menu, links, language) sit.
LAYOUT = """() => {
  const root = document.documentElement;
  const controls = "header.top a, header.top button, header.top select, header.top span";
  const seen = [...document.querySelectorAll(controls)]
    .map((el) => el.getBoundingClientRect())
    .filter((box) => box.width > 0 && box.height > 0)
    .sort((a, b) => a.top - b.top);
  let lines = 0, bottom = -Infinity;
  for (const box of seen) {
    if (box.top >= bottom - 2) { lines += 1; bottom = box.bottom; }
    else { bottom = Math.max(bottom, box.bottom); }
  }
  return {scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, menuLines: lines};
}"""


# --- the pages ------------------------------------------------------------------------------------


def _patterns(patterns=None, prefix: str = ""):
    """(name, route, parameter names) of every page the URL configuration serves."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = str(entry.pattern)
        if route.startswith("^") or NOT_PAGES.match(prefix + route):
            continue
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, prefix + route)
        elif isinstance(entry, URLPattern):
            yield entry.name, prefix + route, list(entry.pattern.converters)


def addresses_with_parameters(values: dict) -> tuple[list[str], list[str]]:
    """Every address with parameters, filled from `values`: by route name first (a `pk` means
    something else on every route), then by parameter name. Also the routes that could not be
    filled, so that a new kind of page cannot slip past unchecked."""
    filled, unknown = [], []
    for name, route, parameters in _patterns():
        if not parameters:
            continue
        own = values.get(name, {})
        kwargs = {p: own.get(p, values.get(p)) for p in parameters}
        if None in kwargs.values():
            missing = [p for p, v in kwargs.items() if v is None]
            unknown.append(f"{route} ({name}): give {missing}")
            continue
        filled.append(reverse(name, kwargs=kwargs))
    return filled, unknown


@dataclass
class Site:
    """The scene of tests/test_translations.py, with what its pages need besides."""

    scene: dict
    values: dict  # route name or parameter name -> value, for the addresses with parameters

    @property
    def people(self) -> dict:
        return self.scene["people"]

    def pages(self) -> list[str]:
        filled, unknown = addresses_with_parameters(self.values)
        assert not unknown, f"pages this test does not know how to open: {unknown}"
        return list(dict.fromkeys([*pages_of(self.scene), *filled]))


@pytest.fixture
def site_scene(scene, tmp_path, site) -> Site:  # noqa: F811 (the imported fixture)
    people = scene["people"]
    staff = people["staff"]
    # A disc imported and checked again after a file changed: a manifest and a verification.
    spec = discs.ct_disc(tmp_path / "disc", files=3, series=1, patient_id="MRN-4711")
    shelf = Location.objects.get(code="FR-A1")
    disc = services.media_register(code="CD-9", kind=MediaKind.CD, home_location=shelf, actor=staff)
    disc_import(root=spec.root, media=disc, actor=staff)
    changed = spec.root / spec.files[0].path
    changed.write_bytes(changed.read_bytes()[:-1] + b"\x01")
    disc_verify(root=spec.root, media=disc, actor=staff)
    # A check-out at a counter station just now, which the borrower may still sign for.
    counter = ReaderDevice.objects.create(
        name=SIGN_STATION, location=Location.objects.get(code="FR"), mode=ReaderMode.LOCATE
    )
    services.station_configure(
        device=counter, mode=ReaderMode.CHECK_OUT, borrower=people["doctor2"]
    )
    services.tag_bind(uid=SIGN_TAG, media=Media.objects.get(code="CD-3"), actor=staff)
    signed, _replayed = services.scan_record(
        device=counter, event_id=uuid.uuid4(), raw_uid=SIGN_TAG, read_at=timezone.now()
    )
    values = {
        "code": "J-1",
        "name": "desk-1",
        "username": people["doctor"].get_username(),
        "patient_id": scene["patient"].patient_id,
        "study_instance_uid": scene["study"].study_instance_uid,
        "location-detail": {"code": "FR-A1"},
        "station-sign": {"name": SIGN_STATION, "scan_id": signed.pk},
        "signature-image": {"event_seq": 1},  # an image, not a page
        "manifest-detail": {"pk": DiscManifest.objects.get().pk},
        "verification-detail": {"pk": DiscVerification.objects.get().pk},
    }
    pks = {  # the routes about one of these take its primary key
        "inventory-": scene["inventory"].pk,
        "loan-request-": LoanRequest.objects.first().pk,
        "loan-": Loan.objects.filter(returned_at__isnull=True).first().pk,
        "handover-": Handover.objects.get().pk,
        "flag-": Flag.objects.filter(cleared_at__isnull=True).first().pk,
    }
    for name, _route, parameters in _patterns():
        if "pk" in parameters and name not in values:
            for prefix, pk in pks.items():
                if name.startswith(prefix):
                    values[name] = {"pk": pk}
                    break
    return Site(scene=scene, values=values)


def readers_of(site_scene: Site) -> dict[str, list[str]]:
    """role -> the pages it opens: each page as the first role that reads it (a full HTML page
    answered 200), /home/ as every role; a page no role reads but that explains why (a scan that
    can no longer be signed, 409) as the file room. The 404 page is among pages_of's."""
    clients = {}
    for role in ROLES:
        clients[role] = Client()
        clients[role].force_login(site_scene.people[role])
    readers: dict[str, list[str]] = {role: ["/home/"] for role in ROLES}
    for path in site_scene.pages():
        if path == "/home/":
            continue
        explained = False
        for role in ROLES:
            response = clients[role].get(path)
            if not _is_page(response):
                continue
            if response.status_code == 200:
                readers[role].append(path)
                break
            explained = explained or response.status_code not in (403, 404, 405)
        else:
            if explained:
                readers["staff"].append(path)
    return readers


def _is_page(response) -> bool:
    """A whole HTML document (not a download, a stream, or a fragment htmx swaps in)."""
    if "text/html" not in response.get("Content-Type", "") or response.streaming:
        return False
    return response.content.lstrip()[:15].lower() == b"<!doctype html>"


# --- the browser ----------------------------------------------------------------------------------


@dataclass
class Findings:
    violations: list = field(default_factory=list)
    layout: list = field(default_factory=list)
    checked: list = field(default_factory=list)


def open_as(browser, site: str, user, language: str):
    """A browser window logged in as `user` (or nobody) whose person chose `language`."""
    context = browser.new_context(base_url=site, locale=LANGUAGES[language], viewport=DESKTOP)
    context.set_default_timeout(TIMEOUT_MS)
    cookies = [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": site}]
    if user is not None:
        client = Client()
        client.force_login(user)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        cookies.append({"name": settings.SESSION_COOKIE_NAME, "value": session, "url": site})
    context.add_cookies(cookies)
    return context, context.new_page()


def axe_violations(page, where: str) -> list[str]:
    results = Axe().run(page, options=WCAG_AA).response
    found = []
    for violation in results["violations"]:
        nodes = "; ".join(
            f"{', '.join(map(str, node['target']))}: "
            + (node.get("failureSummary") or "").strip().splitlines()[-1].strip()
            for node in violation["nodes"][:5]
        )
        rule = f"{violation['id']} ({violation['impact']}) {violation['help']}"
        found.append(f"{where}: {rule} — {nodes}")
    return found


def inspect(page, where: str, found: Findings, language: str, *, shot: str | None = None) -> None:
    """axe at a desktop's width, then the layout on both tablets."""
    expect(page.locator("html")).to_have_attribute("lang", language)
    found.violations += axe_violations(page, where)
    found.checked.append(where)
    for tablet in TABLETS:
        page.set_viewport_size(tablet)
        measured = page.evaluate(LAYOUT)
        if measured["scrollWidth"] > measured["clientWidth"]:
            found.layout.append(
                f"{where} at {tablet['width']}px scrolls sideways: "
                f"{measured['scrollWidth']} > {measured['clientWidth']}"
            )
        if measured["menuLines"] > 2:
            found.layout.append(
                f"{where} at {tablet['width']}px: the header takes {measured['menuLines']} lines"
            )
    page.set_viewport_size(DESKTOP)
    if shot:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"a11y-{_safe(shot)}.png", full_page=True)


def open_page(page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("load")


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_every_page_meets_wcag_aa_and_fits_a_tablet(browser, site, site_scene, language):
    readers = readers_of(site_scene)
    found = Findings()
    for role, paths in readers.items():
        context, page = open_as(browser, site, site_scene.people[role], language)
        try:
            for path in paths:
                open_page(page, path)
                inspect(page, f"{path} as {role}", found, language,
                        shot=f"{language}-{role}-{path}" if path == "/home/" else None)
            if role == "doctor":
                # A role refused a page reads why; a form that refused what was sent says so.
                open_page(page, "/audit/")
                inspect(page, "/audit/ refused to the doctor", found, language)
                open_page(page, "/requests/")
                page.locator("#rq-media").fill("NO-SUCH-ITEM")
                page.locator("#rq-purpose").fill("x")
                page.locator("form.request-form button[type=submit]").click()
                expect(page.locator("main")).to_contain_text("NO-SUCH-ITEM")  # what was refused
                inspect(page, "/requests/ with a refused request", found, language)
            if role == "auditor":
                # What htmx swaps into a page is checked in the page it joins.
                open_page(page, "/audit/")
                verify = page.locator("form[hx-post]:not(.range-form) button[type=submit]")
                with page.expect_response(lambda response: "/audit/verify/" in response.url):
                    verify.click()
                expect(page.locator("#verdict [data-verdict]")).to_be_visible()
                inspect(page, "/audit/ with the verdict of Verify now", found, language)
            if role == "staff":
                open_page(page, "/station/desk-1/bind/?uid=04FFFFFFFFFFFF")
                page.locator("#media").fill("NO-SUCH-ITEM")
                page.locator("main form button[type=submit]").click()
                expect(page.locator("main [role=alert]")).to_be_visible()
                inspect(page, "/station/desk-1/bind/ with an unknown code", found, language)
        finally:
            context.close()
    context, page = open_as(browser, site, None, language)
    try:
        open_page(page, "/login/")
        inspect(page, "/login/", found, language, shot=f"{language}-login")
        page.locator("#id_username").fill("lidoc")
        page.locator("#id_password").fill("not the password")
        page.locator("main form button[type=submit]").click()
        expect(page.locator("main [role=alert]")).to_be_visible()
        inspect(page, "/login/ after a wrong password", found, language)
        open_page(page, "/t/?uid=04A1B2C3D4E5F6")
        inspect(page, "/t/ for a stranger", found, language)
        # The 500 page is rendered without a request or the base template; shown here at the
        # site's address so that its style sheet loads.
        with translation.override(language):
            page.set_content(render_to_string("500.html"))
        inspect(page, "the 500 page", found, language)
    finally:
        context.close()
    assert not found.violations, "WCAG 2.1 AA (axe-core):\n" + "\n".join(found.violations)
    assert not found.layout, "\n".join(found.layout)
    pages = {where.split(" ")[0] for where in found.checked}
    assert {"/home/", "/media/J-1/", "/station/desk-1/", "/audit/chain/", "/login/"} <= pages, (
        pages
    )
    assert len(found.checked) >= 40, found.checked


LOW_CONTRAST = """<!doctype html><html lang="en"><head><title>Test</title>
<style>p { color: #bbb; background: #fff; }</style></head>
<body><main><h1>Shelf A1</h1><p>Grey on white, too faint to read.</p>
<form><input type="text" name="code"><button type="submit">Find</button></form>
</main></body></html>"""


def test_the_check_finds_faint_text_and_an_unlabelled_field(browser):
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        page.set_content(LOW_CONTRAST)
        found = axe_violations(page, "sample")
    finally:
        context.close()
    rules = {line.split(": ", 1)[1].split(" ", 1)[0] for line in found}
    assert {"color-contrast", "label"} <= rules, found


# --- the keyboard ---------------------------------------------------------------------------------

# What has the focus, and whether one can see it: its computed outline (:focus-visible, or a
# field's :focus-within).
FOCUSED = """() => {
  const el = document.activeElement;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  return {
    name: el.id || `${el.tagName.toLowerCase()}[type=${el.getAttribute("type")}]`,
    tag: el.tagName.toLowerCase(), type: el.getAttribute("type") || "",
    href: el.getAttribute("href") || "", inMain: !!el.closest("main"),
    outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth) || 0,
    onScreen: box.width > 0 && box.height > 0 && box.top >= 0 && box.left >= 0
      && box.bottom <= innerHeight && box.right <= innerWidth,
  };
}"""


def focused(page) -> dict:
    return page.evaluate(FOCUSED)


def shows_focus(now: dict) -> bool:
    return now["outline"] != "none" and now["outlineWidth"] >= 2


def skip_to_content(page) -> None:
    """The first Tab on a fresh page reaches the skip link, shown with its focus; Enter on it
    takes the focus to the page's content, past the menu."""
    page.keyboard.press("Tab")
    skip = focused(page)
    assert skip["href"] == "#content", f"the first Tab reaches {skip}, not the skip link"
    assert skip["onScreen"] and shows_focus(skip), skip
    page.keyboard.press("Enter")
    assert focused(page)["name"] == "content", "the skip link takes the focus to the content"


def tab_until(page, until: str, *, limit: int = 40) -> list[str]:
    """Tab until the element named `until` (its id, or tag[type=...]) has the focus. Returns the
    fields of forms the focus met, each once (a date field takes a Tab for each of its parts),
    checking that the focus stayed in the content and showed everywhere."""
    met: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        now = focused(page)
        assert now["inMain"], f"the focus left the content for {now}"
        assert shows_focus(now), f"no visible focus on {now}"
        if now["tag"] in ("input", "select", "textarea", "button") and (
            not met or met[-1] != now["name"]
        ):
            met.append(now["name"])
        if now["name"] == until:
            return met
    pytest.fail(f"Tab never reached {until}; it met {met}")


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_the_file_room_checks_out_an_item_by_keyboard(browser, site, scene, language):  # noqa: F811 (the imported fixture)
    context, page = open_as(browser, site, scene["people"]["staff"], language)
    try:
        open_page(page, "/media/CD-3/check-out/")
        skip_to_content(page)
        assert tab_until(page, "act-borrower") == ["act-borrower"]
        page.keyboard.press("ArrowDown")  # a closed list box moves to the first person
        chosen = page.locator("#act-borrower").input_value()
        assert chosen, "the arrow key chose a borrower"
        met = tab_until(page, "button[type=submit]", limit=10)
        assert met == ["act-destination", "act-due", "button[type=submit]"], met
        page.keyboard.press("Enter")
        expect(page).to_have_url(re.compile(r"/media/CD-3/$"))
        loan = Loan.objects.get(media__code="CD-3", returned_at__isnull=True)
        assert loan.borrower.get_username() == chosen
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"a11y-keyboard-check-out-{language}.png", full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_a_doctor_asks_for_an_item_by_keyboard(browser, site, scene, language):  # noqa: F811 (the imported fixture)
    doctor = scene["people"]["doctor"]
    context, page = open_as(browser, site, doctor, language)
    try:
        open_page(page, "/requests/")
        skip_to_content(page)
        met = tab_until(page, "rq-media")
        page.keyboard.type("CD-3")
        met += tab_until(page, "rq-purpose", limit=15)
        assert met[-6:] == ["rq-media", "rq-patient", "rq-study", "rq-from", "rq-until",
                            "rq-purpose"], met
        page.keyboard.type("Fracture follow-up")
        page.keyboard.press("Enter")  # sends the form from a text field
        expect(page.locator("main")).to_contain_text("CD-3")
        asked = LoanRequest.objects.get(requester=doctor, media__code="CD-3")
        assert asked.purpose == "Fracture follow-up"
    finally:
        context.close()


# --- the tablet's menu ----------------------------------------------------------------------------


def test_on_a_tablet_the_menu_folds_behind_a_button_the_keyboard_opens(browser, site, scene):  # noqa: F811 (the imported fixture)
    context, page = open_as(browser, site, scene["people"]["admin"], "en")
    try:
        page.set_viewport_size(TABLETS[0])
        open_page(page, "/locations/")  # no field takes the focus first (as /home/'s search does)
        toggle = page.get_by_role("button", name="Menu")
        menu = page.locator("nav#main-nav")
        links = menu.locator("a")
        expect(toggle).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(menu).to_be_hidden()
        assert page.evaluate(LAYOUT)["menuLines"] == 1
        assert not axe_violations(page, "/locations/ at 768px, menu closed")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / "a11y-tablet-menu-closed.png")

        page.keyboard.press("Tab")  # the skip link
        page.keyboard.press("Tab")  # the brand, back home
        page.keyboard.press("Tab")
        expect(toggle).to_be_focused()
        page.keyboard.press("Enter")
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(menu).to_be_visible()
        every = links.evaluate_all("links => links.map((a) => a.getAttribute('href'))")
        assert len(every) >= 10, every  # the admin's menu is the longest
        reached = []
        for _ in range(len(every) + 5):
            page.keyboard.press("Tab")
            now = focused(page)
            if now["tag"] == "a" and now["href"] in every:
                assert now["onScreen"] and shows_focus(now), now
                reached.append(now["href"])
            if now["tag"] == "select":  # the language menu closes the header
                break
        assert reached == every, "every link of the menu is reached by Tab, in order"
        assert not axe_violations(page, "/locations/ at 768px, menu open")
        measured = page.evaluate(LAYOUT)
        assert measured["scrollWidth"] <= measured["clientWidth"], measured
        page.screenshot(path=ARTIFACTS / "a11y-tablet-menu-open.png")

        page.keyboard.press("Escape")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(toggle).to_be_focused()
        expect(menu).to_be_hidden()

        page.set_viewport_size(DESKTOP)  # a wide screen shows the menu as it is
        expect(toggle).to_be_hidden()
        expect(links.first).to_be_visible()
    finally:
        context.close()
