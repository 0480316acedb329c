"""Baselines that see only who bought what and when: needed as yardsticks, fallbacks and candidates.

* ``popularity`` — recent best sellers (counts decayed with a one-week half-life by default);
  what every shopper without a history gets.
* ``repurchase`` — the shopper's own past products, most recent first: on fashion data people
  re-buy basics, so this is the baseline to beat on H&M.
* ``itemknn`` — item-to-item co-purchase cosine (Sarwar et al. 2001), scored from the history.
* ``als`` / ``bpr`` — matrix factorisation through the ``implicit`` library (Hu et al. 2008;
  Rendle et al. 2009). We keep only the learnt factors, so scoring is one matrix-vector product
  and a saved model needs no ``implicit`` at recommend time.

None of these can score a product nobody has bought (cold start): that is what content is for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from tuwen.recommend.base import ItemContent, Recommender, TrainData, decay
from tuwen.util.progress import progress_bar, stage

History = tuple[np.ndarray, np.ndarray, np.ndarray]
CO_BLOCK_NNZ = 50_000_000  # co-purchase pairs per block of ItemKNN's products x products product (about 0.6 GB)


class Popularity(Recommender):
    """Recent best sellers, the same for everyone."""

    name = "popularity"

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        pass

    def _score_user(self, user: str, history: History | None) -> np.ndarray:
        scores = self.popularity.astype(np.float32, copy=True)
        scores[scores <= 0] = -np.inf
        return scores


class Repurchase(Recommender):
    """The shopper's own products, scored by recency-decayed purchase weight; popularity fills up."""

    name = "repurchase"

    def __init__(self, halflife: float | None = 30.0, **params: Any):
        """``halflife=None``: pure recency order (latest purchase first), the issue's reference baseline;
        a half-life scores each product by its decayed purchase count, so a basic bought three times
        last quarter outranks a one-off from last week (slightly better on H&M validation weeks)."""
        super().__init__(halflife=halflife, **params)

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        pass

    def _score_user(self, user: str, history: History | None) -> np.ndarray:
        scores = np.full(len(self.item_ids), -np.inf, dtype=np.float32)
        if history is not None and len(history[0]):
            items, ages, weights = history
            if self.params["halflife"]:
                values = np.bincount(items, weights=weights * decay(ages, self.params["halflife"]),
                                     minlength=len(self.item_ids))
            else:
                values = np.zeros(len(self.item_ids))
                np.maximum.at(values, items, 1.0 / (1.0 + ages))  # newest purchase first
            seen = values > 0
            # a small popularity term breaks ties between equally old purchases
            scores[seen] = values[seen] + 1e-6 * self.popularity[seen]
        return scores


class ItemKNN(Recommender):
    """Item-to-item cosine over co-purchases; a shopper's score sums their items' neighbours."""

    name = "itemknn"

    def __init__(self, neighbours: int = 100, halflife: float = 30.0, shrink: float = 10.0, **params: Any):
        super().__init__(neighbours=neighbours, halflife=halflife, shrink=shrink, **params)
        self.similarity: sp.csr_matrix | None = None

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        matrix = data.matrix().tocsc()
        matrix.data[:] = 1.0  # bought or not: repeat purchases of basics should not dominate
        norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
        transposed = matrix.T.tocsr()
        by_user = matrix.tocsr()
        n = matrix.shape[1]
        # Co-purchases a block of products at a time, each block cut to its top neighbours at once: the whole
        # products x products product of a real shop (best sellers co-occur with nearly everything) does not
        # fit in memory. A block's rows are the same rows the whole product would have.
        blocks = []
        # a product's row has at most as many entries as its buyers have products in all: cut blocks by that
        pairs = np.cumsum(transposed @ np.diff(by_user.indptr).astype(np.float64))
        show = matrix.nnz > 1_000_000
        with progress_bar(n, "itemknn · co-purchases", show) as advance:
            lo = 0
            while lo < n:
                done = pairs[lo - 1] if lo else 0.0
                hi = max(lo + 1, int(np.searchsorted(pairs, done + CO_BLOCK_NNZ, side="right")))
                blocks.append(self._block(transposed, by_user, norms, lo, min(hi, n)))
                advance(min(hi, n) - lo)
                lo = hi
        self.similarity = sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((n, n), dtype=np.float32)

    def _block(self, transposed: sp.csr_matrix, by_user: sp.csr_matrix, norms: np.ndarray, lo: int,
               hi: int) -> sp.csr_matrix:
        """Rows ``lo:hi`` of the neighbour lists: the same rows the whole products x products product has."""
        n = by_user.shape[1]
        co = transposed[lo:hi] @ by_user
        # Worked on in place as CSR, columns sorted within each row: the layout a matrix rebuilt from the cut
        # triplets has (the order _top_per_row breaks ties in), without the triplets' copies of every pair.
        co.sort_indices()
        rows = np.repeat(np.arange(lo, hi, dtype=co.indices.dtype), np.diff(co.indptr))
        off_diagonal = rows != co.indices
        rows, cols, values = rows[off_diagonal], co.indices[off_diagonal], co.data[off_diagonal]
        del co, off_diagonal
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows - lo, minlength=hi - lo))])
        values = values / (norms[rows] * norms[cols] + self.params["shrink"])
        del rows
        sim = sp.csr_matrix((values.astype(np.float32), cols, indptr), shape=(hi - lo, n))
        return _top_per_row(sim, self.params["neighbours"])

    def _score_user(self, user: str, history: History | None) -> np.ndarray:
        scores = np.full(len(self.item_ids), -np.inf, dtype=np.float32)
        if history is None or not len(history[0]) or self.similarity is None:
            return scores
        items, ages, weights = history
        w = np.bincount(items, weights=weights * decay(ages, self.params["halflife"]), minlength=len(self.item_ids))
        nz = np.flatnonzero(w)
        values = np.asarray(self.similarity[nz].T @ w[nz]).ravel()
        hit = values > 0
        scores[hit] = values[hit]
        return scores

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        s = self.similarity
        return {"shape": list(s.shape)}, {"sim_data": s.data, "sim_indices": s.indices, "sim_indptr": s.indptr}

    def _set_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.similarity = sp.csr_matrix((arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]),
                                        shape=tuple(config["shape"]))


def _top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest values of each row (neighbour lists stay short, scoring stays fast)."""
    matrix = matrix.tocsr()
    data, indices, indptr = [], [], [0]
    for r in range(matrix.shape[0]):
        a, b = matrix.indptr[r], matrix.indptr[r + 1]
        row_data, row_idx = matrix.data[a:b], matrix.indices[a:b]
        if len(row_data) > k:
            keep = np.argpartition(-row_data, k - 1)[:k]
            row_data, row_idx = row_data[keep], row_idx[keep]
        data.append(row_data)
        indices.append(row_idx)
        indptr.append(indptr[-1] + len(row_data))
    return sp.csr_matrix((np.concatenate(data) if data else [], np.concatenate(indices) if indices else [], indptr),
                         shape=matrix.shape)


class _Factors(Recommender):
    """Shared scoring for factor models: user factors . item factors (trained items only)."""

    user_factors: np.ndarray
    item_factors: np.ndarray

    def _score_user(self, user: str, history: History | None) -> np.ndarray:
        scores = np.full(len(self.item_ids), -np.inf, dtype=np.float32)
        vector = self._user_vector(user, history)
        if vector is None:
            return scores
        scores[: len(self.item_factors)] = self.item_factors @ vector
        return scores

    def _user_vector(self, user: str, history: History | None) -> np.ndarray | None:
        k = self.histories.index.get(user) if self.histories is not None else None
        return None if k is None else self.user_factors[k]

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def _set_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.user_factors, self.item_factors = arrays["user_factors"], arrays["item_factors"]

    def _forget_user_state(self, user: str) -> bool:
        # histories (and so the user index) shrink in forget_user after this; drop the same row
        k = self.histories.index.get(user) if self.histories is not None else None
        if k is None:
            return False
        self.user_factors = np.delete(self.user_factors, k, axis=0)
        return True


def _implicit_threads(threads: int | None = None) -> int:
    """One thread unless asked: on a shared 2-core machine a second OpenMP thread spin-waits."""
    return max(1, threads or 1)


def _single_thread_blas() -> Any:
    """BLAS limited to one thread while ``implicit`` trains, as ``implicit`` asks: its own OpenMP threads do
    the parallel work, a BLAS thread pool beside them only competes (and ``implicit`` warns about it)."""
    from threadpoolctl import threadpool_limits  # ships with scikit-learn

    return threadpool_limits(limits=1, user_api="blas")


class ALS(_Factors):
    """Weighted matrix factorisation for implicit feedback (Hu, Koren, Volinsky 2008) via ``implicit``.

    A shopper who bought after training is folded in with one least-squares step on the item
    factors (the same update ALS makes), so the model stays useful between retrains.
    """

    name = "als"

    def __init__(self, factors: int = 64, regularization: float = 0.05, alpha: float = 40.0, iterations: int = 15,
                 halflife: float | None = 90.0, **params: Any):
        super().__init__(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
                         halflife=halflife, **params)

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        from implicit.als import AlternatingLeastSquares

        p = self.params
        matrix = data.matrix(p["halflife"])[:, : data.n_trained_items].tocsr()
        with _single_thread_blas():  # implicit checks the BLAS threads when the model is built
            model = AlternatingLeastSquares(factors=p["factors"], regularization=p["regularization"],
                                            alpha=p["alpha"], iterations=p["iterations"], random_state=p["seed"],
                                            num_threads=_implicit_threads(p.get("threads")),
                                            calculate_training_loss=False)
            big = matrix.nnz > 1_000_000
            stage(f"als · {matrix.nnz:,} shopper x product cells, {p['factors']} factors, {p['iterations']} "
                  f"iterations", big)
            model.fit(matrix, show_progress=big)  # a bar per iteration at a real shop's size
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def _user_vector(self, user: str, history: History | None) -> np.ndarray | None:
        stored = super()._user_vector(user, history)
        if stored is not None and (history is None or self.histories is None or user in self.histories):
            return stored
        if history is None or not len(history[0]):
            return stored
        items, ages, weights = history
        keep = items < len(self.item_factors)
        if not keep.any():
            return None
        w = np.bincount(items[keep], weights=(weights * decay(ages, self.params["halflife"]))[keep])
        idx = np.flatnonzero(w)
        y = self.item_factors[idx]
        confidence = self.params["alpha"] * w[idx]
        gram = self.item_factors.T @ self.item_factors + (y.T * confidence) @ y
        gram += self.params["regularization"] * np.eye(len(gram), dtype=np.float32)
        return np.linalg.solve(gram, y.T @ (1.0 + confidence)).astype(np.float32)


class BPR(_Factors):
    """Bayesian personalised ranking (Rendle et al. 2009) via ``implicit``; ids only, no content."""

    name = "bpr"

    def __init__(self, factors: int = 64, learning_rate: float = 0.05, regularization: float = 0.01,
                 iterations: int = 100, **params: Any):
        super().__init__(factors=factors, learning_rate=learning_rate, regularization=regularization,
                         iterations=iterations, **params)

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        from implicit.bpr import BayesianPersonalizedRanking

        p = self.params
        matrix = data.matrix()[:, : data.n_trained_items].tocsr()
        with _single_thread_blas():  # implicit checks the BLAS threads when the model is built
            model = BayesianPersonalizedRanking(factors=p["factors"], learning_rate=p["learning_rate"],
                                                regularization=p["regularization"], iterations=p["iterations"],
                                                random_state=p["seed"],
                                                num_threads=_implicit_threads(p.get("threads")))
            model.fit(matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)
