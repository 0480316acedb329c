"""What shoppers praise and complain about, per product and per category, from the workspace's reviews.

The pipeline (:func:`refresh`): review title + text → clauses (:mod:`.aspects`) → the aspects each clause names
(seed words; optionally plus neighbours learnt from the reviews' own word vectors, :mod:`.expand`, off by
default: on the women's reviews it neither predicted held-out ratings better nor made aspect opinions more
reproducible, and its learnt words include non-aspect ones, see ``benchmarks/insights.py``) → each clause's sentiment
from a model fitted on the reviews' own labels (:mod:`.sentiment`) → counts, shares, scores and example clauses per
product and per category (:mod:`.aggregate`) → the workspace's ``insights`` table (:mod:`.store`), written in one
transaction. Readers (:func:`insights`) never recompute: the CLI refreshes when the reviews changed since the last
run, the HTTP API serves what is stored and says when it is stale.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd

from tuwen.service.insights import store
from tuwen.service.insights.aggregate import aggregate, category_levels, review_categories
from tuwen.service.insights.aspects import seed_lexicon
from tuwen.service.insights.expand import expand
from tuwen.service.insights.extract import cut_clauses, fit_sentiment, languages, opinions, review_texts
from tuwen.store.workspace import Workspace

__all__ = ["analyse", "category_levels", "insights", "read", "refresh", "state"]

read = store.read

# "praised": net opinion ((praise - complaints) / reviews naming it) at least this; "complaints": at least this share
# of the reviews naming the aspect complain about it. Headlines, not statistics: the counts are in every row.
PRAISED_NET = 0.3
COMPLAINT_SHARE = 0.3
MIN_LEADER_MENTIONS = 2
MIN_EXPANSION_CLAUSES = 2000  # fewer clauses of a language than this: too little text for word vectors, seeds only


def analyse(reviews: pd.DataFrame, products: pd.DataFrame | None = None, *, expand_lexicon: bool = False,
            seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Everything :func:`refresh` computes, without writing: insight rows, opinion rows, the lexicons and the
    sentiment model (the benchmark calls this on its own splits)."""
    reviews = distinct(reviews)
    texts = review_texts(reviews)
    langs = languages(texts)
    cut = cut_clauses(texts, langs, progress)
    lexicons, learnt = {}, {}
    for language in sorted(set(langs)):
        lexicon = seed_lexicon(language)
        tokens = cut.frame.loc[cut.frame["language"] == language, "tokens"]
        if expand_lexicon and len(tokens) >= MIN_EXPANSION_CLAUSES:
            learnt[language] = expand(lexicon, tokens, seed=seed)
            lexicon = lexicon.extended(learnt[language])
        lexicons[language] = lexicon
    sentiment = fit_sentiment(reviews, texts, langs, seed)
    found = opinions(cut, lexicons, sentiment)
    review_p = sentiment.score(texts.tolist(), langs.tolist())
    rows = aggregate(reviews, found, review_p, langs, review_categories(reviews, products))
    lexicon_rows = pd.DataFrame([
        {"scope": "lexicon", "key": language, "aspect": aspect, "language": language,
         "examples": json.dumps({"seeds": list(seed_lexicon(language).aspects[aspect]),
                                 "learnt": learnt.get(language, {}).get(aspect, [])}, ensure_ascii=False)}
        for language, lexicon in lexicons.items() for aspect in lexicon.names])
    if len(lexicon_rows):
        lexicon_rows["id"] = "lexicon\x1f" + lexicon_rows["key"] + "\x1f" + lexicon_rows["aspect"]
    return {"rows": pd.concat([rows, lexicon_rows], ignore_index=True), "opinions": found, "review_p": review_p,
            "languages": langs, "lexicons": lexicons, "learnt": learnt, "sentiment": sentiment}


def distinct(reviews: pd.DataFrame) -> pd.DataFrame:
    """One row per review a shopper wrote about a product: the Amazon file repeats a review once per size or
    colour variant (same reviewer, same product, same words), which would count one opinion several times.
    Anonymous reviews (no reviewer id) are all kept: two shoppers may well write the same short words."""
    if "user_id" not in reviews:
        return reviews.reset_index(drop=True)
    key = [c for c in ("product_id", "user_id", "title", "text") if c in reviews]
    named = reviews["user_id"].fillna("").astype(str) != ""
    copies = named & reviews.duplicated(key)
    return reviews[~copies].reset_index(drop=True)


def refresh(workspace: Workspace, *, expand_lexicon: bool = False, seed: int = 0,
            progress: bool = True) -> dict[str, Any]:
    """Recompute every insight from the workspace's reviews and store them (one transaction); returns a report."""
    start = time.perf_counter()
    if not workspace.has_table("reviews") or workspace.count("reviews") == 0:
        raise ValueError(f"{workspace.path}: no reviews in this workspace; ingest some first "
                         "(e.g. tuwen ingest WS --preset womens-reviews DIR)")
    reviews = workspace.read("reviews")
    products = workspace.read("products", ["id", "category"]) if workspace.has_table("products") else None
    result = analyse(reviews, products, expand_lexicon=expand_lexicon, seed=seed, progress=progress)
    rows = result["rows"]
    meta = {"reviews_version": workspace.committed_tables().get("reviews"), "seed": seed,
            "expanded": expand_lexicon, "sentiment_trained_on": result["sentiment"].trained_on}
    written = store.write(workspace, rows, meta)
    return {"reviews": len(reviews), "opinions": len(result["opinions"]), "rows": written,
            "products": int(rows.loc[rows["scope"] == "product", "key"].nunique()),
            "categories": int(rows.loc[rows["scope"] == "category", "key"].nunique()),
            "sentiment_trained_on": result["sentiment"].trained_on, "learnt_words": result["learnt"],
            "seconds": round(time.perf_counter() - start, 2)}


def state(workspace: Workspace) -> dict[str, Any]:
    return store.state(workspace)


def _plain(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return None if not np.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _entry(row: pd.Series) -> dict[str, Any]:
    """One stored row as JSON: counts, shares, scores, examples."""
    keys = ("mentions", "positive", "negative", "share", "positive_share", "score", "net", "rating", "recommended")
    out = {key: _plain(row[key]) for key in keys}
    out["examples"] = json.loads(row["examples"]) if row["examples"] else {"positive": [], "negative": []}
    return out


def _block(rows: pd.DataFrame, scope: str, key: str) -> dict[str, Any] | None:
    mine = rows[(rows["scope"] == scope) & (rows["key"] == key)]
    if mine.empty:
        return None
    overall = mine[mine["aspect"] == ""]
    head = overall.iloc[0] if len(overall) else None
    aspects = mine[mine["aspect"] != ""].sort_values(["mentions", "aspect"], ascending=[False, True])
    return {
        "scope": scope, "key": key,
        "language": head["language"] if head is not None else None,
        "reviews": int(head["reviews"]) if head is not None else 0,
        "summary": _entry(head) if head is not None else None,
        "aspects": [{"aspect": a["aspect"], **_entry(a)} for _, a in aspects.iterrows()],
        "praised": _leaders(aspects, aspects["net"], PRAISED_NET),
        "complaints": _leaders(aspects, aspects["negative"] / aspects["mentions"].clip(lower=1), COMPLAINT_SHARE),
    }


def _leaders(aspects: pd.DataFrame, value: pd.Series, at_least: float, k: int = 3) -> list[str]:
    """Up to ``k`` aspects whose ``value`` reaches ``at_least``, highest first, among those named by at least
    MIN_LEADER_MENTIONS reviews (one review is an anecdote, not what shoppers say)."""
    keep = (value >= at_least) & (aspects["mentions"] >= MIN_LEADER_MENTIONS)
    ranked = pd.DataFrame({"aspect": aspects["aspect"], "value": value})[keep]
    return ranked.sort_values(["value", "aspect"], ascending=[False, True])["aspect"].head(k).tolist()


def _category_key(rows: pd.DataFrame, category: str) -> str:
    """The stored category a user's ``category`` names: exactly, or the one path ending in it."""
    known = rows.loc[rows["scope"] == "category", "key"].unique().tolist()
    if category in known:
        return category
    folded = category.strip().casefold()
    matches = [k for k in known if k.casefold() == folded or k.casefold().endswith("> " + folded)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        shown = ", ".join(sorted(known)[:20]) or "none (run `tuwen insights WS --refresh`)"
        raise KeyError(f"no insights for category {category!r}; categories with reviews: {shown}")
    raise ValueError(f"category {category!r} is ambiguous: {', '.join(sorted(matches)[:10])}; give the full path")


def insights(workspace: Workspace, product: str | None = None, category: str | None = None,
             rows: pd.DataFrame | None = None) -> dict[str, Any]:
    """Stored insights of one product (and its category) and/or one category, as JSON-ready dicts.

    A product the catalog knows but nobody reviewed answers with 0 reviews and no aspects rather than an error;
    an unknown product or category is a KeyError naming it. ``rows``: the table already read (the server keeps it
    per committed version)."""
    if product is None and category is None:
        raise ValueError("say which insights: a product id, a category, or both")
    rows = store.read(workspace) if rows is None else rows
    answer: dict[str, Any] = {"state": {k: v for k, v in state(workspace).items() if k in ("computed", "stale",
                                                                                            "computed_at")}}
    if product is not None:
        block = _block(rows, "product", product)
        known = block is not None or (workspace.has_table("products") and workspace.count(
            "products", f"id = '{product.replace(chr(39), chr(39) * 2)}'") > 0)
        if not known:
            raise KeyError(f"no product {product!r} in this workspace")
        answer["product"] = block or {"scope": "product", "key": product, "reviews": 0, "summary": None,
                                      "aspects": [], "praised": [], "complaints": []}
        if category is None and workspace.has_table("products"):
            found = workspace.table("products").search().where(
                f"id = '{product.replace(chr(39), chr(39) * 2)}'").select(["category"]).limit(1).to_list()
            path = found[0]["category"] if found else ""
            if path and not rows.empty and (rows["key"] == path).any():
                category = path
    if category is not None:
        answer["category"] = _block(rows, "category", _category_key(rows, category))
    return answer
