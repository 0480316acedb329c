"""The one small contract every recommender follows: :class:`Recommender`.

Why one contract (``fit / score / recommend / save / load``, in the spirit of Cornac's
``Recommender``): the evaluation, the candidate ranker, the CLI and ``forget`` treat a popularity
count, an ALS model and a two-tower network the same way, so a new model is one small class.
The base gives them the item universe, popularity fallback for unknown shoppers, top-k with
exclusions, save/load of config (JSON) + arrays (``.npz``), and ``forget_user``.

The data the models share lives beside it and is re-exported here, where the models have always imported it from:
product vectors in :mod:`tuwen.recommend.item_content` (:class:`ItemContent`), shoppers' events as indexed
training data in :mod:`tuwen.recommend.train_data` (:class:`TrainData`, :class:`Histories`, :func:`prepare`,
:data:`KIND_WEIGHTS`, :func:`decay`), and :class:`RecommendError` in :mod:`tuwen.recommend.errors`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tuwen.recommend.errors import RecommendError
from tuwen.recommend.item_content import ROW_BLOCK, ItemContent, content_ids, content_sources
from tuwen.recommend.train_data import (
    DAY,
    KIND_WEIGHTS,
    Histories,
    TrainData,
    decay,
    history_from_frame,
    plan,
    prepare,
    to_micros,
    universe,
)
from tuwen.store.events import EventArrays
from tuwen.util.folders import FormatError, atomic_folder, read_info, write_info

__all__ = [
    "DAY", "FORMAT_VERSION", "KIND_WEIGHTS", "READABLE_VERSIONS", "ROW_BLOCK", "Histories", "ItemContent",
    "RecommendError", "Recommender", "TrainData", "content_ids", "content_sources", "decay", "history_from_frame",
    "plan", "prepare", "to_micros", "universe",
]

# 2: the ranker gained its look-alike sales features and VBPR its direct content match (array widths changed)
# 3: VBPR keeps one feature-width content vector per shopper and the product features (other arrays)
# 4: a candidate ranker's generators are saved without the histories the ranker keeps once (format 3 still loads:
#    its members carry their own copies)
FORMAT_VERSION = 4
READABLE_VERSIONS = (3,)


class Recommender:
    """Base class: subclasses implement ``_fit`` and ``_score_user`` (and state for save/load).

    ``score`` returns one number per item of the model's universe (``item_ids``), ``-inf`` where
    the model cannot say anything; ``recommend`` takes the top k and fills any gap with recent
    popularity, so a shopper the model never saw still gets (popular) products.
    """

    name: ClassVar[str] = "base"
    uses_content: ClassVar[bool] = False
    uses_products: ClassVar[bool] = False  # reads the products table (attributes, prices) while fitting
    registry: ClassVar[dict[str, type[Recommender]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name != "base":
            Recommender.registry[cls.name] = cls

    def __init__(self, popularity_halflife: float = 7.0, seed: int = 0, **params: Any):
        self.params: dict[str, Any] = {"popularity_halflife": popularity_halflife, "seed": seed, **params}
        self.item_ids: list[str] = []
        self.item_index: dict[str, int] = {}
        self.histories: Histories | None = None
        self.popularity = np.zeros(0, np.float32)
        self.now = pd.Timestamp(0, tz="UTC")
        self.n_trained_items = 0
        self.meta: dict[str, Any] = {}
        self.products: pd.DataFrame | None = None  # set during fit only; not saved

    # ------------------------------------------------------------------ fit
    def fit(self, interactions: pd.DataFrame | EventArrays | TrainData, products: pd.DataFrame | None = None,
            content: ItemContent | None = None, now: pd.Timestamp | None = None) -> Recommender:
        """Learn from events (``user_id, product_id, timestamp, kind, value``), products and their vectors.

        The universe is every product with a training event plus every product with content
        (so never-bought products can be recommended by models that read content).
        ``products`` (the workspace table) gives attributes and prices to models that use them.
        Events come as a frame, as coded arrays (:func:`tuwen.store.events.read_event_arrays`, the path
        that scales), or already prepared (:func:`prepare` with this content's ids: the candidate ranker
        prepares once and fits its generators on the same data).
        """
        started = time.perf_counter()
        if isinstance(interactions, TrainData):
            data = interactions
        else:
            data = prepare(interactions, content_ids(content), now, self.params.get("kind_weights"))
        self.item_ids, self.item_index = data.item_ids, data.item_index
        self.histories, self.now, self.n_trained_items = data.histories, data.now, data.n_trained_items
        pop = np.bincount(data.item, weights=data.weight * 0.5 ** (data.age / self.params["popularity_halflife"]),
                          minlength=data.n_items)  # in event order: the sum adds as it always did
        self.popularity = pop.astype(np.float32)
        self.products = products
        # aligned only for a model that reads it: the id-only ones (ALS, ItemKNN, ...) would hold a copy of every
        # vector while they fit, for nothing
        self._fit(data, content.align(data.item_ids) if content is not None and self.uses_content else None)
        self.meta = {"trained_at": time.time(), "fit_seconds": round(time.perf_counter() - started, 3),
                     "n_users": data.n_users, "n_items": data.n_items, "n_trained_items": data.n_trained_items,
                     "n_events": data.n_events, "now": str(data.now),
                     "content": content.sources if content is not None else None}
        return self

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        raise NotImplementedError

    def needs_content(self) -> bool:
        """Whether fitting without product vectors is an error (a model that reads content can opt out)."""
        return self.uses_content

    # ---------------------------------------------------------------- score
    def knows(self, user: str) -> bool:
        return self.histories is not None and user in self.histories

    def score(self, user: str, items: Sequence[str] | None = None,
              history: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Scores for ``items`` (default: every item of the universe); ``-inf`` = no opinion.

        ``history`` (items, ages, weights) replaces the stored one: fold-in for a shopper who
        bought since training, where the model supports it.
        """
        if history is None:
            history = self.histories.get(user) if self.histories is not None else None
        scores = self._score_user(user, history)
        if items is None:
            return scores
        rows = np.array([self.item_index.get(i, -1) for i in items], dtype=np.int64)
        out = np.full(len(rows), -np.inf, dtype=np.float32)
        out[rows >= 0] = scores[rows[rows >= 0]]
        return out

    def _score_user(self, user: str, history: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, user: str, k: int = 12, exclude: Iterable[str] = (),
                  history: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[str]:
        """The top ``k`` product ids for a shopper, best first; popular items fill any gap."""
        scores = self.score(user, history=history).astype(np.float32, copy=True)
        banned = [self.item_index[i] for i in exclude if i in self.item_index]
        if banned:
            scores[banned] = -np.inf
        return [self.item_ids[i] for i in self.top_k(scores, k, banned)]

    def top_k(self, scores: np.ndarray, k: int, banned: Sequence[int] = ()) -> list[int]:
        finite = np.isfinite(scores)
        n_finite = int(finite.sum())
        if n_finite > k:
            top = np.argpartition(-np.where(finite, scores, -np.inf), k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [int(i) for i in top]
        chosen = [int(i) for i in np.flatnonzero(finite)[np.argsort(-scores[finite], kind="stable")]]
        taken = set(chosen) | set(banned)
        for i in self.popular_order(k + len(taken)):
            if len(chosen) >= k:
                break
            if i not in taken:
                chosen.append(int(i))
                taken.add(int(i))
        return chosen

    def popular_order(self, k: int) -> np.ndarray:
        k = min(k, len(self.popularity))
        if k <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-self.popularity, k - 1)[:k]
        return top[np.argsort(-self.popularity[top], kind="stable")]

    def popular(self, k: int = 12) -> list[str]:
        return [self.item_ids[i] for i in self.popular_order(k)]

    # ---------------------------------------------------------- save / load
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able config, arrays) of what ``_fit`` learnt; the base saves the rest."""
        return {}, {}

    def _set_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Inverse of ``_state``."""

    def save(self, folder: str | Path, histories: bool = True) -> Path:
        """Write ``model.json`` + ``arrays.npz`` atomically (:func:`tuwen.util.folders.atomic_folder`).

        ``histories=False``: without the shoppers' histories, for a model saved inside another that keeps the same
        histories once for all its members (the candidate ranker's generators).
        """
        folder = Path(folder)
        with atomic_folder(folder) as tmp:
            config, arrays = self._state()
            base_arrays = {"item_ids": np.array(self.item_ids, dtype=str), "popularity": self.popularity}
            if self.histories is not None and histories:
                base_arrays.update(self.histories.arrays())
            np.savez(tmp / "arrays.npz", **base_arrays, **{f"m_{k}": v for k, v in arrays.items()})
            extra = self._save_extra(tmp)
            write_info(tmp / "model.json", "recommender", FORMAT_VERSION,
                       {"model": self.name, "params": _jsonable(self.params), "config": _jsonable(config),
                        "now": self.now.isoformat(), "n_trained_items": self.n_trained_items,
                        "meta": _jsonable(self.meta), "extra_files": extra})
        return folder

    def _save_extra(self, folder: Path) -> list[str]:
        """Files other than arrays (e.g. a LightGBM booster); returns their names."""
        return []

    def _load_extra(self, folder: Path) -> None:
        pass

    @staticmethod
    def load(folder: str | Path) -> Recommender:
        """Any saved recommender, whatever its class (read from ``model.json``)."""
        folder = Path(folder)
        try:
            info = read_info(folder / "model.json", "recommender", FORMAT_VERSION,
                             "run `tuwen train WS --task recommend`", older=READABLE_VERSIONS)
        except (FileNotFoundError, FormatError) as error:
            raise RecommendError(str(error)) from error
        cls = Recommender.registry.get(info["model"])
        if cls is None:
            raise RecommendError(f"{folder}: unknown model {info['model']!r}")
        model = cls(**info["params"])
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        model.item_ids = [str(i) for i in arrays["item_ids"]]
        model.item_index = {item: k for k, item in enumerate(model.item_ids)}
        model.popularity = arrays["popularity"]
        model.histories = Histories.from_arrays(arrays) if "hist_users" in arrays else None
        model.now = pd.Timestamp(info["now"])
        model.n_trained_items = info["n_trained_items"]
        model.meta = info.get("meta", {})
        model._set_state(info["config"], {k[2:]: v for k, v in arrays.items() if k.startswith("m_")})
        model._load_extra(folder)
        return model

    # --------------------------------------------------------------- forget
    def forget_user(self, user: str) -> bool:
        """Drop everything this model keeps *per shopper* about ``user``; True when there was something.

        Item-side parameters (factors, popularity, the ranker) were still learnt with the
        shopper's events: the caller marks the model stale until it is retrained.
        """
        found = self.histories is not None and user in self.histories
        state = bool(self._forget_user_state(user))  # first: it may use the user's row index
        if found:
            self.histories = self.histories.without(user)
        return state or found

    def _forget_user_state(self, user: str) -> bool:
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
