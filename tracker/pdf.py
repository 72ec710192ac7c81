"""PDFs the file room prints (pull lists now; exports and labels later): A4 pages with a header
(title, facts, when it was made) and a "page N of M" footer on every page, headings, tables whose
heading row repeats on each page, and tick boxes to mark on paper.

Text prints in Helvetica, and the runs of it Helvetica cannot print (Chinese names and headers) in
reportlab's built-in CID font STSong-Light: a CID font is named, not embedded, so there is no
font file to ship and PDF readers supply it. Characters neither font has (such as ✓ or ›) print as
blanks: keep them out of titles and data.

    document = PdfDocument(title=..., facts=[...], generated_at=timezone.now())
    document.heading("Shelf FR-A1")
    document.table([Column("Item", 2), Column("Pulled", 0.6, tick=True)], [["FJ-1", ""]])
    pdf_bytes = document.render()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from xml.sax.saxutils import escape

from django.utils import timezone
from django.utils.translation import gettext as _
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from .choices import MediaStatus

CJK_FONT = "STSong-Light"
LATIN_FONT = "Helvetica"
LATIN_BOLD = "Helvetica-Bold"
MARGIN = 15 * mm
HEADER_HEIGHT = 20 * mm
FOOTER_HEIGHT = 10 * mm
RULE = colors.HexColor("#9aa4ae")
SHADE = colors.HexColor("#e8ebef")

_fonts_registered = False


def _register_fonts() -> None:
    global _fonts_registered
    if not _fonts_registered:
        pdfmetrics.registerFont(UnicodeCIDFont(CJK_FONT))
        _fonts_registered = True


def _latin(character: str) -> bool:
    """Whether Helvetica prints it (reportlab sets its standard fonts in WinAnsi, i.e. cp1252)."""
    try:
        character.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def runs(text: str, *, bold: bool = False) -> list[tuple[str, str]]:
    """`text` cut into (font, piece): Helvetica where it can print the characters, STSong-Light
    (which has no bold, and poor Latin glyphs) elsewhere."""
    latin = LATIN_BOLD if bold else LATIN_FONT
    pieces: list[tuple[str, str]] = []
    for character in text:
        font = latin if _latin(character) else CJK_FONT
        if pieces and pieces[-1][0] == font:
            pieces[-1] = (font, pieces[-1][1] + character)
        else:
            pieces.append((font, character))
    return pieces


def paragraph(text: str, *, size: float = 9, bold: bool = False) -> Paragraph:
    """Plain text (escaped, line breaks kept) as a flowable, each run in a font that has it."""
    markup = "".join(
        escape(piece) if font != CJK_FONT else f'<font name="{CJK_FONT}">{escape(piece)}</font>'
        for font, piece in runs(str(text), bold=bold)
    )
    style = ParagraphStyle(
        "filmroom", fontName=LATIN_BOLD if bold else LATIN_FONT, fontSize=size, leading=size * 1.3
    )
    return Paragraph(markup.replace("\n", "<br/>"), style)


def draw_text(
    canvas: Canvas,
    x: float,
    y: float,
    text: str,
    *,
    size: float,
    bold: bool = False,
    align: str = "left",
) -> None:
    """Draw one line at (x, y), aligned left, right or centre on x, switching fonts by run."""
    pieces = runs(str(text), bold=bold)
    width = sum(pdfmetrics.stringWidth(piece, font, size) for font, piece in pieces)
    x -= {"left": 0, "right": width, "centre": width / 2}[align]
    for font, piece in pieces:
        canvas.setFont(font, size)
        canvas.drawString(x, y, piece)
        x += pdfmetrics.stringWidth(piece, font, size)


class TickBox(Flowable):
    """An empty square to tick with a pen."""

    def __init__(self, size: float = 4 * mm):
        super().__init__()
        self.size = size
        self.width = self.height = size

    def draw(self) -> None:
        self.canv.setStrokeColor(colors.black)
        self.canv.setLineWidth(0.8)
        self.canv.rect(0, 0, self.size, self.size)


@dataclass(frozen=True)
class Column:
    """A table column: its heading, its share of the page width, and whether it is a tick box."""

    title: str
    weight: float = 1.0
    tick: bool = False


class _NumberedCanvas(Canvas):
    """Holds each page until the end, so every footer can say how many pages there are."""

    def __init__(self, *args, document: PdfDocument, **kwargs):
        super().__init__(*args, **kwargs)
        self._document = document
        self._pages: list[dict] = []

    def showPage(self) -> None:  # noqa: N802 (reportlab's name)
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        total = len(self._pages)
        for state in self._pages:
            self.__dict__.update(state)
            self._document._draw_frame(self, total)
            super().showPage()
        super().save()


class PdfDocument:
    """One printable document: add headings, paragraphs and tables, then `render()`."""

    def __init__(
        self,
        *,
        title: str,
        facts: Sequence[str] = (),
        generated_at: datetime | None = None,
        landscape_pages: bool = False,
        author: str = "Filmroom",
    ):
        _register_fonts()
        self.title = str(title)
        self.facts = [str(f) for f in facts if f]
        self.generated_at = generated_at or timezone.now()
        self.pagesize = landscape(A4) if landscape_pages else A4
        self.author = author
        self.story: list[Flowable] = []

    @property
    def width(self) -> float:
        """The width tables may use."""
        return self.pagesize[0] - 2 * MARGIN

    def heading(self, text: str, *, note: str = "") -> None:
        """A section heading, kept on the page of what follows it."""
        parts = [Spacer(1, 3 * mm), paragraph(text, size=12, bold=True)]
        if note:
            parts.append(paragraph(note, size=8))
        parts.append(Spacer(1, 1.5 * mm))
        for part in parts:
            part.keepWithNext = True
        self.story.extend(parts)

    def paragraph(self, text: str, *, size: float = 9) -> None:
        self.story.append(paragraph(text, size=size))

    def table(self, columns: Sequence[Column], rows: Iterable[Sequence]) -> None:
        """A table with a shaded heading row repeated on each page. A cell is text or a flowable;
        a tick column's cells get an empty box whatever they hold."""
        total = sum(c.weight for c in columns)
        widths = [self.width * c.weight / total for c in columns]
        data = [[paragraph(c.title, size=8, bold=True) for c in columns]]
        for row in rows:
            data.append(
                [
                    TickBox()
                    if column.tick
                    else (cell if isinstance(cell, Flowable) else paragraph(cell))
                    for column, cell in zip(columns, row, strict=True)
                ]
            )
        table = Table(data, colWidths=widths, repeatRows=1)
        table.setStyle(
            TableStyle(
                [
                    ("BACKGROUND", (0, 0), (-1, 0), SHADE),
                    ("LINEBELOW", (0, 0), (-1, -1), 0.4, RULE),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                    ("TOPPADDING", (0, 0), (-1, -1), 3),
                    ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                    *[
                        ("ALIGN", (i, 0), (i, -1), "CENTER")
                        for i, c in enumerate(columns)
                        if c.tick
                    ],
                ]
            )
        )
        self.story.append(table)

    def render(self) -> bytes:
        out = BytesIO()
        document = SimpleDocTemplate(
            out,
            pagesize=self.pagesize,
            leftMargin=MARGIN,
            rightMargin=MARGIN,
            topMargin=MARGIN + HEADER_HEIGHT,
            bottomMargin=MARGIN + FOOTER_HEIGHT,
            title=self.title,
            author=self.author,
            creator="Filmroom",
        )
        document.build(self.story or [Spacer(1, 1)], canvasmaker=self._canvas)
        return out.getvalue()

    def _canvas(self, *args, **kwargs) -> _NumberedCanvas:
        return _NumberedCanvas(*args, document=self, **kwargs)

    def _draw_frame(self, canvas: Canvas, total: int) -> None:
        """The header and footer of one page."""
        width, height = self.pagesize
        top = height - MARGIN
        canvas.saveState()
        draw_text(canvas, MARGIN, top - 14, self.title, size=14, bold=True)
        made = _("Printed %(when)s") % {
            "when": timezone.localtime(self.generated_at).strftime("%Y-%m-%d %H:%M")
        }
        draw_text(canvas, width - MARGIN, top - 12, made, size=8, align="right")
        draw_text(canvas, MARGIN, top - 28, " · ".join(self.facts), size=9)
        canvas.setStrokeColor(RULE)
        canvas.line(MARGIN, top - HEADER_HEIGHT + 6, width - MARGIN, top - HEADER_HEIGHT + 6)
        page = _("Page %(page)d of %(pages)d") % {"page": canvas.getPageNumber(), "pages": total}
        draw_text(canvas, width / 2, MARGIN, page, size=8, align="centre")
        canvas.restoreState()


# --- the documents ------------------------------------------------------------------------------


def pull_list_pdf(*, shelves, day, file_room: str, generated_at: datetime | None = None) -> bytes:
    """The pull list of `day` (tracker.services.pull_list's shelves) as the file room prints it:
    one table per shelf in walking order, a box to tick for each item pulled."""
    items = sum(len(shelf.requests) for shelf in shelves)
    document = PdfDocument(
        title=_("Pull list for %(day)s") % {"day": day.isoformat()},
        facts=[
            _("File room: %(name)s") % {"name": file_room},
            _("%(items)d items on %(shelves)d shelves") % {"items": items, "shelves": len(shelves)},
        ],
        generated_at=generated_at,
    )
    columns = [
        Column(_("Item"), 1.6),
        Column(_("Kind"), 1.3),
        Column(_("Patient ID"), 1.5),
        Column(_("Asked by"), 2.0),
        Column(_("Needed from"), 1.5),
        Column(_("Until"), 1.5),
        Column(_("Destination"), 1.8),
        Column(_("Pulled"), 0.75, tick=True),
    ]
    for shelf in shelves:
        document.heading(
            f"{_('Shelf')} {shelf.location.code} · {shelf.location.name}",
            note=" / ".join(place.name for place in shelf.path),
        )
        document.table(columns, [_pull_row(request) for request in shelf.requests])
    if not shelves:
        document.paragraph(_("Nothing to pull for this day."))
    return document.render()


def _pull_row(request) -> list[str]:
    media = request.media
    item = f"{media.code} (#{request.pk})"
    if media.status != MediaStatus.ON_SHELF:
        item += "\n" + str(media.get_status_display())
    asked_by = _person(request.requester)
    if request.also:
        asked_by += "\n" + _("then %(names)s") % {
            "names": ", ".join(f"{_person(r.requester)} (#{r.pk})" for r in request.also)
        }
    return [
        item,
        str(media.get_kind_display()),
        media.patient.patient_id if media.patient else "—",
        asked_by,
        request.needed_from.isoformat(),
        request.needed_until.isoformat(),
        request.destination.name if request.destination else "—",
        "",
    ]


def _person(user) -> str:
    return user.get_full_name() or user.get_username()
