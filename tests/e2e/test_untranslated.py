"""The untranslated-string check the browser tests rely on finds English left on a Chinese page,
and leaves data and the catalogue's deliberate English alone."""
from tests.e2e.untranslated import Catalogue

PO = r'''
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"

msgid "Checked out"
msgstr "已借出"

#, python-format
msgid "%(code)s checked out to %(name)s, due %(due)s"
msgstr "%(code)s 已借给 %(name)s，应还日期 %(due)s"

msgid "Hand-overs"
msgstr ""

#, fuzzy
msgid "Offer the hand-over"
msgstr "发起转交"

msgid "Study Instance UID"
msgstr "Study Instance UID"

msgid "Cancel"
msgstr "取消"

msgid "Tag (type the UID"
" and press Enter)"
msgstr "标签（输入 UID 后按回车键）"

#, python-format
msgid "%(n)s event, newest first."
msgid_plural "%(n)s events, newest first."
msgstr[0] "共 %(n)s 个事件，最新的在前。"

#~ msgid "Gone"
#~ msgstr "旧"
'''


def catalogue(tmp_path) -> Catalogue:
    po = tmp_path / "django.po"
    po.write_text(PO, encoding="utf-8")
    return Catalogue(po)


def test_it_finds_a_message_rendered_in_english_with_its_data(tmp_path):
    found = catalogue(tmp_path).english_in(
        "时间\t标签\n07:00\tFJ-1 checked out to Chen Jing, due 2026-12-08\t撤销", ["FJ-1", "Chen Jing"]
    )
    assert found == [
        "msgid “%(code)s checked out to %(name)s, due %(due)s”"
        " (shows “· checked out to ·, due 2026-12-08”)"
    ]


def test_it_finds_empty_and_fuzzy_translations_and_strings_the_catalogue_lacks(tmp_path):
    text = "胶片室\nHand-overs\n发起转交\nOffer the hand-over\nBack to hand-overs\n已借出"
    assert catalogue(tmp_path).english_in(text) == [
        "msgid “Offer the hand-over”",
        "msgid “Hand-overs”",
        "English: “Back to hand-overs”",
    ]


def test_a_word_inside_a_longer_english_string_is_that_string(tmp_path):
    found = catalogue(tmp_path).english_in("Cancel hand-over\n状态\tCancel")
    assert found == ["msgid “Cancel”", "English: “Cancel hand-over”"]


def test_it_leaves_data_kept_english_and_the_words_translations_use(tmp_path):
    text = (
        "Study Instance UID\n标签（输入 UID 后按回车键）\n共 8 个事件，最新的在前。\n"
        "FJ-20431\tChen Jing\tFilm library\t04C1D2E3\tdue_at: 2026-12-08\t9ffbd768abc4…"
    )
    assert catalogue(tmp_path).english_in(text, ["Chen Jing", "Film library"]) == []


def test_an_untranslated_plural_and_a_continued_msgid_are_found(tmp_path):
    text = "Whole history. 8 events, newest first.\nTag (type the UID and press Enter)"
    assert catalogue(tmp_path).english_in(text) == [
        "msgid “Tag (type the UID and press Enter)”",
        "msgid “%(n)s events, newest first.” (shows “8 events, newest first.”)",
        "English: “Whole history. ·”",
    ]
