"""The candidate ranker's features: what its generators score, the product and shopper facts, look-alike sales and
review scores, computed for many shoppers at once from one fitted set of generators (:class:`GeneratorContext`).

:mod:`tuwen.recommend.ranker` fits the generators (per label week, then on all the data) and the LightGBM model
that orders their candidates; this module turns a fitted set into feature rows, the same for training and serving.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tuwen.recommend.base import (
    Recommender,
    decay,
    to_micros,
)
from tuwen.recommend.content import ContentProfile
from tuwen.recommend.profiles import parse_attributes, product_facts
from tuwen.store.events import EventArrays
from tuwen.store.review_scores import review_scores

History = tuple[np.ndarray, np.ndarray, np.ndarray]

FEATURES = [
    "rep_score", "rep_times", "rep_age", "content", "content_rank", "img_max", "txt_max", "img_prof", "txt_prof",
    "als", "als_rank", "knn", "knn_rank", "pop7", "pop30", "pop_all", "pop_rank", "trained", "first_age",
    "last_age", "has_image", "has_text", "price", "price_ratio", "variant_bought", "variant_age", "type_share",
    "colour_share", "dept_share", "user_n", "user_last", "user_content_share", "trend_img", "trend_txt",
]
LABEL_BLOCK = 64  # label shoppers whose generator scores are one matrix product
MAX_SELLERS = 5000  # look-alike sales: the best sellers a product is compared with (see neighbour_popularity)
REVIEW_FEATURES = ["review_rating", "review_count", "review_positive"]  # only when fitted with reviews


def feature_names(params: dict[str, Any]) -> list[str]:
    """The ranker's feature columns: :data:`FEATURES`, plus :data:`REVIEW_FEATURES` when it was fitted with reviews."""
    return FEATURES + (REVIEW_FEATURES if params.get("review_features") else [])


def catalog_codes(products: pd.DataFrame | None, variant_key: str | None) -> pd.DataFrame:
    """Per product id: integer codes of its type, colour and department, of the variant key, and the price.

    Type, colour and department come from :func:`tuwen.recommend.profiles.product_facts`, which knows the
    attribute names of several catalogs (H&M, the fashion set, generic ``type`` / ``colour``) and
    falls back to the ``category`` path, so the "same type as the history" features are not
    H&M-only. Built once per fit (the label weeks reuse it), each product's attributes JSON parsed once.
    """
    columns = ["key0", "key1", "key2", "variant", "price"]
    if products is None or products.empty:
        return pd.DataFrame(columns=columns)

    attrs = parse_attributes(products)  # once: the facts and the variant key both read them
    facts = product_facts(products, attrs)
    data: dict[str, Any] = {}
    for j, key in enumerate(("type", "colour", "department")):
        data[f"key{j}"] = pd.factorize(facts[key].replace("", None), use_na_sentinel=True)[0]
    values = pd.Series([a.get(variant_key) if variant_key else None for a in attrs], dtype=object)
    data["variant"] = pd.factorize(values, use_na_sentinel=True)[0]
    data["price"] = products["price"].to_numpy(np.float32)
    return pd.DataFrame(data, index=products["id"].astype(str))


def attribute_codes(facts: pd.DataFrame, item_ids: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes [items x keys], variant code per item, price per item) for a universe; -1 / NaN where unknown."""
    aligned = facts.reindex(item_ids)
    codes = aligned[["key0", "key1", "key2"]].fillna(-1).to_numpy(np.int64)
    variants = aligned["variant"].fillna(-1).to_numpy(np.int64)
    price = aligned["price"].to_numpy(np.float32)
    return codes, variants, price


def neighbour_popularity(matrix: np.ndarray, sales: np.ndarray, sharpness: float = 4.0,
                         chunk: int = 2048, max_sellers: int | None = MAX_SELLERS) -> np.ndarray:
    """Per product: the best ``max(cosine, 0) ** sharpness x recent sales`` over the *other* products.

    Why: a product nobody has bought yet has no sales of its own, but "looks like / is called like
    what is selling now" is known from day one (a new colour of a best seller, this season's cut).
    On the four H&M validation weeks, ranking the never-bought catalog by this (text vectors) put
    6x more of the week's cold purchases in its top 100 than chance. NaN where the product has no vector.
    """
    has = np.linalg.norm(matrix, axis=1) > 0 if matrix.shape[1] else np.zeros(len(matrix), bool)
    out = np.full(len(matrix), np.nan, np.float32)
    sold = np.flatnonzero(has & (sales > 0))
    if max_sellers and len(sold) > max_sellers:
        # only the best sellers: a look-alike of a product that barely sells adds almost nothing to the maximum,
        # and comparing every product with every sold one is products x products at a real shop's size
        sold = np.sort(sold[np.argpartition(-sales[sold], max_sellers - 1)[:max_sellers]])
    if not len(sold):
        return out
    rows, targets, weights = np.flatnonzero(has), matrix[sold].T, sales[sold].astype(np.float32)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        sims = np.maximum(matrix[part] @ targets, 0.0)
        at = np.minimum(np.searchsorted(sold, part), len(sold) - 1)
        own = np.flatnonzero(sold[at] == part)
        sims[own, at[own]] = 0.0  # not its own sales
        # two squarings for the default fourth power: a general power costs several times a multiplication
        powered = np.square(np.square(sims)) if sharpness == 4.0 else sims ** sharpness
        out[part] = (powered * weights).max(1)
    return out


class GeneratorContext:
    """Everything the features need for one fitted set of generators."""

    def __init__(self, parts: dict[str, Recommender], params: dict[str, Any], arrays: dict[str, np.ndarray],
                 histories: Any):
        self.parts = parts
        self.params = params
        self.item_ids = parts["content"].item_ids
        self.histories = histories
        for key, value in arrays.items():
            setattr(self, key, value)
        content: ContentProfile = parts["content"]  # type: ignore[assignment]
        self.image, self.text, self.has_content = content.image, content.text, content.has_content
        self.has_image = np.linalg.norm(self.image, axis=1) > 0 if self.image.shape[1] else np.zeros(
            len(self.item_ids), bool)
        self.has_text = np.linalg.norm(self.text, axis=1) > 0 if self.text.shape[1] else np.zeros(
            len(self.item_ids), bool)
        self.variant_members: dict[int, np.ndarray] = {}
        order = np.argsort(self.variants, kind="stable")
        codes = self.variants[order]
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        for a, b in zip(starts, np.r_[starts[1:], len(codes)], strict=True):
            if codes[a] >= 0:
                self.variant_members[int(codes[a])] = order[a:b]
        by_popularity = np.argsort(-self.pop7, kind="stable")
        self.pop_order = by_popularity[: params["n_pop"]]
        self.pop_rank = np.full(len(self.item_ids), 10_000, np.float32)
        ranked = by_popularity[:1000]
        self.pop_rank[ranked] = np.arange(len(ranked))

    @staticmethod
    def _similarity(matrix: np.ndarray, has: np.ndarray, items: np.ndarray, cand: np.ndarray,
                    history_weight: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """Each candidate's closest and recency-weighted mean cosine to the history's items in one modality.

        ``history_weight``: (the history's distinct items, sorted, and their summed weights).
        NaN where the candidate has no vector in it, or without content (``history_weight`` None).
        """
        nothing = np.full(len(cand), np.nan, np.float32)
        seen = np.unique(items[has[items]]) if history_weight is not None else ()
        if not len(seen):
            return nothing, nothing
        sims = matrix[cand] @ matrix[seen].T
        keys, values = history_weight
        weights = values[np.searchsorted(keys, seen)]
        closest = np.where(has[cand], sims.max(1), np.nan)
        mean = np.where(has[cand], sims @ weights / max(weights.sum(), 1e-9), np.nan)
        return closest, mean

    ARRAY_KEYS = ("codes", "variants", "price", "pop7", "pop30", "pop_all", "first_age", "last_age", "trend_img",
                  "trend_txt")
    REVIEW_KEYS = ("review_rating", "review_count", "review_positive")

    def arrays(self) -> dict[str, np.ndarray]:
        keys = self.ARRAY_KEYS + (self.REVIEW_KEYS if self.params.get("review_features") else ())
        return {f"ctx_{k}": getattr(self, k) for k in keys}

    @classmethod
    def from_arrays(cls, parts: dict[str, Recommender], arrays: dict[str, np.ndarray], params: dict[str, Any],
                    histories: Any) -> GeneratorContext:
        return cls(parts, params, {k[4:]: v for k, v in arrays.items() if k.startswith("ctx_")}, histories)

    @staticmethod
    def sales(train: EventArrays, index: dict[str, int], now: pd.Timestamp) -> dict[str, np.ndarray]:
        """Per product of the universe ``index``: the sales facts of the purchases in ``train`` (counts over 7 / 30
        days and all time, days since the first and the latest sale, recent decayed sales). All the item facts read
        of the events, and per product, not per event: the events can go before the generators are fitted."""
        n = len(index)
        purchase = train.kind_mask(["purchase"])
        lookup = pd.Series(train.items).map(index).fillna(-1).to_numpy(np.int64)  # event codes -> universe
        rows = lookup[train.item[purchase]]
        age = ((to_micros(now) - train.time[purchase]) / 1e6 / 86400.0).astype(np.float32)
        first_age = np.full(n, -np.inf, np.float32)
        last_age = np.full(n, np.inf, np.float32)
        np.maximum.at(first_age, rows, age)  # days since the first sale
        np.minimum.at(last_age, rows, age)  # days since the latest sale
        first_age[~np.isfinite(first_age)] = np.nan
        last_age[~np.isfinite(last_age)] = np.nan
        return {
            "pop7": np.bincount(rows, weights=(age < 7).astype(np.float32), minlength=n).astype(np.float32),
            "pop30": np.bincount(rows, weights=(age < 30).astype(np.float32), minlength=n).astype(np.float32),
            "pop_all": np.bincount(rows, minlength=n).astype(np.float32),
            "first_age": first_age, "last_age": last_age,
            # sales of the last 8 weeks, halving every 2: older ones weigh < 1/16 and only cost time
            "recent": np.bincount(rows, weights=decay(age, 14.0) * (age < 56), minlength=n),
        }

    @classmethod
    def build(cls, parts: dict[str, Recommender], sales: dict[str, np.ndarray], facts: pd.DataFrame,
              params: dict[str, Any], reviews: pd.DataFrame | None, now: pd.Timestamp) -> GeneratorContext:
        """The item facts of one fitted set of generators; ``sales`` from :meth:`sales` on their training events."""
        item_ids = parts["content"].item_ids
        codes, variants, price = attribute_codes(facts, item_ids)
        n = len(item_ids)
        recent = sales["recent"]
        content: ContentProfile = parts["content"]  # type: ignore[assignment]
        arrays = {"codes": codes, "variants": variants, "price": price,
                  **{k: v for k, v in sales.items() if k != "recent"}}
        # The id-only ablation never reads these: skip two products x recently-sold matrix products per build.
        for key, matrix in (("trend_img", content.image), ("trend_txt", content.text)):
            arrays[key] = neighbour_popularity(matrix, recent) if params.get("content_features", True) \
                else np.full(n, np.nan, np.float32)
        if params.get("review_features"):
            scores = review_scores(reviews, before=now).reindex(item_ids)  # only reviews written before ``now``
            arrays["review_rating"] = scores["rating"].to_numpy(np.float32)
            arrays["review_count"] = scores["reviews"].fillna(0.0).to_numpy(np.float32)
            arrays["review_positive"] = scores["positive_share"].to_numpy(np.float32)
        return cls(parts, params, arrays, parts["content"].histories)

    # ----------------------------------------------------------------------------- features
    def features(self, user: str, history: History) -> tuple[np.ndarray, np.ndarray]:
        """(candidate item indices, feature matrix [candidates x FEATURES]) for one shopper."""
        return self.features_block([user], [history])[0]

    def features_block(self, users: list[str], histories: list[History]) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`features` for a block of shoppers at once.

        Why blocks: the content and ALS generators score every product for every shopper; one matrix product
        per block reads the product matrices once, where one shopper at a time reads them once per shopper
        (memory-bound, and the cost that kept the ranker from finishing at 200k products). Everything else
        is computed on the shopper's own history and candidates only, never over the whole catalog.
        """
        p = self.params
        use_content = p.get("content_features", True)
        cont_rows, cont_top = self._content_block(histories, use_content)
        als_rows, als_top = self._als_block(users, histories)
        out = []
        for j, (user, history) in enumerate(zip(users, histories, strict=True)):
            out.append(self._assemble(user, history, cont_rows[j], cont_top[j], als_rows[j], als_top[j]))
        return out

    def _content_block(self, histories: list[History], use_content: bool) -> tuple[list[Any], list[np.ndarray]]:
        """Per shopper: content scores over the products with content (or None) and the top ``n_content``."""
        content: ContentProfile = self.parts["content"]  # type: ignore[assignment]
        n = self.params["n_content"]
        rows: list[Any] = [None] * len(histories)
        tops: list[np.ndarray] = [np.zeros(0, np.int64)] * len(histories)
        if not use_content or not len(content.rows):
            return rows, tops
        if content.params["max_weight"] > 0:  # the best-match term is per shopper: score one at a time
            for j, history in enumerate(histories):
                full = content._score_user("", history)
                if np.isfinite(full).any():
                    rows[j] = full[content.rows]
                    tops[j] = _top(rows[j], n, content.rows)
            return rows, tops
        profiles = [content.profile(history)[0] for history in histories]
        have = [j for j, v in enumerate(profiles) if v is not None]
        if not have:
            return rows, tops
        scores = np.stack([profiles[j] for j in have]) @ content.compact.T
        for j, row in zip(have, scores, strict=True):
            rows[j] = row
            tops[j] = _top(row, n, content.rows)
        return rows, tops

    def _als_block(self, users: list[str], histories: list[History]) -> tuple[list[Any], list[np.ndarray]]:
        """Per shopper: ALS scores over the trained products (or None) and the top ``n_als``."""
        als = self.parts["als"]
        n = self.params["n_als"]
        vectors = [als._user_vector(user, history) for user, history in zip(users, histories, strict=True)]
        rows: list[Any] = [None] * len(users)
        tops: list[np.ndarray] = [np.zeros(0, np.int64)] * len(users)
        have = [j for j, v in enumerate(vectors) if v is not None]
        if not have:
            return rows, tops
        scores = np.stack([vectors[j] for j in have]) @ als.item_factors.T
        every = np.arange(scores.shape[1])
        for j, row in zip(have, scores, strict=True):
            rows[j] = row
            tops[j] = _top(row, n, every)
        return rows, tops

    def _knn(self, items: np.ndarray, ages: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """ItemKNN's scored products and their scores, from the neighbour lists of the history only."""
        knn = self.parts["itemknn"]
        similarity = knn.similarity
        if similarity is None or not len(items):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        seen, inverse = np.unique(items, return_inverse=True)
        w = np.bincount(inverse, weights=weights * decay(ages, knn.params["halflife"]))
        keep = w != 0
        seen, w = seen[keep], w[keep]
        starts, ends = similarity.indptr[seen], similarity.indptr[seen + 1]
        lengths = ends - starts
        if not lengths.sum():
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        positions = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        neighbours = similarity.indices[positions]
        contributions = similarity.data[positions] * np.repeat(w, lengths)
        scored, where = np.unique(neighbours, return_inverse=True)
        values = np.bincount(where, weights=contributions)
        hit = values > 0
        return scored[hit].astype(np.int64), values[hit].astype(np.float32)

    def _assemble(self, user: str, history: History, cont_row: Any, cont_top: np.ndarray, als_row: Any,
                  als_top: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        items, ages, weights = history
        use_content = p.get("content_features", True)
        n_items = len(self.item_ids)
        # the shopper's own products, scored as Repurchase scores them (over the history only)
        rep_part = self.parts["repurchase"]
        own, own_inverse = np.unique(items, return_inverse=True)
        if rep_part.params["halflife"]:
            own_values = np.bincount(own_inverse, weights=weights * decay(ages, rep_part.params["halflife"]),
                                     minlength=len(own))
        else:
            own_values = np.zeros(len(own))
            np.maximum.at(own_values, own_inverse, 1.0 / (1.0 + ages))
        own_keep = own_values > 0
        own, own_values = own[own_keep], own_values[own_keep]
        own_scores = (own_values + 1e-6 * rep_part.popularity[own]).astype(np.float32)
        knn_items, knn_values = self._knn(items, ages, weights)
        knn_top = knn_items if len(knn_items) <= p["n_knn"] else \
            knn_items[np.argpartition(-knn_values, p["n_knn"] - 1)[: p["n_knn"]]]

        candidates = [own, self.pop_order, cont_top, als_top, knn_top]
        hist_variants = self.variants[items]
        variant_age: dict[int, float] = {}
        for code, age in zip(hist_variants, ages, strict=True):
            if code >= 0 and (code not in variant_age or age < variant_age[code]):
                variant_age[int(code)] = float(age)
        members = [self.variant_members[c] for c in variant_age if c in self.variant_members]
        if members:
            candidates.append(np.concatenate(members)[: p["n_variants"]])
        cand = np.unique(np.concatenate(candidates)).astype(np.int64)

        def at(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
            """Values of a sparse (sorted keys, values) score at the candidates; -inf where absent."""
            out = np.full(len(cand), -np.inf, np.float32)
            if len(keys):
                where = np.minimum(np.searchsorted(keys, cand), len(keys) - 1)
                found = keys[where] == cand
                out[found] = values[where[found]]
            return out

        rep = at(own, own_scores)
        knn = at(knn_items, knn_values)
        cont = np.full(len(cand), -np.inf, np.float32)
        if cont_row is not None:
            position = self._content_position(n_items)[cand]
            cont[position >= 0] = cont_row[position[position >= 0]]
        als = np.full(len(cand), -np.inf, np.float32)
        if als_row is not None:
            trained = cand < len(als_row)
            als[trained] = als_row[cand[trained]]

        def rank_of(values_at: np.ndarray) -> np.ndarray:
            finite = np.isfinite(values_at)
            out = np.full(len(cand), 1000.0, np.float32)
            if finite.any():
                values = values_at[finite]
                out[finite] = (values[None, :] > values[:, None]).sum(1)
            return out

        def clean(values_at: np.ndarray, fill: float = np.nan) -> np.ndarray:
            v = values_at.astype(np.float32)
            return np.where(np.isfinite(v), v, fill)

        w = weights * decay(ages, 30.0)
        own_all, own_all_inverse = np.unique(items, return_inverse=True)
        times = at(own_all, np.bincount(own_all_inverse, weights=weights, minlength=len(own_all)))
        times = np.where(np.isfinite(times), times, 0.0)
        rep_age = np.full(len(cand), np.nan, np.float32)
        if len(items):  # histories are newest first: the first time an item appears is its latest purchase
            first = np.full(len(own_all), np.nan, np.float32)
            first[own_all_inverse[::-1]] = ages[::-1]
            found = at(own_all, first)
            rep_age = np.where(np.isfinite(found), found, np.nan).astype(np.float32)

        history_weight = (own_all, np.bincount(own_all_inverse, weights=w, minlength=len(own_all))) \
            if use_content else None
        img_max, img_prof = self._similarity(self.image, self.has_image, items, cand, history_weight)
        txt_max, txt_prof = self._similarity(self.text, self.has_text, items, cand, history_weight)

        shares = []
        for j in range(self.codes.shape[1]):
            hist_codes = self.codes[items, j]
            known = hist_codes >= 0
            counts = np.bincount(hist_codes[known], minlength=max(1, int(self.codes[:, j].max()) + 1))
            cand_codes = self.codes[cand, j]
            share = np.where(cand_codes >= 0, counts[np.maximum(cand_codes, 0)] / max(known.sum(), 1), np.nan)
            shares.append(share.astype(np.float32))

        hist_price = self.price[items]
        mean_price = np.nanmean(hist_price) if np.isfinite(hist_price).any() else np.nan
        cand_variants = self.variants[cand]
        v_age = np.array([variant_age.get(int(c), np.nan) if c >= 0 else np.nan for c in cand_variants], np.float32)
        user_n = float(len(items))
        user_last = float(ages.min()) if len(ages) else np.nan
        content_share = float(self.has_content[items].mean()) if len(items) and use_content else 0.0
        flag_image = self.has_image[cand].astype(np.float32) * use_content
        flag_text = self.has_text[cand].astype(np.float32) * use_content

        def trend(values: np.ndarray) -> np.ndarray:
            return values[cand] if use_content else np.full(len(cand), np.nan, np.float32)

        x = np.column_stack([
            clean(rep, 0.0), times, rep_age, clean(cont), rank_of(cont), img_max, txt_max, img_prof, txt_prof,
            clean(als), rank_of(als), clean(knn, 0.0), rank_of(knn), self.pop7[cand], self.pop30[cand],
            self.pop_all[cand], self.pop_rank[cand], (self.pop_all[cand] > 0).astype(np.float32),
            self.first_age[cand], self.last_age[cand], flag_image, flag_text, self.price[cand],
            self.price[cand] / mean_price,
            np.isfinite(v_age).astype(np.float32), v_age, shares[0], shares[1], shares[2],
            np.full(len(cand), user_n, np.float32), np.full(len(cand), user_last, np.float32),
            np.full(len(cand), content_share, np.float32), trend(self.trend_img), trend(self.trend_txt),
        ]).astype(np.float32)
        if p.get("review_features"):
            x = np.column_stack([x, self.review_rating[cand], self.review_count[cand], self.review_positive[cand]])
        return cand, x.astype(np.float32)

    def _content_position(self, n_items: int) -> np.ndarray:
        """Universe index -> row of the content model's compact matrix (-1: no content)."""
        if getattr(self, "_positions", None) is None:
            content: ContentProfile = self.parts["content"]  # type: ignore[assignment]
            positions = np.full(n_items, -1, np.int64)
            positions[content.rows] = np.arange(len(content.rows))
            self._positions = positions
        return self._positions


def _top(scores: np.ndarray, n: int, ids: np.ndarray) -> np.ndarray:
    """``ids`` of the ``n`` highest finite scores (all finite ones when there are at most ``n``)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) > n:
        finite = finite[np.argpartition(-scores[finite], n - 1)[:n]]
    return ids[finite]
