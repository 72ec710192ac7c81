"""A custody event in words, in the reader's language: what the auditors' chain page and an
item's custody chain show instead of the payload's raw `key: value` pairs.

`describe(event)` gives the parts of that description: first a short sentence for the event's
kind, built from its columns (holder, places, tag) and the payload keys that kind records (the
payloads are written in tracker/services/*.py), then one "label: value" part for every payload
key the sentence did not use, so no ledger data is hidden from an auditor; a key known here gets
a translated label, an unknown one its own name. Dates, times and numbers are localised."""
from __future__ import annotations

from datetime import date, datetime

from django.template.defaultfilters import filesizeformat
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext, pgettext_lazy

from .choices import DiscVerdict, EventKind, FlagKind, MediaKind, StudySource

# Labels for payload keys shown beside the sentence (keys a sentence did not use).
KEY_LABELS = {
    "at": gettext_lazy("recorded at"),
    "automatic": gettext_lazy("sent by the sweep"),
    "borrower": gettext_lazy("borrower"),
    "bytes": gettext_lazy("bytes"),
    "bytes_checked": gettext_lazy("bytes checked"),
    "cancelled": pgettext_lazy("inventory", "cancelled"),
    "changed": gettext_lazy("files changed"),
    "changed_paths": gettext_lazy("changed files"),
    "code": gettext_lazy("code"),
    "counts": gettext_lazy("counts"),
    "details": gettext_lazy("details"),
    "dicomdir_sha256": gettext_lazy("DICOMDIR SHA-256"),
    "due_at": gettext_lazy("due"),
    "event": gettext_lazy("signed event"),
    "expected": gettext_lazy("expected"),
    "expires_at": gettext_lazy("expires"),
    "extra": gettext_lazy("files added"),
    "extra_paths": gettext_lazy("added files"),
    "files": gettext_lazy("files"),
    "files_checked": gettext_lazy("files checked"),
    "flag_seq": gettext_lazy("flag raised in event"),
    "found": gettext_lazy("found"),
    "handover": gettext_lazy("hand-over offered in event"),
    "home_location": gettext_lazy("home location"),
    "inventory": gettext_lazy("inventory"),
    "kind": gettext_lazy("kind"),
    "last_seen_at": gettext_lazy("last seen"),
    "loan": gettext_lazy("loan opened in event"),
    "loan_seq": gettext_lazy("loan opened in event"),
    "location": gettext_lazy("location"),
    "manifest": gettext_lazy("disc manifest"),
    "misplaced": gettext_lazy("misplaced"),
    "missing": gettext_lazy("missing"),
    "missing_paths": gettext_lazy("missing files"),
    "needed_from": gettext_lazy("needed from"),
    "needed_until": gettext_lazy("needed until"),
    "note": gettext_lazy("note"),
    "on_loan": gettext_lazy("on loan"),
    "passed_over": gettext_lazy("passed over the request of event"),
    "patient_id": gettext_lazy("patient ID"),
    "previous_due_at": gettext_lazy("previously due"),
    "problems": gettext_lazy("problems"),
    "purpose": gettext_lazy("purpose"),
    "queue_override": gettext_lazy("lent out of turn because"),
    "reads": gettext_lazy("reads"),
    "reason": gettext_lazy("reason"),
    "renewals": gettext_lazy("renewals"),
    "request": gettext_lazy("request made in event"),
    "retired": pgettext_lazy("inventory", "retired"),
    "scope": gettext_lazy("scope"),
    "series": gettext_lazy("series"),
    "signature": gettext_lazy("signature (SHA-256)"),
    "source": gettext_lazy("source"),
    "studies": gettext_lazy("studies"),
    "study": gettext_lazy("study"),
    "to": gettext_lazy("e-mail address"),
    "undo_of": gettext_lazy("undoes event"),
    "unknown": gettext_lazy("unknown tags"),
    "verdict": gettext_lazy("verdict"),
    "verification": gettext_lazy("disc verification"),
}

# Payload values that are choices in choices.py, shown by their label: a flag's kind or, when an
# item is registered, the item's kind; a study link's source; a disc verification's verdict.
CHOICE_KEYS = {"kind": (FlagKind, MediaKind), "source": (StudySource,), "verdict": (DiscVerdict,)}


def person(user) -> str:
    """A person as the pages name them: full name, else username."""
    return (user.get_full_name() or user.get_username()) if user is not None else ""


def place(location) -> str:
    """A place by its name and code, as on the location pages."""
    if location is None:
        return ""
    return f"{location.name} ({location.code})" if location.name else location.code


def when(text) -> str:
    """A ledger time (ISO 8601, UTC) in local time and the reader's format; other text as it is."""
    moment = _parse(text)
    if isinstance(moment, datetime):
        return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT")
    return "" if text is None else str(text)


def day(text) -> str:
    """A ledger time or a date (ISO 8601) as the local day, in the reader's format."""
    moment = _parse(text)
    if isinstance(moment, datetime):
        return formats.date_format(timezone.localtime(moment), "DATE_FORMAT")
    if isinstance(moment, date):
        return formats.date_format(moment, "DATE_FORMAT")
    return "" if text is None else str(text)


def _parse(text):
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if timezone.is_aware(moment) else None


def number(value) -> str:
    if isinstance(value, int):
        return formats.number_format(value, force_grouping=True)
    return str(value)


def value_text(key: str, value) -> str:
    """Any payload value as text for a reader: times and numbers localised, choices by label,
    lists and mappings spelt out."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, int):
        return number(value)
    if isinstance(value, str):
        if key in CHOICE_KEYS:
            return _choice_label(key, value)
        moment = _parse(value)
        if isinstance(moment, datetime):
            return when(value)
        return day(value) if moment is not None else value
    if isinstance(value, list):  # codes, UIDs, paths; a misplaced item is [code, home]
        items = [
            " → ".join(map(str, each)) if isinstance(each, list) else value_text(key, each)
            for each in value
        ]
        return _separator(", ").join(items) or "—"
    if isinstance(value, dict):
        return _separator("; ").join(labelled(k, v) for k, v in value.items()) or "—"
    return str(value)


def _separator(text: str) -> str:
    if text == ", ":
        return pgettext("list separator", ", ")
    return pgettext("list separator", "; ")


def label(key: str) -> str:
    return str(KEY_LABELS.get(key, key))


def labelled(key: str, value) -> str:
    """One payload key and its value: "label: value"."""
    return _("%(label)s: %(value)s") % {"label": label(key), "value": value_text(key, value)}


def _choice_label(key: str, value: str) -> str:
    for choices in CHOICE_KEYS.get(key, ()):
        if value in choices.values:
            return str(choices(value).label)
    return value


class _Payload:
    """The payload, remembering which keys the sentence used."""

    def __init__(self, payload):
        self.values = payload if isinstance(payload, dict) else {}
        self.used: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.values and self.values[key] not in (None, "", [], {})

    def get(self, key: str, default=None):
        self.used.add(key)
        return self.values.get(key, default)

    def rest(self) -> list[tuple[str, object]]:
        return [(k, v) for k, v in self.values.items() if k not in self.used]


def describe(event) -> list[str]:
    """The event in words: its sentence, then "label: value" for the payload keys not in it."""
    payload = _Payload(event.payload)
    words = _SENTENCES.get(event.kind)
    parts = [words(event, payload)] if words else [str(event.get_kind_display())]
    parts = [p for p in parts if p]
    parts += [labelled(key, value) for key, value in payload.rest()]
    return parts


# --- one sentence per kind ---------------------------------------------------------------------


def _join(*pieces: str) -> str:
    return _separator("; ").join(p for p in pieces if p)


def _request_named(p: _Payload) -> str:
    if "request" in p:
        return _("for the request made in event %(seq)s") % {"seq": p.get("request")}
    return ""


def _queue(p: _Payload) -> str:
    if "passed_over" in p or "queue_override" in p:
        return _("out of turn, past the request made in event %(seq)s: %(reason)s") % {
            "seq": p.get("passed_over"), "reason": p.get("queue_override") or "—",
        }
    return ""


def _undo(p: _Payload) -> str:
    return _("undoes event %(seq)s") % {"seq": p.get("undo_of")} if "undo_of" in p else ""


def _with_reason(text: str, p: _Payload) -> str:
    if "reason" in p:
        return _("%(what)s: %(reason)s") % {"what": text, "reason": _(str(p.get("reason")))}
    return text


def _registered(event, p):
    home = p.get("home_location")  # the code; the event's to_location names the place
    return _("registered as %(kind)s %(code)s, home %(home)s") % {
        "kind": _choice_label("kind", p.get("kind") or ""),
        "code": p.get("code") or (event.media.code if event.media else "—"),
        "home": place(event.to_location) or home or "—",
    }


def _tag_bound(event, p):
    return _("tag %(uid)s bound") % {"uid": event.tag_uid or "—"}


def _tag_unbound(event, p):
    return _with_reason(_("tag %(uid)s unbound") % {"uid": event.tag_uid or "—"}, p)


def _checked_out(event, p):
    name = person(event.holder) or "—"
    if "due_at" in p:
        due = day(p.get("due_at"))
        text = _("checked out to %(name)s, due %(due)s") % {"name": name, "due": due}
    else:
        text = _("checked out to %(name)s") % {"name": name}
    return _join(text, _request_named(p), _queue(p), _undo(p))


def _returned(event, p):
    if event.to_location is None:
        return _join(pgettext("event", "returned"), _undo(p))
    return _join(_("returned to %(place)s") % {"place": place(event.to_location)}, _undo(p))


def _transferred(event, p):
    if event.holder is not None:
        text = _("handed to %(name)s") % {"name": person(event.holder)}
    elif event.to_location is not None:
        text = _("moved to %(place)s") % {"place": place(event.to_location)}
    else:
        text = _("transferred")
    if "handover" in p:
        text = _("hand-over offered in event %(seq)s accepted: %(what)s") % {
            "seq": p.get("handover"), "what": text,
        }
    served = ""
    if "request" in p:
        served = _("serves the request made in event %(seq)s") % {"seq": p.get("request")}
    return _join(text, served, _undo(p))


def _seen(event, p):
    where = event.to_location or event.from_location
    text = _("seen at %(place)s") % {"place": place(where)} if where else _("seen")
    if "inventory" in p:
        text = _join(text, _("during inventory %(id)s") % {"id": p.get("inventory")})
    return text


def _retired(event, p):
    return _with_reason(_("retired"), p)


def _count(p: _Payload, key: str) -> int:
    """A payload number for ngettext (0 when the payload holds something else)."""
    value = p.get(key)
    return value if isinstance(value, int) else 0


def _studies(p: _Payload) -> int:
    studies = p.get("studies")
    return len(studies) if isinstance(studies, list) else 0


def _disc_imported(event, p):
    count = _studies(p)
    text = ngettext("disc imported: %(n)s study", "disc imported: %(n)s studies", count) % {
        "n": count,
    }
    figures = []
    if "files" in p:
        files = _count(p, "files")
        figures.append(ngettext("%(n)s file", "%(n)s files", files) % {"n": number(files)})
    if isinstance(p.values.get("bytes"), int):
        figures.append(filesizeformat(p.get("bytes")))
    if "problems" in p:
        problems = _count(p, "problems")
        figures.append(
            ngettext("%(n)s problem", "%(n)s problems", problems) % {"n": number(problems)}
        )
    return _join(text, _separator(", ").join(figures))


def _disc_verified(event, p):
    verdict = p.get("verdict")
    if verdict == DiscVerdict.IDENTICAL:
        text = _("disc verified: identical to its manifest")
    elif verdict == DiscVerdict.ALTERED:
        text = _("disc verified: %(missing)s missing, %(changed)s changed, %(extra)s added") % {
            key: number(_count(p, key)) for key in ("missing", "changed", "extra")
        }
    else:
        text = _("disc verified: %(verdict)s") % {"verdict": value_text("verdict", verdict)}
    if "files_checked" in p:
        checked = _count(p, "files_checked")
        text = _join(text, ngettext("%(n)s file checked", "%(n)s files checked", checked) % {
            "n": number(checked),
        })
    return text


def _studies_linked(event, p):
    count = _studies(p)
    text = ngettext("%(n)s study linked", "%(n)s studies linked", count) % {"n": count}
    if "source" in p:
        source = _choice_label("source", p.get("source"))
        text = _("%(what)s (%(source)s)") % {"what": text, "source": source}
    return text


def _studies_unlinked(event, p):
    count = _studies(p)
    text = ngettext("%(n)s study unlinked", "%(n)s studies unlinked", count) % {"n": count}
    return _with_reason(text, p)


def _renewed(event, p):
    if "due_at" in p:
        text = _("loan renewed, due %(due)s") % {"due": day(p.get("due_at"))}
    else:
        text = _("loan renewed")
    if "previous_due_at" in p:
        text = _join(text, _("was due %(due)s") % {"due": day(p.get("previous_due_at"))})
    if "renewals" in p:
        text = _join(text, _("renewal %(n)s") % {"n": number(p.get("renewals"))})
    return text


def _request_made(event, p):
    text = _("loan requested for %(start)s to %(end)s") % {
        "start": day(p.get("needed_from")), "end": day(p.get("needed_until")),
    }
    if event.to_location is not None:
        text = _join(text, _("to %(place)s") % {"place": place(event.to_location)})
    if "purpose" in p:
        text = _join(text, _("purpose: %(purpose)s") % {"purpose": p.get("purpose")})
    return text


def _request(words):
    """The sentence of an event about a loan request (named by the seq of its request_made)."""
    def sentence(event, p):
        return _with_reason(words % {"seq": p.get("request") if "request" in p else "—"}, p)
    return sentence


def _flag_raised(event, p):
    text = _("flag raised: %(kind)s") % {"kind": _choice_label("kind", p.get("kind") or "")}
    details = p.values.get("details")
    if not isinstance(details, dict):
        return text  # anything else is shown as it is, beside the sentence
    p.get("details")
    pieces = []
    if details.get("due_at"):
        pieces.append(_("was due %(due)s") % {"due": day(details["due_at"])})
    if details.get("borrower"):
        pieces.append(_("borrower %(name)s") % {"name": details["borrower"]})
    if details.get("last_seen_at"):
        pieces.append(_("last seen %(when)s") % {"when": when(details["last_seen_at"])})
    if details.get("location"):
        pieces.append(_("last at %(place)s") % {"place": details["location"]})
    known = {"due_at", "borrower", "last_seen_at", "location"}
    pieces += [labelled(k, v) for k, v in details.items() if k not in known]
    return _join(text, *pieces)


def _flag_cleared(event, p):
    text = _("flag cleared: %(kind)s") % {"kind": _choice_label("kind", p.get("kind") or "")}
    return _with_reason(text, p)


def _reminder(event, p):
    who = p.get("borrower") or "—"
    text = _("reminder sent to %(name)s") % {"name": who}
    if "automatic" in p.values:
        text = _join(text, _("by the sweep") if p.get("automatic") else _("sent by hand"))
    return text


def _inventory_started(event, p):
    return _("inventory started on %(scope)s") % {"scope": p.get("scope") or "—"}


def _inventory_closed(event, p):
    if p.values.get("cancelled"):
        p.get("cancelled")
        text = _("inventory %(id)s cancelled") % {"id": p.get("inventory")}
        return _with_reason(text, p)
    text = _("inventory %(id)s closed") % {"id": p.get("inventory")}
    counts = p.values.get("counts")
    if not isinstance(counts, dict):
        return text
    p.get("counts")
    told = ("found", "missing", "misplaced", "unknown")
    return _join(
        text,
        _("%(found)s found, %(missing)s missing, %(misplaced)s misplaced, %(unknown)s unknown tags")
        % {k: number(counts.get(k, 0)) for k in told},
        *(labelled(k, v) for k, v in counts.items() if k not in told),
    )


def _handover_offered(event, p):
    if event.holder is not None:
        text = _("hand-over offered to %(name)s") % {"name": person(event.holder)}
    else:
        text = _("hand-over offered to %(place)s") % {"place": place(event.to_location) or "—"}
    note = _("note: %(note)s") % {"note": p.get("note")} if "note" in p else ""
    p.used.add("note")  # an offer without a note records an empty one
    return _join(text, note, _queue(p))


def _handover_declined(event, p):
    text = _("hand-over offered in event %(seq)s declined") % {"seq": p.get("handover")}
    return _with_reason(text, p)


def _handover_cancelled(event, p):
    return _("hand-over offered in event %(seq)s withdrawn") % {"seq": p.get("handover")}


def _signature_added(event, p):
    return _("signature added for event %(seq)s") % {"seq": p.get("event")}


_SENTENCES = {
    EventKind.MEDIA_REGISTERED: _registered,
    EventKind.TAG_BOUND: _tag_bound,
    EventKind.TAG_UNBOUND: _tag_unbound,
    EventKind.CHECKED_OUT: _checked_out,
    EventKind.RETURNED: _returned,
    EventKind.TRANSFERRED: _transferred,
    EventKind.SEEN: _seen,
    EventKind.RETIRED: _retired,
    EventKind.DISC_IMPORTED: _disc_imported,
    EventKind.DISC_VERIFIED: _disc_verified,
    EventKind.STUDIES_LINKED: _studies_linked,
    EventKind.STUDIES_UNLINKED: _studies_unlinked,
    EventKind.LOAN_RENEWED: _renewed,
    EventKind.REQUEST_MADE: _request_made,
    EventKind.REQUEST_APPROVED: _request(gettext_lazy("request made in event %(seq)s approved")),
    EventKind.REQUEST_DENIED: _request(gettext_lazy("request made in event %(seq)s denied")),
    EventKind.REQUEST_READY: _request(
        gettext_lazy("request made in event %(seq)s ready for pick-up")
    ),
    EventKind.REQUEST_CANCELLED: _request(gettext_lazy("request made in event %(seq)s cancelled")),
    EventKind.REQUEST_EXPIRED: _request(gettext_lazy("request made in event %(seq)s expired")),
    EventKind.FLAG_RAISED: _flag_raised,
    EventKind.FLAG_CLEARED: _flag_cleared,
    EventKind.REMINDER_SENT: _reminder,
    EventKind.INVENTORY_STARTED: _inventory_started,
    EventKind.INVENTORY_CLOSED: _inventory_closed,
    EventKind.HANDOVER_OFFERED: _handover_offered,
    EventKind.HANDOVER_DECLINED: _handover_declined,
    EventKind.HANDOVER_CANCELLED: _handover_cancelled,
    EventKind.SIGNATURE_ADDED: _signature_added,
}


# --- the access log's details -------------------------------------------------------------------

# What an access-log row's detail holds (tracker.audit.record_access): the chain question's
# filters, an export's format, rows and range. Subject and subject kind have their own columns.
ACCESS_LABELS = {
    "events": gettext_lazy("events shown"),
    "first_seq": gettext_lazy("first event"),
    "format": gettext_lazy("format"),
    "from": gettext_lazy("from"),
    "kinds": gettext_lazy("kinds"),
    "last_seq": gettext_lazy("last event"),
    "ledger_size": gettext_lazy("ledger size"),
    "page": gettext_lazy("page"),
    "rows": gettext_lazy("rows"),
    "to": gettext_lazy("to"),
}
_ACCESS_HIDDEN = {"subject", "subject_kind"}


def access_parts(detail) -> list[str]:
    """An access-log row's detail as "label: value" parts in the reader's language; empty
    values and the subject (shown in its own column) left out, unknown keys kept by name."""
    if not isinstance(detail, dict):
        return [] if detail in (None, "", {}) else [str(detail)]
    parts = []
    for key, value in detail.items():
        if key in _ACCESS_HIDDEN or value in (None, "", [], {}):
            continue
        if key == "filters":
            parts += access_parts(value)
            continue
        if key not in ACCESS_LABELS:
            parts.append(labelled(key, value))
            continue
        if key == "kinds" and isinstance(value, list):
            names = (str(EventKind(k).label) if k in EventKind.values else str(k) for k in value)
            text = _separator(", ").join(names)
        elif key == "format" and isinstance(value, str):
            text = value.upper()
        else:
            text = value_text(key, value)
        parts.append(_("%(label)s: %(value)s") % {"label": ACCESS_LABELS[key], "value": text})
    return parts


def access_text(detail) -> str:
    return _separator("; ").join(access_parts(detail))
