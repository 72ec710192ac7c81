"""Printable QR labels: the stock's geometry, the PDF the file room prints, what each label says,
and that each QR code is the code of the right page's address.

No QR decoder is pinned, so nothing here decodes a QR code. Instead the squares the PDF draws
are read back (from the page's content stream, and once from a real rasterizer's pixels:
poppler's pdftoppm, installed by make test) and compared module by module with the matrix the `qrcode`
library makes for the URL the label should open. A decoder reading the printed symbol back is
therefore trusted to `qrcode`'s encoder being correct; what these tests prove is that the PDF
carries exactly that symbol, for that URL, on that label, with white space around it."""

from __future__ import annotations

import math
import subprocess
from io import BytesIO

import pytest
import qrcode
from django.test import Client
from PIL import Image
from pypdf import PdfReader
from pypdf.generic import ContentStream
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.units import mm

from archive.models import Patient
from tracker import labels, services
from tracker.labels import STOCKS

pytestmark = pytest.mark.django_db

SITE = "https://filmroom.hospital.example"


def expected_matrix(url: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(url)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


# --- reading a PDF back ---------------------------------------------------------------------------


def page_rects(page) -> list[tuple[float, float, float, float]]:
    """Every filled rectangle the page draws, in page coordinates (the labels use no transforms
    but the identity; a scaled or moved coordinate system would fail here, not pass wrongly)."""
    rects = []
    for operands, operator in ContentStream(page.get_contents(), page.pdf).operations:
        if operator == b"cm":
            assert [float(v) for v in operands] == [1, 0, 0, 1, 0, 0]
        elif operator == b"re":
            rects.append(tuple(float(v) for v in operands))
    return rects


def page_words(page) -> list[tuple[str, float, float]]:
    """(text, x, y) of every piece of text the page shows."""
    found = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            found.append((text.strip(), tm[4], tm[5]))

    page.extract_text(visitor_text=visit)
    return found


def inside(box, x, y) -> bool:
    bx, by, bw, bh = box
    return bx - 0.01 <= x <= bx + bw + 0.01 and by - 0.01 <= y <= by + bh + 0.01


def drawn_symbol(rects, box, size: int):
    """The QR modules drawn inside `box` as a size x size grid, with the symbol's corner and
    module width; asserts the drawing is made of whole modules."""
    mine = [r for r in rects if inside(box, r[0], r[1]) and inside(box, r[0] + r[2], r[1] + r[3])]
    assert mine, f"no squares drawn in the label at {box}"
    left, bottom = min(r[0] for r in mine), min(r[1] for r in mine)
    right, top = max(r[0] + r[2] for r in mine), max(r[1] + r[3] for r in mine)
    module = (right - left) / size
    assert math.isclose(top - bottom, right - left, rel_tol=1e-6), "the code is not square"
    grid = [[False] * size for _ in range(size)]
    for x, y, w, h in mine:
        column, row = round((x - left) / module), round((top - y - h) / module)
        width = round(w / module)
        assert math.isclose(h, module, rel_tol=1e-6) and math.isclose(
            w, width * module, rel_tol=1e-6
        )
        for c in range(column, column + width):
            assert not grid[row][c], "a module drawn twice"
            grid[row][c] = True
    return grid, (left, bottom, top), module


def label_texts(words, box) -> list[str]:
    return [text for text, x, y in words if inside(box, x, y)]


def read(pdf: bytes) -> PdfReader:
    assert pdf.startswith(b"%PDF-")
    return PdfReader(BytesIO(pdf))


# --- the stock ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, per_page, label, first, last",
    [
        # Avery 3474: 70 x 37 mm, from the sheet's left edge, 0.5 mm down; the last label ends
        # 0.5 mm above the bottom of the 297 mm sheet.
        ("a4-3x8", 24, (70, 37), (0, 0.5), (140, 259.5)),
        # Avery L7163: 99.1 x 38.1 mm, 4.65 mm in and 15.15 mm down, 2.5 mm between columns.
        ("a4-2x7", 14, (99.1, 38.1), (4.65, 15.15), (106.25, 243.75)),
        ("roll-62", 1, (62, 29), (0, 0), (0, 0)),
    ],
)
def test_each_stock_puts_its_labels_where_the_sheet_has_them(key, per_page, label, first, last):
    stock = STOCKS[key]
    page_width, page_height = stock.page_size

    def corner_mm(slot):  # top-left corner, mm from the sheet's top-left, as label makers give it
        x, y, w, h = stock.slot_box(slot)
        return (
            round(x / mm, 3),
            round((page_height - y - h) / mm, 3),
            round(w / mm, 3),
            round(h / mm, 3),
        )

    assert stock.per_page == per_page
    assert corner_mm(0) == (*first, *label)
    assert corner_mm(per_page - 1) == (*last, *label)
    boxes = [stock.slot_box(slot) for slot in range(per_page)]
    for x, y, w, h in boxes:  # on the page
        assert (
            x >= -1e-6 and y >= -1e-6 and x + w <= page_width + 1e-6 and y + h <= page_height + 1e-6
        )
    for a in range(per_page):  # and never on top of each other
        for b in range(a + 1, per_page):
            ax, ay, aw, ah = boxes[a]
            bx, by, bw, bh = boxes[b]
            assert (
                ax + aw <= bx + 1e-6
                or bx + bw <= ax + 1e-6
                or ay + ah <= by + 1e-6
                or by + bh <= ay + 1e-6
            )


def test_the_a4_stocks_are_a4_and_the_roll_is_62_mm_wide():
    assert [round(v / mm, 1) for v in STOCKS["a4-3x8"].page_size] == [210, 297]
    assert [round(v / mm, 1) for v in STOCKS["a4-2x7"].page_size] == [210, 297]
    assert [round(v / mm, 1) for v in STOCKS["roll-62"].page_size] == [62, 29]


def test_it_starts_a_partly_used_sheet_at_the_first_free_label():
    stock = STOCKS["a4-3x8"]

    assert labels.placements(3, stock=stock, start=1) == [(0, 0), (0, 1), (0, 2)]
    assert labels.placements(3, stock=stock, start=23) == [(0, 22), (0, 23), (1, 0)]
    assert labels.placements(2, stock=STOCKS["roll-62"]) == [(0, 0), (1, 0)]
    with pytest.raises(ValueError):
        labels.placements(1, stock=stock, start=25)
    with pytest.raises(ValueError):
        labels.placements(1, stock=stock, start=0)


# --- the PDF --------------------------------------------------------------------------------------


@pytest.fixture
def jackets(make_media, places):
    """Thirty jackets of one patient on shelf FR-A1, and a disc with no patient."""
    patient = Patient.objects.create(patient_id="MRN-4711", name="Ada Lovelace")
    items = [make_media(f"J-{n:04d}", patient=patient) for n in range(30)]
    items.append(make_media("CD-0001", kind="cd"))
    return items


def media_pdf(items, *, stock="a4-3x8", start=1, show_patient_name=False, base_url=SITE) -> bytes:
    made = [
        labels.media_label(m, base_url=base_url, show_patient_name=show_patient_name) for m in items
    ]
    return labels.labels_pdf(made, stock=STOCKS[stock], start=start)


def test_it_lays_31_labels_on_two_sheets_and_every_code_is_printed(jackets):
    reader = read(media_pdf(jackets))

    assert len(reader.pages) == 2
    text = "\n".join(page.extract_text() for page in reader.pages)
    for item in jackets:
        assert item.code in text
    assert "Patient ID: MRN-4711" in text and "Home: FR-A1" in text and "Film jacket" in text


def test_each_label_has_the_qr_code_of_its_items_page_and_its_own_words(jackets):
    stock = STOCKS["a4-2x7"]
    reader = read(media_pdf(jackets[:3], stock="a4-2x7", start=5))
    page = reader.pages[0]
    rects, words = page_rects(page), page_words(page)

    for slot, item in zip((4, 5, 6), jackets[:3], strict=True):
        box = stock.slot_box(slot)
        expected = expected_matrix(f"{SITE}/media/{item.code}/")
        grid, _corner, _module = drawn_symbol(rects, box, len(expected))
        assert grid == expected
        assert item.code in label_texts(words, box)
    for slot in (0, 1, 2, 3, 7):  # the used labels before the start, and the rest, stay blank
        assert not [r for r in rects if inside(stock.slot_box(slot), r[0], r[1])]


def test_the_qr_code_keeps_four_white_modules_around_it_inside_its_label(jackets):
    for key, stock in STOCKS.items():
        page = read(media_pdf(jackets[:1], stock=key)).pages[0]
        x, y, w, h = stock.slot_box(0)
        expected = expected_matrix(f"{SITE}/media/{jackets[0].code}/")
        grid, (left, bottom, top), module = drawn_symbol(
            page_rects(page), (x, y, w, h), len(expected)
        )
        words = page_words(page)
        assert grid == expected
        assert left - x >= 4 * module - 0.01 and bottom - y >= 4 * module - 0.01, key
        assert y + h - top >= 4 * module - 0.01, key
        right = left + module * len(expected)
        assert all(
            tx >= right + 4 * module - 0.01 for _t, tx, ty in words if inside((x, y, w, h), tx, ty)
        ), key
        assert module >= 0.5 * mm, (
            f"{key}: modules of {module / mm:.2f} mm are too small to scan reliably"
        )


def test_the_patient_name_is_left_off_unless_the_site_prints_names(jackets):
    without = "\n".join(p.extract_text() for p in read(media_pdf(jackets[:2])).pages)
    with_names = "\n".join(
        p.extract_text() for p in read(media_pdf(jackets[:2], show_patient_name=True)).pages
    )

    assert "MRN-4711" in without and "Ada Lovelace" not in without and "Lovelace" not in without
    assert "Ada Lovelace" in with_names


def test_a_chinese_name_prints_in_the_cid_font(make_media, places):
    patient = Patient.objects.create(patient_id="MRN-88", name="王小明")
    item = make_media("J-CN", patient=patient)

    pdf = media_pdf([item], show_patient_name=True)

    assert b"STSong-Light" in pdf
    assert "J-CN" in read(pdf).pages[0].extract_text()


def test_a_long_code_is_shrunk_or_cut_to_stay_on_its_label(make_media, places):
    item = make_media("JACKET-" + "9" * 24)
    stock = STOCKS["roll-62"]

    page = read(media_pdf([item], stock="roll-62")).pages[0]

    box = stock.slot_box(0)
    words = page_words(page)
    assert label_texts(words, box)
    right_edge = box[0] + box[2]
    text_width = labels.text_width
    for text, x, _y in words:
        assert x + text_width(text, labels.LINE_MIN_SIZE) <= right_edge


def test_shelf_and_badge_labels_open_the_place_and_the_person(cast, places):
    cast["staff"].first_name, cast["staff"].last_name = "Sam", "Shelver"
    made = [
        labels.shelf_label(places["shelf"], base_url=SITE),
        labels.badge_label(cast["staff"], base_url=SITE, roles=["File-room staff"]),
    ]
    stock = STOCKS["a4-3x8"]

    page = read(labels.labels_pdf(made, stock=stock)).pages[0]

    rects, words = page_rects(page), page_words(page)
    for slot, url, words_expected in (
        (0, f"{SITE}/locations/FR-A1/", {"FR-A1", "Shelf A1", "Shelf", "In: FR File room"}),
        (1, f"{SITE}/people/staff/", {"Sam Shelver", "staff", "File-room staff"}),
    ):
        expected = expected_matrix(url)
        assert drawn_symbol(rects, stock.slot_box(slot), len(expected))[0] == expected
        assert words_expected <= set(label_texts(words, stock.slot_box(slot)))


def test_a_real_rasterizer_prints_the_same_modules(jackets, tmp_path):
    """pdftoppm (poppler) renders the sheet at 600 dpi; the pixel at each module's centre is
    dark exactly where the QR matrix of the item's URL has a dark module."""
    stock = STOCKS["a4-3x8"]
    pdf = media_pdf(jackets[:1])
    (tmp_path / "sheet.pdf").write_bytes(pdf)
    subprocess.run(
        [
            "pdftoppm",
            "-r",
            "600",
            "-gray",
            "-png",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(tmp_path / "sheet.pdf"),
            str(tmp_path / "sheet"),
        ],
        check=True,
        timeout=60,
    )
    image = Image.open(tmp_path / "sheet.png").convert("L")
    expected = expected_matrix(f"{SITE}/media/{jackets[0].code}/")
    _grid, (left, _bottom, top), module = drawn_symbol(
        page_rects(read(pdf).pages[0]), stock.slot_box(0), len(expected)
    )
    scale = 600 / 72
    page_height = stock.page_size[1]

    def dark(row, column) -> bool:
        x = (left + (column + 0.5) * module) * scale
        y = (page_height - (top - (row + 0.5) * module)) * scale
        return image.getpixel((round(x), round(y))) < 128

    size = len(expected)
    assert [[dark(r, c) for c in range(size)] for r in range(size)] == expected
    # and the quiet zone around it is white
    assert not any(dark(-2, c) for c in range(size)) and not any(
        dark(r, size + 1) for r in range(size)
    )


def test_it_refuses_more_labels_than_one_request_may_print(jackets):
    made = [labels.media_label(jackets[0], base_url=SITE)] * (labels.MAX_LABELS + 1)

    with pytest.raises(ValueError):
        labels.labels_pdf(made, stock=STOCKS["a4-3x8"])


# --- the page -------------------------------------------------------------------------------------


def page_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_form_offers_every_stock_and_what_to_print(cast):
    response = page_for(cast["staff"]).get("/labels/")

    html = response.content.decode()
    assert response.status_code == 200
    for stock in STOCKS.values():
        assert f'value="{stock.key}"' in html
    for what in ("media", "shelf_items", "locations", "badges"):
        assert f'value="{what}"' in html
    assert "<legend>" in html and 'for="id_codes"' in html and 'for="id_start"' in html


def test_it_prints_the_items_typed_in_the_order_typed(cast, jackets, settings):
    settings.SITE_URL = SITE
    response = page_for(cast["staff"]).get(
        "/labels/",
        {"what": "media", "codes": "J-0002, J-0001\nCD-0001", "stock": "a4-3x8", "start": "1"},
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    page = read(response.content).pages[0]
    rects, words = page_rects(page), page_words(page)
    stock = STOCKS["a4-3x8"]
    for slot, code in enumerate(["J-0002", "J-0001", "CD-0001"]):
        assert code in label_texts(words, stock.slot_box(slot))
        expected = expected_matrix(f"{SITE}/media/{code}/")
        assert drawn_symbol(rects, stock.slot_box(slot), len(expected))[0] == expected


def test_without_a_site_url_the_codes_point_at_the_address_the_page_was_opened_at(
    cast, jackets, settings
):
    settings.SITE_URL = ""
    response = page_for(cast["staff"]).get(
        "/labels/", {"what": "media", "codes": "J-0003", "stock": "roll-62"}
    )

    page = read(response.content).pages[0]
    expected = expected_matrix("http://testserver/media/J-0003/")
    assert (
        drawn_symbol(page_rects(page), STOCKS["roll-62"].slot_box(0), len(expected))[0] == expected
    )


def test_the_page_prints_patient_names_only_when_the_setting_says_so(cast, jackets, settings):
    query = {"what": "media", "codes": "J-0001"}
    settings.LABEL_SHOW_PATIENT_NAME = False
    off = read(page_for(cast["staff"]).get("/labels/", query).content).pages[0].extract_text()
    settings.LABEL_SHOW_PATIENT_NAME = True
    on = read(page_for(cast["staff"]).get("/labels/", query).content).pages[0].extract_text()

    assert "MRN-4711" in off and "Lovelace" not in off
    assert "Ada Lovelace" in on


def test_a_link_prints_every_item_whose_home_is_a_shelf(cast, jackets, make_media, places):
    make_media("J-ELSEWHERE", home_location=places["shelf2"])
    retired = make_media("J-GONE")
    services.media_retire(media=retired, actor=cast["staff"], reason="Water damage")

    response = page_for(cast["admin"]).get("/labels/", {"what": "shelf_items", "shelf": "FR-A1"})

    assert response.status_code == 200
    reader = read(response.content)
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert len(reader.pages) == 2  # 31 items on 24-label sheets
    assert "J-0029" in text and "CD-0001" in text
    assert "J-ELSEWHERE" not in text and "J-GONE" not in text


def test_it_prints_a_room_and_every_shelf_inside_it(cast, places):
    response = page_for(cast["staff"]).get(
        "/labels/", {"what": "locations", "codes": "FR", "inside": "on", "stock": "a4-2x7"}
    )

    page = read(response.content).pages[0]
    stock = STOCKS["a4-2x7"]
    words = page_words(page)
    assert [label_texts(words, stock.slot_box(s))[0] for s in range(3)] == ["FR", "FR-A1", "FR-A2"]


def test_it_prints_badges_for_people_with_a_role(cast):
    response = page_for(cast["staff"]).get("/labels/", {"what": "badges", "codes": "doctor staff"})

    text = read(response.content).pages[0].extract_text()
    assert "Doctor" in text and "Clinician" in text and "File-room staff" in text


@pytest.mark.parametrize(
    "query, message",
    [
        ({"what": "media", "codes": "J-0001 NO-SUCH"}, "No item has the code(s) NO-SUCH"),
        ({"what": "media", "codes": ""}, "Type at least one code"),
        ({"what": "media", "codes": "J-0001", "start": "25"}, "This stock has 24 labels a sheet"),
        ({"what": "media", "codes": "J-0001", "stock": "a4-9x9"}, "Select a valid choice"),
        ({"what": "shelf_items", "shelf": ""}, "Name the shelf"),
        ({"what": "shelf_items", "shelf": "ORTHO"}, "No item calls ORTHO home yet"),
        ({"what": "locations", "codes": "NOWHERE"}, "No place has the code(s) NOWHERE"),
        ({"what": "badges", "codes": "nobody"}, "No active person with a role"),
    ],
)
def test_it_says_what_is_wrong_and_prints_nothing(cast, jackets, query, message):
    response = page_for(cast["staff"]).get("/labels/", query)

    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert message in html and "Nothing was printed" in html


@pytest.mark.parametrize(
    "who, status",
    [
        (None, 302),
        ("nobody", 403),
        ("doctor", 403),
        ("auditor", 403),
        ("staff", 200),
        ("admin", 200),
    ],
)
def test_only_the_file_room_and_admins_print_labels(cast, jackets, who, status):
    client = page_for(cast[who]) if who else Client()

    form = client.get("/labels/")
    pdf = client.get("/labels/", {"what": "media", "codes": "J-0001"})

    assert form.status_code == status and pdf.status_code == status
    if status == 302:
        assert form["Location"].startswith("/login/")
    if status == 200:
        assert pdf["Content-Type"] == "application/pdf"
