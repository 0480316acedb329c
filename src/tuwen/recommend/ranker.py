"""Candidates from several recommenders, re-ranked by a LightGBM lambdarank model.

This is the pattern that won the H&M competition: cheap generators propose a few hundred
products per shopper (their own past products, colour/size variants of them, content
neighbours, ALS, co-purchase neighbours, best sellers), then a learning-to-rank model orders
them with features no single generator sees together:

* generator scores and ranks (repurchase, content cosine, ALS, ItemKNN, popularity);
* **image and text similarity to the history** — the best match of the candidate's photo and of
  its text to any product the shopper bought (so "looks like what she bought" and "is called
  like what she bought" are separate signals), plus the recency-weighted profile cosine;
* **what is selling, by photo and by text** — the recent sales of the product's closest
  look-alike (:func:`neighbour_popularity`): the one popularity signal a never-bought product has.
  Chosen on the four H&M validation weeks (seed 0): MAP@12 / Recall@12 0.0294 / 0.0481 without
  it, 0.0311 / 0.0541 with it (the id-only ablation: 0.0258 / 0.0468). A separate generator of
  never-bought look-alikes of the history (top 30 by best photo + text match) was tried there
  too and dropped: Recall 0.0540 but MAP 0.0278;
* product facts: bought before at all, days since its first / last sale, has photo / text, price;
* shopper x product facts: times bought, days since, a variant (same ``variant_key``, e.g. H&M
  ``product_code``) bought and when, the share of the history in the same product type, colour
  and department (read by :func:`tuwen.recommend.profiles.product_facts`, so any catalog with such
  attributes or a category path gets them), price relative to the shopper's usual price.

* review scores, where the workspace has reviews: the product's mean stars, number of reviews and share of happy
  reviews, each counted from the reviews dated before the moment the features describe (label weeks included), so
  no feature knows a later review. Absent (and the feature list unchanged) for a catalog without reviews.

Training labels come from the weeks just before the end of the training data: for each label
week the generators are refitted on what came before it, so features never see the label week.
The generators are then refitted on all the data for serving.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuwen.recommend.base import (
    KIND_WEIGHTS,
    ItemContent,
    Recommender,
    TrainData,
    content_ids,
    decay,
    plan,
    prepare,
    to_micros,
)
from tuwen.recommend.baselines import ALS, ItemKNN, Repurchase
from tuwen.recommend.content import ContentProfile
from tuwen.recommend.profiles import parse_attributes, product_facts
from tuwen.store.events import EventArrays
from tuwen.store.review_scores import review_scores
from tuwen.util.progress import progress_bar, stage

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


class CandidateRanker(Recommender):
    """Generators propose, LightGBM lambdarank orders (see the module docstring for the features)."""
    name = "ranker"
    uses_content = True
    uses_products = True
    progress = True  # stages and bars on stderr while training on more than 100k events

    def __init__(self, label_weeks: int = 10, n_content: int = 60, n_als: int = 40, n_knn: int = 30, n_pop: int = 30,
                 n_variants: int = 60, n_estimators: int = 300, learning_rate: float = 0.03, num_leaves: int = 7,
                 min_child_samples: int = 50, reg_lambda: float = 10.0, variant_key: str | None = "product_code",
                 content_halflife: float = 14.0,
                 objective: str = "binary", content_features: bool = True, threads: int | None = 1,
                 review_features: bool = True, label_users: int | None = None, **params: Any):
        super().__init__(label_weeks=label_weeks, n_content=n_content, n_als=n_als, n_knn=n_knn, n_pop=n_pop,
                         n_variants=n_variants, n_estimators=n_estimators, learning_rate=learning_rate,
                         num_leaves=num_leaves, min_child_samples=min_child_samples, reg_lambda=reg_lambda,
                         variant_key=variant_key, content_halflife=content_halflife, objective=objective,
                         content_features=content_features, threads=threads, review_features=review_features,
                         label_users=label_users, **params)
        self.booster: Any = None
        self.parts: dict[str, Recommender] = {}

    # ------------------------------------------------------------------ generators and item facts
    def _fit_parts(self, events: EventArrays, before: np.ndarray | None, content: ItemContent, now: pd.Timestamp,
                   data: TrainData | None = None) -> _Context:
        """The four generators fitted on the events under ``before`` (all when None; prepared once and shared by
        all four), and the item facts.

        The subset is cut here and dropped as soon as it is prepared (only its sales are kept for the item facts):
        the generators' fitting, ItemKNN's co-purchase blocks above all, is where training peaks in memory.
        """
        seed = self.params["seed"]
        parts: dict[str, Recommender] = {
            "repurchase": Repurchase(seed=seed),
            "content": ContentProfile(halflife=self.params["content_halflife"], seed=seed),
            "als": ALS(factors=32, seed=seed),  # 32 factors: 2x faster, same validation MAP (0.0168 vs 0.0165)
            "itemknn": ItemKNN(seed=seed),
        }
        show = self._show
        train = events if before is None else events.subset(before)
        if data is None:
            data = prepare(train, content_ids(content), now)
        sales = _Context.sales(train, data.item_index, now)
        del train
        for name, part in parts.items():
            # all parts get the content so that they share one universe (trained + content products);
            # the id-only parts ignore the vectors themselves
            stage(f"ranker ·   {name} on {data.n_events:,} events", show and name in ("als", "itemknn"))
            part.fit(data, self.products, content=content, now=now)
        stage("ranker ·   item facts", show)
        return _Context.build(parts, sales, self._facts, self.params, self._reviews, now)

    def needs_content(self) -> bool:
        """Only the id-only ablation (``content_features=False``) trains without product vectors."""
        return bool(self.params.get("content_features", True))

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        if content is None:
            raise ValueError("the ranker needs product vectors for its image/text features: run `tuwen embed` first")
        events: EventArrays = self._events
        frames, labels, groups = self._labelled
        stage(f"ranker · final generators on {len(events):,} events", self._show)
        final = self._fit_parts(events, None, content, data.now, data)
        self.context = final
        self.parts = final.parts
        self._train_booster(frames, labels, groups, self._show)

    def _label_lists(self, events: EventArrays, content: ItemContent,
                     now: pd.Timestamp) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
        """(features, labels, list sizes) of the label weeks before ``now``, the end of the training data.

        Run before the whole events are prepared (:meth:`fit`): a label week's generators, fitted on a slice,
        are the peak of training, and the whole prepared data would only wait beside them.
        """
        self._facts = catalog_codes(self.products, self.params["variant_key"])
        frames, labels, groups = [], [], []
        weeks = self.params["label_weeks"]
        show = self._show = self.progress and len(events) > 100_000
        purchase = events.kind_mask(["purchase"])
        # Generators are refitted once per label week's cut-off: a feature must not see the week it labels,
        # and a generator fitted on later data would (the final fit below serves). Weeks without data are skipped.
        for week in range(weeks, 0, -1):
            start = now - pd.Timedelta(days=7 * week)
            end = start + pd.Timedelta(days=7)
            before = events.time < to_micros(start)
            target = (events.time >= to_micros(start)) & (events.time < to_micros(end)) & purchase
            if not before.any() or not target.any():
                continue
            stage(f"ranker · label week {weeks - week + 1}/{weeks}: generators on {int(before.sum()):,} events", show)
            context = self._fit_parts(events, before, content, start)
            truth = self._label_sample(self._truth(events, target, context))
            rows = self._label_rows(context, truth, f"ranker · week {weeks - week + 1}/{weeks} features", show)
            for x, y in rows:
                frames.append(x)
                labels.append(y)
                groups.append(len(y))
            del context, truth, rows  # a label week's generators are not needed once its lists are built
        return frames, labels, groups

    @staticmethod
    def _truth(events: EventArrays, target: np.ndarray, context: _Context) -> pd.Series:
        """Per shopper known to the generators (sorted by id): the universe indices of what they bought in the
        label week."""
        users = events.users[events.user[target]]
        items = pd.Series(events.items[events.item[target]]).map(context.parts["content"].item_index)
        frame = pd.DataFrame({"user": users, "item": items.to_numpy()})
        frame = frame[frame["user"].isin(pd.Index(context.histories.users))]
        frame["item"] = frame["item"].fillna(-1).astype(np.int64)
        return frame.groupby("user", sort=True)["item"].agg(lambda v: np.unique(v.to_numpy()))

    def _label_rows(self, context: _Context, truth: pd.Series, title: str,
                    show: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """(features, labels) per label shopper with at least one positive, built a block of shoppers at a time."""
        rows = []
        users = list(truth.index)
        with progress_bar(len(users), title, show) as advance:
            for lo in range(0, len(users), LABEL_BLOCK):
                block = users[lo:lo + LABEL_BLOCK]
                built = context.features_block(block, [context.histories.get(u) for u in block])
                for user, (items, x) in zip(block, built, strict=True):
                    y = np.isin(items, truth[user]).astype(np.float32)
                    if y.sum():  # lambdarank learns nothing from a list without a positive
                        rows.append((x, y))
                advance(len(block))
        return rows

    def _train_booster(self, frames: list[np.ndarray], labels: list[np.ndarray], groups: list[int],
                       show: bool) -> None:
        import lightgbm as lgb

        if not groups:
            self.booster = None  # too little history for label weeks: fall back to generator order
            return
        common = {"n_estimators": self.params["n_estimators"], "learning_rate": self.params["learning_rate"],
                  "num_leaves": self.params["num_leaves"], "min_child_samples": self.params["min_child_samples"],
                  # L2 on leaf values: with ~30 features and a few thousand positives the trees
                  # overfit the content features without it (validation weeks, mean of 3 LightGBM
                  # seeds: MAP@12 0.0286 / R 0.0518 with 10, id-only ranker 0.0256 / 0.0452; seed 0
                  # without it: 0.0244 / 0.0542, id-only 0.0253 / 0.0425)
                  "reg_lambda": self.params["reg_lambda"], "subsample": 0.8, "subsample_freq": 1,
                  "colsample_bytree": 0.8,
                  "random_state": self.params["seed"], "n_jobs": self.params["threads"] or 1, "verbose": -1}
        x, y = np.vstack(frames), np.concatenate(labels)
        stage(f"ranker · LightGBM on {len(y):,} candidate rows", show)
        if self.params["objective"] == "lambdarank":
            ranker = lgb.LGBMRanker(objective="lambdarank", lambdarank_truncation_level=20, **common)
            ranker.fit(x, y, group=groups, feature_name=feature_names(self.params))
        else:  # pointwise: "is this candidate bought?" — steadier than lambdarank on few lists
            ranker = lgb.LGBMClassifier(objective="binary", **common)
            ranker.fit(x, y, feature_name=feature_names(self.params))
        self.booster = ranker.booster_
        self.meta_train = {"label_lists": len(groups), "label_rows": int(sum(groups)),
                           "positives": int(sum(y.sum() for y in labels))}

    def _label_sample(self, truth: pd.Series) -> pd.Series:
        """At most ``label_users`` shoppers of one label week (a seeded sample): the trees need thousands of
        lists, not every shopper of a million, and each list costs a Python call."""
        limit = self.params.get("label_users")
        if not limit or len(truth) <= limit:
            return truth
        rng = np.random.default_rng(self.params["seed"])
        return truth.iloc[np.sort(rng.choice(len(truth), size=int(limit), replace=False))]

    uses_reviews = True  # callers pass the workspace's reviews to ``fit`` (review-score features)

    def fit(self, interactions: pd.DataFrame | EventArrays, products: pd.DataFrame | None = None,
            content: ItemContent | None = None, now: pd.Timestamp | None = None,
            reviews: pd.DataFrame | None = None) -> CandidateRanker:
        events = interactions if isinstance(interactions, EventArrays) else EventArrays.from_frame(interactions)
        self._events = events
        if content is None and not self.needs_content():  # the id-only ranker: an empty content, one universe
            content = ItemContent.from_arrays([], None, None)
        has_reviews = reviews is not None and "product_id" in reviews and bool(
            reviews["product_id"].fillna("").astype(str).ne("").any())
        self.params["review_features"] = bool(self.params.get("review_features", True) and has_reviews)
        self._reviews = reviews if self.params["review_features"] else None
        started = time.perf_counter()
        self._labelled: tuple[list[np.ndarray], list[np.ndarray], list[int]] = ([], [], [])
        try:
            if content is not None and events.kind_mask(self.params.get("kind_weights") or KIND_WEIGHTS).any():
                # the label weeks first, on slices of the events: the whole prepared data is not needed yet
                item_ids, moment = plan(events, content_ids(content), now, self.params.get("kind_weights"))
                self.products = products
                self._labelled = self._label_lists(events, content.align(item_ids), moment)
            super().fit(events, products, content, now)
        finally:
            del self._events, self._reviews, self._labelled
        self.meta["fit_seconds"] = round(time.perf_counter() - started, 3)  # the label weeks included
        self.meta.update(getattr(self, "meta_train", {}))
        return self

    # --------------------------------------------------------------------------- scoring
    def _score_user(self, user: str, history: History | None) -> np.ndarray:
        scores = np.full(len(self.item_ids), -np.inf, dtype=np.float32)
        if history is None or not len(history[0]):
            return scores
        items, x = self.context.features(user, history)
        if self.booster is None:
            values = -np.arange(len(items), dtype=np.float32)
        else:
            values = self.booster.predict(x, raw_score=True, num_threads=1).astype(np.float32)
        scores[items] = values
        return scores

    # ------------------------------------------------------------------------- save/load
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"meta_train": getattr(self, "meta_train", {})}, self.context.arrays()

    def _save_extra(self, folder: Path) -> list[str]:
        for name, part in self.parts.items():
            # the generators were fitted on the ranker's own histories: saved once, in the ranker's arrays
            part.save(folder / "parts" / name, histories=part.histories is not self.histories)
        if self.booster is not None:
            self.booster.save_model(str(folder / "booster.txt"))
        return ["parts", "booster.txt"]

    def _set_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        self.meta_train = config.get("meta_train", {})
        self._arrays = arrays

    def _load_extra(self, folder: Path) -> None:
        import lightgbm as lgb

        self.parts = {p.name: Recommender.load(p) for p in sorted((folder / "parts").iterdir())}
        self._share_histories()  # a ranker saved before the parts shared them holds equal copies: one is enough
        self.booster = lgb.Booster(model_file=str(folder / "booster.txt")) if (folder / "booster.txt").exists() \
            else None
        self.context = _Context.from_arrays(self.parts, self._arrays, self.params, self.histories)
        del self._arrays

    def _share_histories(self) -> None:
        """Every generator (and the feature context) reads the ranker's histories: one copy in memory, not five."""
        for part in self.parts.values():
            part.histories = self.histories
        if getattr(self, "context", None) is not None:
            self.context.histories = self.histories

    def _forget_user_state(self, user: str) -> bool:
        # each generator drops its own per-shopper state (ALS: the shopper's factor row, found through the shared
        # histories, still whole here); the shared histories lose the shopper once, in forget_user
        found = False
        for part in self.parts.values():
            found = part._forget_user_state(user) or found
        return found

    def forget_user(self, user: str) -> bool:
        found = super().forget_user(user)
        self._share_histories()
        return found


class _Context:
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
                    histories: Any) -> _Context:
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
              params: dict[str, Any], reviews: pd.DataFrame | None, now: pd.Timestamp) -> _Context:
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
