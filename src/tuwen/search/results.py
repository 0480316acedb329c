"""What a search returns: hits with the signals that found them, facet counts and per-stage timings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from tuwen.search.common import SearchError, column_name


@dataclass
class SearchHit:
    """One product in a result list; ``signals`` maps each signal that retrieved it to its rank and score."""

    id: str
    score: float
    title: str = ""
    category: str = ""
    price: float | None = None
    image: str = ""
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # all index columns (facets)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "row"}
        out["score"] = round(float(self.score), 6)
        if out["price"] is not None and out["price"] != out["price"]:
            out["price"] = None
        return out


@dataclass
class SearchResult:
    """What a search returns: hits best first, facet counts over the candidates, and per-stage timings (ms)."""

    query: str
    mode: str
    fusion: str | None
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    signals: list[str] = field(default_factory=list)
    where: str | None = None
    image: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "image": self.image, "mode": self.mode, "fusion": self.fusion,
                "where": self.where, "signals": self.signals, "hits": [h.to_dict() for h in self.hits],
                "facets": self.facets, "timings_ms": {k: round(v, 2) for k, v in self.timings.items()}}

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]


@dataclass
class Ranked:
    """One signal's candidates: row keys best first with their scores."""

    keys: list[Any]
    scores: np.ndarray
    row_ids: dict[Any, int] | None = None  # ANN mode: each key's LanceDB row id, to read its columns later

    def rank_of(self) -> dict[Any, int]:
        return {key: r for r, key in enumerate(self.keys)}


def make_hits(keys: list[Any], scores: np.ndarray, rows: list[dict[str, Any]], lists: dict[str, Ranked],
              terms: list[str]) -> list[SearchHit]:
    """Hits for ranked keys, each saying at which rank and score every signal found it (and matched words)."""
    ranks = {signal: ranked.rank_of() for signal, ranked in lists.items()}
    hits = []
    for key, score, row in zip(keys, scores, rows, strict=True):
        signals: dict[str, dict[str, Any]] = {}
        for signal, rank_of in ranks.items():
            r = rank_of.get(key)
            if r is None:
                continue
            entry: dict[str, Any] = {"rank": r + 1, "score": round(float(lists[signal].scores[r]), 5)}
            if signal == "lexical":
                text = str(row.get("tokens", "")).lower()
                entry["terms"] = [w for w in terms if w in text]
            signals[signal] = entry
        price = row.get("price")
        hits.append(SearchHit(str(row["id"]), float(score), str(row.get("title", "")), str(row.get("category", "")),
                              None if price is None or price != price else float(price), str(row.get("image", "")),
                              signals, row))
    return hits


def facet_counts(hits: list[SearchHit], facets: Sequence[str] | None, attribute_columns: Sequence[str],
                 price_edges: Sequence[float]) -> dict[str, dict[str, int]]:
    """Counts over the top candidates (up to 100): category paths, price bands, any attribute column."""
    out: dict[str, dict[str, int]] = {}
    for name, column in facet_columns(facets, attribute_columns).items():
        counts: dict[str, int] = {}
        for hit in hits:
            row = hit.row
            value = price_band(row.get("price"), price_edges) if column == "price" else row.get(column)
            if value is None or value == "":
                continue
            counts[str(value)] = counts.get(str(value), 0) + 1
        out[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return out


def facet_columns(facets: Sequence[str] | None, attribute_columns: Sequence[str]) -> dict[str, str]:
    """Each facet asked for (category and price by default) and the index column it counts; an unknown one is
    refused, naming those there are."""
    names = list(facets) if facets is not None else ["category", "price"]
    allowed = {"category", "price", *attribute_columns}
    out = {}
    for name in names:
        column = column_name(name) if name not in ("category", "price") else name
        if column not in allowed:
            raise SearchError(f"unknown facet {name!r}; use category, price or one of: "
                              f"{', '.join(attribute_columns) or '(no attributes)'}")
        out[name] = column
    return out


def price_band(price: Any, edges: Sequence[float]) -> str | None:
    """The band a price falls in (``"< 50"``, ``"50-150"``, ``">= 300"``), from the catalog's quantile edges."""
    if price is None or price != price or not edges:
        return None
    lo = None
    for edge in edges:
        if price < edge:
            return f"< {edge:g}" if lo is None else f"{lo:g}-{edge:g}"
        lo = edge
    return f">= {lo:g}"
