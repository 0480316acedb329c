"""``review``: review text (+ review photos where present) → rating 1-5, with sentiment and per-product aggregates.

Items are rows of the workspace's ``reviews`` table; their text fields are ``text`` and ``title``
(the Amazon summary), embedded on first use into the workspace cache. Copies of one review (the
Amazon 5-core file repeats a review once per product variant) share a ``group``: the split is by
group, and training and scoring keep one row per group, so no score is inflated by memorised
copies. Metrics: accuracy, macro-F1, MAE of the rating, and sentiment accuracy (1-2 negative,
3 neutral, 4-5 positive).

A rating is a class *and* a number: class-balanced cross-entropy alone (what macro-F1 wants)
treats "5 predicted as 1" like "5 predicted as 4", and with the heavy weights of the rare 1- and
2-star classes the network learnt to call some glowing reviews 1-star, which costs 4 points of
MAE each (measured: macro-F1 on a par with logistic regression, MAE 0.73 against its 0.44). The
loss therefore adds ``ordinal`` × the expected distance between the predicted distribution and
the true rating, ``Σ_k p_k |k - y|``: mass on far ratings costs in proportion to how far they are.
The predicted rating stays the most probable class, as for the scikit-learn baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, mean_absolute_error

from tuwen.metrics.classification import classification_metrics
from tuwen.predict.tasks.base import LabelTarget, describe_label, label_loss
from tuwen.predict.tasks.classify import ClassifyTask


class RatingTarget(LabelTarget):
    """Ratings as class labels "1".."5" (a 4.0 in the file is class "4")."""

    def values(self, frame: pd.DataFrame) -> pd.Series:
        ratings = pd.to_numeric(frame[self.column], errors="coerce") if self.column in frame else \
            pd.Series(np.nan, index=frame.index)
        return ratings.map(lambda r: str(int(round(r))) if np.isfinite(r) else "")


def sentiment(ratings: np.ndarray) -> np.ndarray:
    return np.select([ratings <= 2, ratings == 3], ["negative", "neutral"], "positive")


class ReviewTask(ClassifyTask):
    """A classification of ratings (targets, strata, class weights, probabilities as for ``classify``) with an
    ordinal loss term and rating metrics."""

    name = "review"
    items = "reviews"
    default_text_fields = ("text", "title")

    def __init__(self, target: str = "rating", class_weight: str = "balanced", smoothing: float = 0.05,
                 dedupe: bool = True, ordinal: float = 1.0):
        super().__init__(target, min_count=1, class_weight=class_weight, smoothing=smoothing)
        self.label = RatingTarget(target)
        self.dedupe = dedupe
        self.ordinal = ordinal

    def rating_values(self) -> np.ndarray:
        """The rating of each class index."""
        return np.array([int(c) for c in self.label.classes])

    def group_column(self, frame: pd.DataFrame) -> str | None:
        return "group" if "group" in frame else None

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        values = self.label.values(frame)
        kept = frame[(values != "").to_numpy()]
        self.notes = [f"{len(frame) - len(kept)} reviews without a rating dropped"] if len(kept) < len(frame) else []
        if self.dedupe and "group" in kept:
            before = len(kept)
            kept = kept.drop_duplicates("group")
            self.notes.append(f"{before} review lines → {len(kept)} distinct reviews (one row per group)")
        if kept.empty:
            raise ValueError("no review has a rating")
        return kept.reset_index(drop=True)

    def head_loss(self, head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, valid = label_loss(output, target, self.label.weights, self.smoothing)
        if self.ordinal > 0:
            ratings = torch.tensor(self.rating_values(), dtype=output.dtype, device=output.device)
            distance = (ratings.unsqueeze(0) - ratings[target.clamp(min=0)].unsqueeze(1)).abs()
            expected = (torch.softmax(output, dim=-1) * distance).sum(dim=-1)
            loss = loss + self.ordinal * expected * valid
        return loss, valid

    def ratings(self, probabilities: np.ndarray) -> np.ndarray:
        return self.rating_values()[probabilities.argmax(axis=1)]

    def metrics(self, predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
        probabilities, target = predictions[self.target], targets[self.target]
        scores = classification_metrics(probabilities, target)
        known = target >= 0
        if known.any():
            true, predicted = self.rating_values()[target[known]], self.ratings(probabilities[known])
            scores["mae"] = float(mean_absolute_error(true, predicted))
            scores["sentiment_accuracy"] = float(accuracy_score(sentiment(true), sentiment(predicted)))
        return scores

    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        described = describe_label(self.label, predictions[self.target][row])
        rating = int(described["prediction"])
        return {"prediction": rating, "sentiment": str(sentiment(np.array([rating]))[0]),
                "scores": described["scores"]}

    def aggregate(self, frame: pd.DataFrame, ratings: np.ndarray) -> pd.DataFrame:
        """Per product: mean predicted rating, share of positive reviews and the number of reviews behind them.

        Takes the ratings ``predict`` already returned, so a file of reviews is encoded and scored once.
        """
        ratings = np.asarray(ratings)
        table = pd.DataFrame({"product_id": frame["product_id"].to_numpy(), "rating": ratings,
                              "positive": ratings >= 4})
        grouped = table.groupby("product_id").agg(score=("rating", "mean"), positive_share=("positive", "mean"),
                                                  count=("rating", "size"))
        return grouped.reset_index().sort_values(["count", "product_id"], ascending=[False, True])

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label.state(), "class_weight": self.class_weight,
                "smoothing": self.smoothing, "dedupe": self.dedupe, "ordinal": self.ordinal, "notes": self.notes}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReviewTask:
        task = cls(state["label"]["column"], state["class_weight"], state["smoothing"], state["dedupe"],
                   state.get("ordinal", 0.0))
        task.label = RatingTarget.from_state(state["label"])
        task.notes = list(state.get("notes", []))
        return task
