"""An event's hashed bytes written by the database: the expression of CustodyEvent.body.

CustodyEvent.body is a stored generated column, so the database derives it from the event's own
columns on every INSERT (and UPDATE) and nobody can write it directly. For a row of the usual
form it holds exactly the bytes the ledger hashes, rfc8785.dumps(ledger.event_body(row)) of the
row as the ORM reads it back; for any other row it holds NULL, and verification judges that row by
the exact path (tracker/ledger/verify.py explains how the two are combined).

How that is made sure, field by field: each field is written by one CASE that gives its JSON text
only when the stored value has a form whose text is known for certain, and NULL otherwise; `||`
is NULL when either side is, in both databases, so one unsure field leaves the whole body NULL.
- integers (seq, the foreign keys, device_counter): within ±(2^53 - 1) (rfc8785 refuses larger
  ones), in decimal as Python writes them; SQLite also checks the stored type (its columns take
  any type, and the ORM would read a text or a real back as such).
- event_id: PostgreSQL's uuid text is str(UUID); SQLite holds what Django stores, 32 lowercase hex
  digits, which UUID() reads back and str() writes with the four dashes put in here.
- kind and tag_uid: only [a-z_] and [0-9A-Za-z] respectively (nothing RFC 8785 escapes).
- times: UTC, years 1000 to 9999 (format_time writes four digits; Python has no later years).
  PostgreSQL builds the date from extract() of the UTC timestamp and the time of day from the
  `time` type's text: to_char() is only STABLE (it has locale-dependent patterns such as
  TMMonth) and a generated column needs IMMUTABLE functions; extract() on a timestamp without
  time zone, lpad(), rpad(), the numeric-to-text cast and time's output are IMMUTABLE and
  depend on no setting (no locale, no DateStyle, no TimeZone: the zone is named). SQLite
  checks the text Django stores (naive UTC, "YYYY-MM-DD HH:MM:SS" and six fraction digits unless
  they are all zero) is a date and time datetime.fromisoformat() accepts, and adds T, the
  fraction and Z.
- payload: {}, or an object of one or two members (three on PostgreSQL) with distinct ASCII word
  keys (their UTF-16 order is their byte order), whose values are integers within ±(2^53 - 1),
  true, false, null, or strings without a character RFC 8785 escapes. Anything else (nested
  values, more members, floats, escapes, surrogates) is NULL.
SQLite texts are also checked to hold no NUL: SQLite's GLOB and length() stop at one, Python does
not. Where it is not NULL the text is the RFC 8785 JSON of the body, which determines every
column it is built from, so the expression is injective over those columns.

The bytes are stored (CAST AS BLOB on SQLite; decode(..., 'escape') on PostgreSQL, which copies
every byte of a text without backslashes, and these texts have none), so verifying is hashing.

Only built-in functions are used, never one defined in the database: the owner of a function
could replace it, rewrite rows (their stored bodies recomputed by it) and put it back, and the
column's definition would look untouched. That has a price on PostgreSQL 15, which reads the
expression again and plans it for every INSERT statement: about 0.14 ms per statement with this
expression (a PL/pgSQL function holding it would cost 0.04 ms, and the safety above), so the
PostgreSQL expression decides for the whole row with one guard and stays small; SQLite compiles
it once per prepared statement (about 10 us a row to evaluate).
Changing this expression needs a migration that re-creates the column, and POSTGRES_DEPARSED
(below) taken again from the migrated database.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from django.db import NotSupportedError
from django.db.models import BinaryField, Expression

SAFE_INT = 2**53 - 1
# Larger payloads are rare (loan requests, disc imports) and go to the exact path. On SQLite every
# member nests deeper and its text grows with each key before it: members in any order up to two,
# three only in key order (append() stores payloads so).
PAYLOAD_MEMBERS = {"sqlite": 3, "postgresql": 3}
SQLITE_ANY_ORDER = 2
_DIGITS = "0123456789"
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_WORD = _DIGITS + _LOWER.upper() + _LOWER + "_"


def _q(column: str) -> str:
    return f'"{column}"'


def _joined(pieces: dict[str, str]) -> str:
    """The body object from each member's text, in RFC 8785 order (these ASCII names, sorted)."""
    parts = []
    for n, name in enumerate(sorted(pieces)):
        opening = "{" if n == 0 else ","
        parts.append(f"""'{opening}"{name}":' || ({pieces[name]})""")
    return " || ".join(parts) + " || '}'"


def _in_key_order(keys: list[str], members: list[str], collate: str = "") -> str:
    """The members joined in the order of their (distinct) keys: no branch matches equal keys."""
    if len(members) == 1:
        return members[0]
    branches = []
    for order in itertools.permutations(range(len(members))):
        test = " AND ".join(f"{keys[a]} < {keys[b]}{collate}" for a, b in zip(order, order[1:]))
        joined = " || ',' || ".join(members[i] for i in order)
        branches.append(f"WHEN {test} THEN {joined}")
    return f"CASE {' '.join(branches)} END"


# --- SQLite ------------------------------------------------------------------------------------


def _sqlite_plain(c: str) -> str:
    """Text of one-byte characters and no NUL (length() counts characters up to a NUL)."""
    return f"typeof({c}) = 'text' AND length({c}) = length(CAST({c} AS BLOB))"


def _sqlite_int(c: str) -> str:
    return (
        f"CASE WHEN {c} IS NULL THEN 'null' WHEN typeof({c}) = 'integer' AND {c} BETWEEN "
        f"-{SAFE_INT} AND {SAFE_INT} THEN CAST({c} AS TEXT) END"
    )


def _sqlite_word(c: str, characters: str) -> str:
    return (
        f"""CASE WHEN {_sqlite_plain(c)} AND {c} NOT GLOB '*[^{characters}]*' """
        f"""THEN '"' || {c} || '"' END"""
    )


def _sqlite_event_id(c: str) -> str:
    parts = " || '-' || ".join(
        f"substr({c}, {start}, {length})"
        for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    )
    return (
        f"""CASE WHEN {_sqlite_plain(c)} AND length({c}) = 32 AND {c} NOT GLOB '*[^0-9a-f]*' """
        f"""THEN '"' || {parts} || '"' END"""
    )


_SQLITE_DATETIME = "[1-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9]"


def _sqlite_time(c: str) -> str:
    return (
        f"CASE WHEN {c} IS NULL THEN 'null' WHEN {_sqlite_plain(c)} AND ("
        f"(length({c}) = 19 AND {c} GLOB '{_SQLITE_DATETIME}') OR (length({c}) = 26 AND "
        f"{c} GLOB '{_SQLITE_DATETIME}.[0-9][0-9][0-9][0-9][0-9][0-9]')) "
        f"AND substr({c}, 12, 2) < '24' "
        # a modifier makes date() normalise ('2025-02-30' comes back as '2025-03-02')
        f"AND date(substr({c}, 1, 10), '+0 days') = substr({c}, 1, 10) "
        f"""THEN '"' || substr({c}, 1, 10) || 'T' || substr({c}, 12, 8) || """
        f"""CASE length({c}) WHEN 19 THEN '.000000' ELSE substr({c}, 20, 7) END || 'Z"' END"""
    )


def _sqlite_path(key: str) -> str:
    """A member's JSON path: a quoted label, well formed for any key without a quote (a malformed
    path is an error, which would refuse the INSERT). The keys found below never hold one: each
    runs from a '{"' to the first '":' in valid JSON without an escaped quote."""
    return f"""('$."' || {key} || '"')"""  # in brackets: ->> binds as tightly as ||


def _sqlite_member(p: str, key: str) -> str:
    """One member of the payload as RFC 8785 writes it, or NULL. An integer json_type() names but
    SQLite cannot hold comes back as a real, far outside ±(2^53 - 1). (One flat CASE: SQLite's
    parser has a fixed stack, 100 entries in the usual build, and every nesting takes some.)"""
    kind = f"json_type({p}, {_sqlite_path(key)})"
    value = f"({p} ->> {_sqlite_path(key)})"
    escaped = """'*[' || char(1) || '-' || char(31) || '"\\]*'"""
    return (
        f"""'"' || {key} || '":' || CASE WHEN {kind} IN ('true', 'false', 'null') THEN {kind} """
        f"WHEN {kind} = 'integer' AND {value} BETWEEN -{SAFE_INT} AND {SAFE_INT} "
        f"THEN {value} || '' "
        f"""WHEN {kind} = 'text' AND NOT {value} GLOB {escaped} THEN '"' || {value} || '"' END"""
    )


def _sqlite_payload(c: str, most: int) -> str:
    """Django stores json.dumps(payload): ASCII, `{"key": value, ...}`. Vouched for when the text
    holds no escaped quote (then every '"' delimits a string, and '": ' appears once per member),
    no \\u0000 and no surrogate escape (SQLite decodes those unlike Python). Keys are found one
    after another, each the first of what json_remove() leaves (written without spaces) once the
    earlier ones are gone; nothing may be left after the last."""
    keys, tests = [], []
    rest = c
    for _n in range(most):
        key = f"""substr({rest}, 3, instr({rest}, '":') - 3)"""
        keys.append(key)
        tests.append(
            f"""substr({rest}, 1, 2) = '{{"' AND {key} <> '' """
            f"AND {key} NOT GLOB '*[^0-9A-Za-z_]*'"
        )
        rest = f"json_remove({c}, {', '.join(_sqlite_path(k) for k in keys)})"
    count = f"""(length({c}) - length(replace({c}, '": ', ''))) / 3"""
    cases = []
    for n in range(1, most + 1):
        rest = f"json_remove({c}, {', '.join(_sqlite_path(k) for k in keys[:n])})"
        members = [_sqlite_member(c, key) for key in keys[:n]]
        test = " AND ".join(tests[:n])
        if n <= SQLITE_ANY_ORDER:
            joined = _in_key_order(keys[:n], members)
        else:  # stored in key order, as append() writes payloads
            test += "".join(f" AND {a} < {b}" for a, b in zip(keys, keys[1:n]))
            joined = " || ',' || ".join(members)
        cases.append(
            f"WHEN {count} = {n} AND {test} AND {rest} = '{{}}' THEN '{{' || {joined} || '}}'"
        )
    # json_remove() and the others raise on text that is not JSON: they only run past `usual`
    usual = (
        f"""{_sqlite_plain(c)} AND {c} NOT GLOB '*[^ -~]*' AND json_valid({c}) """
        f"""AND instr({c}, '\\"') = 0 AND instr({c}, '\\u0000') = 0 """
        f"""AND lower({c}) NOT GLOB '*\\ud[89a-f]*'"""
    )
    return f"CASE WHEN {c} = '{{}}' THEN '{{}}' WHEN {usual} THEN CASE {' '.join(cases)} END END"


def sqlite_body(members: int = PAYLOAD_MEMBERS["sqlite"]) -> str:
    text = _joined({
        "actor": _sqlite_int(_q("actor_id")),
        "device": _sqlite_int(_q("device_id")),
        "device_counter": _sqlite_int(_q("device_counter")),
        "device_time": _sqlite_time(_q("device_time")),
        "event_id": _sqlite_event_id(_q("event_id")),
        "from_location": _sqlite_int(_q("from_location_id")),
        "holder": _sqlite_int(_q("holder_id")),
        "kind": _sqlite_word(_q("kind"), "_a-z"),
        "media": _sqlite_int(_q("media_id")),
        "payload": _sqlite_payload(_q("payload"), members),
        "received_at": _sqlite_time(_q("received_at")),
        "seq": _sqlite_int(_q("seq")),
        "tag_uid": _sqlite_word(_q("tag_uid"), "0-9A-Za-z"),
        "to_location": _sqlite_int(_q("to_location_id")),
    })
    return f"CAST({text} AS BLOB)"


# --- PostgreSQL --------------------------------------------------------------------------------
# PostgreSQL 15 reads a stored generated column's expression again (from its node tree) and plans
# it for every INSERT statement, so its size is paid on every append: it is kept small. One
# guard decides for the whole row, and the body is then written without per-field cases.
# Regular expression classes are spelled out: a range such as [a-z] may follow the collation.
_PG_INTS = ("seq", "media_id", "actor_id", "device_id", "from_location_id", "to_location_id",
            "holder_id", "device_counter")
_PG_TIMES = ("received_at", "device_time")
_C = ' COLLATE "C"'  # byte order, whatever the database's collation


def _pg_time(c: str) -> str:
    """format_time(): the date from extract(), the time of day from the time type's text (which
    is IMMUTABLE: no DateStyle), its fraction padded to six digits."""
    t = f"({c} AT TIME ZONE 'UTC')"
    day = f"extract(year FROM {t})::text || '-' || lpad(extract(month FROM {t})::text, 2, '0')"
    day += f" || '-' || lpad(extract(day FROM {t})::text, 2, '0')"
    clock = f"{t}::time::text"
    clock = f"rpad({clock} || CASE WHEN octet_length({clock}) = 8 THEN '.' ELSE '' END, 15, '0')"
    return f"""'"' || {day} || 'T' || {clock} || 'Z"'"""


# jsonb prints an object as {"k": v, "k2": v2}, keys ordered by length, then bytes. Vouched for:
# word keys; strings jsonb printed without a backslash (so holding no quote, backslash or control
# character, printed as they are, as RFC 8785 writes them); integers of up to 15 digits (below
# 2^53; jsonb prints a numeric of scale 0 as plain digits and json.loads reads them as int);
# true, false, null.
_PG_VALUE = rf'(?:"[^"\\]*"|-?(?:0|[{_DIGITS[1:]}][{_DIGITS}]{{0,14}})|true|false|null)'
_PG_KEY = rf'"[{_WORD}]+"'


def _pg_payload_shape(c: str, most: int) -> str:
    shape = rf"^\{{{_PG_KEY}: {_PG_VALUE}(, {_PG_KEY}: {_PG_VALUE}){{0,{most - 1}}}\}}$"
    return f"({c} = '{{}}'::jsonb OR {c}::text ~ '{shape}')"


# A member as the shape test lets it be: a quoted key, then a string without quotes or a number,
# true, false or null (neither holds a comma, a quote or a brace).
_PG_MEMBER = '("[^"]*": (?:"[^"]*"|[^,"}]*))'
# For three members, the order of their keys (rank of the first, rank of the second: 0 to 2)
# gives the order to write the members in.
_PG_ORDER_OF_THREE = {(0, 1): "1,2,3", (0, 2): "1,3,2", (1, 0): "2,1,3", (1, 2): "3,1,2",
                      (2, 0): "2,3,1", (2, 1): "3,2,1"}


def _pg_payload(c: str, most: int) -> str:
    """Past the shape test no string value holds a quote, so '{"' only opens the object and
    ', "' only parts members: the i-th key runs from the i-th of those to the next quote, and
    '": ' appears once per member. The members are put in their keys' byte order by one
    regexp_replace() whose replacement (which member goes where) is chosen by comparing keys."""
    text = f"{c}::text"
    parted = f"""replace({text}, ', "', '{{"')"""
    keys = [f"""split_part(split_part({parted}, '{{"', {i + 2}), '"', 1)""" for i in range(most)]
    count = f"""(octet_length({text}) - octet_length(replace({text}, '": ', ''))) / 3"""

    def greater(a: int, b: int) -> str:
        return f"({keys[a]} > {keys[b]}{_C})::int"

    cases = []
    for n in range(1, most + 1):
        pattern = "^\\{" + ", ".join([_PG_MEMBER] * n) + "\\}$"
        if n == 1:
            order = "'{\\1}'"
        elif n == 2:
            order = f"CASE WHEN {keys[0]} < {keys[1]}{_C} THEN '{{\\1,\\2}}' ELSE '{{\\2,\\1}}' END"
        elif n == 3:
            ranks = f"({greater(0, 1)} + {greater(0, 2)}) * 3 + {greater(1, 0)} + {greater(1, 2)}"
            branches = " ".join(
                f"WHEN {first * 3 + second} THEN '{{"
                + ",".join(f"\\{i}" for i in members.split(","))
                + "}'"
                for (first, second), members in _PG_ORDER_OF_THREE.items()
            )
            order = f"CASE {ranks} {branches} END"
        else:
            raise ValueError("members are put in order for up to three")
        cases.append(f"WHEN {n} THEN regexp_replace({text}, '{pattern}', {order})")
    return (
        f"CASE WHEN {c} = '{{}}'::jsonb THEN '{{}}' "
        f"""ELSE replace(CASE {count} {' '.join(cases)} END, '": ', '":') END"""
    )


def postgres_body(members: int = PAYLOAD_MEMBERS["postgresql"]) -> str:
    ints = ", ".join(_q(c) for c in _PG_INTS)
    times = ", ".join(_q(c) for c in _PG_TIMES)
    usual = " AND ".join([
        # greatest() and least() pass over NULLs; seq and received_at are never NULL
        f"greatest({ints}) <= {SAFE_INT} AND least({ints}) >= -{SAFE_INT}",
        f"least({times}) >= '1000-01-01 00:00:00+00'::timestamptz",
        f"greatest({times}) < '10000-01-01 00:00:00+00'::timestamptz",
        f"{_q('kind')} ~ '^[{_LOWER}_]*$'",
        f"{_q('tag_uid')} ~ '^[{_DIGITS}{_LOWER.upper()}{_LOWER}]*$'",
        _pg_payload_shape(_q("payload"), members),
    ])

    def number(c: str) -> str:
        return f"coalesce({_q(c)}::text, 'null')"

    text = _joined({
        "actor": number("actor_id"),
        "device": number("device_id"),
        "device_counter": number("device_counter"),
        "device_time": f"coalesce({_pg_time(_q('device_time'))}, 'null')",
        "event_id": f"""'"' || {_q("event_id")}::text || '"'""",
        "from_location": number("from_location_id"),
        "holder": number("holder_id"),
        "kind": f"""'"' || {_q("kind")} || '"'""",
        "media": number("media_id"),
        "payload": _pg_payload(_q("payload"), members),
        "received_at": _pg_time(_q("received_at")),
        "seq": f"{_q('seq')}::text",
        "tag_uid": f"""'"' || {_q("tag_uid")} || '"'""",
        "to_location": number("to_location_id"),
    })
    return f"CASE WHEN {usual} THEN decode({text}, 'escape') END"


SQLITE_BODY = sqlite_body()
POSTGRES_BODY = postgres_body()
# pg_get_expr() of the column as PostgreSQL 15 prints it with only pg_catalog on the search path
# (so that anything from another schema is printed with its schema's name).
POSTGRES_DEPARSED = (Path(__file__).with_name("event_body_postgres.txt")).read_text().strip()


class EventBody(Expression):
    """The expression of the ledger's generated column (per database; see the module docstring)."""

    output_field = BinaryField()

    def as_sql(self, compiler, connection):
        raise NotSupportedError(f"The ledger's event body is not written for {connection.vendor}.")

    def as_sqlite(self, compiler, connection):
        return SQLITE_BODY, []

    def as_postgresql(self, compiler, connection):
        return POSTGRES_BODY, []

    def __eq__(self, other):
        return type(other) is type(self)

    def __hash__(self):
        return hash(type(self))
