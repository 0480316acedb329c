"""Opinion rows → insight rows: per product and per category (every level of its path), per aspect, with counts,
shares and example clauses; plus one overall row per product / category.

A review counts once per aspect however many of its clauses name it (its aspect sentiment is the mean of those
clauses' P(positive)), so one long review cannot outvote several short ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd

from tuwen.service.insights.sentiment import NEGATIVE_AT, POSITIVE_AT
from tuwen.store.review_scores import polarity

EXAMPLES = 3  # example clauses kept per side (praise, complaint) per aspect
MIN_EXAMPLE_WORDS = 3  # a shorter English clause ("love it") says nothing about the aspect
MAX_EXAMPLE_CHARS = 300


def category_levels(path: str) -> list[str]:
    """"Tops > Knits" → ["Tops", "Tops > Knits"]: category insights exist at every level of a path."""
    parts = [p.strip() for p in str(path or "").split(">") if p.strip()]
    return [" > ".join(parts[:i]) for i in range(1, len(parts) + 1)]


def review_categories(reviews: pd.DataFrame, products: pd.DataFrame | None) -> pd.Series:
    """Each review's category: its product's category where the catalog has one (what the product page shows),
    else the review's own ``category`` column (Chinese reviews name no product)."""
    own = reviews["category"].fillna("").astype(str) if "category" in reviews else pd.Series("", index=reviews.index)
    if products is None or products.empty or "product_id" not in reviews:
        return own
    by_id = products.set_index("id")["category"].fillna("").astype(str)
    by_id = by_id[~by_id.index.duplicated()]
    product = reviews["product_id"].fillna("").astype(str).map(by_id).fillna("")
    return product.where(product != "", own)


def _scope_keys(reviews: pd.DataFrame, categories: pd.Series) -> pd.DataFrame:
    """(review position, scope, key) for every product and category level a review belongs to."""
    rows: list[tuple[int, str, str]] = []
    products = reviews["product_id"].fillna("").astype(str).tolist() if "product_id" in reviews else [""] * len(
        reviews)
    for position, (product, category) in enumerate(zip(products, categories, strict=True)):
        if product:
            rows.append((position, "product", product))
        rows += [(position, "category", level) for level in category_levels(category)]
    return pd.DataFrame(rows, columns=["review", "scope", "key"])


def _examples(frame: pd.DataFrame, ids: np.ndarray, keys: list[str]) -> dict[tuple[str, ...], dict[str, list]]:
    """Up to EXAMPLES praise and complaint clauses per group of ``keys``, strongest first, no repeated text."""
    words = frame["clause"].str.split().str.len()
    usable = frame[(frame["language"] == "zh") | (words >= MIN_EXAMPLE_WORDS)]
    out: dict[tuple[str, ...], dict[str, list]] = {}
    for side, mask, ascending in (("positive", usable["p"] >= POSITIVE_AT, False),
                                  ("negative", usable["p"] <= NEGATIVE_AT, True)):
        chosen = usable[mask].sort_values("p", ascending=ascending, kind="stable")
        chosen = chosen.drop_duplicates([*keys, "clause"]).groupby(keys, sort=False).head(EXAMPLES)
        for row in chosen.itertuples(index=False):
            group = tuple(getattr(row, k) for k in keys)
            out.setdefault(group, {"positive": [], "negative": []})[side].append(
                {"text": row.clause[:MAX_EXAMPLE_CHARS], "review_id": str(ids[row.review]),
                 "p": round(float(row.p), 3)})
    return out


def aggregate(reviews: pd.DataFrame, opinions: pd.DataFrame, review_p: np.ndarray, languages: Iterable[str],
              categories: pd.Series) -> pd.DataFrame:
    """Insight rows (see :data:`tuwen.service.insights.store.INSIGHT_SCHEMA`) for every product and category."""
    reviews = reviews.reset_index(drop=True)
    ids = reviews["id"].astype(str).to_numpy()
    facts = pd.DataFrame({
        "review": np.arange(len(reviews)),
        "rating": pd.to_numeric(reviews["rating"], errors="coerce") if "rating" in reviews else np.nan,
        "recommended": pd.to_numeric(reviews["recommended"], errors="coerce") if "recommended" in reviews else np.nan,
        "polarity": polarity(reviews).to_numpy(),
        "p": review_p,
        "language": list(languages),
    })
    scopes = _scope_keys(reviews, categories)
    keys = ["scope", "key"]
    per_review = scopes.merge(facts, on="review")
    overall = per_review.groupby(keys, sort=False).agg(
        reviews=("review", "size"), rating=("rating", "mean"), recommended=("recommended", "mean"),
        positive_share=("polarity", "mean"), score=("p", "mean"),
        language=("language", lambda s: s.mode().iat[0])).reset_index()
    overall["aspect"] = ""
    overall["mentions"] = overall["reviews"]
    lean = np.where(per_review["p"] >= POSITIVE_AT, 1, np.where(per_review["p"] <= NEGATIVE_AT, -1, 0))
    counts = per_review.assign(pos=lean == 1, neg=lean == -1).groupby(keys, sort=False)[["pos", "neg"]].sum()
    overall = overall.merge(counts.reset_index(), on=keys)
    overall = overall.rename(columns={"pos": "positive", "neg": "negative"})
    overall["share"] = 1.0

    if len(opinions):
        by_review = opinions.groupby(["review", "aspect"], sort=False).agg(p=("p", "mean")).reset_index()
        by_review = scopes.merge(by_review, on="review").merge(facts.drop(columns=["p"]), on="review")
        by_review["pos"] = by_review["p"] >= POSITIVE_AT
        by_review["neg"] = by_review["p"] <= NEGATIVE_AT
        aspects = by_review.groupby([*keys, "aspect"], sort=False).agg(
            mentions=("review", "size"), positive=("pos", "sum"), negative=("neg", "sum"), score=("p", "mean"),
            rating=("rating", "mean"), recommended=("recommended", "mean"),
            language=("language", lambda s: s.mode().iat[0])).reset_index()
        aspects = aspects.merge(overall[[*keys, "reviews"]], on=keys)
        aspects["share"] = aspects["mentions"] / aspects["reviews"]
        aspects["positive_share"] = aspects["positive"] / aspects["mentions"]
        clause_rows = scopes.merge(opinions, on="review")
        examples = _examples(clause_rows, ids, [*keys, "aspect"])
        aspects["examples"] = [json.dumps(examples.get((s, k, a), {"positive": [], "negative": []}),
                                          ensure_ascii=False)
                               for s, k, a in zip(aspects["scope"], aspects["key"], aspects["aspect"], strict=True)]
        everything = opinions.assign(aspect="")
        overall_examples = _examples(scopes.merge(everything, on="review"), ids, [*keys, "aspect"])
    else:
        aspects = pd.DataFrame(columns=[*overall.columns, "examples"])
        overall_examples = {}
    overall["examples"] = [json.dumps(overall_examples.get((s, k, ""), {"positive": [], "negative": []}),
                                      ensure_ascii=False)
                           for s, k in zip(overall["scope"], overall["key"], strict=True)]
    frame = pd.concat([overall, aspects], ignore_index=True)
    frame["net"] = (frame["positive"] - frame["negative"]) / frame["mentions"].clip(lower=1)
    frame["id"] = frame["scope"] + "\x1f" + frame["key"] + "\x1f" + frame["aspect"]
    return frame
