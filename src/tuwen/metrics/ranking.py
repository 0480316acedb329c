"""Ranking metrics with binary relevance, written once for search and recommendations.

Every function takes ``(ranked, relevant, k)``: the ranked ids first, then the relevant ids. A repeated id in
``ranked`` earns its gain once, so a list with duplicates cannot score above one without them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence


def _distinct(ranked: Sequence[str], k: int | None = None) -> list[str]:
    return list(dict.fromkeys(ranked if k is None else ranked[:k]))


def ndcg_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k."""
    wanted = set(relevant)
    gains = [1.0 / math.log2(i + 2) for i, item in enumerate(_distinct(ranked, k)) if item in wanted]
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(wanted))))
    return sum(gains) / ideal if ideal else 0.0


def recall_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Share of the relevant ids found in the top k."""
    wanted = set(relevant)
    return len(set(ranked[:k]) & wanted) / len(wanted) if wanted else 0.0


def capped_recall_at(ranked: Sequence[str], relevant: Collection[str], k: int = 10) -> float:
    """Relevant ids in the top k over min(k, #relevant): 1.0 when the top k could not hold more."""
    wanted = set(relevant)
    return len(set(ranked[:k]) & wanted) / min(k, len(wanted)) if wanted else 0.0


def mrr(ranked: Sequence[str], relevant: Collection[str]) -> float:
    """Reciprocal rank of the first relevant id (0 when none is ranked)."""
    wanted = set(relevant)
    for i, item in enumerate(ranked):
        if item in wanted:
            return 1.0 / (i + 1)
    return 0.0


def average_precision(ranked: Sequence[str], relevant: Collection[str], k: int = 12) -> float:
    """Kaggle H&M AP@k: mean of precision at each (first) hit, over min(#relevant, k)."""
    wanted = set(relevant)
    if not wanted:
        return 0.0
    seen: set[str] = set()
    hits, total = 0, 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item in wanted and item not in seen:
            hits += 1
            total += hits / rank
            seen.add(item)
    return total / min(len(wanted), k)
