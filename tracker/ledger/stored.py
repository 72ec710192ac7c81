"""Checking stored event bodies: the chain over (seq, body, prev_hash, hash) rows.

Imports nothing but the standard library, so that it also runs as a worker process over one range
of a SQLite ledger (`python -I stored.py`, a JSON request on stdin, the result on stdout) without
starting Django; tracker/ledger/verify.py says how the results are put together."""
from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import sys
from dataclasses import dataclass, field

GENESIS_HASH = "0" * 64


@dataclass
class Scan:
    """Where a scan of rows in seq order stands, and what it found.

    `odd` lists (seq, prev_hash) of rows whose links are good but whose body the database did not
    vouch for (NULL) or does not hash to the stored hash: the caller judges those exactly.
    `failure` is the first definite failure after them: ("gap", position, seq found) or
    ("link", seq); a row after an odd one is still checked, as if the odd one were good."""

    expected: int
    prev_hash: str
    prev_digest: bytes | None
    wanted: frozenset = frozenset()
    odd: list = field(default_factory=list)
    failure: tuple | None = None
    hash_at: dict = field(default_factory=dict)

    def rows(self, rows: list[tuple]) -> bool:
        """Check (seq, body bytes or None, prev_hash, hash) rows; False once a failure is found."""
        if self.failure is not None:
            return False
        if rows and not self._all_good(rows):
            self._one_by_one(rows)
        return self.failure is None

    def _all_good(self, rows: list[tuple]) -> bool:
        """The usual chunk, checked column-wise: every row next in seq, linked, with a body that
        hashes to its stored hash."""
        try:
            seqs, bodies, prevs, hashes = zip(*rows)
            n = len(seqs)
            if (
                seqs != tuple(range(self.expected, self.expected + n))
                or prevs[0] != self.prev_hash
                or prevs[1:] != hashes[:-1]
                or self.prev_digest is None
                or set(map(len, hashes)) != {64}
            ):
                return False
            sha256, digest, digests = hashlib.sha256, self.prev_digest, []
            for body in bodies:
                digest = sha256(digest + body).digest()
                digests.append(digest)
            if b"".join(digests).hex() != "".join(hashes):
                return False
        except Exception:  # a NULL body, a value of another type: row by row
            return False
        self._remember(seqs[0], hashes)
        self.expected, self.prev_hash, self.prev_digest = self.expected + n, hashes[-1], digest
        return True

    def _one_by_one(self, rows: list[tuple]) -> None:
        sha256 = hashlib.sha256
        for seq, body, prev_hash, hash_ in rows:
            if seq != self.expected:
                self.failure = ("gap", self.expected, seq)
                return
            if prev_hash != self.prev_hash:
                self.failure = ("link", seq)
                return
            good = (
                type(body) is bytes
                and self.prev_digest is not None
                and type(hash_) is str
                and sha256(self.prev_digest + body).hexdigest() == hash_
            )
            if not good:
                self.odd.append((seq, prev_hash))
            self._remember(seq, (hash_,))
            self.expected, self.prev_hash = seq + 1, hash_
            try:  # the next row's body is hashed after this hash, should this row be good
                self.prev_digest = bytes.fromhex(hash_) if len(hash_) == 64 else None
            except (TypeError, ValueError):
                self.prev_digest = None

    def _remember(self, first: int, hashes: tuple) -> None:
        for seq in self.wanted:
            if first <= seq < first + len(hashes):
                self.hash_at[seq] = hashes[seq - first]


# --- is the body column the one the migration made? (SQLite) -----------------------------------
# The table's SQL in sqlite_master is what SQLite itself parses for the schema. Its tokens are
# compared, not its text: the expected definition in a comment or a string would otherwise pass.

_TOKEN = re.compile(
    r"""\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$)"""  # space and comments: dropped
    r"""|('(?:[^']|'')*'|"(?:[^"]|"")*"|\[[^\]]*\]|`(?:[^`]|``)*`|[\w$]+|.)""",
    re.S,
)
_QUOTES = {'"': '"', "[": "]", "`": "`"}


def _tokens(sql: str) -> list[str]:
    """SQL tokens; unquoted words in lower case (SQLite reads them case-insensitively)."""
    found = []
    for match in _TOKEN.finditer(sql):
        token = match.group(1)
        if token is not None:
            found.append(token.lower() if re.fullmatch(r"[\w$]+", token) else token)
    return found


def _name(token: str) -> str:
    if token[:1] in _QUOTES and token.endswith(_QUOTES[token[:1]]):
        return token[1:-1].replace(token[0] * 2, token[0]).lower()
    return token.lower()


def column_definition(table_sql: str, column: str) -> list[str] | None:
    """The tokens defining `column` in a CREATE TABLE statement, or None if it has not exactly one
    definition there."""
    tokens = _tokens(table_sql)
    try:
        start = tokens.index("(") + 1
    except ValueError:
        return None
    parts, depth, current = [], 0, []
    for token in tokens[start:]:
        if token == "(":
            depth += 1
        elif token == ")":
            if depth == 0:
                parts.append(current)
                break
            depth -= 1
        elif token == "," and depth == 0:
            parts.append(current)
            current = []
            continue
        current.append(token)
    found = [part for part in parts if part and _name(part[0]) == column.lower()]
    return found[0] if len(found) == 1 else None


def body_column_is(table_sql: str | None, expected_definition: str) -> bool:
    """True when the table defines `body` exactly as `expected_definition` ('"body" ...')."""
    if not table_sql:
        return False
    return column_definition(table_sql, "body") == _tokens(expected_definition)


# --- one range of a SQLite ledger, in its own process --------------------------------------------

SQLITE_RANGE = (
    "SELECT seq, body, prev_hash, hash FROM tracker_custodyevent "
    "WHERE seq BETWEEN ? AND ? ORDER BY seq"
)
TABLE_SQL = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'tracker_custodyevent'"


def scan_sqlite_range(request: dict) -> dict:
    """Scan seqs first..last of the SQLite ledger at request["path"] in one read transaction, after
    checking its body column there. The first row is hashed after its own prev_hash (the caller
    checks that link against the range before)."""
    connection = sqlite3.connect(f"file:{request['path']}?mode=ro", uri=True, isolation_level=None)
    try:
        connection.execute("BEGIN")
        (table_sql,) = connection.execute(TABLE_SQL).fetchone() or (None,)
        if not body_column_is(table_sql, request["definition"]):
            return {"usable": False}
        first, last = request["first"], request["last"]
        cursor = connection.execute(SQLITE_RANGE, (first, last))
        rows = cursor.fetchmany(request.get("chunk", 20_000))
        if not rows:
            return {"usable": True, "first_prev": None, "odd": [], "failure": ["gap", first, None]}
        first_prev = rows[0][2]
        try:
            digest = bytes.fromhex(first_prev) if len(first_prev) == 64 else None
        except (TypeError, ValueError):
            digest = None
        scan = Scan(first, first_prev, digest, frozenset(request.get("wanted", ())))
        while rows and scan.rows(rows):
            rows = cursor.fetchmany(request.get("chunk", 20_000))
        if scan.failure is None and scan.expected != last + 1:
            scan.failure = ("gap", scan.expected, None)
        connection.execute("COMMIT")
        return {
            "usable": True,
            "first_prev": first_prev,
            "odd": scan.odd,
            "failure": scan.failure,
            "hash_at": scan.hash_at,
            "last_hash": scan.prev_hash,
        }
    finally:
        connection.close()


def main() -> None:
    request = json.load(sys.stdin)
    try:
        result = scan_sqlite_range(request)
    except Exception as exc:  # the parent checks this range itself
        result = {"usable": False, "error": f"{type(exc).__name__}: {exc}"}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
