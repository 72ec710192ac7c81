"""English left on a page shown in Simplified Chinese.

Two looks at a page's visible text, once the data on it (codes, names, places, the people's own
words) is blanked out:
- the catalogue's msgids: any whose msgstr differs from it (no msgstr yet, a fuzzy one, or a
  string drawn in another language) found on the page was not translated. Only msgids with more
  than three characters besides their placeholders, and a letter, are looked for; a placeholder
  (%(code)s, {{ n }} in a template) matches any text in the same line and table cell, so
  "FJ-1 checked out to …" is found from "%(code)s checked out to %(name)s, due %(due)s";
- what is left: a line still holding an English word that no translation in the catalogue uses
  ("UID", "API", "PDF" are used; "Hand" is not) is a string the catalogue lacks altogether (a
  template changed since the last makemessages).
Msgids the catalogue keeps as they are ("Study Instance UID") are blanked out first."""
from __future__ import annotations

import ast
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

PLACEHOLDER = re.compile(r"%\(\w+\)[-#0 +]*\d*(?:\.\d+)?[sdifr]|%[sdif]")
TAG = re.compile(r"<[^>]+>")
LETTER = re.compile(r"[A-Za-z]")
# A token is a run of these; it is an English word if it is letters only (codes, hashes, dates
# and snake_case keys hold digits or underscores).
TOKEN = re.compile(r"[A-Za-z0-9_]+(?:['’.-][A-Za-z0-9_]+)*")
WORD = re.compile(r"[A-Za-z]{2,}(?:['’-][A-Za-z]+)*")
BLANK = "·"


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str = ""
    msgstr: list[str] = field(default_factory=list)
    fuzzy: bool = False


def entries(po: Path) -> list[Entry]:
    """The entries of a .po file (obsolete `#~` ones left out)."""
    found: list[Entry] = []
    entry, key = Entry(), None

    def finish():
        nonlocal entry, key
        if entry.msgid:
            found.append(entry)
        entry, key = Entry(), None

    for line in po.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            finish()
        elif line.startswith("#,"):
            entry.fuzzy = entry.fuzzy or "fuzzy" in line
        elif line.startswith("#"):
            continue
        elif line.startswith('"') and key:
            _append(entry, key, ast.literal_eval(line))
        else:
            if line.startswith("msgid ") and (entry.msgid or entry.msgstr):
                finish()  # entries not separated by a blank line
            key, _sep, rest = line.partition(" ")
            _append(entry, key, ast.literal_eval(rest))
    finish()
    return found


def _append(entry: Entry, key: str, text: str) -> None:
    if key == "msgid":
        entry.msgid += text
    elif key == "msgid_plural":
        entry.msgid_plural += text
    elif key.startswith("msgstr"):
        index = int(key[7:-1]) if key.startswith("msgstr[") else 0
        while len(entry.msgstr) <= index:
            entry.msgstr.append("")
        entry.msgstr[index] += text


@dataclass(frozen=True)
class Phrase:
    msgid: str
    pattern: re.Pattern


def _pattern(msgid: str) -> re.Pattern | None:
    pieces = PLACEHOLDER.split(msgid)
    literals = [
        " ".join(html.unescape(TAG.sub(" ", piece)).replace("%%", "%").split()) for piece in pieces
    ]
    words = "".join(literals)
    if len(words.replace(" ", "")) <= 3 or not LETTER.search(words):
        return None
    parts = [_words(piece, text) for piece, text in zip(pieces, literals, strict=True)]
    # A placeholder stays within its line and table cell; at either end it is one word (data is
    # blanked to one), so "Whole history. 8 events" is not all taken for "%(n)s events".
    body = r"[^\n\t]+?".join(parts)
    if not parts[0]:
        body = r"\S+" + body.removeprefix(r"[^\n\t]+?")
    if not parts[-1]:
        body = body.removesuffix(r"[^\n\t]+?") + r"\S+"
    start = r"(?<![A-Za-z])" if LETTER.match(pieces[0].lstrip()[:1] or "-") else ""
    end = r"(?![A-Za-z])" if LETTER.match(pieces[-1].rstrip()[-1:] or "-") else ""
    return re.compile(start + body + end)


def _words(piece: str, text: str) -> str:
    """A msgid's words between two placeholders, with any spacing between and around them."""
    if not text:
        return ""
    before = r"\s+" if piece[:1].isspace() else ""
    after = r"\s+" if piece[-1:].isspace() else ""
    return before + r"\s+".join(map(re.escape, text.split(" "))) + after


class Catalogue:
    """What a .po file says the site can show, and what its translations look like."""

    def __init__(self, po: Path):
        self.phrases: list[Phrase] = []
        kept: set[str] = set()
        self.vocabulary: set[str] = set()
        for entry in entries(po):
            translated = entry.msgstr[0] if entry.msgstr else ""
            for text in entry.msgstr:
                self.vocabulary.update(WORD.findall(PLACEHOLDER.sub(" ", TAG.sub(" ", text))))
            for msgid in filter(None, (entry.msgid, entry.msgid_plural)):
                if msgid == translated and not entry.fuzzy:
                    kept.add(msgid)
                elif (pattern := _pattern(msgid)) is not None:
                    self.phrases.append(Phrase(msgid, pattern))
        # Whole sentences first, single words last.
        self.phrases.sort(key=lambda phrase: (" " not in phrase.msgid.strip(), -len(phrase.msgid)))
        self.kept = sorted(kept, key=len, reverse=True)

    def english_in(self, text: str, data=()) -> list[str]:
        """What on a zh-Hans page is still English: the catalogue's msgids (as `msgid “…”`,
        with what the page shows when it differs), then lines with English words no translation
        uses (as `English: “…”`: mostly strings the catalogue lacks). `data` is blanked out first.

        A msgid found inside a longer English string is not that string: a one-word msgid
        ("Cancel") counts only where no other English word shares its table cell or line, a
        longer one only where no word runs on from it ("Custody chain of item" is not "Custody
        chain"). Those strings are reported as their lines."""
        text = _blank(text, [*data, *self.kept])
        found = []
        for phrase in self.phrases:
            single = " " not in phrase.msgid.strip()
            matches = [
                match for match in phrase.pattern.finditer(text)
                if not (self._has_english(_cell(text, match)) if single else _joined(text, match))
            ]
            if matches:
                shown = " ".join(matches[0].group(0).split())
                differs = "" if shown == phrase.msgid else f" (shows “{shown}”)"
                found.append(f"msgid “{phrase.msgid}”{differs}")
            for match in reversed(matches):
                text = text[: match.start()] + BLANK + text[match.end():]
        for line in text.splitlines():
            if self._has_english(line):
                found.append(f"English: “{' '.join(line.split())}”")
        return list(dict.fromkeys(found))  # each once, in the page's order

    def _has_english(self, text: str) -> bool:
        return any(WORD.fullmatch(w) and w not in self.vocabulary for w in TOKEN.findall(text))


def _joined(text: str, match: re.Match) -> bool:
    """Whether a match runs on into more words ("Custody chain" in "Custody chain of item")."""
    return bool(re.search(r"[A-Za-z][ \u00a0]*$", text[: match.start()])
                or re.match(r"[ \u00a0]*[A-Za-z]", text[match.end():]))


def _cell(text: str, match: re.Match) -> str:
    """The rest of the table cell or line a match sits in, without the match."""
    start = max(text.rfind("\n", 0, match.start()), text.rfind("\t", 0, match.start())) + 1
    ends = [i for i in (text.find("\n", match.end()), text.find("\t", match.end())) if i >= 0]
    return text[start : match.start()] + " " + text[match.end() : min(ends, default=len(text))]


def _blank(text: str, values) -> str:
    for value in sorted({v for v in values if v and v.strip()}, key=len, reverse=True):
        edge_start = r"(?<![A-Za-z0-9])" if value[0].isalnum() else ""
        edge_end = r"(?![A-Za-z0-9])" if value[-1].isalnum() else ""
        text = re.sub(edge_start + re.escape(value) + edge_end, BLANK, text)
    return text
