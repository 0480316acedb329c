"""Shoppers' events as indexed training data: the item universe, per-shopper histories and event weights.

Why a module of its own: every recommender trains on the same prepared data (:class:`TrainData`, made once by
:func:`prepare` from a frame or from the coded event arrays the workspace reads in batches), and keeps the same
per-shopper :class:`Histories` — every shopper's events as (item, age in days, weight), newest first. Models keep
the histories they were trained on, so a saved model recommends without reading the workspace (fast, and the same
answer in a fresh process), and ``forget`` can remove one shopper from a saved model. How much each kind of event
counts (:data:`KIND_WEIGHTS`) and how it fades with age (:func:`decay`) live here too, beside the data they weight.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tuwen.recommend.errors import RecommendError
from tuwen.store.events import EventArrays

# How much each kind of event says about taste; purchases are what the evaluation predicts.
KIND_WEIGHTS: dict[str, float] = {"purchase": 1.0, "cart": 0.5, "click": 0.25, "view": 0.2}
DAY = 86400.0


@dataclass
class Histories:
    """Each known shopper's events, newest first: item index, age in days (vs ``now``) and weight."""

    users: list[str]
    indptr: np.ndarray
    items: np.ndarray
    ages: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        self.index = {user: k for k, user in enumerate(self.users)}

    def __contains__(self, user: object) -> bool:
        return user in self.index

    def __len__(self) -> int:
        return len(self.users)

    def get(self, user: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.index.get(user)
        if k is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
        a, b = self.indptr[k], self.indptr[k + 1]
        return self.items[a:b], self.ages[a:b], self.weights[a:b]

    @classmethod
    def build(cls, user: np.ndarray, item: np.ndarray, age: np.ndarray, weight: np.ndarray,
              users: list[str]) -> Histories:
        return cls.from_events(user, item, age, weight, users)[0]

    @classmethod
    def from_events(cls, user: np.ndarray, item: np.ndarray, age: np.ndarray, weight: np.ndarray,
                    users: list[str]) -> tuple[Histories, np.ndarray]:
        """The histories and, per history entry, the position of its event in the input (``order``).

        Item indices stay 32-bit (a universe has far fewer than 2**31 products): at thirty million events every
        byte per event is 30 MB, and the histories are what a trained model keeps.
        """
        order = np.lexsort((age, user))  # per user, youngest first
        counts = np.bincount(user, minlength=len(users))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        histories = cls(users, indptr, item[order].astype(_index_dtype(len(item) and int(item.max())), copy=False),
                        age[order].astype(np.float32, copy=False), weight[order].astype(np.float32, copy=False))
        return histories, order.astype(_index_dtype(len(order)))

    def shopper_of_entry(self) -> np.ndarray:
        """The shopper index of every history entry (the row of the entry in a shopper x product matrix)."""
        return np.repeat(np.arange(len(self.users), dtype=_index_dtype(len(self.users))), np.diff(self.indptr))

    def without(self, user: str) -> Histories:
        """A copy without one shopper (``forget``)."""
        k = self.index.get(user)
        if k is None:
            return self
        a, b = self.indptr[k], self.indptr[k + 1]
        keep = np.r_[0:a, b:len(self.items)]
        indptr = np.concatenate([self.indptr[:k + 1], self.indptr[k + 2:] - (b - a)])
        return Histories(self.users[:k] + self.users[k + 1:], indptr, self.items[keep], self.ages[keep],
                         self.weights[keep])

    def arrays(self, prefix: str = "hist_") -> dict[str, np.ndarray]:
        return {f"{prefix}users": np.array(self.users, dtype=object).astype(str), f"{prefix}indptr": self.indptr,
                f"{prefix}items": self.items, f"{prefix}ages": self.ages, f"{prefix}weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "hist_") -> Histories:
        return cls([str(u) for u in arrays[f"{prefix}users"]], arrays[f"{prefix}indptr"], arrays[f"{prefix}items"],
                   arrays[f"{prefix}ages"], arrays[f"{prefix}weights"])


@dataclass
class TrainData:
    """Training interactions indexed against an item universe (trained items + catalog items).

    The events are kept once, as the per-shopper :class:`Histories` plus ``order`` (each history entry's position
    among the events as read), not a second time as per-event arrays: at a real shop's size those were as big as
    the histories themselves. ``user`` / ``item`` / ``age`` / ``weight`` rebuild a per-event array in the order the
    events were read, so the sums over events (popularity, the sparse matrix's repeated cells) add in the same order
    as before, to the same bits.
    """

    item_ids: list[str]
    item_index: dict[str, int]
    users: list[str]
    now: pd.Timestamp
    histories: Histories
    order: np.ndarray  # history entry -> position of its event in the events read
    n_trained_items: int  # items [0, n_trained_items) have training events; the rest are catalog-only

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_events(self) -> int:
        return len(self.order)

    def _in_event_order(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(len(values), dtype=values.dtype)
        out[self.order] = values
        return out

    @property
    def user(self) -> np.ndarray:
        """Each event's shopper index, in event order (built on each call: keep it while you need it)."""
        return self._in_event_order(self.histories.shopper_of_entry())

    @property
    def item(self) -> np.ndarray:
        """Each event's item index, in event order."""
        return self._in_event_order(self.histories.items)

    @property
    def age(self) -> np.ndarray:
        """Each event's age in days (vs ``now``), in event order."""
        return self._in_event_order(self.histories.ages)

    @property
    def weight(self) -> np.ndarray:
        """Each event's weight (kind x value), in event order."""
        return self._in_event_order(self.histories.weights)

    def matrix(self, halflife: float | None = None) -> Any:
        """Users x items CSR of summed event weights (optionally decayed by age)."""
        import scipy.sparse as sp

        values = self.weight * (0.5 ** (self.age / halflife) if halflife else 1.0)
        return sp.csr_matrix((values.astype(np.float32), (self.user, self.item)),
                             shape=(self.n_users, self.n_items))


def prepare(interactions: pd.DataFrame | EventArrays, catalog_ids: Iterable[str] = (),
            now: pd.Timestamp | None = None, kind_weights: dict[str, float] | None = None) -> TrainData:
    """Index events against the universe of (trained items, then catalog-only items).

    Why catalog-only items are in the universe: products nobody has bought yet (new arrivals —
    70% of the H&M test week) can then be scored by models that see content.
    A frame goes through the same coded arrays that :func:`tuwen.store.events.read_event_arrays` reads
    from the workspace in batches, so both paths give the same shoppers, products and numbers.
    """
    weights = kind_weights or KIND_WEIGHTS
    events = interactions if isinstance(interactions, EventArrays) else EventArrays.from_frame(interactions)
    events = events.subset(events.kind_mask(weights))
    if events.empty:
        raise RecommendError("no interactions to learn from (purchases, carts, clicks or views)")
    now_us = int(events.time.max()) + int(DAY * 1_000_000) if now is None else to_micros(now)
    now = pd.Timestamp(now_us, unit="us", tz="UTC") if now is None else pd.Timestamp(now)
    item_ids = universe(events, catalog_ids)
    item_index = {i: k for k, i in enumerate(item_ids)}
    users = [str(u) for u in events.users]
    age = ((now_us - events.time) / 1e6 / DAY).astype(np.float32)
    value = np.nan_to_num(events.value, nan=1.0).clip(min=0.0).astype(np.float32)
    kind_weight = np.array([weights.get(k, 0.0) for k in events.kinds] + [0.0], dtype=np.float32)[events.kind]
    weight = (kind_weight * np.minimum(value, 3.0)).astype(np.float32)
    del value, kind_weight
    histories, order = Histories.from_events(events.user, events.item, age, weight, users)
    return TrainData(item_ids, item_index, users, now, histories, order, len(events.items))


def universe(events: EventArrays, catalog_ids: Iterable[str] = ()) -> list[str]:
    """The item universe of :func:`prepare`: the events' items (in their code order), then the catalog-only ones."""
    return _universe(events.items, catalog_ids)


def _universe(trained: np.ndarray, catalog_ids: Iterable[str]) -> list[str]:
    extra = pd.unique(np.asarray(list(catalog_ids), dtype=object))
    if len(extra):
        extra = extra[~pd.Index(extra).isin(trained)]
    return [str(i) for i in trained] + [str(i) for i in extra]


def plan(events: EventArrays, catalog_ids: Iterable[str] = (), now: pd.Timestamp | None = None,
         kind_weights: dict[str, float] | None = None) -> tuple[list[str], pd.Timestamp]:
    """(item universe, ``now``) that :func:`prepare` gives these events, without preparing them.

    Why: the candidate ranker fits its label weeks on slices of the events before it prepares them all; knowing
    the whole universe and moment first lets it do so without the whole prepared data in memory beside a slice's.
    """
    mask = events.kind_mask(kind_weights or KIND_WEIGHTS)
    if not mask.any():
        raise RecommendError("no interactions to learn from (purchases, carts, clicks or views)")
    # the kept events' items in order of first appearance: the numbering prepare's subset gives them
    trained = events.items if mask.all() else events.items[pd.unique(events.item[mask])]
    if now is None:
        return _universe(trained, catalog_ids), pd.Timestamp(
            int(events.time[mask].max()) + int(DAY * 1_000_000), unit="us", tz="UTC")
    return _universe(trained, catalog_ids), pd.Timestamp(now)


def _index_dtype(largest: int) -> type:
    """int32 for indices and positions that fit it (every realistic shop), else int64."""
    return np.int32 if largest < 2**31 - 1 else np.int64


def to_micros(moment: Any) -> int:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1000)


def history_from_frame(frame: pd.DataFrame, item_index: dict[str, int], now: pd.Timestamp,
                       kind_weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One shopper's events (e.g. read from the workspace after training) in the model's terms."""
    weights = kind_weights or KIND_WEIGHTS
    frame = frame[frame["kind"].isin(list(weights)) & frame["product_id"].astype(str).isin(item_index)]
    if frame.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
    age = ((now - pd.to_datetime(frame["timestamp"], utc=True)).dt.total_seconds().to_numpy() / DAY)
    items = frame["product_id"].astype(str).map(item_index).to_numpy(np.int64)
    w = frame["kind"].map(weights).to_numpy(np.float32)
    order = np.argsort(age, kind="stable")
    return items[order], np.maximum(age[order], 0).astype(np.float32), w[order]


def decay(ages: np.ndarray, halflife: float | None) -> np.ndarray:
    """Exponential recency weight: 1 today, 1/2 after ``halflife`` days."""
    if not halflife:
        return np.ones_like(ages, dtype=np.float32)
    return (0.5 ** (np.asarray(ages, dtype=np.float32) / halflife)).astype(np.float32)
