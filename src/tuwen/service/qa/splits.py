"""Splitting product Q&A by product without leaking answers: listings that share a question *and* its answer are
one group.

Amazon shows one Q&A page for all variants of a listing (sizes, colours), each variant under its own asin: in the
clothing set about 7 in 10 of a random 10% of asins' (question, answer) pairs appear word for word under another
asin. A split by asin alone therefore tests memory, not answering. Groups join asins that share an identical
(question, answer) pair (union-find), and the split hashes the group, so a held-out product's Q&A is unseen.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def _norm(text: str) -> str:
    return " ".join(str(text or "").lower().split())


def listing_groups(products: Sequence[str], questions: Sequence[str], answers: Sequence[str]) -> dict[str, str]:
    """Each product's group: the smallest product id among those sharing any identical (question, answer) pair."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    holders: dict[tuple[str, str], set[str]] = defaultdict(set)
    for product, question, answer in zip(products, questions, answers, strict=True):
        holders[(_norm(question), _norm(answer))].add(str(product))
        find(str(product))
    for members in holders.values():
        first, *rest = sorted(members)
        for other in rest:
            a, b = find(other), find(first)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {product: find(product) for product in list(parent)}


def hash_share(key: str, seed: int = 0, salt: str = "tuwen-service") -> float:
    """A stable number in [0, 1) for ``key``: the same split on every machine and run."""
    return int(hashlib.sha256(f"{salt}:{seed}:{key}".encode()).hexdigest()[:8], 16) / 2**32


def held_out(products: Sequence[str], groups: dict[str, str], share: float, seed: int = 0) -> np.ndarray:
    """Rows whose product's group falls in the held-out ``share`` (by a seeded hash of the group)."""
    return np.array([hash_share(groups[str(p)], seed) < share for p in products], dtype=bool)
