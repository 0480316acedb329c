"""Review-derived product scores: mean stars, number of reviews, share of happy reviews, and aspect opinions.

Why here, in the storage layer: search (a filter column, ``where="rating >= 4"``) and the recommender's candidate
ranker (features) both read them, and neither may import the insight service that sits above them. The counts come
straight from the ``reviews`` table, so they exist as soon as reviews are ingested; the aspect opinions come from the
``insights`` table when ``tuwen insights`` has computed it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tuwen.store.workspace import Workspace

SCORE_COLUMNS = ("rating", "reviews", "positive_share")
INSIGHTS_TABLE = "insights"


def polarity(frame: pd.DataFrame) -> pd.Series:
    """Per review: 1.0 happy, 0.0 unhappy, NaN unknown. The Chinese ``label`` ("1"/"0") where a review has one,
    else the stars (4-5 happy, 1-2 unhappy, 3 unknown), else ``recommended``."""
    out = pd.Series(np.nan, index=frame.index, dtype="float64")
    if "recommended" in frame:
        out = pd.to_numeric(frame["recommended"], errors="coerce").where(lambda v: v.isin([0.0, 1.0]))
    if "rating" in frame:
        rating = pd.to_numeric(frame["rating"], errors="coerce")
        from_rating = pd.Series(np.select([rating >= 4, rating <= 2], [1.0, 0.0], np.nan), index=frame.index)
        out = from_rating.where(rating.notna(), out)
    if "label" in frame:
        label = frame["label"].astype("string").str.strip()
        from_label = label.map({"1": 1.0, "0": 0.0}).astype("float64")
        out = from_label.where(from_label.notna(), out)
    return out.astype("float64")


def review_scores(reviews: pd.DataFrame, before: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per product id (the index): ``rating`` (mean stars, NaN without any), ``reviews`` (how many) and
    ``positive_share`` (of the reviews with a known polarity). ``before``: only reviews dated earlier (undated
    reviews always count: nothing says when they were written)."""
    if reviews is None or reviews.empty or "product_id" not in reviews:
        return pd.DataFrame(columns=list(SCORE_COLUMNS), dtype="float64")
    frame = reviews[reviews["product_id"].fillna("").astype(str) != ""]
    if before is not None and "timestamp" in frame:
        stamps = pd.to_datetime(frame["timestamp"], utc=True)
        frame = frame[stamps.isna() | (stamps < before)]
    table = pd.DataFrame({"product_id": frame["product_id"].astype(str),
                          "rating": pd.to_numeric(frame["rating"], errors="coerce") if "rating" in frame else np.nan,
                          "positive": polarity(frame)})
    grouped = table.groupby("product_id", sort=True).agg(rating=("rating", "mean"), reviews=("rating", "size"),
                                                         positive_share=("positive", "mean"))
    return grouped.astype("float64")


def aspect_scores(workspace: Workspace) -> pd.DataFrame:
    """Per product id: ``aspect_<name>`` = net opinion of the reviews naming the aspect, in [-1, 1] (NaN where none
    does), for aspects whose names are plain identifiers (the English ones); empty before ``tuwen insights``."""
    if not workspace.has_table(INSIGHTS_TABLE):
        return pd.DataFrame()
    rows = workspace.table(INSIGHTS_TABLE).to_arrow().select(["scope", "key", "aspect", "net"]).to_pandas()
    plain = rows["aspect"].map(lambda a: a.isascii() and a.isidentifier())
    rows = rows[(rows["scope"] == "product") & (rows["aspect"] != "") & plain]
    if rows.empty:
        return pd.DataFrame()
    wide = rows.pivot_table(index="key", columns="aspect", values="net", aggfunc="mean")
    wide.columns = [f"aspect_{c.lower()}" for c in wide.columns]
    return wide.astype("float64")


def product_review_scores(workspace: Workspace) -> pd.DataFrame:
    """:func:`review_scores` of all the workspace's reviews joined with :func:`aspect_scores`; empty without
    reviews."""
    if not workspace.has_table("reviews") or workspace.count("reviews") == 0:
        return pd.DataFrame()
    have = workspace.table("reviews").schema.names
    columns = [c for c in ("product_id", "rating", "recommended", "label") if c in have]
    scores = review_scores(workspace.read("reviews", columns))
    aspects = aspect_scores(workspace)
    return scores.join(aspects, how="left") if not aspects.empty else scores
