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
from tuwen.util.progress import progress_bar

BLOCK_BYTES = 64 << 20  # score matrix per block of shoppers


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
        for user in users:
            yield user, model.recommend(user, k)
            advance(1)


def _factor_blocks(model: _Factors, users: Sequence[str], k: int, advance: object) -> Iterator[tuple[str,
                                                                                                     list[str]]]:
    items = model.item_factors
    block = max(1, BLOCK_BYTES // (4 * len(items)))
    index = model.histories.index
    popular = model.popular(k)
    ids = np.asarray(model.item_ids, dtype=object)
    for lo in range(0, len(users), block):
        chunk = users[lo:lo + block]
        rows = np.array([index.get(user, -1) for user in chunk], dtype=np.int64)
        known = np.flatnonzero(rows >= 0)
        tops: dict[int, list[str]] = {}
        if len(known):
            scores = model.user_factors[rows[known]] @ items.T
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            for position, row in zip(known.tolist(), top, strict=True):
                tops[position] = ids[row].tolist()
        for position, user in enumerate(chunk):
            yield user, tops.get(position, popular)
        advance(len(chunk))  # type: ignore[operator]
