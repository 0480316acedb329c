"""Learning the hybrid fusion weights from labelled queries (a grid search over the weight simplex)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tuwen.search.common import DEFAULT_WEIGHTS, SearchError, as_workspace, top, write_meta
from tuwen.search.fusion import candidate_keys
from tuwen.search.metrics import ndcg_at

Prepared = tuple[np.ndarray, list[str], set[str], bool]  # features (signals × candidates), ids, relevant, words?


def category_queries(workspace: Any, min_products: int = 5, max_queries: int = 300,
                     seed: int = 0) -> tuple[list[str], list[set[str]]]:
    """Pseudo-queries any catalog has: each category's last path element, relevant = products in it.

    They teach the fusion how much each signal is worth on *this* catalog without hand labels.
    """
    products = workspace.read("products", ["id", "category"])
    leaf = products["category"].fillna("").map(lambda c: c.split(">")[-1].strip())
    groups = products.groupby(leaf)["id"].apply(set)
    groups = groups[(groups.index != "") & (groups.map(len) >= min_products)]
    names = sorted(groups.index)
    rng = np.random.default_rng(seed)
    if len(names) > max_queries:
        names = sorted(rng.choice(names, max_queries, replace=False).tolist())
    return names, [groups[name] for name in names]


def learn_weights(workspace: Any, queries: Sequence[str], relevant: Sequence[set[str]], *, k: int = 10,
                  step: float = 0.1, save: bool = True, candidates: int = 100) -> dict[str, Any]:
    """Fit the hybrid weights: grid search over the simplex of signal weights for the best mean nDCG@k.

    Two sets are learnt, because how much the vectors are worth depends on whether the words matched at
    all: ``weights`` for queries with BM25 hits, and ``weights_without_lexical`` for queries without (a
    Chinese query on an English catalog, a misspelling) — learnt on such queries when at least 5 are given,
    otherwise on all queries with the lexical signal left out. The per-query candidate features are
    computed once, so each grid point costs a few vector sums. Learn on queries kept apart from the ones
    you judge the result on (the benchmark learns on one half of its queries and reports the other).
    """
    from tuwen.search.engines import clear_engines, engine_for

    engine = engine_for(workspace)
    signals = [s for s in ("lexical", "semantic", "crossmodal") if s in engine.signals]
    if len(signals) < 2:
        raise SearchError("learning fusion weights needs at least two text signals in the index")
    prepared = _prepare(engine, signals, queries, relevant, candidates)
    with_words = [p for p in prepared if p[3]] or prepared
    weights, score = _grid_search(with_words, signals, signals, k, step)
    result: dict[str, Any] = {"weights": {**weights, "image": DEFAULT_WEIGHTS["image"]}, "ndcg@10": round(score, 4),
                              "queries": len(with_words)}
    vector_signals = [s for s in signals if s != "lexical"]
    if "lexical" in signals and len(vector_signals) >= 2:
        without = [p for p in prepared if not p[3]]
        pool = without if len(without) >= 5 else prepared
        weights, score = _grid_search(pool, signals, vector_signals, k, step)
        result["weights_without_lexical"] = {**weights, "image": DEFAULT_WEIGHTS["image"]}
        result["ndcg@10_without_lexical"] = round(score, 4)
        result["queries_without_lexical"] = len(without)
    if save:
        ws = as_workspace(workspace)
        with ws.transaction("search weights") as writer:
            write_meta(writer, {"weights": result})
        clear_engines()
    return result


def _prepare(engine: Any, signals: list[str], queries: Sequence[str], relevant: Sequence[set[str]],
             candidates: int) -> list[Prepared]:
    """Each query's candidates with their per-signal features, computed once for the whole grid."""
    prepared = []
    for query, rel in zip(queries, relevant, strict=True):
        lists, vectors = engine.signal_lists(query, None, "hybrid", None, candidates)
        keys = candidate_keys(lists)
        if not keys:
            continue
        feats = engine.features(lists, vectors, keys)
        ids = [engine.product_id(key) for key in keys]
        has_words = bool("lexical" in lists and lists["lexical"].keys)
        prepared.append((np.stack([feats.get(s, np.zeros(len(keys))) for s in signals]), ids, set(rel), has_words))
    if not prepared:
        raise SearchError("no query retrieved anything; cannot learn fusion weights")
    return prepared


def _grid_search(prepared: list[Prepared], signals: list[str], use: list[str], k: int,
                 step: float) -> tuple[dict[str, float], float]:
    """Best simplex point over the ``use`` signals (others weigh 0) by mean nDCG@k."""
    rows = [signals.index(s) for s in use]
    best, best_score = None, -1.0
    for point in _simplex(len(use), step):
        w = np.zeros(len(signals))
        w[rows] = point
        score = float(np.mean([ndcg_at([ids[i] for i in top(w @ f, k)], rel, k) for f, ids, rel, _ in prepared]))
        if score > best_score + 1e-9:
            best, best_score = w, score
    assert best is not None
    return {s: round(float(x), 4) for s, x in zip(signals, best, strict=True)}, best_score


def _simplex(n: int, step: float) -> list[np.ndarray]:
    units = int(round(1 / step))
    out = []

    def rec(prefix: list[int], left: int, slots: int) -> None:
        if slots == 1:
            out.append(np.array([*prefix, left], dtype=float) / units)
            return
        for x in range(left + 1):
            rec([*prefix, x], left - x, slots - 1)

    rec([], units, n)
    return out
