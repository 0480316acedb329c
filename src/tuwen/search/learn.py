"""Learning the hybrid fusion weights from labelled queries (a cross-validated grid search over the weight simplex).

The weights cover the text signals and the word-coverage feature (:mod:`tuwen.search.fusion`); coverage never
ranks alone (it only has a few distinct values per query: ties everywhere), so the grid keeps it below 1.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.search.common import COVERAGE, DEFAULT_WEIGHTS, SearchError, candidate_count, write_meta
from tuwen.search.dictionary import to_chinese
from tuwen.search.engines import engine_for
from tuwen.search.fusion import candidate_keys, standardise
from tuwen.store.workspace import Workspace, as_workspace

# features (signals × candidates), ids, relevant, kind: "words" (BM25 found the query's own words), "translated"
# (some Chinese word went through the dictionary, tuwen.search.querywords), "none" (BM25 found nothing)
Prepared = tuple[np.ndarray, list[str], set[str], str]
KINDS = ("words", "translated", "none")


def category_queries(workspace: Workspace, min_products: int = 5, max_queries: int = 300,
                     seed: int = 0, chinese: bool = True, pairs: int = 200) -> tuple[list[str], list[set[str]]]:
    """Pseudo-queries any catalog has, relevance from its own labels rather than its texts.

    Each category's last path element ("Casual Shoes"; relevant = the products in it) and, up to ``pairs`` of them
    drawn at random, a category with an attribute value ("Black Casual Shoes", "Men Casual Shoes"; relevant = the
    products in the category with that value; :func:`attribute_pairs`). They teach the fusion how much each signal
    is worth on *this* catalog without hand labels; the pairs matter because a shopper's query names several
    things, and only such queries show what word coverage (every word found) adds over BM25 (its rarest word).
    With ``chinese`` each query is also asked in Chinese (the dictionary's most common words for it,
    :func:`~tuwen.search.dictionary.to_chinese`: "Trousers" → 长裤), so that the weights for queries in another
    language than the catalog's are learnt on such queries rather than carried over from the catalog's own.
    """
    products = workspace.read("products", ["id", "category", "attributes"])
    leaf = products["category"].fillna("").map(lambda c: c.split(">")[-1].strip())
    groups = products.groupby(leaf)["id"].apply(set)
    groups = groups[(groups.index != "") & (groups.map(len) >= min_products)]
    names = sorted(groups.index)
    rng = np.random.default_rng(seed)
    if len(names) > max_queries:
        names = sorted(rng.choice(names, max_queries, replace=False).tolist())
    parts = [(name,) for name in names]
    relevant = [groups[name] for name in names]
    for words, ids in attribute_pairs(products, leaf, min_products, pairs, seed):
        parts.append(words)
        relevant.append(ids)
    queries = [" ".join(p) for p in parts]
    if chinese:
        for words, ids in zip(list(parts), list(relevant), strict=True):
            zh = [to_chinese(w) for w in words]
            text = "".join(w for w in zh if w)
            if len(text) and None not in zh and text not in queries:
                queries.append(text)
                relevant.append(ids)
    return queries, relevant


def attribute_pairs(products: Any, leaf: Any, min_products: int, limit: int,
                    seed: int) -> list[tuple[tuple[str, str], set[str]]]:
    """(value, category) word pairs with their products, ``limit`` of them drawn at random (seeded).

    Values come from the attributes a shopper could name: keys with 2-60 distinct values, short (at most three
    words), not numbers or codes (H&M's index code "A"), and not a level of the category path itself (H&M's
    product group is already in "Ladieswear > Socks & Tights > ..."). A pair needs ``min_products`` products.
    """
    attrs = [json.loads(a) if isinstance(a, str) and a else {} for a in products["attributes"]]
    if not any(attrs) or limit <= 0:
        return []
    path = {part.strip().lower() for c in products["category"].fillna("") for part in c.split(">")}
    values: dict[str, set[str]] = {}
    for a in attrs:
        for key, value in a.items():
            if value is not None and str(value).strip():  # a missing value is no reason to drop the key
                values.setdefault(key, set()).add(str(value).strip())
    keys = [key for key, seen in values.items() if 2 <= len(seen) <= 60
            and not any(v.replace(".", "").isdigit() or len(v) < 2 for v in seen)
            and not {v.lower() for v in seen} & path and all(0 < len(v.split()) <= 3 for v in seen)]
    members: dict[tuple[str, str], set[str]] = {}
    for pid, category, a in zip(products["id"], leaf, attrs, strict=True):
        if not category:
            continue
        for key in keys:
            value = str(a.get(key, "")).strip()
            if value and value.lower() != category.lower():
                members.setdefault((value, category), set()).add(pid)
    found = sorted((pair, ids) for pair, ids in members.items() if len(ids) >= min_products)
    if len(found) > limit:
        chosen = np.random.default_rng(seed).choice(len(found), limit, replace=False)
        found = [found[i] for i in sorted(chosen)]
    return found


def learn_weights(workspace: Workspace | str | Path, queries: Sequence[str], relevant: Sequence[set[str]], *,
                  k: int = 10, step: float = 0.1, save: bool = True, candidates: int | None = None) -> dict[str, Any]:
    """Fit the hybrid weights: a grid over the simplex of signal weights, chosen for held-out mean nDCG@k.

    Up to three sets are learnt, because how much each signal is worth depends on how the query's words met the
    catalog's: ``weights`` for queries whose own words BM25 found (the signals and exact word coverage);
    ``weights_translated`` for queries with Chinese words the catalog never uses but the dictionary translates
    (:mod:`tuwen.search.querywords`: BM25 sees dictionary words, coverage counts their senses, softly where the
    catalog has none of them) — learnt when at least 5 such queries are given; and ``weights_without_lexical``
    for queries BM25 finds nothing for (a word no dictionary knows, a misspelling) — learnt on such queries when at
    least 5 are given, otherwise on all queries with the lexical signal left out. Coverage counts in the set
    without lexical only when learnt on such queries and the index stored its vocabulary (then it is soft coverage,
    :mod:`tuwen.search.vocab`, and ``soft_coverage_without_lexical`` says so); else it is left out too.
    ``weights`` is learnt on queries of its own kind only; when there are none, no ``weights`` set is learnt
    (such queries then get the default weights), and with no other set to learn either it is an error.
    Each set comes with its score ``scale`` (see :func:`fit_weight_grid`). The per-query candidate features are
    computed once, so each grid point costs a few vector sums. Learn on queries kept apart from the ones you judge
    the result on (the benchmark learns on one half of its queries and reports the other).
    """
    engine = engine_for(workspace)
    signals = [s for s in ("lexical", "semantic", "crossmodal") if s in engine.signals]
    if len(signals) < 2:
        raise SearchError("learning fusion weights needs at least two text signals in the index")
    names = [*signals, COVERAGE] if "lexical" in signals else signals
    soft = engine.matcher() is not None
    prepared = prepare_queries(engine, names, queries, relevant, candidate_count(k, candidates), soft=soft)
    by_kind = {kind: [p for p in prepared if p[3] == kind] for kind in KINDS}
    vector_signals = [s for s in signals if s != "lexical"]
    learns_without = "lexical" in signals and len(vector_signals) >= 2
    learns_translated = "lexical" in signals and len(by_kind["translated"]) >= 5
    if not by_kind["words"] and not learns_without and not learns_translated:
        raise SearchError("no query has words BM25 finds in the catalog: the weights for such queries cannot be "
                          "learnt from them")
    result: dict[str, Any] = {"queries": len(by_kind["words"])}
    if by_kind["words"]:  # never from other kinds: their coverage is another feature (translated, soft) or none
        result.update(fit_weight_grid(by_kind["words"], names, names, k, step, ""))
    if learns_translated:
        result.update(fit_weight_grid(by_kind["translated"], names, names, k, step, "_translated"))
        result["soft_coverage_translated"] = soft
        result["queries_translated"] = len(by_kind["translated"])
    if learns_without:
        without = by_kind["none"]
        pool = without if len(without) >= 5 else prepared
        # soft coverage (a stored vocabulary) can find a query's words in meaning where BM25 found none; its worth
        # is only learnt on such queries: on queries whose words matched, coverage is exact, a different feature
        # (H&M's index-time weights learnt it from English category names and lost 0.03 on Chinese queries)
        soft_without = pool is without and soft
        use = [*vector_signals, COVERAGE] if soft_without else vector_signals
        result.update(fit_weight_grid(pool, names, use, k, step, "_without_lexical"))
        result["soft_coverage_without_lexical"] = soft_without
        result["queries_without_lexical"] = len(without)
    if save:  # the engine cache notices the meta table's new version: no cache to clear
        ws = as_workspace(workspace)
        with ws.transaction("search weights") as writer:
            write_meta(writer, {"weights": result})
    return result


def prepare_queries(engine: Any, names: list[str], queries: Sequence[str], relevant: Sequence[set[str]],
             candidates: int, soft: bool = False) -> list[Prepared]:
    """Each query's candidates with their features (``names``: signals, coverage) and its kind (:data:`KINDS`),
    computed once for the grid; coverage is soft for queries of the kinds "translated" and "none" when ``soft``,
    else exact (as search computes it for the set learnt on them)."""
    prepared = []
    for n, (query, rel) in enumerate(zip(queries, relevant, strict=True)):
        if n % 256 == 0:  # one batch per encoder instead of one call per query: most of the time otherwise
            engine.warm_query_vectors(queries[n:n + 256])
        lists, vectors = engine.signal_lists(query, None, "hybrid", None, candidates)
        keys = candidate_keys(lists)
        if not keys:
            continue
        has_words = bool("lexical" in lists and lists["lexical"].keys)
        kind = "none" if not has_words else "translated" if engine.query_words(query).translated else "words"
        feats = engine.features(query, lists, vectors, keys, soft=soft and kind != "words")
        ids = [engine.product_id(key) for key in keys]
        prepared.append((np.stack([feats.get(s, np.zeros(len(keys))) for s in names]), ids, set(rel), kind))
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
    these queries (:func:`simplest_within_noise`), the weights then by mean nDCG@k on all of them. Why not just
    the best grid point: with ~100 queries a mix that wins by a hair in-sample usually loses to the best signal
    alone on new queries (H&M: +0.010 nDCG@10 on the fitting half, −0.010 on the other); cross-validation prices
    in that optimism, so a mix is used only where it also wins on queries it was not fitted to, and hybrid then
    falls back to its best component instead of below it.
    """
    grid = weight_grid(signals, use, step)
    corners = grid.max(axis=1) == 1.0
    raw = ndcg_table(prepared, grid, k, standardised=False)
    tables = {"single": (grid[corners], raw[corners]), "raw": (grid, raw),
              "standardised": (grid, ndcg_table(prepared, grid, k, standardised=True))}
    per_query = {family: _cross_validated(table) for family, (_, table) in tables.items()}
    held_out = {family: float(v.mean()) for family, v in per_query.items()}
    family = simplest_within_noise(per_query)
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
    """nDCG@k of every grid point (rows) on every query (columns), all grid points of a query at once.

    Candidates are ordered as weighted fusion orders them (a stable sort of the fused scores), so the nDCG
    learning reports is the one search then delivers.
    """
    out = np.zeros((len(grid), len(prepared)))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for j, (feats, ids, rel, _) in enumerate(prepared):
        ideal = discounts[:min(k, len(rel))].sum()
        if not ideal:
            continue
        values = standardise(feats) if standardised else feats
        order = np.argsort(-(grid @ values), axis=1, kind="stable")[:, :k]
        hit = np.fromiter((i in rel for i in ids), bool, len(ids))
        out[:, j] = (hit[order] * discounts[:order.shape[1]]).sum(axis=1) / ideal
    return out


def simplest_within_noise(per_query: dict[str, np.ndarray]) -> str:
    """The simplest family (:data:`FAMILIES` order) whose held-out nDCG is within one standard error of the best
    family's, the standard error of their paired per-query difference (the "one standard error" rule).

    A mix is kept only when it beats the simpler choice by more than the noise of these queries: the default
    hybrid must not fall below its own best signal, and a mix that wins on ~70 pseudo-queries by less than their
    noise does not reliably carry over to the queries shoppers type.
    """
    best = max(FAMILIES, key=lambda f: (per_query[f].mean(), -FAMILIES.index(f)))
    for family in FAMILIES:
        diff = per_query[best] - per_query[family]
        se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else 0.0
        if diff.mean() <= se + 1e-9:
            return family
    return best


def _cross_validated(table: np.ndarray, folds: int = 5, repeats: int = 4, seed: int = 0) -> np.ndarray:
    """Each query's held-out nDCG of "take the grid point best on the other folds", averaged over the repeats of
    k-fold over the queries.

    Every family sees the same folds (same seed), so the comparison is paired.
    """
    n = table.shape[1]
    folds = min(folds, n)
    if folds < 2:
        return table[int(np.argmax(table.mean(axis=1)))].astype(float)
    rng = np.random.default_rng(seed)
    held = np.zeros(n)
    for _ in range(repeats):
        fold = rng.permutation(n) % folds
        for f in range(folds):
            chosen = int(np.argmax(table[:, fold != f].mean(axis=1)))
            held[fold == f] += table[chosen, fold == f]
    return held / repeats


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
