"""The item's page shows its open flags; the file room can go from there to clear one, others
only read them (a clinician sees the flags on their own loans, as in the flags list)."""
import re

from django.test import Client
from django.utils import translation

from tracker import services
from tracker.choices import FlagKind
from tracker.services.flags import flag_clear, flag_raise


def page(user, code, language="en") -> str:
    client = Client()
    client.force_login(user)
    client.cookies["django_language"] = language
    response = client.get(f"/media/{code}/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_item_page_lists_its_open_flags_with_a_way_to_clear_them(cast, make_media):
    item = make_media("J-FLAG")
    flag = flag_raise(media=item, kind=FlagKind.NOT_SEEN)
    cleared = flag_raise(media=item, kind=FlagKind.INVENTORY_MISSING)
    flag_clear(flag=cleared, actor=cast["staff"], reason="found on the trolley")

    html = page(cast["staff"], "J-FLAG")

    box = html[html.index('id="open-flags-title"'):]
    assert "Not seen where it should be" in box and "Not found by an inventory" not in box.split("</section>")[0]
    assert f'href="/flags/{flag.pk}/clear/"' in box
    assert f"/flags/{cleared.pk}/clear/" not in html


def test_an_auditor_reads_the_flags_but_is_offered_no_clearing(cast, make_media):
    item = make_media("J-FLAG")
    flag_raise(media=item, kind=FlagKind.NOT_SEEN)

    html = page(cast["auditor"], "J-FLAG")

    assert 'id="open-flags-title"' in html
    assert "/clear/" not in html


def test_a_clinician_sees_the_overdue_flag_on_their_own_loan_only(cast, make_media):
    mine = make_media("J-MINE")
    loan = services.media_check_out(media=mine, borrower=cast["doctor"], actor=cast["staff"])
    flag_raise(media=mine, kind=FlagKind.OVERDUE, loan=loan)

    assert 'id="open-flags-title"' in page(cast["doctor"], "J-MINE")
    assert "/clear/" not in page(cast["doctor"], "J-MINE")


def test_an_item_without_open_flags_has_no_flags_box(cast, make_media):
    make_media("J-CALM")
    assert 'id="open-flags-title"' not in page(cast["staff"], "J-CALM")


def test_the_flags_box_reads_in_chinese(cast, make_media):
    item = make_media("J-FLAG")
    flag_raise(media=item, kind=FlagKind.NOT_SEEN)

    html = page(cast["staff"], "J-FLAG", "zh-hans")

    box = html[html.index('id="open-flags-title"'):].split("</section>")[0]
    with translation.override("zh-hans"):
        assert str(FlagKind.NOT_SEEN.label) in box
    assert not re.search(r"\b(raised|Clear the flag|Open flags)\b", box), box
