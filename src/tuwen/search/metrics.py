"""Ranking metrics with binary relevance (used to learn fusion weights and by the benchmarks)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k."""
    gains = [1.0 / math.log2(i + 2) for i, pid in enumerate(ranked[:k]) if pid in relevant]
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return sum(gains) / ideal if ideal else 0.0


def recall_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Share of the relevant products found in the top k."""
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def capped_recall_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Relevant products in the top k over min(k, #relevant): 1.0 when the top k could not hold more."""
    return len(set(ranked[:k]) & relevant) / min(k, len(relevant)) if relevant else 0.0


def mrr(ranked: Sequence[str], relevant: set[str]) -> float:
    """Reciprocal rank of the first relevant product (0 when none is ranked)."""
    for i, pid in enumerate(ranked):
        if pid in relevant:
            return 1.0 / (i + 1)
    return 0.0
