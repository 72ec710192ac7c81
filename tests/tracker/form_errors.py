"""Reading a refused form as assistive technology does: the input marked invalid, the message
found through the ids its aria-describedby names, and what the input still holds."""
from html.parser import HTMLParser

VOID = {
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
}


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.attrs: dict[str, dict] = {}  # element id → its attributes (and its tag)
        self.text: dict[str, str] = {}  # element id → the text inside it
        self.selected: dict[str, list[str]] = {}  # select id → values of the selected options
        self._open: list[tuple[str, str | None]] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        element_id = attrs.get("id")
        if element_id:
            self.attrs[element_id] = {**attrs, "tag": tag}
            self.text.setdefault(element_id, "")
        if tag == "select":
            self._select = element_id
            self.selected[element_id] = []
        if tag == "option" and self._select and "selected" in attrs:
            self.selected[self._select].append(attrs.get("value", ""))
        if tag not in VOID:
            self._open.append((tag, element_id))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index][0] == tag:
                del self._open[index:]
                break

    def handle_data(self, data):
        for _tag, element_id in self._open:
            if element_id:
                self.text[element_id] += data


def read(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def field_error(html: str, input_id: str) -> str:
    """The message beside the input `input_id`: it must say aria-invalid="true" and name, in
    aria-describedby, an element holding the message (the text of every such element that is
    an error, joined)."""
    page = read(html)
    attrs = page.attrs[input_id]
    assert attrs.get("aria-invalid") == "true", f"{input_id} is not marked invalid: {attrs}"
    described = (attrs.get("aria-describedby") or "").split()
    assert described, f"{input_id} names no description"
    for name in described:
        assert name in page.attrs, f"{input_id} is described by #{name}, which is not on the page"
    errors = [
        page.text[name].strip()
        for name in described
        if {"field-error", "errorlist"} & set(page.attrs[name].get("class", "").split())
    ]
    assert errors, f"none of {described} is an error message"
    return " ".join(errors)


def invalid_inputs(html: str) -> list[str]:
    page = read(html)
    return [name for name, attrs in page.attrs.items() if attrs.get("aria-invalid") == "true"]


def value_of(html: str, input_id: str) -> str | list[str]:
    """What the input holds: its value, a textarea's text, or a select's chosen values."""
    page = read(html)
    attrs = page.attrs[input_id]
    if attrs["tag"] == "select":
        return page.selected[input_id]
    if attrs["tag"] == "textarea":
        return page.text[input_id]
    if attrs.get("type") == "checkbox":
        return "checked" if "checked" in attrs else ""
    return attrs.get("value", "")
