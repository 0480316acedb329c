"""Checks and parsing of single cells: length limits, text that cannot be stored, prices, timestamps, and the
content-derived ids.

Why a module of its own: the row-by-row validators (:mod:`tuwen.store.validation`), the vectorised event
path (:mod:`tuwen.store.events`) and the readers must judge a cell by the same rules, or one data set would
let through what another rejects.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from tuwen.store.rejects import Reject

# Longest text (in characters) a field may hold; a row past a limit is rejected, because one absurd cell
# (a 100 MB title) otherwise costs every later stage memory and time. Each limit is far above real
# catalogs' longest value, so only broken or hostile input reaches it. Unlisted fields get SHORT_FIELD.
ID_CHARS = 256
SHORT_FIELD = 256
FIELD_LIMITS: dict[str, int] = {
    "id": ID_CHARS, "user_id": ID_CHARS, "product_id": ID_CHARS,
    "title": 1_000, "category": 1_000, "variant": 1_000,
    "description": 20_000, "text": 20_000, "question": 20_000, "answer": 20_000,
    "attributes": 20_000,  # the whole JSON object of a product's other columns
    "image": 8_192,  # one cell may list several photo paths
}
# An event may be dated up to this far ahead of the clock (time zones, clock skew); later is a broken date.
FUTURE_SLACK = pd.Timedelta(days=1)


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why this text cannot be stored, or None: undecodable bytes, lone surrogates or NUL characters.

    Text read with errors="surrogateescape" keeps undecodable bytes as U+DC80..U+DCFF; a JSON
    escape such as "\\ud800" yields a lone surrogate too. Neither encodes to UTF-8, so they would
    fail later (Arrow, LanceDB, HTTP) far from the row that caused them. NUL ends strings in C
    libraries and terminals, so an id or title with one is broken input.
    """
    if _UNSTORABLE.search(value) is None:  # the common case, scanned in C
        return None
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            return ("undecodable text (not valid UTF-8)" if "\udc80" <= ch <= "\udcff"
                    else "lone surrogate escape (not valid Unicode text)")
        if ch == "\x00":
            return "contains a NUL character"
    return None


def _cell_problem(column: str, value: Any) -> tuple[str, str] | None:
    """(field, reason) when one mapped cell is too long or holds text that cannot be stored."""
    limit = FIELD_LIMITS.get(column, SHORT_FIELD)
    if isinstance(value, dict):
        size = sum(len(str(k)) + len(str(v)) + 6 for k, v in value.items())  # ≈ its JSON length, cheaply
        if size > limit:
            return column, f"too long: attributes of about {size:,} characters (limit {limit:,})"
        for key, item in value.items():
            problem = text_problem(f"{key}{item}")
            if problem:
                return str(key), problem
        return None
    if not isinstance(value, str):
        return None
    if len(value) > limit:
        return column, f"too long: {len(value):,} characters (limit {limit:,})"
    problem = text_problem(value)
    return (column, problem) if problem else None


def _text_rejects(frame: pd.DataFrame, columns: Iterable[str], file: str, kind: str) -> dict[int, Reject]:
    """Rows whose text is over its field's length limit, undecodable, or holds NUL (see FIELD_LIMITS)."""
    bad: dict[int, Reject] = {}
    for column in columns:
        if column not in frame:
            continue
        for row, value in _suspect_cells(frame, column):
            if row in bad:
                continue
            problem = _cell_problem(column, value)
            if problem:
                bad[row] = Reject(file, row, problem[0], problem[1], kind)
    return bad


def _suspect_cells(frame: pd.DataFrame, column: str) -> Iterator[tuple[int, Any]]:
    """(row, value) of the cells _cell_problem could object to: text over the field's limit or holding NUL or a
    surrogate, and every cell that is not text. One C-level scan per cell instead of a Python loop per character."""
    values = frame[column].to_numpy(dtype=object)
    limit = FIELD_LIMITS.get(column, SHORT_FIELD)
    search = _UNSTORABLE.search
    suspect = [not isinstance(v, str) or len(v) > limit or search(v) is not None for v in values]
    rows = frame["_row"].to_numpy()
    for i in np.flatnonzero(suspect):
        yield int(rows[i]), values[i]


def future_limit() -> pd.Timestamp:
    """The latest acceptable event time: now plus FUTURE_SLACK."""
    return pd.Timestamp.now(tz="UTC") + FUTURE_SLACK


def clean_text(value: Any) -> str:
    """Missing values become "", whitespace is collapsed: titles are compared and hashed as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


def parse_price(value: Any) -> tuple[float | None, str | None]:
    """Returns (price, error); empty means unknown price, which is allowed."""
    text = clean_text(value).replace(",", "")
    if text == "":
        return None, None
    try:
        price = float(text)
    except ValueError:
        return None, f"not a number: {text[:40]!r}"
    if math.isnan(price) or math.isinf(price):
        return None, f"not a finite number: {text!r}"
    if price < 0:
        return None, f"negative price: {price}"
    return price, None


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Dates, datetimes and unix seconds all become UTC timestamps; unparseable ones become NaT."""
    text = values.map(clean_text)
    numeric = pd.to_numeric(text, errors="coerce")
    as_unix = pd.to_datetime(numeric.where(numeric > 10_000_000), unit="s", utc=True, errors="coerce")
    as_text = pd.to_datetime(text.where(numeric.isna()), utc=True, errors="coerce", format="mixed")
    return as_unix.fillna(as_text).astype("datetime64[us, UTC]")


def stable_id(*parts: Any) -> str:
    """A short, deterministic id from content: re-ingesting the same rows upserts rather than duplicates."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).hexdigest()[:20]
