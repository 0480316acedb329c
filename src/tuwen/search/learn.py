"""Learning the hybrid fusion weights from labelled queries (a cross-validated grid search over the weight simplex).

The weights cover the text signals and the word-coverage feature (:mod:`tuwen.search.fusion`); coverage never
ranks alone (it only has a few distinct values per query: ties everywhere), so the grid keeps it below 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.metrics.ranking import ndcg_at
from tuwen.search.common import COVERAGE, DEFAULT_WEIGHTS, SearchError, candidate_count, top, write_meta
from tuwen.search.engines import engine_for
from tuwen.search.fusion import candidate_keys, standardise
from tuwen.store.workspace import Workspace, as_workspace

Prepared = tuple[np.ndarray, list[str], set[str], bool]  # features (signals × candidates), ids, relevant, words?


def category_queries(workspace: Workspace, min_products: int = 5, max_queries: int = 300,
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


def learn_weights(workspace: Workspace | str | Path, queries: Sequence[str], relevant: Sequence[set[str]], *,
                  k: int = 10, step: float = 0.1, save: bool = True, candidates: int | None = None) -> dict[str, Any]:
    """Fit the hybrid weights: a grid over the simplex of signal weights, chosen for held-out mean nDCG@k.

    Two sets are learnt, because how much the vectors are worth depends on whether the words matched at
    all: ``weights`` for queries with BM25 hits (the signals and word coverage), and ``weights_without_lexical``
    for queries without (a Chinese query on an English catalog, a misspelling) — learnt on such queries when at
    least 5 are given, otherwise on all queries with the lexical signal left out. Coverage counts there only
    when learnt on such queries and the index stored its vocabulary (then it is soft coverage,
    :mod:`tuwen.search.vocab`, and ``soft_coverage_without_lexical`` says so: search computes coverage softly
    for that set alone); else it is left out too. ``weights`` is learnt on queries with BM25 hits only (exact
    coverage); when none of the queries has any, no ``weights`` set is learnt (queries with word matches then
    get the default weights), and with no set without lexical to learn either it is an error.
    Each set comes with its score ``scale`` (see :func:`fit_weight_grid`). The per-query candidate features are computed
    once, so each grid point costs a few vector sums. Learn on queries kept apart from the ones you judge the
    result on (the benchmark learns on one half of its queries and reports the other).
    """
    engine = engine_for(workspace)
    signals = [s for s in ("lexical", "semantic", "crossmodal") if s in engine.signals]
    if len(signals) < 2:
        raise SearchError("learning fusion weights needs at least two text signals in the index")
    names = [*signals, COVERAGE] if "lexical" in signals else signals
    # queries without BM25 hits get soft coverage features (when the index stored its vocabulary): the only
    # queries the set without lexical learns coverage from; queries with hits get exact coverage
    prepared = prepare_queries(engine, names, queries, relevant, candidate_count(k, candidates),
                        soft=engine.matcher() is not None)
    with_words = [p for p in prepared if p[3]]
    vector_signals = [s for s in signals if s != "lexical"]
    learns_without = "lexical" in signals and len(vector_signals) >= 2
    if not with_words and not learns_without:
        raise SearchError("no query has words BM25 finds in the catalog: the weights for such queries cannot be "
                          "learnt from them")
    result: dict[str, Any] = {"queries": len(with_words)}
    if with_words:  # never from queries without hits: their coverage is another feature (soft) or none at all
        result.update(fit_weight_grid(with_words, names, names, k, step, ""))
    if learns_without:
        without = [p for p in prepared if not p[3]]
        pool = without if len(without) >= 5 else prepared
        # soft coverage (a stored vocabulary) can find a query's words in meaning where BM25 found none; its worth
        # is only learnt on such queries: on queries whose words matched, coverage is exact, a different feature
        # (H&M's index-time weights learnt it from English category names and lost 0.03 on Chinese queries)
        soft = pool is without and engine.matcher() is not None
        use = [*vector_signals, COVERAGE] if soft else vector_signals
        result.update(fit_weight_grid(pool, names, use, k, step, "_without_lexical"))
        result["soft_coverage_without_lexical"] = soft
        result["queries_without_lexical"] = len(without)
    if save:  # the engine cache notices the meta table's new version: no cache to clear
        ws = as_workspace(workspace)
        with ws.transaction("search weights") as writer:
            write_meta(writer, {"weights": result})
    return result


def prepare_queries(engine: Any, names: list[str], queries: Sequence[str], relevant: Sequence[set[str]],
             candidates: int, soft: bool = False) -> list[Prepared]:
    """Each query's candidates with their features (``names``: signals, coverage), computed once for the grid;
    coverage is soft for queries without BM25 hits when ``soft``, else exact (as search computes it for the set
    learnt on them)."""
    prepared = []
    for query, rel in zip(queries, relevant, strict=True):
        lists, vectors = engine.signal_lists(query, None, "hybrid", None, candidates)
        keys = candidate_keys(lists)
        if not keys:
            continue
        has_words = bool("lexical" in lists and lists["lexical"].keys)
        feats = engine.features(query, lists, vectors, keys, soft=soft and not has_words)
        ids = [engine.product_id(key) for key in keys]
        prepared.append((np.stack([feats.get(s, np.zeros(len(keys))) for s in names]), ids, set(rel), has_words))
    if not prepared:
        raise SearchError("no query retrieved anything; cannot learn fusion weights")
    return prepared


FAMILIES = ("single", "raw", "standardised")  # simplest first: a tie in held-out nDCG keeps the simpler


def fit_weight_grid(prepared: list[Prepared], signals: list[str], use: list[str], k: int, step: float,
         suffix: str) -> dict[str, Any]:
    """One weight set over the ``use`` features (others weigh 0), from three families of candidates.

    ``single`` (one signal alone: the simplex corners; coverage is no ranking of its own), ``raw`` (the whole
    grid on raw scores) and ``standardised`` (the whole grid on per-query z-scores,
    :func:`~tuwen.search.fusion.standardise`). The family is picked by repeated 5-fold cross-validation on
    these queries, the weights then by mean nDCG@k on all of them. Why not just the best grid point: with ~100
    queries a mix that wins by a hair in-sample usually loses to the best signal alone on new queries (H&M:
    +0.010 nDCG@10 on the fitting half, −0.010 on the other); cross-validation prices in that optimism, so a
    mix is used only where it also wins on queries it was not fitted to, and hybrid then falls back to its
    best component instead of below it.
    """
    grid = weight_grid(signals, use, step)
    corners = grid.max(axis=1) == 1.0
    raw = ndcg_table(prepared, grid, k, standardised=False)
    tables = {"single": (grid[corners], raw[corners]), "raw": (grid, raw),
              "standardised": (grid, ndcg_table(prepared, grid, k, standardised=True))}
    held_out = {family: _cross_validated(table) for family, (_, table) in tables.items()}
    best = max(held_out.values())
    family = next(f for f in FAMILIES if held_out[f] >= best - 1e-9)
    points, table = tables[family]
    i = int(np.argmax(table.mean(axis=1)))
    weights = {s: round(float(x), 4) for s, x in zip(signals, points[i], strict=True)}
    return {f"weights{suffix}": {**weights, "image": DEFAULT_WEIGHTS["image"]},
            f"scale{suffix}": "standardised" if family == "standardised" else "raw",
            f"ndcg@10{suffix}": round(float(table[i].mean()), 4),
            f"held_out_ndcg@10{suffix}": {f: round(v, 4) for f, v in held_out.items()}}


def weight_grid(signals: list[str], use: list[str], step: float) -> np.ndarray:
    """Simplex points over the ``use`` features, as full weight vectors over ``signals`` (rows); coverage alone
    (weight 1) is left out: it ties most candidates and would leave their order to chance."""
    points = np.array(_simplex(len(use), step))
    grid = np.zeros((len(points), len(signals)))
    grid[:, [signals.index(s) for s in use]] = points
    if COVERAGE in signals:
        grid = grid[grid[:, signals.index(COVERAGE)] < 1.0]
    return grid


def ndcg_table(prepared: list[Prepared], grid: np.ndarray, k: int, standardised: bool) -> np.ndarray:
    """nDCG@k of every grid point (rows) on every query (columns)."""
    out = np.zeros((len(grid), len(prepared)))
    for j, (feats, ids, rel, _) in enumerate(prepared):
        values = standardise(feats) if standardised else feats
        for i, score in enumerate(grid @ values):
            out[i, j] = ndcg_at([ids[r] for r in top(score, k)], rel, k)
    return out


def _cross_validated(table: np.ndarray, folds: int = 5, repeats: int = 4, seed: int = 0) -> float:
    """Held-out mean of "take the grid point best on the other folds" (repeated k-fold over the queries).

    Every family sees the same folds (same seed), so the comparison is paired.
    """
    n = table.shape[1]
    folds = min(folds, n)
    if folds < 2:
        return float(table.mean(axis=1).max())
    rng = np.random.default_rng(seed)
    held = []
    for _ in range(repeats):
        fold = rng.permutation(n) % folds
        for f in range(folds):
            chosen = int(np.argmax(table[:, fold != f].mean(axis=1)))
            held.append(table[chosen, fold == f])
    return float(np.concatenate(held).mean())


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
