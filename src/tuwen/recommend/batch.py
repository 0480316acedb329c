"""Recommendations for many shoppers at once: the nightly "top 12 for every shopper" job.

Why apart from :meth:`Recommender.recommend`: one shopper at a time costs a Python call, a full score vector
and a partial sort per shopper. For factor models (ALS, BPR) a block of shoppers is one matrix product and
one row-wise partial sort, with the same ranking as one at a time; every other model is still asked one
shopper at a time, behind the same interface and the same progress bar.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from tuwen.recommend.base import Recommender
from tuwen.recommend.baselines import _Factors
from tuwen.recommend.ranker import CandidateRanker
from tuwen.recommend.ranker_features import LABEL_BLOCK
from tuwen.util.progress import progress_bar

USER_BLOCK = 2048  # shoppers per block: one matrix product per slice of products
FIRST_SLICE = 4096  # products (longest factors first) every shopper is scored against; later slices double


def recommend_many(model: Recommender, users: Sequence[str], k: int = 12,
                   progress: bool = True) -> Iterator[tuple[str, list[str]]]:
    """(shopper, top ``k`` product ids) for every shopper, in the order given; unknown shoppers get the
    popular items, as :meth:`Recommender.recommend` gives them."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    with progress_bar(len(users), "recommend · shoppers", progress and len(users) > 10_000) as advance:
        if isinstance(model, _Factors) and len(model.item_factors) > k and model.histories is not None:
            yield from _factor_blocks(model, users, k, advance)
            return
        if isinstance(model, CandidateRanker) and model.histories is not None:
            yield from _ranker_blocks(model, users, k, advance)
            return
        for user in users:
            yield user, model.recommend(user, k)
            advance(1)


def _factor_blocks(model: _Factors, users: Sequence[str], k: int, advance: object) -> Iterator[tuple[str,
                                                                                                     list[str]]]:
    index = model.histories.index
    popular = model.popular(k)
    ids = np.asarray(model.item_ids, dtype=object)
    search = FactorTopK(model.item_factors)
    for lo in range(0, len(users), USER_BLOCK):
        chunk = users[lo:lo + USER_BLOCK]
        rows = np.array([index.get(user, -1) for user in chunk], dtype=np.int64)
        known = np.flatnonzero(rows >= 0)
        tops: dict[int, list[str]] = {}
        if len(known):
            top = search.top(model.user_factors[rows[known]], k)
            for position, row in zip(known.tolist(), top, strict=True):
                tops[position] = ids[row].tolist()
        for position, user in enumerate(chunk):
            yield user, tops.get(position, popular)
        advance(len(chunk))  # type: ignore[operator]


def _ranker_blocks(model: CandidateRanker, users: Sequence[str], k: int,
                   advance: object) -> Iterator[tuple[str, list[str]]]:
    """The ranker a block of shoppers at a time: the generators' matrix products and one booster call per block
    (the candidates and their order are those of :meth:`Recommender.recommend`)."""
    context = model.context
    histories = model.histories
    for lo in range(0, len(users), LABEL_BLOCK):
        chunk = list(users[lo:lo + LABEL_BLOCK])
        known = [user for user in chunk if user in histories and len(histories.get(user)[0])]
        built = context.features_block(known, [histories.get(user) for user in known]) if known else []
        values: list[np.ndarray] = []
        if built and model.booster is not None:
            predicted = model.booster.predict(np.vstack([x for _, x in built]), raw_score=True, num_threads=1)
            values = np.split(predicted.astype(np.float32), np.cumsum([len(items) for items, _ in built])[:-1])
        elif built:
            values = [-np.arange(len(items), dtype=np.float32) for items, _ in built]
        lists = {}
        for user, (items, _), value in zip(known, built, values, strict=True):
            scores = np.full(len(model.item_ids), -np.inf, dtype=np.float32)
            scores[items] = value
            lists[user] = [model.item_ids[i] for i in model.top_k(scores, k)]
        for user in chunk:
            yield user, lists[user] if user in lists else model.recommend(user, k)
        advance(len(chunk))  # type: ignore[operator]


class FactorTopK:
    """Exact top-k of ``users @ items.T`` that skips the products that cannot make a shopper's top k.

    Products are visited in order of decreasing factor norm, a growing slice at a time. A score is at most
    ``|user| * |item|`` (Cauchy-Schwarz), so once a shopper's k-th best score beats ``|user|`` times the
    largest norm not yet visited, no later product can enter the list and the shopper is done. Popular
    products have the long factors, so most shoppers are done after the first slice: the cost per shopper
    stops growing with the catalog, where a full score row and a partial sort over it grew with it.
    """

    def __init__(self, items: np.ndarray, first: int = FIRST_SLICE):
        norms = np.linalg.norm(items, axis=1)
        self.order = np.argsort(-norms, kind="stable")
        self.items = np.ascontiguousarray(items[self.order])
        self.norms = norms[self.order]
        self.first = first

    def top(self, users: np.ndarray, k: int) -> np.ndarray:
        """Item indices (into the original item order) of each row's ``k`` best scores, best first."""
        n = len(self.items)
        best_scores = np.full((len(users), k), -np.inf, np.float32)
        best_items = np.zeros((len(users), k), np.int64)
        user_norms = np.linalg.norm(users, axis=1)
        active = np.arange(len(users))
        lo, size = 0, max(self.first, k)
        while len(active) and lo < n:
            hi = min(n, lo + size)
            scores = users[active] @ self.items[lo:hi].T
            merged_scores = np.hstack([best_scores[active], scores])
            merged_items = np.hstack([best_items[active], np.broadcast_to(np.arange(lo, hi), scores.shape)])
            keep = np.argpartition(-merged_scores, k - 1, axis=1)[:, :k]
            best_scores[active] = np.take_along_axis(merged_scores, keep, axis=1)
            best_items[active] = np.take_along_axis(merged_items, keep, axis=1)
            lo, size = hi, size * 2
            if lo < n:  # still open: someone outside the slice could beat the k-th best
                bound = user_norms[active] * self.norms[lo]
                active = active[best_scores[active].min(axis=1) < bound]
        order = np.argsort(-best_scores, axis=1, kind="stable")
        return self.order[np.take_along_axis(best_items, order, axis=1)]
