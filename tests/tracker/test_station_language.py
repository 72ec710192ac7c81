"""What a station says is shown in the language of whoever reads it: the station page, its live
stream and the page's own scan form. The agent (which has no language) gets the site's."""
import json
import subprocess
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext
from rest_framework.test import APIClient

from tracker import services
from tracker.choices import ReaderMode
from tracker.models import ReaderDevice, ScanRecord
from tracker.services import custody, loan_requests, stations

TAG = "04A1B2C3D4E5F6"
UNKNOWN = "04FFFFFFFFFF01"


@pytest.fixture
def english_site(settings):
    settings.LANGUAGE_CODE = "en"
    return settings


@pytest.fixture
def agent(english_site, places):
    """A reader at shelf FR-A2 and its agent, posting with the key register_reader printed."""
    out = StringIO()
    call_command("register_reader", "counter-1", "--location", "FR-A2", stdout=out, stderr=StringIO())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {out.getvalue().strip()}")
    return client


@pytest.fixture
def device(agent):
    return ReaderDevice.objects.get(name="counter-1")


@pytest.fixture
def tagged(make_media, cast):
    media = make_media("FJ-300")
    services.tag_bind(uid=TAG, media=media, actor=cast["staff"])
    return media


def viewer(user, language: str) -> Client:
    """A browser whose person picked `language` in the language menu."""
    client = Client()
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = language
    client.force_login(user)
    return client


def deliver(agent, *uids: str, **headers) -> list[dict]:
    reads = [
        {"event_id": str(uuid.uuid4()), "uid": uid, "read_at": timezone.now().isoformat(), "counter": n}
        for n, uid in enumerate(uids, start=1)
    ]
    response = agent.post("/api/v1/scans/", {"scans": reads}, format="json", **headers)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def page_messages(client) -> list[str]:
    html = client.get("/station/counter-1/").content.decode()
    html = html.split('<template id="scan-row">', 1)[0]  # the empty row the script fills
    return [part.split("</td>", 1)[0] for part in html.split('<td class="message">')[1:]]


def streamed_messages(client, count: int) -> list[str]:
    response = client.get("/station/counter-1/events/?after=0")
    chunks = iter(response.streaming_content)
    assert next(chunks).startswith(b"retry:")
    messages = []
    for _n in range(count):
        event = next(chunks).decode()
        messages.append(json.loads(event.split("data: ", 1)[1])["message"])
    return messages


def test_a_read_on_an_english_site_reads_in_each_viewers_language(agent, device, tagged, cast):
    deliver(agent, TAG)
    assert ScanRecord.objects.get().message == "FJ-300 seen at Shelf A2"  # the site's language

    chinese, english = viewer(cast["staff"], "zh-hans"), viewer(cast["staff"], "en")

    assert page_messages(chinese) == ["FJ-300 已在 Shelf A2 识读"]
    assert streamed_messages(chinese, 1) == ["FJ-300 已在 Shelf A2 识读"]
    assert page_messages(english) == ["FJ-300 seen at Shelf A2"]
    assert streamed_messages(english, 1) == ["FJ-300 seen at Shelf A2"]


def test_an_unknown_tag_reads_in_each_viewers_language(agent, device, cast):
    deliver(agent, UNKNOWN)
    chinese_text = f"标签 {UNKNOWN} 未绑定任何介质。请先将其绑定到胶片袋或光盘。"
    english_text = f"Tag {UNKNOWN} is not bound to any media. Bind it to a jacket or disc first."

    assert page_messages(viewer(cast["staff"], "zh-hans")) == [chinese_text]
    assert streamed_messages(viewer(cast["staff"], "zh-hans"), 1) == [chinese_text]
    assert page_messages(viewer(cast["staff"], "en")) == [english_text]
    assert streamed_messages(viewer(cast["staff"], "en"), 1) == [english_text]


def test_a_delivery_recorded_together_keeps_what_each_read_means(agent, device, tagged, cast):
    """The locate station's bulk path (several reads in one delivery) fills the source too."""
    results = deliver(agent, TAG, UNKNOWN, TAG)
    assert [r["status"] for r in results] == [201, 201, 201]

    assert streamed_messages(viewer(cast["staff"], "zh-hans"), 3) == [
        "FJ-300 已在 Shelf A2 识读",
        f"标签 {UNKNOWN} 未绑定任何介质。请先将其绑定到胶片袋或光盘。",
        "FJ-300 已在 Shelf A2 识读",
    ]


def test_the_agent_gets_the_sites_language_whatever_its_client_sends(agent, device, tagged):
    results = deliver(agent, TAG, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert results[0]["message"] == "FJ-300 seen at Shelf A2"
    assert ScanRecord.objects.get().message == "FJ-300 seen at Shelf A2"


def test_on_a_chinese_site_a_delivery_is_stored_and_answered_in_chinese(agent, device, tagged, cast, settings):
    settings.LANGUAGE_CODE = "zh-hans"

    results = deliver(agent, TAG, UNKNOWN)

    assert [r["message"] for r in results] == [
        "FJ-300 已在 Shelf A2 识读",
        f"标签 {UNKNOWN} 未绑定任何介质。请先将其绑定到胶片袋或光盘。",
    ]
    assert page_messages(viewer(cast["staff"], "en")) == [
        f"Tag {UNKNOWN} is not bound to any media. Bind it to a jacket or disc first.",
        "FJ-300 seen at Shelf A2",
    ]


def test_a_uid_typed_into_the_page_answers_in_the_typists_language(device, tagged, cast):
    chinese = viewer(cast["staff"], "zh-hans")

    scan = chinese.post("/station/counter-1/scan/", {"uid": TAG}).json()["scan"]

    assert scan["message"] == "FJ-300 已在 Shelf A2 识读"
    assert ScanRecord.objects.get().message == "FJ-300 seen at Shelf A2"  # kept in the site's language


def test_an_unreadable_read_gives_its_reason_in_the_viewers_language(agent, device, cast):
    deliver(agent, "not-a-tag")

    [chinese] = page_messages(viewer(cast["staff"], "zh-hans"))
    [english] = page_messages(viewer(cast["staff"], "en"))

    assert chinese == "无法识读标签：“not-a-tag”不是标签 UID：应为十六进制数字，例如 04:A1:B2:C3:D4:E5:F6。"
    assert english == (
        "Unreadable tag: “not-a-tag” is not a tag UID: expected hex digits such as 04:A1:B2:C3:D4:E5:F6."
    )


def test_a_service_refusal_at_a_station_reads_in_the_viewers_language(agent, device, tagged, cast):
    """The usual refusals the services word (here: the item is already on loan) are shown in
    each viewer's language with the same details."""
    loan = services.media_check_out(media=tagged, borrower=cast["doctor2"], actor=cast["staff"])
    services.station_configure(device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    since = timezone.localtime(loan.out_at).strftime("%Y-%m-%d %H:%M")

    deliver(agent, TAG)

    scan = ScanRecord.objects.get()
    assert (scan.outcome, scan.code) == ("error", "already_on_loan")
    assert page_messages(viewer(cast["staff"], "zh-hans")) == [f"FJ-300 自 {since} 起已借给 Doctor2。"]
    assert page_messages(viewer(cast["staff"], "en")) == [f"FJ-300 has been on loan to Doctor2 since {since}."]


def test_a_check_out_at_the_station_reads_in_the_viewers_language(agent, device, tagged, cast):
    services.station_configure(device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    deliver(agent, TAG)
    scan = ScanRecord.objects.get()
    due = scan.message.rsplit(" ", 1)[1]
    assert scan.message == f"FJ-300 checked out to Doctor, due {due}"

    chinese = page_messages(viewer(cast["staff"], "zh-hans"))
    with translation.override("zh-hans"):
        expected = gettext(stations.CHECKED_OUT) % {"code": "FJ-300", "name": "Doctor", "due": due}
    assert chinese == [expected] and expected != scan.message


def test_older_scans_without_a_source_show_their_stored_words(agent, device, tagged, cast):
    deliver(agent, TAG)
    ScanRecord.objects.update(message_source={}, message="Stored before messages kept their source")

    assert page_messages(viewer(cast["staff"], "zh-hans")) == ["Stored before messages kept their source"]
    assert streamed_messages(viewer(cast["staff"], "zh-hans"), 1) == ["Stored before messages kept their source"]


def test_a_message_no_longer_in_the_catalogue_shows_the_stored_words_not_english(agent, device, tagged, cast):
    """A msgid reworded since the scan is gone from the Chinese catalogue: the scan's stored
    words are better than the old English msgid (an English viewer still reads it)."""
    deliver(agent, TAG)
    ScanRecord.objects.update(
        message="存储的文字",
        message_source={"msgid": "%(code)s was seen by a reader long ago", "args": {"code": "FJ-300"}},
    )

    assert page_messages(viewer(cast["staff"], "zh-hans")) == ["存储的文字"]
    assert page_messages(viewer(cast["staff"], "en")) == ["FJ-300 was seen by a reader long ago"]


def test_a_source_whose_arguments_no_longer_fit_shows_the_stored_words(agent, device, tagged, cast):
    deliver(agent, TAG)
    ScanRecord.objects.update(message_source={"msgid": stations.SEEN, "args": {"code": "FJ-300"}})

    assert page_messages(viewer(cast["staff"], "en")) == ["FJ-300 seen at Shelf A2"]


STATION_MSGIDS = [
    value
    for module in (stations, custody, loan_requests)
    for name, value in vars(module).items()
    if name.isupper() and isinstance(value, str) and "%(" in value
] + [stations.TRANSFERRED, stations.CHOOSE_DESTINATION, stations.CHOOSE_BORROWER]


@pytest.mark.parametrize("msgid", sorted(set(STATION_MSGIDS)))
def test_every_station_message_is_in_the_chinese_catalogue(msgid):
    """What a station says, and the refusals the services say with DomainError.said, are kept as
    msgids: one missing from the catalogue would leave Chinese viewers the stored words."""
    with translation.override("zh-hans"):
        assert gettext(msgid) != msgid


def test_a_catalogue_changed_under_a_running_site_is_used_for_new_scans(settings, tmp_path):
    """The site's wording of a msgid is cached for speed; a new catalogue (as tests install
    one) is read again, as Django reads its own."""
    settings.LANGUAGE_CODE = "zh-hans"
    before = ScanRecord()
    before.say(stations.TRANSFERRED, code="FJ-1")
    assert before.message == "FJ-1 已移交"
    folder = tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "django.po").write_text(
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        f'msgid "{stations.TRANSFERRED}"\nmsgstr "%(code)s 已送往别处"\n',
        encoding="utf-8",
    )
    subprocess.run(["msgfmt", "-o", str(folder / "django.mo"), str(folder / "django.po")], check=True)

    settings.LOCALE_PATHS = [tmp_path / "locale"]
    after = ScanRecord()
    after.say(stations.TRANSFERRED, code="FJ-1")

    assert after.message == "FJ-1 已送往别处"


def _retired(tagged, cast, device):
    services.media_retire(media=tagged, actor=cast["staff"], reason="Cracked")
    services.station_configure(device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])


def _held_for_a_colleague(tagged, cast, device):
    today = timezone.localdate()
    waiting = services.loan_request_make(
        requester=cast["doctor2"], media=tagged, needed_from=today,
        needed_until=today + timedelta(days=3), purpose="Fracture clinic",
    )
    services.loan_request_approve(request=waiting, actor=cast["staff"])
    services.station_configure(device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])


def _borrower_disabled(tagged, cast, device):
    services.station_configure(device=device, mode=ReaderMode.CHECK_OUT, borrower=cast["doctor"])
    type(cast["doctor"]).objects.filter(pk=cast["doctor"].pk).update(is_active=False)


def _handed_on_from_the_shelf(tagged, cast, device):
    services.station_configure(device=device, mode=ReaderMode.TRANSFER, destination_holder=cast["doctor2"])


@pytest.mark.parametrize(
    "scene, msgid",
    [
        (_retired, custody.RETIRED),
        (_held_for_a_colleague, loan_requests.HELD_FOR),
        (_borrower_disabled, custody.ACCOUNT_DISABLED),
        (_handed_on_from_the_shelf, custody.TRANSFER_NOT_ON_LOAN),
    ],
    ids=["retired", "held-for-a-colleague", "borrower-disabled", "handed-on-from-the-shelf"],
)
def test_each_refusal_the_services_say_at_a_station_reads_in_the_viewers_language(
    agent, device, tagged, cast, scene, msgid
):
    """The services raise these with DomainError.said: the refused read keeps the msgid and its
    arguments, so a Chinese reader of the station page never gets the English of the moment."""
    scene(tagged, cast, device)

    deliver(agent, TAG)

    scan = ScanRecord.objects.get()
    assert scan.outcome == "error" and scan.message_source["msgid"] == msgid
    with translation.override("zh-hans"):
        expected = gettext(msgid) % scan.message_source["args"]
    assert expected != msgid % scan.message_source["args"]  # the catalogue has it
    assert page_messages(viewer(cast["staff"], "zh-hans")) == [escape(expected)]
    assert page_messages(viewer(cast["staff"], "en")) == [escape(scan.message)]
