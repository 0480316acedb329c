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
  look-alike (:func:`tuwen.recommend.ranker_features.neighbour_popularity`): the one popularity signal a
  never-bought product has.
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
    plan,
    prepare,
    to_micros,
)
from tuwen.recommend.baselines import ALS, ItemKNN, Repurchase
from tuwen.recommend.content import ContentProfile
from tuwen.recommend.ranker_features import (
    LABEL_BLOCK,
    GeneratorContext,
    History,
    catalog_codes,
    feature_names,
)
from tuwen.store.events import EventArrays
from tuwen.util.progress import progress_bar, stage


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
                   data: TrainData | None = None) -> GeneratorContext:
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
        sales = GeneratorContext.sales(train, data.item_index, now)
        del train
        for name, part in parts.items():
            # all parts get the content so that they share one universe (trained + content products);
            # the id-only parts ignore the vectors themselves
            stage(f"ranker ·   {name} on {data.n_events:,} events", show and name in ("als", "itemknn"))
            part.fit(data, self.products, content=content, now=now)
        stage("ranker ·   item facts", show)
        return GeneratorContext.build(parts, sales, self._facts, self.params, self._reviews, now)

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
    def _truth(events: EventArrays, target: np.ndarray, context: GeneratorContext) -> pd.Series:
        """Per shopper known to the generators (sorted by id): the universe indices of what they bought in the
        label week."""
        users = events.users[events.user[target]]
        items = pd.Series(events.items[events.item[target]]).map(context.parts["content"].item_index)
        frame = pd.DataFrame({"user": users, "item": items.to_numpy()})
        frame = frame[frame["user"].isin(pd.Index(context.histories.users))]
        frame["item"] = frame["item"].fillna(-1).astype(np.int64)
        return frame.groupby("user", sort=True)["item"].agg(lambda v: np.unique(v.to_numpy()))

    def _label_rows(self, context: GeneratorContext, truth: pd.Series, title: str,
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
        self.context = GeneratorContext.from_arrays(self.parts, self._arrays, self.params, self.histories)
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
