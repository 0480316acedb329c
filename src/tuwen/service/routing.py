"""A question that names no product goes to product search, with the filters its words imply.

"do you have a red dress under 50?" becomes the query "red dress" with ``colour IN ('red') AND category IN
('Apparel > Dresses') AND price < 50``; a photo with "this one but in blue?" becomes a photo search with
``colour IN ('blue')``. The filters are written in the search filter grammar (:mod:`tuwen.search.filters`) and pass
through its parser like anyone's, so nothing here reaches LanceDB unchecked.

What a word can imply is read from the search index itself: a word (or a Chinese colour word) that equals a value of
one of the index's text columns with few distinct values (colour, category — its last level —, material, pattern,
any catalog attribute) filters that column; a price phrase ("under 50", "between 20 and 40", "50元以下") bounds the
price. When the filters leave nothing, the search is run again without the word filters (price kept), and the
answer says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuwen.search import SearchError, engine_for
from tuwen.search.tokens import match_form, query_terms
from tuwen.store.workspace import Workspace

MAX_VALUES = 300  # a text column with more distinct values than this is a name, not a facet: never a filter
NOT_FILTERS = {"id", "title", "description", "tokens", "hash", "image", "currency", "source", "ocr"}
CHINESE_COLOURS = {"红": "red", "黑": "black", "白": "white", "蓝": "blue", "绿": "green", "黄": "yellow",
                   "粉": "pink", "紫": "purple", "灰": "grey", "橙": "orange", "棕": "brown", "咖啡": "brown",
                   "米": "beige", "金": "gold", "银": "silver"}
COLOUR_SPELLINGS = {"gray": "grey", "colour": "color"}
_NUMBER = r"(\d+(?:[.,]\d+)?)"
_MONEY = r"(?:\$|¥|€|£|rmb|usd|cny|eur|gbp)?\s*"
_UNIT = r"\s*(?:元|块|dollars?|bucks|yuan|rmb|usd|eur|euros?|pounds?)?"
PRICE_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"between\s+{_MONEY}{_NUMBER}{_UNIT}\s+and\s+{_MONEY}{_NUMBER}{_UNIT}", re.I), "between"),
    (re.compile(rf"{_MONEY}{_NUMBER}{_UNIT}\s*(?:-|–|to)\s*{_MONEY}{_NUMBER}{_UNIT}", re.I), "between"),
    (re.compile(rf"(?:under|below|less than|cheaper than|up to|at most|no more than|max(?:imum)?|<=?)\s*"
                rf"{_MONEY}{_NUMBER}{_UNIT}", re.I), "max"),
    (re.compile(rf"(?:over|above|more than|at least|min(?:imum)?|>=?)\s*{_MONEY}{_NUMBER}{_UNIT}", re.I), "min"),
    (re.compile(rf"(?:低于|不超过|少于|小于){_NUMBER}\s*(?:元|块)?|{_NUMBER}\s*(?:元|块)?\s*(?:以下|以内|之内)"),
     "max"),
    (re.compile(rf"(?:高于|超过|大于){_NUMBER}\s*(?:元|块)?|{_NUMBER}\s*(?:元|块)?\s*以上"), "min"),
]
FILLER = re.compile(r"\b(?:do|does|you|u|have|has|any|got|is|are|there|i|am|looking|for|want|need|a|an|the|this|"
                    r"one|but|in|with|please|show|me|something|similar|like|it|that|sell|find|under|below|over|"
                    r"above|between|and|less|more|than|cheaper|up|to|at|most|least)\b", re.I)


@dataclass
class Implied:
    """What a product-less message asks search for: the words left, and one filter clause per column (in the filter
    grammar) with the values or price bounds behind it."""
    words: str
    clauses: dict[str, str] = field(default_factory=dict)
    filters: dict[str, Any] = field(default_factory=dict)

    def where(self, only: set[str] | None = None) -> str | None:
        """The clauses joined by AND (``only``: just those columns' clauses)."""
        kept = [c for column, c in self.clauses.items() if only is None or column in only]
        return " AND ".join(kept) or None


def price_band(message: str) -> tuple[dict[str, float], str]:
    """The price bounds a message states, and the message without the phrase that stated them."""
    for pattern, kind in PRICE_PATTERNS:
        match = pattern.search(message)
        if match is None:
            continue
        numbers = [float(n.replace(",", ".")) for n in match.groups() if n is not None]
        rest = (message[:match.start()] + " " + message[match.end():]).strip()
        if kind == "between" and len(numbers) == 2:
            return {"min": min(numbers), "max": max(numbers)}, rest
        if kind in ("max", "min") and numbers:
            return {kind: numbers[0]}, rest
    return {}, message


def _message_words(message: str) -> set[str]:
    found = {COLOUR_SPELLINGS.get(match_form(w), match_form(w)) for w in query_terms(message)}
    found |= {colour for chinese, colour in CHINESE_COLOURS.items() if chinese in message}
    return found


def _value_words(value: str, column: str) -> set[str]:
    """The words a column value is recognised by: a category path by its last level ("Apparel > Tops" → top)."""
    text = value.split(">")[-1] if column == "category" or ">" in value else value
    return {COLOUR_SPELLINGS.get(match_form(w), match_form(w)) for w in re.findall(r"[^\W_]+", text.lower())}


def facet_values(workspace: Workspace) -> dict[str, list[str]]:
    """Each filterable text column of the search index with few distinct values, and those values."""
    engine = engine_for(workspace)
    cached = getattr(engine, "_ask_facets", None)
    if cached is not None:
        return cached
    columns = [c for c, kind in engine.filter_columns.items() if kind == "string" and c.lower() not in NOT_FILTERS
               and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c)]
    data = engine.table.to_arrow().select(columns) if columns else None
    out: dict[str, list[str]] = {}
    for column in columns:
        values = {str(v) for v in data.column(column).to_pylist() if v}  # type: ignore[union-attr]
        if 0 < len(values) <= MAX_VALUES:
            out[column] = sorted(values)
    engine._ask_facets = out  # type: ignore[attr-defined]  # per loaded index: a re-index loads a new engine
    return out


def implied_filters(workspace: Workspace, message: str) -> Implied:
    """The query words and the filters a product-less message implies (see the module docstring)."""
    band, rest = price_band(message)
    words = _message_words(rest)
    implied = Implied(" ".join(FILLER.sub(" ", re.sub(r"[?？!！,，.。]", " ", rest)).split()))
    for column, values in facet_values(workspace).items():
        matched = [v for v in values if (vw := _value_words(v, column)) and vw <= words]
        if matched and len(matched) < len(values):
            quoted = ", ".join("'" + v.replace("'", "''") + "'" for v in matched[:50])
            implied.clauses[column] = f"{column} IN ({quoted})"
            implied.filters[column] = matched[:50]
    if band and engine_for(workspace).filter_columns.get("price") == "number":
        if "min" in band and "max" in band:
            implied.clauses["price"] = f"price BETWEEN {band['min']:g} AND {band['max']:g}"
        elif "max" in band:
            implied.clauses["price"] = f"price <= {band['max']:g}"
        else:
            implied.clauses["price"] = f"price >= {band['min']:g}"
        implied.filters["price"] = band
    return implied


def search_products(workspace: Workspace, message: str, image: str | Path | None = None, k: int = 10
                    ) -> dict[str, Any]:
    """Product search for a message (and photo) that names no product, with the filters it implies; when they
    leave nothing, once more with the price bound alone (``relaxed``)."""
    implied = implied_filters(workspace, message)
    engine = engine_for(workspace)
    query = implied.words or " ".join(str(v) for key, values in implied.filters.items() if key != "price"
                                      for v in values)
    if not query and image is None:
        raise SearchError("nothing to search for: name a product, or say what you are looking for")
    mode = "hybrid" if query else "image"
    result = engine.search(query or None, image=image, mode=mode, k=k, where=implied.where())
    relaxed = False
    if not result.hits and set(implied.clauses) - {"price"}:
        result = engine.search(query or None, image=image, mode=mode, k=k, where=implied.where({"price"}))
        relaxed = True
    answer = result.to_dict()
    answer.update({"implied": implied.filters, "relaxed": relaxed, "words": implied.words})
    return answer
