"""Fusing several signals' ranked lists into one: reciprocal rank fusion, or a learnt weighted sum of scores."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tuwen.search.common import DEFAULT_WEIGHTS, RRF_K
from tuwen.search.results import Ranked

ExactScores = Callable[[str, list[Any]], "np.ndarray | None"]


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


def features(lists: dict[str, Ranked], keys: list[Any], exact: ExactScores) -> dict[str, np.ndarray]:
    """Per-signal scores of every candidate, comparable across queries (the inputs of weighted fusion).

    lexical: BM25 divided by the query's best BM25 (0 when the words do not occur); vector signals: the
    exact cosine (``exact(signal, keys)``, exact mode) or, for candidates an ANN list did not return, that
    list's lowest score.
    """
    out: dict[str, np.ndarray] = {}
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


def choose_weights(lists: dict[str, Ranked], weights: dict[str, Any] | None,
                   learnt: dict[str, Any] | None) -> dict[str, float]:
    """The weights for one query: explicit ``{signal: w}``, else a learnt set (``learn_weights`` result) —
    the one for queries without word matches when BM25 found nothing — else the defaults."""
    if weights and "weights" not in weights:
        return weights
    learnt = weights if weights else (learnt or {})
    no_words = "lexical" in lists and not lists["lexical"].keys
    return (no_words and learnt.get("weights_without_lexical")) or learnt.get("weights") or DEFAULT_WEIGHTS


def fuse(lists: dict[str, Ranked], fusion: str, exact: ExactScores, weights: dict[str, Any] | None = None,
         learnt: dict[str, Any] | None = None) -> tuple[list[Any], np.ndarray]:
    """One ranking from several: ``fusion`` is ``rrf`` or ``weighted``; returns keys and scores, best first."""
    keys = candidate_keys(lists)
    if not keys:
        return [], np.zeros(0)
    if fusion == "rrf":
        total = rrf(lists, keys)
    else:
        values = features(lists, keys, exact)
        w = choose_weights(lists, weights, learnt)
        total = sum(w.get(s, 0.0) * values[s] for s in values)
    order = np.argsort(-total, kind="stable")
    return [keys[i] for i in order], np.asarray(total)[order]
