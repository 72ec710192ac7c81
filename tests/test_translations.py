"""Simplified Chinese is complete: every entry of the catalogue is translated and keeps the
placeholders of its English, and the pages people use, rendered in zh-hans from that catalogue,
show no English words of the interface (codes, usernames and hashes aside)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import uuid
from datetime import timedelta
from html.parser import HTMLParser
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone, translation
from rest_framework.test import APIClient

from archive.models import Patient, Study
from tracker import exports, ledger, services
from tracker.audit import ledger_verify_recorded
from tracker.choices import FlagKind, LocationKind, MediaKind, ReaderMode, Role, StudySource
from tracker.models import Flag, Location, ReaderDevice, ScanRecord

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"


# --- the catalogue ------------------------------------------------------------------------------


class Entry:
    def __init__(self, line: int):
        self.line = line
        self.flags: set[str] = set()
        self.msgctxt: str | None = None
        self.msgid = ""
        self.msgid_plural: str | None = None
        self.msgstr: dict[int, str] = {}

    def __repr__(self) -> str:
        return f"line {self.line}: {self.msgid!r}"


def read_catalogue(path: Path | None = None) -> list[Entry]:
    """The entries of a .po file, the catalogue by default (obsolete #~ entries and the header
    left out)."""
    path = path or CATALOGUE
    entries: list[Entry] = []
    entry: Entry | None = None
    field: tuple[str, int] | None = None
    keyword = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(".*")$')

    def start(number: int) -> Entry:
        nonlocal entry
        if entry is None or entry.msgstr:
            entry = Entry(number)
            entries.append(entry)
        return entry

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#~"):
            continue
        if line.startswith("#,"):
            start(number).flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif match := keyword.match(line):
            name, index, text = match.group(1), match.group(2), ast.literal_eval(match.group(3))
            if name in ("msgctxt", "msgid") and (entry is None or entry.msgstr):
                start(number)
            if name == "msgstr":
                field = ("msgstr", int(index or 0))
                entry.msgstr[field[1]] = text
            else:
                field = (name, 0)
                setattr(entry, name, text)
        elif line.startswith('"') and entry is not None and field is not None:
            text = ast.literal_eval(line)
            if field[0] == "msgstr":
                entry.msgstr[field[1]] += text
            else:
                setattr(entry, field[0], getattr(entry, field[0]) + text)
        else:
            raise AssertionError(f"{path}:{number}: cannot read {raw!r}")
    return [e for e in entries if e.msgid]


# %(name)s, %s, %d ... (python-format) and {name} (brace-format); "%%" is a literal percent sign.
PERCENT = re.compile(r"%(?:\([A-Za-z_][A-Za-z0-9_]*\))?[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa%]")
BRACE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def placeholders(text: str) -> set[str]:
    return {p for p in PERCENT.findall(text) if p != "%%"} | set(BRACE.findall(text))


def test_the_reader_sees_the_entries_of_the_catalogue():
    entries = read_catalogue()
    by_id = {e.msgid: e for e in entries}
    assert len(entries) > 1000
    assert by_id["Log out"].msgstr == {0: "退出登录"}
    assert by_id["%(n)s open flag in all"].msgid_plural == "%(n)s open flags in all"


def test_every_entry_is_translated_and_none_is_fuzzy():
    entries = read_catalogue()
    fuzzy = [e for e in entries if "fuzzy" in e.flags]
    untranslated = [e for e in entries if not e.msgstr or not all(e.msgstr.values())]
    assert not (fuzzy or untranslated), (
        f"{len(untranslated)} untranslated entries: {untranslated}; "
        f"{len(fuzzy)} fuzzy entries (check the guess, then remove the flag): {fuzzy}"
    )


def test_header_says_chinese_has_one_plural_form():
    # The header is the msgstr of the empty msgid, in one string or continued over lines.
    header = CATALOGUE.read_text(encoding="utf-8").split("\n\n", 1)[0].replace('"\n"', "")
    assert "Language: zh_Hans\\n" in header
    assert "Plural-Forms: nplurals=1; plural=0;\\n" in header
    plural = [e for e in read_catalogue() if e.msgid_plural is not None]
    assert plural and all(set(e.msgstr) == {0} for e in plural), [
        e for e in plural if set(e.msgstr) != {0}
    ]


def test_every_translation_keeps_the_placeholders_of_its_english():
    wrong = []
    for entry in read_catalogue():
        # A plural form names the count; its single Chinese form must say everything the
        # English plural says (the English singular may spell "one" out).
        english = placeholders(
            entry.msgid_plural if entry.msgid_plural is not None else entry.msgid
        )
        for index, text in entry.msgstr.items():
            if text and placeholders(text) != english:
                wrong.append(
                    f"{entry!r} [{index}]: {sorted(english)} → {sorted(placeholders(text))}"
                )
            if "python-format" in entry.flags and "%" in PERCENT.sub("", text):
                wrong.append(
                    f"{entry!r} [{index}]: a lone % in {text!r} (write %% for a percent sign)"
                )
    assert not wrong, "\n".join(wrong)


def test_the_placeholder_check_can_fail():
    assert placeholders("%(code)s is due %(due)s; %d left, {n} more, 100 %%") == {
        "%(code)s",
        "%(due)s",
        "%d",
        "{n}",
    }
    assert placeholders("%(code)s 应还") != placeholders("%(code)s is due %(due)s")


# --- the pages, in zh-hans ----------------------------------------------------------------------

# Words of the interface that a page in Chinese must not show. Data (codes, usernames, hashes,
# UIDs, the place names of this scene) is Chinese or codes here, so any of these is a string that
# escaped translation.
ENGLISH_UI = re.compile(
    r"\b(?:Log out|Log in|Search|Media|Requests|Hand-overs?|Submit|Cancel|Home|Patients?|"
    r"Dashboard|Inventor(?:y|ies)|Retention|Audit|Labels?|Status|Item|Where|When|Who|What|Due|"
    r"Borrower|Location|Place|Show|Next|Previous|Page|Find|Save|Accept|Decline|Sign(?:ed)?|Undo|"
    r"Verif(?:y|ied|ication)|Ledger|Flags?|Loans?|Shelf|Nothing|None|Reason|Language|Password|"
    r"Username|Kind|Code|Events?|Print|Export|Open|Closed|Renew|Approve|Deny|Station|Scans?|"
    r"Tag|Bind|Custody|Chain|Access|Subject|Received|Raised|Cleared|Overdue|Returned|Back|"
    r"Change|Start|Close|Studies|Study|Date|Name|Pull|Ready|Waiting|Remind|Send|Recent|Latest)\b"
)
# Two English words in a row is a phrase that escaped translation, whatever its words.
ENGLISH_RUN = re.compile(r"\b[A-Za-z][a-z]+(?:[ ,'-]+[a-z]{2,})+\b")
# English that belongs on a Chinese page: names of standards and tools, commands, formats.
ALLOWED = re.compile(
    r"English|Study Instance UID|Series Instance UID|SOP Instance UID|IHE PDI|DICOM\w*|"
    r"manage\.py [a-z_]+|YYYY-MM-DD|FILMROOM_[A-Z_]+|Avery \w+|Brother [\w-]+|data:image/png;base64"
)


class VisibleText(HTMLParser):
    """The text a person sees or hears: element text (no script or style), and the attributes
    a screen reader or a mouse shows (title, alt, aria-label, placeholder, button values)."""

    SPOKEN = ("title", "alt", "aria-label", "placeholder")

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "template"):
            self.hidden += 1
        attrs = dict(attrs)
        for name in self.SPOKEN:
            if attrs.get(name):
                self.parts.append(attrs[name])
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.parts.append(attrs["value"])
        # The station's strings for its script travel as data-* attributes.
        if attrs.get("id") == "i18n":
            self.parts += [v for k, v in attrs.items() if k.startswith("data-") and v]

    def handle_endtag(self, tag):
        if tag in ("script", "style", "template") and self.hidden:
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden and data.strip():
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ¦ ".join(part.strip() for part in parser.parts)


def english_on(html: str) -> list[str]:
    text = ALLOWED.sub(" ", visible_text(html))
    found = [m.group(0) for m in ENGLISH_UI.finditer(text)] + [
        m.group(0) for m in ENGLISH_RUN.finditer(text)
    ]
    return sorted(set(found))


def test_the_english_finder_finds_english():
    assert "Nothing" in english_on("<p>Nothing to pull today.</p>")
    assert english_on("<p>已借给 is overdue now</p>") == ["is overdue now"]
    assert english_on('<button title="Log out">退出登录</button>') == ["Log out"]
    assert english_on("<p>这是 J-1 · wangfang · 3fa9c0e1… · Study Instance UID</p>") == []
    assert english_on("<script>var x = 'Search';</script><p>搜索</p>") == []


@pytest.fixture
def chinese_catalogue(settings, tmp_path):
    """The catalogue as it is in the tree, compiled for this test alone (not the .mo `make
    messages` leaves in locale/, which may be older than the .po)."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.fail("msgfmt (Debian package gettext) is needed to compile the catalogue")
    target = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES"
    target.mkdir(parents=True)
    subprocess.run(
        [msgfmt, "--check-format", "-o", str(target / "django.mo"), str(CATALOGUE)], check=True
    )
    # Changing the setting sends setting_changed, which drops the catalogues Django has cached.
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    return tmp_path / "locale"


def person(username: str, role: str | None, first: str, last: str, **extra):
    user = get_user_model().objects.create_user(
        username=username,
        password="correct horse battery staple 42",
        first_name=first,
        last_name=last,
        email=f"{username}@hospital.example",
        **extra,
    )
    if role:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


@pytest.fixture
def scene(db, chinese_catalogue):
    """A file room whose data is Chinese or codes, and a day's work in it: a tagged jacket with a
    study, a loan gone overdue (flagged by the sweep, reminded), a hand-over waiting, a loan
    request approved, an inventory open, a station that read a tag, a verified ledger."""
    staff = person("wangfang", Role.FILE_ROOM, "芳", "王")
    doctor = person("lidoc", Role.CLINICIAN, "明", "李")
    doctor2 = person("chendoc", Role.CLINICIAN, "静", "陈")
    auditor = person("zhaoaudit", Role.AUDITOR, "强", "赵")
    admin = person("sunadmin", Role.ADMIN, "伟", "孙", is_staff=True)
    room = Location.objects.create(code="FR", name="档案室", kind=LocationKind.ROOM)
    shelf = Location.objects.create(
        code="FR-A1", name="甲一架", kind=LocationKind.SHELF, parent=room
    )
    Location.objects.create(code="ORTHO", name="骨科", kind=LocationKind.DEPARTMENT)
    patient = Patient.objects.create(patient_id="MRN-4711", name="张三")
    study = Study.objects.create(
        study_instance_uid="1.2.840.4711.1",
        patient=patient,
        accession_number="ACC-77",
        modalities="CT",
        description="胸部平扫",
        medical_record_locator="J-1",
    )
    j1 = services.media_register(
        code="J-1", kind=MediaKind.FILM_JACKET, home_location=shelf, actor=staff, patient=patient
    )
    services.tag_bind(uid="04A1B2C3D4E5F6", media=j1, actor=staff)
    services.media_studies_link(media=j1, studies=[study], source=StudySource.MANUAL, actor=staff)
    j2 = services.media_register(
        code="J-2", kind=MediaKind.FILM_JACKET, home_location=shelf, actor=staff, patient=patient
    )
    services.media_check_out(media=j2, borrower=doctor, actor=staff)
    later = timezone.now() + timedelta(days=60)  # the loan is overdue by then
    services.sweep(now=later)
    services.handover_offer(media=j2, actor=doctor, to_holder=doctor2, note="会诊用")
    cd = services.media_register(code="CD-3", kind=MediaKind.CD, home_location=shelf, actor=staff)
    services.media_check_out(media=cd, borrower=doctor2, actor=staff)
    services.media_return(media=cd, actor=staff)
    today = timezone.localdate()
    asked = services.loan_request_make(
        requester=doctor, media=j1, needed_from=today, needed_until=today, purpose="复诊"
    )
    services.loan_request_approve(request=asked, actor=staff)
    inventory = services.inventory_start(scope=shelf, actor=staff)
    station = ReaderDevice.objects.create(name="desk-1", location=room, mode=ReaderMode.LOCATE)
    # A read stores what its message means and is shown in each viewer's language; its stored
    # words (what an agent is answered) are in the site's language (see below).
    with translation.override("zh-hans"):
        services.scan_record(
            device=station, event_id=uuid.uuid4(), raw_uid="04A1B2C3D4E5F6", read_at=timezone.now()
        )
    ledger_verify_recorded(user=auditor)
    return {
        "people": {
            "staff": staff,
            "doctor": doctor,
            "doctor2": doctor2,
            "auditor": auditor,
            "admin": admin,
        },
        "inventory": inventory,
        "study": study,
        "patient": patient,
    }


SKIP = re.compile(r"^(api/|admin/|i18n/|logout/|static/|media/)")


def parameterless_paths() -> list[str]:
    """Every page without a parameter in its address, found by walking the URL configuration."""

    def walk(patterns, prefix: str) -> list[str]:
        found = []
        for entry in patterns:
            route = str(entry.pattern)
            if "<" in route or route.startswith("^"):
                continue
            if isinstance(entry, URLResolver):
                found += walk(entry.url_patterns, prefix + route)
            elif isinstance(entry, URLPattern):
                found.append(prefix + route)
        return found

    return sorted({"/" + p for p in walk(get_resolver().url_patterns, "") if not SKIP.match(p)})


def pages_of(scene) -> list[str]:
    return [
        *parameterless_paths(),
        "/media/J-1/",
        "/media/J-2/",
        "/station/desk-1/",
        "/patients/MRN-4711/",
        f"/studies/{scene['study'].study_instance_uid}/",
        "/locations/FR-A1/",
        "/people/lidoc/",
        "/people/wangfang/",
        f"/inventories/{scene['inventory'].pk}/",
        "/handovers/new/?media=J-2",
        "/audit/chain/?subject_kind=media&subject=J-1",
        "/audit/chain/?subject_kind=events",
        "/search/?q=MRN-4711",
        "/search/?q=ACC-77",
        "/?q=J",
        "/requests/pull-list/",
        "/flags/?state=all",
        "/no-such-page/",
    ]


def chinese_client(user=None) -> Client:
    """A browser whose person picked Simplified Chinese in the language menu."""
    client = Client()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["staff", "doctor", "auditor", "admin"])
def test_every_page_a_role_reads_is_in_chinese(scene, who):
    client = chinese_client(scene["people"][who])
    read, english = [], {}
    for path in pages_of(scene):
        response = client.get(path)
        if response.status_code not in (200, 400, 403, 404) or "text/html" not in response.get(
            "Content-Type", ""
        ):
            continue  # a redirect, a download, a POST-only address
        html = response.content.decode()
        assert '<html lang="zh-hans">' in html, path
        if found := english_on(html):
            english[path] = found
        read.append(path)
    assert not english, f"English on the {who}'s Chinese pages: {english}"
    assert "/home/" in read and "/media/J-1/" in read and len(read) >= 8, read


def test_the_login_page_and_a_refusal_are_in_chinese(scene):
    client = chinese_client()
    response = client.get("/login/")
    assert response.status_code == 200 and english_on(response.content.decode()) == []
    assert "登录" in response.content.decode()
    response = client.post("/login/", {"username": "lidoc", "password": "wrong"})
    assert english_on(response.content.decode()) == [], "the failed login's message"
    refused = chinese_client(scene["people"]["doctor"]).get("/audit/")
    assert refused.status_code == 403 and english_on(refused.content.decode()) == []


def test_the_pages_really_are_chinese_and_dates_are_not_english(scene):
    html = chinese_client(scene["people"]["staff"]).get("/home/").content.decode()
    for words in ("退出登录", "档案室", "今日取件清单", "未解除的异常标记", "等待接收的转交"):
        assert words in html, words
    # "Home" is the person's start page here, not an item's home shelf (归属位置).
    assert "<h1>首页</h1>" in html and ">首页</a>" in html
    months = re.compile(r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+\d")
    for path in ("/media/J-2/", "/flags/?state=all", "/audit/flags/", "/handovers/"):
        user = scene["people"]["auditor" if path.startswith("/audit/") else "staff"]
        text = visible_text(chinese_client(user).get(path).content.decode())
        assert not months.search(text), (path, months.search(text))
    # Django's own localised pieces (timesince here) come out in Chinese too.
    flags = chinese_client(scene["people"]["auditor"]).get("/audit/flags/").content.decode()
    assert re.search(r"\(\d+\s*(分钟|小时|天|周|月|年)", flags), visible_text(flags)[:500]


def test_the_api_answers_errors_in_chinese(scene):
    client = APIClient()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    client.force_login(scene["people"]["doctor"])
    response = client.get("/api/v1/media/NO-SUCH/")
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert re.search(r"[\u4e00-\u9fff]", message) and not ENGLISH_RUN.search(message), message
    response = APIClient(HTTP_ACCEPT_LANGUAGE="zh-hans").get("/api/v1/media/")
    assert response.status_code in (401, 403)
    assert re.search(r"[\u4e00-\u9fff]", response.json()["error"]["message"]), response.json()


def test_a_site_set_to_chinese_records_station_reads_in_chinese(scene, settings):
    """A reader's agent sends no language: the words it is answered and the stored text of its
    reads are in the site's language, FILMROOM_LANGUAGE_CODE (the station page renders each read
    in its viewer's language: tests/tracker/test_station_language.py)."""
    settings.LANGUAGE_CODE = "zh-hans"
    out = StringIO()
    call_command(
        "register_reader",
        "gate-1",
        "--location",
        "FR",
        "--mode",
        "locate",
        stdout=out,
        stderr=StringIO(),
    )
    agent = APIClient()
    agent.credentials(HTTP_AUTHORIZATION=f"Api-Key {out.getvalue().strip()}")
    read = {
        "event_id": str(uuid.uuid4()),
        "uid": "04A1B2C3D4E5F6",
        "read_at": timezone.now().isoformat(),
        "counter": 1,
    }
    response = agent.post("/api/v1/scans/", {"scans": [read]}, format="json")
    assert response.status_code == 200, response.content
    message = ScanRecord.objects.get(event_id=read["event_id"]).message
    assert message.startswith("J-1 已在") and not ENGLISH_RUN.search(message), message


def test_reminders_of_a_chinese_site_are_written_in_chinese(scene, settings, mailoutbox):
    settings.LANGUAGE_CODE = "zh-hans"
    mailoutbox.clear()
    services.reminders_send(now=timezone.now() + timedelta(days=90))
    assert mailoutbox, "the overdue loan of J-2 is due a reminder"
    mail = mailoutbox[0]
    assert "J-2" in mail.subject and re.search(r"[\u4e00-\u9fff]", mail.subject), mail.subject
    assert not ENGLISH_RUN.search(mail.body), mail.body


def test_flag_clearing_reasons_the_sweep_writes_in_english_show_in_chinese(scene):
    """The sweep keeps its reasons in the ledger in English; the auditors' flag history shows
    them in the reader's language."""
    overdue = Flag.objects.get(media__code="J-2", kind=FlagKind.OVERDUE, cleared_at__isnull=True)
    services.media_return(media=overdue.media, actor=scene["people"]["staff"])
    services.sweep(now=timezone.now() + timedelta(days=61))
    overdue.refresh_from_db()
    assert overdue.cleared_at is not None
    html = chinese_client(scene["people"]["auditor"]).get("/audit/flags/").content.decode()
    assert "不再逾期：已归还、已续借或已转交" in html
    assert "no longer overdue" not in html


def test_an_export_made_in_chinese_has_chinese_titles_and_still_verifies(scene):
    client = chinese_client(scene["people"]["auditor"])
    response = client.get("/audit/export.csv?subject_kind=media&subject=J-1")
    assert response.status_code == 200
    data = b"".join(response.streaming_content) if response.streaming else response.content
    text = data.decode("utf-8-sig")
    for title in ("接收时间（本地时间）", "事件", "介质", "标题", "筛选条件", "首个事件的哈希值"):
        assert title in text, title
    for english in ("Received (local time)", "Made by", "Filters", "First event hash"):
        assert english not in text, english
    assert exports.verify_csv(data, ledger.signing_key().public_key()).ok
