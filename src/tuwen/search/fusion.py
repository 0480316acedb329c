"""Fusing several signals' ranked lists into one: reciprocal rank fusion, or a learnt weighted sum of scores.

Besides the signals' own scores the weighted sum can use **coverage**: the share of the query's words a
candidate's indexed text contains (:meth:`tuwen.search.engine.SearchEngine.coverage`; exact matching is
:func:`tuwen.search.tokens.word_hits`, soft matching :mod:`tuwen.search.vocab`). BM25 ranks by rare words, so for
"black dress" a product called "Zoe" whose description says "dress" can outrank one that says both; an
attribute query wants *every* word, and coverage says how many a candidate has. It only reorders candidates
the signals found (it retrieves nothing) and is weighed like any signal, so a catalog whose texts do not name
what shoppers type learns a weight of 0 for it.

The weighted sum works on one of two scales, learnt with the weights (:mod:`tuwen.search.learn`): ``raw``
(lexical BM25 over the query's best, cosines as they are) or ``standardised`` (each signal's scores turned
into z-scores over the query's candidates). Raw cosines of different signals spread very differently (the
cross-modal ones over a few hundredths), so on the raw scale a 0.1 lexical weight can already outvote the
best signal; standardised scores make a weight mean "this share of the ordering" on every catalog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tuwen.search.common import COVERAGE, DEFAULT_WEIGHTS, RRF_K
from tuwen.search.results import Ranked

ExactScores = Callable[[str, list[Any]], "np.ndarray | None"]
Coverage = Callable[[list[Any], bool], "np.ndarray | None"]  # (keys, soft) -> each key's coverage


def candidate_keys(lists: dict[str, Ranked]) -> list[Any]:
    """Every key any list returned, in first-seen order."""
    return list(dict.fromkeys(key for ranked in lists.values() for key in ranked.keys))


def rrf(lists: dict[str, Ranked], keys: list[Any]) -> np.ndarray:
    """Reciprocal rank fusion: Σ over lists of 1 / (60 + rank)."""
    total = np.zeros(len(keys))
    position = {key: i for i, key in enumerate(keys)}
    for ranked in lists.values():
        for r, key in enumerate(ranked.keys):
            total[position[key]] += 1.0 / (RRF_K + r + 1)
    return total


def features(lists: dict[str, Ranked], keys: list[Any], exact: ExactScores,
             coverage: Coverage | None = None, soft: bool = False) -> dict[str, np.ndarray]:
    """Per-signal scores of every candidate, comparable across queries (the inputs of weighted fusion).

    lexical: BM25 divided by the query's best BM25 (0 when the words do not occur); vector signals: the
    exact cosine (``exact(signal, keys)``, exact mode) or, for candidates an ANN list did not return, that
    list's lowest score; ``coverage`` (when given and the query has words to match): ``coverage(keys, soft)``,
    soft coverage only when the weights it is for were learnt on it (:func:`choose_weights`).
    """
    out: dict[str, np.ndarray] = {}
    if coverage is not None and "lexical" in lists:
        shares = coverage(keys, soft)
        if shares is not None:
            out[COVERAGE] = np.asarray(shares, np.float32)
    for signal, ranked in lists.items():
        if signal == "lexical":
            best = float(ranked.scores.max()) if len(ranked.scores) else 1.0
            value = dict(zip(ranked.keys, ranked.scores / max(best, 1e-9), strict=True))
            out[signal] = np.array([value.get(key, 0.0) for key in keys], np.float32)
            continue
        scores = exact(signal, keys)
        if scores is not None:
            out[signal] = scores
            continue
        floor = float(ranked.scores.min()) if len(ranked.scores) else 0.0
        value = dict(zip(ranked.keys, ranked.scores, strict=True))
        out[signal] = np.array([value.get(key, floor) for key in keys], np.float32)
    return out


def standardise(values: np.ndarray) -> np.ndarray:
    """Z-scores along the last axis (one signal's scores over one query's candidates); constant rows → 0."""
    values = np.asarray(values, np.float32)
    spread = values.std(axis=-1, keepdims=True)
    return (values - values.mean(axis=-1, keepdims=True)) / np.where(spread > 1e-9, spread, 1.0)


def choose_weights(lists: dict[str, Ranked], weights: dict[str, Any] | None,
                   learnt: dict[str, Any] | None, translated: bool = False) -> tuple[dict[str, float], str, bool]:
    """The weights, score scale and coverage kind for one query: explicit ``{signal: w}`` (raw scale), else a
    learnt set (``learn_weights`` result) — the one for queries without word matches when BM25 found nothing,
    the one for translated queries (``translated``: some Chinese word was looked up in the dictionary,
    :mod:`tuwen.search.querywords`) when learnt, else the one for queries whose words matched — else the defaults.
    A query in another language than the catalog's is another kind of query: its BM25 sees dictionary words
    (several senses, some wrong), its vectors cross languages, so the signals are worth different shares.

    The last value says whether coverage is soft (:mod:`tuwen.search.vocab`): only for the set learnt on soft
    coverage, ``weights_without_lexical`` with ``soft_coverage_without_lexical``. Every other set weighs exact
    coverage, the feature it was learnt on (or, for explicit and default weights, the one that needs no
    vocabulary). Sets learnt before the flag existed gave the set without lexical a coverage weight only when
    it was learnt soft, so that weight stands for the flag there.
    """
    if weights and "weights" not in weights and "weights_without_lexical" not in weights:
        return weights, "raw", False
    learnt = weights if weights else (learnt or {})
    no_words = "lexical" in lists and not lists["lexical"].keys
    without = learnt.get("weights_without_lexical")
    if no_words and without:
        soft = learnt.get("soft_coverage_without_lexical", without.get(COVERAGE, 0.0) > 0)
        return without, learnt.get("scale_without_lexical", "raw"), bool(soft)
    if translated and not no_words and learnt.get("weights_translated"):
        return (learnt["weights_translated"], learnt.get("scale_translated", "raw"),
                bool(learnt.get("soft_coverage_translated")))
    if learnt.get("weights"):
        return learnt["weights"], learnt.get("scale", "raw"), False
    return DEFAULT_WEIGHTS, "raw", False


def fuse(lists: dict[str, Ranked], fusion: str, exact: ExactScores, weights: dict[str, Any] | None = None,
         learnt: dict[str, Any] | None = None, coverage: Coverage | None = None,
         translated: bool = False) -> tuple[list[Any], np.ndarray]:
    """One ranking from several: ``fusion`` is ``rrf`` or ``weighted``; returns keys and scores, best first.

    ``coverage`` is only called when the chosen weights give it a share (it reads every candidate's words).
    """
    keys = candidate_keys(lists)
    if not keys:
        return [], np.zeros(0)
    if fusion == "rrf":
        total = rrf(lists, keys)
    else:
        w, scale, soft = choose_weights(lists, weights, learnt, translated)
        values = features(lists, keys, exact, coverage if w.get(COVERAGE, 0.0) > 0 else None, soft)
        if scale == "standardised":
            values = {s: standardise(v) for s, v in values.items()}
        total = sum(w.get(s, 0.0) * values[s] for s in values)
    order = np.argsort(-total, kind="stable")
    return [keys[i] for i in order], np.asarray(total)[order]
