"""The ``insights`` table: computed by :func:`tuwen.service.insights.refresh`, read by the CLI, the API and the page.

One row per (scope, key, aspect): scope ``product`` (key = product id) or ``category`` (key = a category path at any
level), aspect "" for the overall row. Rows of scope ``lexicon`` (key = language, aspect = aspect name) record the
words each aspect was matched with, seeds and learnt ones, so a reader can see why a clause counted. The reviews
table's committed version is kept in the manifest's meta, so a reader can tell when the insights are older than the
reviews (``stale``).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd
import pyarrow as pa

from tuwen.store.workspace import Workspace

TABLE = "insights"
META_KEY = "insights"
INSIGHT_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("scope", pa.string()),  # product | category | lexicon
    ("key", pa.string()),
    ("aspect", pa.string()),  # "" = the overall row of this product / category
    ("language", pa.string()),  # en | zh (most of the reviews behind the row)
    ("reviews", pa.int64()),  # reviews of this product / category
    ("mentions", pa.int64()),  # reviews naming the aspect (the overall row: = reviews)
    ("positive", pa.int64()),  # of those, reviews whose clauses about it lean positive
    ("negative", pa.int64()),
    ("share", pa.float64()),  # mentions / reviews
    ("positive_share", pa.float64()),  # aspect rows: positive / mentions; overall: share of positive review labels
    ("score", pa.float64()),  # mean P(positive) of the clauses (overall: of the whole reviews)
    ("net", pa.float64()),  # (positive - negative) / mentions, in [-1, 1]
    ("rating", pa.float64()),  # mean star rating of the reviews behind the row (null without ratings)
    ("recommended", pa.float64()),  # share recommending (null where reviews do not say)
    ("examples", pa.string()),  # JSON {"positive": [{text, review_id, p}], "negative": [...]}; lexicon: words
])


def write(workspace: Workspace, frame: pd.DataFrame, meta: dict[str, Any]) -> int:
    """Replace the insights table with ``frame`` in one transaction (upsert by id, stale ids deleted)."""
    frame = frame.copy()
    for column in INSIGHT_SCHEMA.names:
        if column not in frame:
            frame[column] = None
    for column in ("reviews", "mentions", "positive", "negative"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype("int64")
    for column in ("share", "positive_share", "score", "net", "rating", "recommended"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    for column in ("id", "scope", "key", "aspect", "language", "examples"):
        frame[column] = frame[column].fillna("").astype(str)
    with workspace.transaction("insights") as writer:
        old = set(workspace.read(TABLE, ["id"])["id"]) if workspace.has_table(TABLE) else set()
        writer.upsert(TABLE, frame, schema=INSIGHT_SCHEMA)
        stale = sorted(old - set(frame["id"]))
        if stale:
            writer.delete(TABLE, stale)
        writer.meta[META_KEY] = {**meta, "computed_at": time.time(), "rows": len(frame)}
    return len(frame)


def scrub_reviews(workspace: Workspace, review_ids: list[str]) -> int:
    """Take the quoted clauses of these reviews out of the stored examples, and their old versions off the disk.

    A forgotten shopper's words must not stay quoted on a product page; the counts and shares they fed are
    aggregates, and the next refresh recomputes them (the reviews table changed, so the insights read as stale).
    Returns how many insight rows were rewritten.
    """
    if not review_ids or not workspace.has_table(TABLE):
        return 0
    gone = set(review_ids)
    frame = _quoting(workspace, review_ids)
    changed = []
    for position, text in enumerate(frame["examples"]):
        try:
            examples = json.loads(text or "{}")
        except ValueError:
            continue
        if not isinstance(examples, dict):  # lexicon rows keep their words here
            continue
        kept = {side: [e for e in quotes if not (isinstance(e, dict) and str(e.get("review_id")) in gone)]
                for side, quotes in examples.items() if isinstance(quotes, list)}
        if kept != {side: quotes for side, quotes in examples.items() if isinstance(quotes, list)}:
            frame.at[position, "examples"] = json.dumps({**examples, **kept})
            changed.append(position)
    if changed:
        rows = frame.iloc[changed]
        listed = ", ".join("'" + str(i).replace("'", "''") + "'" for i in rows["id"])
        with workspace.transaction("forget review quotes") as writer:
            # erase + append, not upsert: an upsert only hides the old row, whose quote would stay in its data file
            writer.erase(TABLE, f"id IN ({listed})")
            writer.append(TABLE, pa.Table.from_pandas(rows, schema=INSIGHT_SCHEMA, preserve_index=False),
                          schema=INSIGHT_SCHEMA)
    return len(changed)


def _quoting(workspace: Workspace, review_ids: list[str]) -> pd.DataFrame:
    """The insight rows whose examples may quote these reviews, found by a text filter in LanceDB rather than by
    reading a table that holds a row per product and aspect (a LIKE wildcard in an id only widens the net: the
    caller checks each quote's id exactly)."""
    parts = []
    for start in range(0, len(review_ids), 100):
        quoted = [json.dumps({"review_id": str(i)})[1:-1].replace("'", "''") for i in review_ids[start:start + 100]]
        where = " OR ".join(f"examples LIKE '%{q}%'" for q in quoted)
        parts.append(workspace.table(TABLE).search().where(where).limit(None).to_arrow().to_pandas())
    return pd.concat(parts, ignore_index=True).drop_duplicates("id", ignore_index=True)


def read(workspace: Workspace) -> pd.DataFrame:
    """The whole table (empty, with its columns, before the first refresh)."""
    if not workspace.has_table(TABLE):
        return INSIGHT_SCHEMA.empty_table().to_pandas()
    return workspace.table(TABLE).to_arrow().to_pandas()


def state(workspace: Workspace) -> dict[str, Any]:
    """What the last refresh recorded, plus ``stale``: the reviews changed since (or no refresh yet)."""
    meta = dict((workspace.manifest.get("meta") or {}).get(META_KEY) or {})
    current = workspace.committed_tables().get("reviews")
    meta["computed"] = workspace.has_table(TABLE)
    meta["stale"] = not meta["computed"] or meta.get("reviews_version") != current
    return meta
