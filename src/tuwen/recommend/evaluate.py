"""The evaluation protocol: a temporal split and Kaggle-style ranking metrics with bootstrap intervals.

Protocol (the H&M competition's, and the one the benchmark quotes):

* test = purchases in the last ``test_days`` days of the data (by calendar day, so a test week
  is whole days), train = every event before;
* scored shoppers = those with a test purchase *and* at least one training purchase (a
  shopper without history gets popular items from every model alike and only adds noise);
* truth per shopper = the distinct products bought in the test window; recommendations are
  not filtered (re-buying is allowed and common);
* MAP@12 exactly as Kaggle: precision at each hit, summed, divided by min(#truth, 12);
  Recall@12 = hits / #truth; NDCG@12 with binary gains; HR@12 = at least one hit;
  coverage = distinct recommended products / products the model can recommend;
  cold-start recall = of the test purchases of products never bought in training, the share
  that was in the shopper's top 12 (pooled over shoppers).

Test sets here are small (78 shoppers on the H&M sample), so every metric comes with a
bootstrap 95% interval over shoppers, and model comparisons with a paired bootstrap.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tuwen.metrics.intervals import bootstrap_interval
from tuwen.metrics.ranking import average_precision, ndcg_at, recall_at
from tuwen.store.events import EventArrays

METRICS = ("map", "recall", "ndcg", "hr")


@dataclass
class Split:
    """A temporal train / test split of the events (``train`` a frame, or coded arrays when split from them)."""

    train: pd.DataFrame | EventArrays
    test: pd.DataFrame
    cut: pd.Timestamp
    truth: dict[str, list[str]]  # scored shopper -> distinct products bought in the test window

    @property
    def users(self) -> list[str]:
        return list(self.truth)

    @functools.cached_property
    def cold_items(self) -> set[str]:
        """Products bought in the test window and never before (by anyone)."""
        bought = self.train.items if isinstance(self.train, EventArrays) else self.train["product_id"]
        return set(self.test["product_id"]) - set(bought)

    def describe(self) -> dict[str, Any]:
        pairs = sum(len(v) for v in self.truth.values())
        cold = sum(1 for items in self.truth.values() for i in items if i in self.cold_items)
        return {"cut": str(self.cut.date()), "test_end": str(self.test["timestamp"].max().date()),
                "train_events": len(self.train), "test_purchases": len(self.test), "scored_users": len(self.truth),
                "truth_pairs": pairs, "cold_pairs": cold}


def temporal_split(interactions: pd.DataFrame | EventArrays, test_days: int = 7, end: pd.Timestamp | None = None,
                   kinds: Sequence[str] = ("purchase",)) -> Split:
    """Train = all events before the last ``test_days`` calendar days (up to ``end``); test = purchases in them.

    Coded arrays (:func:`tuwen.store.events.read_event_arrays`) split without a frame of every event: the train
    part stays arrays (what the models fit on), numbered as the frame's train part would be, and only the test
    purchases become a frame.
    """
    if isinstance(interactions, EventArrays):
        return _split_arrays(interactions, test_days, end, kinds)
    frame = interactions.copy()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    end = pd.Timestamp(end) if end is not None else frame["timestamp"].max()
    cut = end.floor("D") - pd.Timedelta(days=test_days - 1)
    train = frame[frame["timestamp"] < cut]
    test = frame[(frame["timestamp"] >= cut) & (frame["timestamp"] < end.floor("D") + pd.Timedelta(days=1))
                 & frame["kind"].isin(list(kinds))]
    buyers = set(train.loc[train["kind"].isin(list(kinds)), "user_id"])
    return Split(train, test, cut, _truth(test, buyers))


def _truth(test: pd.DataFrame, buyers: set[str]) -> dict[str, list[str]]:
    scored = test[test["user_id"].isin(buyers)]
    return {u: list(dict.fromkeys(g["product_id"])) for u, g in scored.sort_values("timestamp").groupby("user_id")}


def _split_arrays(events: EventArrays, test_days: int, end: pd.Timestamp | None, kinds: Sequence[str]) -> Split:
    """:func:`temporal_split` of coded arrays: the same cut, train events, test purchases and truth."""
    if events.empty:
        raise ValueError("no events to split")
    micros = events.time
    end = pd.Timestamp(end) if end is not None else pd.Timestamp(int(micros.max()), unit="us", tz="UTC")
    cut = end.floor("D") - pd.Timedelta(days=test_days - 1)
    before = micros < _micros(cut)
    in_test = ~before & (micros < _micros(end.floor("D") + pd.Timedelta(days=1))) & events.kind_mask(kinds)
    test = pd.DataFrame({
        "user_id": events.users[events.user[in_test]], "product_id": events.items[events.item[in_test]],
        "timestamp": pd.to_datetime(micros[in_test], unit="us", utc=True),
        "kind": np.asarray(events.kinds, dtype=object)[events.kind[in_test]],
        "value": events.value[in_test].astype(np.float64)})
    train = events.subset(before)
    buyers = set(train.users[np.unique(train.user[train.kind_mask(kinds)])])
    return Split(train, test, cut, _truth(test, buyers))


def _micros(moment: pd.Timestamp) -> int:
    stamp = moment.tz_localize("UTC") if moment.tzinfo is None else moment.tz_convert("UTC")
    return int(stamp.value // 1000)


# ------------------------------------------------------------------------------------------------ metrics


def user_metrics(truth: Sequence[str], ranked: Sequence[str], k: int = 12) -> dict[str, float]:
    hits = len(set(truth) & set(ranked[:k]))
    return {"map": average_precision(ranked, set(truth), k), "recall": recall_at(ranked, set(truth), k),
            "ndcg": ndcg_at(ranked, set(truth), k), "hr": float(hits > 0)}


@dataclass
class Result:
    """Per-shopper metrics plus pooled ones; ``summary()`` gives means and bootstrap intervals."""

    name: str
    per_user: pd.DataFrame
    coverage: float
    cold_recall: float
    cold_hits: int
    cold_total: int
    ms_per_user: float
    fit_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.name, "users": len(self.per_user)}
        for metric in METRICS:
            values = self.per_user[metric].to_numpy()
            low, high = bootstrap_interval(values, n_boot, seed)
            out[metric] = float(values.mean()) if len(values) else 0.0
            out[f"{metric}_low"], out[f"{metric}_high"] = low, high
        out.update({"coverage": self.coverage, "cold_recall": self.cold_recall, "cold_hits": self.cold_hits,
                    "cold_total": self.cold_total, "ms_per_user": self.ms_per_user, "fit_seconds": self.fit_seconds})
        return out


def evaluate_rankings(name: str, rankings: dict[str, list[str]], split: Split, k: int = 12,
                      n_recommendable: int | None = None, ms_per_user: float = 0.0) -> Result:
    """Metrics for precomputed rankings (shopper -> product ids, best first)."""
    rows = []
    cold, cold_hits, cold_total = split.cold_items, 0, 0
    recommended: set[str] = set()
    for user, truth in split.truth.items():
        ranked = list(rankings.get(user, []))[:k]
        recommended.update(ranked)
        rows.append({"user": user, **user_metrics(truth, ranked, k)})
        cold_truth = [i for i in truth if i in cold]
        cold_total += len(cold_truth)
        cold_hits += len(set(cold_truth) & set(ranked))
    per_user = pd.DataFrame(rows, columns=["user", *METRICS])
    coverage = len(recommended) / n_recommendable if n_recommendable else float("nan")
    return Result(name, per_user, coverage, cold_hits / cold_total if cold_total else 0.0, cold_hits, cold_total,
                  ms_per_user)


def evaluate_model(model: Any, split: Split, k: int = 12, name: str | None = None,
                   recommend: Callable[[str], list[str]] | None = None) -> Result:
    """Rank for every scored shopper with ``model.recommend`` (timed per shopper) and compute metrics."""
    recommend = recommend or (lambda user: model.recommend(user, k))
    rankings, times = {}, []
    for user in split.truth:
        started = time.perf_counter()
        rankings[user] = recommend(user)
        times.append(time.perf_counter() - started)
    n_items = len(getattr(model, "item_ids", [])) or None
    result = evaluate_rankings(name or getattr(model, "name", "model"), rankings, split, k, n_items,
                               1000 * float(np.median(times)) if times else 0.0)
    result.fit_seconds = getattr(model, "meta", {}).get("fit_seconds")
    result.extra["rankings"] = rankings  # benchmarks compare two models' lists shopper by shopper
    return result


def results_table(results: Sequence[Result], n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per model: means, 95% intervals, coverage, cold-start recall, speed."""
    return pd.DataFrame([r.summary(n_boot, seed) for r in results])
