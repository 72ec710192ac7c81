"""Printable QR labels for jackets and discs, shelves and people's badges, on common label stock.

Each label carries a QR code of the absolute URL of the thing's page (an item /media/<code>/, a
place /locations/<code>/, a person /people/<username>/) drawn as vector squares, and the same
thing in words: the code in large type, then a few short lines.

The stock (sizes in mm, origin at the sheet's top-left corner):
- "a4-3x8": A4, 3 x 8 labels of 70 x 37 mm, Avery Zweckform 3474: no side margins, 0.5 mm at
  the top and bottom, no gaps. Those labels run to the sheet's edge where office printers
  cannot print (about 4 mm), so everything keeps 5 mm inside each label.
- "a4-2x7": A4, 2 x 7 labels of 99.1 x 38.1 mm, Avery L7163: 4.65 mm left and right, 15.15 mm
  top and bottom, 2.5 mm between the columns, none between rows; 4 mm inside each label.
- "roll-62": Brother DK-22205, 62 mm continuous paper: one 62 x 29 mm label per page (set the
  label length to 29 mm in the printer driver; a DK-11209 62 x 29 mm die-cut roll fits too);
  3 mm inside.

What an item's label says: its code, kind and home shelf, and the patient ID when the item
belongs to a patient (a jacket is filed and pulled by that number, and the number alone tells a
passer-by nothing without a login). The patient's NAME is printed only when
settings.LABEL_SHOW_PATIENT_NAME is on (FILMROOM_LABEL_SHOW_PATIENT_NAME, off by default):
labels travel through corridors and couriers' bags. The QR holds only the URL; the page it
opens needs a login.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from io import BytesIO
from urllib.parse import urljoin

import qrcode
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from qrcode.constants import ERROR_CORRECT_M
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from .pdf import CJK_FONT, draw_text, runs

QUIET_MODULES = 4  # the white margin a QR code needs around it (ISO/IEC 18004), in modules
TITLE_SIZE, TITLE_MIN_SIZE = 14.0, 7.0
LINE_SIZE, LINE_MIN_SIZE = 7.5, 5.0
MAX_LABELS = 2000  # one request; 84 sheets of the smallest stock


@dataclass(frozen=True)
class Stock:
    """A kind of label stock: its page and where each label sits on it (mm, from the top-left)."""

    key: str
    name: str
    page_mm: tuple[float, float]
    columns: int
    rows: int
    label_mm: tuple[float, float]
    first_mm: tuple[float, float]  # the top-left corner of the first label
    pitch_mm: tuple[float, float]  # from one label's corner to the next one's, across and down
    padding_mm: float  # kept clear inside each label

    @property
    def per_page(self) -> int:
        return self.columns * self.rows

    @property
    def page_size(self) -> tuple[float, float]:
        return self.page_mm[0] * mm, self.page_mm[1] * mm

    def slot_box(self, slot: int) -> tuple[float, float, float, float]:
        """The label at `slot` (0 is the top-left, then along the row) as (x, y, width, height)
        in PDF points, y measured up from the bottom of the page as PDF does."""
        if not 0 <= slot < self.per_page:
            raise ValueError(f"slot {slot} is not on a {self.per_page}-label page")
        row, column = divmod(slot, self.columns)
        width, height = self.label_mm
        left = self.first_mm[0] + column * self.pitch_mm[0]
        top = self.first_mm[1] + row * self.pitch_mm[1]
        return left * mm, (self.page_mm[1] - top - height) * mm, width * mm, height * mm


STOCKS: dict[str, Stock] = {
    stock.key: stock
    for stock in (
        Stock(
            key="a4-3x8",
            name=gettext_lazy("A4 sheet, 3 × 8 labels of 70 × 37 mm (Avery 3474)"),
            page_mm=(210, 297),
            columns=3,
            rows=8,
            label_mm=(70, 37),
            first_mm=(0, 0.5),
            pitch_mm=(70, 37),
            padding_mm=5,
        ),
        Stock(
            key="a4-2x7",
            name=gettext_lazy("A4 sheet, 2 × 7 labels of 99.1 × 38.1 mm (Avery L7163)"),
            page_mm=(210, 297),
            columns=2,
            rows=7,
            label_mm=(99.1, 38.1),
            first_mm=(4.65, 15.15),
            pitch_mm=(101.6, 38.1),
            padding_mm=4,
        ),
        Stock(
            key="roll-62",
            name=gettext_lazy("62 mm roll, one 62 × 29 mm label a page (Brother DK-22205)"),
            page_mm=(62, 29),
            columns=1,
            rows=1,
            label_mm=(62, 29),
            first_mm=(0, 0),
            pitch_mm=(62, 29),
            padding_mm=3,
        ),
    )
}
assert STOCKS["a4-3x8"].page_size == A4  # the sheets are A4 as reportlab knows it


@dataclass(frozen=True)
class Label:
    """One label: the URL its QR code opens, the code in large type, and short lines under it."""

    url: str
    title: str
    lines: tuple[str, ...] = ()


def absolute_url(base_url: str, path: str) -> str:
    """`path` on the site at `base_url` (settings.SITE_URL, or where the page was opened)."""
    return urljoin(base_url.rstrip("/") + "/", path.lstrip("/"))


def media_label(media, *, base_url: str, show_patient_name: bool = False) -> Label:
    """An item's label: code, kind, home shelf, patient ID, and the name only when the site
    chose to print names (see the module's docstring)."""
    lines = [
        str(media.get_kind_display()),
        _("Home: %(code)s") % {"code": media.home_location.code},
    ]
    if media.patient is not None:
        lines.append(_("Patient ID: %(id)s") % {"id": media.patient.patient_id})
        if show_patient_name and media.patient.name:
            lines.append(media.patient.name)
    return Label(
        absolute_url(base_url, reverse("media-detail", args=[media.code])), media.code, tuple(lines)
    )


def shelf_label(location, *, base_url: str) -> Label:
    """A place's label: code, name, kind and what it is inside."""
    lines = [location.name, str(location.get_kind_display())]
    if location.parent is not None:
        lines.append(
            _("In: %(code)s %(name)s")
            % {"code": location.parent.code, "name": location.parent.name}
        )
    return Label(
        absolute_url(base_url, reverse("location-detail", args=[location.code])),
        location.code,
        tuple(lines),
    )


def badge_label(user, *, base_url: str, roles: Sequence[str] = ()) -> Label:
    """A person's badge label: their name, login name and roles."""
    name = user.get_full_name() or user.get_username()
    lines = [user.get_username()] if name != user.get_username() else []
    if roles:
        lines.append(", ".join(str(role) for role in roles))
    return Label(
        absolute_url(base_url, reverse("person-detail", args=[user.get_username()])),
        name,
        tuple(lines),
    )


def qr_matrix(data: str) -> list[list[bool]]:
    """The QR code of `data` as rows of modules (True is dark), without its quiet zone:
    error correction level M (15 %), the smallest version that holds it."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=0)
    code.add_data(data)
    code.make(fit=True)
    return [list(row) for row in code.get_matrix()]


def placements(count: int, *, stock: Stock, start: int = 1) -> list[tuple[int, int]]:
    """(page, slot) for each of `count` labels, filling the first sheet from `start` (1 is the
    top-left label; a partly used sheet's first free label) and every later sheet from its top."""
    if not 1 <= start <= stock.per_page:
        raise ValueError(f"start must be between 1 and {stock.per_page}")
    return [divmod(start - 1 + n, stock.per_page) for n in range(count)]


def labels_pdf(labels: Sequence[Label], *, stock: Stock, start: int = 1, title: str = "") -> bytes:
    """The labels laid out on `stock`, one PDF page per sheet (or per roll label)."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels at once")
    _register_fonts()
    out = BytesIO()
    canvas = Canvas(out, pagesize=stock.page_size)
    canvas.setTitle(title or _("Filmroom labels"))
    canvas.setAuthor("Filmroom")
    canvas.setCreator("Filmroom")
    page = 0
    for label, (label_page, slot) in zip(
        labels, placements(len(labels), stock=stock, start=start), strict=True
    ):
        if label_page != page:
            canvas.showPage()
            page = label_page
        draw_label(canvas, label, stock.slot_box(slot), padding=stock.padding_mm * mm)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def draw_label(
    canvas: Canvas, label: Label, box: tuple[float, float, float, float], *, padding: float
) -> None:
    """The QR code on the left, as large as the label's height allows, and the words beside it."""
    x, y, width, height = box
    matrix = qr_matrix(label.url)
    side = height - 2 * padding
    module = min(side / len(matrix), padding / QUIET_MODULES)  # keep a full quiet zone around
    side = module * len(matrix)
    qr_x, qr_y = x + padding, y + (height - side) / 2
    draw_qr(canvas, matrix, qr_x, qr_y, module)
    text_x = qr_x + side + max(QUIET_MODULES * module, 2 * mm)
    text_width = x + width - padding - text_x
    _draw_words(canvas, label, text_x, y + height - padding, text_width, height - 2 * padding)


def draw_qr(canvas: Canvas, matrix: list[list[bool]], x: float, y: float, module: float) -> None:
    """The matrix as filled squares (vector, no raster), each run of dark modules in a row as
    one rectangle; (x, y) is the code's bottom-left corner."""
    canvas.saveState()
    canvas.setFillColorRGB(0, 0, 0)
    top = y + module * len(matrix)
    for row_number, row in enumerate(matrix):
        row_y = top - (row_number + 1) * module
        column = 0
        while column < len(row):
            if not row[column]:
                column += 1
                continue
            end = column
            while end < len(row) and row[end]:
                end += 1
            canvas.rect(
                x + column * module, row_y, (end - column) * module, module, stroke=0, fill=1
            )
            column = end
    canvas.restoreState()


def _draw_words(
    canvas: Canvas, label: Label, x: float, top: float, width: float, height: float
) -> None:
    """The title, then each line, each shrunk (to a floor) and then shortened to fit `width`;
    lines that do not fit in `height` are left off."""
    if width <= 0:
        return
    title, size = fit(label.title, width, TITLE_SIZE, TITLE_MIN_SIZE, bold=True)
    baseline = top - size * 0.8
    draw_text(canvas, x, baseline, title, size=size, bold=True)
    bottom = top - height
    baseline -= size * 0.35
    for line in label.lines:
        text, line_size = fit(line, width, LINE_SIZE, LINE_MIN_SIZE)
        baseline -= line_size * 1.25
        if baseline < bottom:
            break
        draw_text(canvas, x, baseline, text, size=line_size)


def text_width(text: str, size: float, *, bold: bool = False) -> float:
    return sum(pdfmetrics.stringWidth(piece, font, size) for font, piece in runs(text, bold=bold))


def fit(
    text: str, width: float, size: float, min_size: float, *, bold: bool = False
) -> tuple[str, float]:
    """`text` at the largest size from `size` down to `min_size` (half points) that fits `width`;
    at `min_size`, cut short with an ellipsis."""
    text = " ".join(str(text).split())
    while size > min_size and text_width(text, size, bold=bold) > width:
        size -= 0.5
    if text_width(text, size, bold=bold) <= width:
        return text, size
    while text and text_width(text + "…", size, bold=bold) > width:
        text = text[:-1]
    return (text + "…" if text else ""), size


def _register_fonts() -> None:
    if CJK_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))


def stock_choices() -> Iterable[tuple[str, str]]:
    return [(stock.key, stock.name) for stock in STOCKS.values()]
