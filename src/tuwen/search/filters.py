"""The filter language of search (``where=``): a small grammar of our own, re-serialised as safe SQL for LanceDB.

LanceDB hands a ``where`` string to DataFusion, which accepts any SQL function: ``length(repeat(title, 300000))``
made one request take seconds and gigabytes, and text after ``;`` was silently dropped. So a filter is parsed here
first, and only this grammar passes::

    filter     := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | "(" or ")" | predicate
    predicate  := column ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") literal
                | column ["NOT"] "IN" "(" literal ("," literal)* ")"
                | column ["NOT"] "BETWEEN" literal "AND" literal
                | column ["NOT"] "LIKE" 'pattern'
                | column "IS" ["NOT"] "NULL"
    literal    := number | 'string' ('' inside is a quote) | TRUE | FALSE

Columns are the filterable columns of the search index (the products' id, title, category, price, currency,
has_image, attributes and one column per catalog attribute), matched case-insensitively; literals must suit
the column's type. The parsed tree is written back with quoted identifiers and literals, so what reaches LanceDB
is exactly what was checked. Keywords are case-insensitive. Everything else is refused with a
:class:`FilterError` that says what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from tuwen.search.common import SearchError

MAX_FILTER_CHARS = 1000
MAX_LITERAL_CHARS = 200
MAX_LIKE_CHARS = 100
MAX_IN_VALUES = 100
MAX_DEPTH = 20
MAX_PREDICATES = 50
MAX_NUMBER_CHARS = 32

KEYWORDS = ("AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "IS", "NULL", "TRUE", "FALSE")
KINDS = ("number", "string", "bool")  # what a column holds, hence which literals it can be compared with

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)


class FilterError(SearchError):
    """A filter outside the grammar; the message names the problem and what is allowed."""


@dataclass(frozen=True)
class _Token:
    kind: str  # string | number | word | op | punct | end
    text: str
    at: int


def help_text(columns: Mapping[str, str]) -> str:
    """What a filter may contain, for error messages (and the README)."""
    names = ", ".join(sorted(columns)) or "(none)"
    return (f"allowed: columns {names}; comparisons = != <> < <= > >=; AND, OR, NOT, parentheses; "
            f"IN (...), BETWEEN a AND b, LIKE 'pattern' (up to {MAX_LIKE_CHARS} characters), IS [NOT] NULL; "
            f"numbers and 'quoted strings' (up to {MAX_LITERAL_CHARS} characters), TRUE, FALSE; "
            f"no functions and no ';'")


def _tokens(text: str, columns: Mapping[str, str]) -> list[_Token]:
    out: list[_Token] = []
    at = 0
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise FilterError(f"unexpected {text[at:at + 10]!r} at character {at + 1}; {help_text(columns)}")
        kind = match.lastgroup or ""
        if kind != "space":
            out.append(_Token(kind, match.group(), at))
        at = match.end()
    out.append(_Token("end", "", len(text)))
    return out


def _quote_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Parser:
    """Recursive descent over the tokens; every method returns the SQL text of what it parsed."""

    def __init__(self, text: str, columns: Mapping[str, str]) -> None:
        self.columns = {name.lower(): (name, kind) for name, kind in columns.items()}
        self.allowed = columns
        self.tokens = _tokens(text, columns)
        self.pos = 0
        self.depth = 0
        self.predicates = 0

    # ------------------------------------------------------------------------------------------ helpers
    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.upper() == word:
            self.pos += 1
            return True
        return False

    def expect(self, text: str) -> None:
        token = self.peek()
        if token.text.upper() != text:
            self.fail(f"expected {text}")
        self.pos += 1

    def fail(self, what: str) -> None:
        token = self.peek()
        found = "the end of the filter" if token.kind == "end" else repr(token.text)
        raise FilterError(f"{what}, found {found} at character {token.at + 1}; {help_text(self.allowed)}")

    # ------------------------------------------------------------------------------------------ grammar
    def parse(self) -> str:
        sql = self.or_()
        if self.peek().kind != "end":
            self.fail("expected AND, OR or the end of the filter")
        return sql

    def or_(self) -> str:
        parts = [self.and_()]
        while self.keyword("OR"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else "(" + " OR ".join(parts) + ")"

    def and_(self) -> str:
        parts = [self.not_()]
        while self.keyword("AND"):
            parts.append(self.not_())
        return parts[0] if len(parts) == 1 else "(" + " AND ".join(parts) + ")"

    def not_(self) -> str:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"more than {MAX_DEPTH} levels of NOT and parentheses")
        try:
            if self.keyword("NOT"):
                return f"(NOT {self.not_()})"
            if self.peek().text == "(":
                self.pos += 1
                inner = self.or_()
                self.expect(")")
                return inner
            return self.predicate()
        finally:
            self.depth -= 1

    def predicate(self) -> str:
        token = self.peek()
        if token.kind != "word" or token.text.upper() in KEYWORDS:
            self.fail("expected a column name")
        if token.text.lower() not in self.columns:
            self.pos += 1
            if self.peek().text == "(":
                raise FilterError(f"functions are not allowed ({token.text}(...)); {help_text(self.allowed)}")
            raise FilterError(f"unknown column {token.text!r}; {help_text(self.allowed)}")
        self.pos += 1
        self.predicates += 1
        if self.predicates > MAX_PREDICATES:
            raise FilterError(f"more than {MAX_PREDICATES} conditions in one filter")
        name, kind = self.columns[token.text.lower()]
        column = f"`{name}`"
        op = self.peek()
        if op.kind == "op":
            self.pos += 1
            return f"({column} {op.text} {self.literal(name, kind)})"
        if self.keyword("IS"):
            negated = self.keyword("NOT")
            if not self.keyword("NULL"):
                self.fail("expected NULL after IS")
            return f"({column} IS {'NOT ' if negated else ''}NULL)"
        negated = "NOT " if self.keyword("NOT") else ""
        if self.keyword("IN"):
            return f"({column} {negated}IN ({self.in_list(name, kind)}))"
        if self.keyword("BETWEEN"):
            low = self.literal(name, kind)
            self.expect("AND")
            return f"({column} {negated}BETWEEN {low} AND {self.literal(name, kind)})"
        if self.keyword("LIKE"):
            return f"({column} {negated}LIKE {self.pattern(name, kind)})"
        self.fail(f"expected a comparison, IN, BETWEEN, LIKE or IS after {name}")
        raise AssertionError  # pragma: no cover - fail() raises

    def in_list(self, name: str, kind: str) -> str:
        self.expect("(")
        values = [self.literal(name, kind)]
        while self.peek().text == ",":
            self.pos += 1
            values.append(self.literal(name, kind))
            if len(values) > MAX_IN_VALUES:
                raise FilterError(f"IN lists hold at most {MAX_IN_VALUES} values")
        self.expect(")")
        return ", ".join(values)

    def pattern(self, name: str, kind: str) -> str:
        token = self.peek()
        if kind != "string":
            self.fail(f"LIKE needs a text column; {name} holds {kind}s")
        if token.kind != "string":
            self.fail("expected a 'quoted pattern' after LIKE")
        value = token.text[1:-1].replace("''", "'")
        if len(value) > MAX_LIKE_CHARS:
            raise FilterError(f"LIKE pattern too long ({len(value):,} characters; the limit is {MAX_LIKE_CHARS})")
        self.pos += 1
        return _quote_string(value)

    def literal(self, name: str, kind: str) -> str:
        token = self.peek()
        if token.kind == "string":
            value = token.text[1:-1].replace("''", "'")
            if len(value) > MAX_LITERAL_CHARS:
                raise FilterError(f"text value too long ({len(value):,} characters; the limit is "
                                  f"{MAX_LITERAL_CHARS})")
            if kind != "string":
                self.fail(f"{name} holds {kind}s, not text")
            self.pos += 1
            return _quote_string(value)
        if token.kind == "number":
            if len(token.text) > MAX_NUMBER_CHARS or not math.isfinite(float(token.text)):
                self.fail(f"number too long or out of range (at most {MAX_NUMBER_CHARS} characters)")
            if kind != "number":
                self.fail(f"{name} holds {kind}s, not numbers")
            self.pos += 1
            return token.text
        if token.kind == "word" and token.text.upper() in ("TRUE", "FALSE"):
            if kind != "bool":
                self.fail(f"{name} holds {kind}s, not TRUE/FALSE")
            self.pos += 1
            return token.text.upper()
        self.fail("expected a number, a 'quoted string', TRUE or FALSE")
        raise AssertionError  # pragma: no cover - fail() raises


def parse_filter(text: str | None, columns: Mapping[str, str]) -> str | None:
    """``text`` checked against the grammar and rewritten as safe SQL; None for no filter.

    ``columns`` maps each filterable column to its kind (``number``, ``string`` or ``bool``).

    >>> parse_filter("price < 50 and category like 'Home%'", {"price": "number", "category": "string"})
    "((`price` < 50) AND (`category` LIKE 'Home%'))"
    """
    if text is None or not text.strip():
        return None
    try:
        if len(text) > MAX_FILTER_CHARS:
            raise FilterError(f"filter too long ({len(text):,} characters; the limit is {MAX_FILTER_CHARS:,})")
        return _Parser(text, columns).parse()
    except FilterError as error:
        shown = text if len(text) <= 100 else text[:100] + "…"
        raise FilterError(f"bad filter {shown!r}: {error}") from None


def column_kinds(schema: object, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """The filterable columns of an Arrow schema and their kinds: numbers, text and booleans (no lists, vectors
    or binary columns), less ``exclude``."""
    import pyarrow as pa

    kinds: dict[str, str] = {}
    for field in schema:  # type: ignore[attr-defined]
        if field.name in exclude:
            continue
        if pa.types.is_boolean(field.type):
            kinds[field.name] = "bool"
        elif pa.types.is_integer(field.type) or pa.types.is_floating(field.type):
            kinds[field.name] = "number"
        elif pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
            kinds[field.name] = "string"
    return kinds
