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

Other targets of a review (``--target``): ``recommended`` ("recommends it", 1/0) and ``label`` (a sentiment
label such as the Chinese reviews' "1"/"0") are binary: the same class-balanced cross-entropy, no ordinal term,
and ROC AUC besides accuracy and macro-F1. Any other column (``category``: the reviewed product's category) is a
plain class label. The model reads the review's words only (``text``, ``title``), so a rating never becomes a
feature of "recommends it" or the other way round.

Rows: a review without words (no text, no title) is dropped, and copies are de-duplicated by (``group``, title,
text): ``group`` is what must stay on one side of the split (a reviewer's copies on Amazon, a product on the
women's clothing set, a repeated text on the Chinese set), so a copy never sits on both sides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, mean_absolute_error, roc_auc_score

from tuwen.metrics.classification import classification_metrics
from tuwen.predict.tasks.base import LabelTarget, describe_label, drop_rare, label_loss
from tuwen.predict.tasks.classify import ClassifyTask


class RatingTarget(LabelTarget):
    """Ratings as class labels "1".."5" (a 4.0 in the file is class "4")."""

    def values(self, frame: pd.DataFrame) -> pd.Series:
        ratings = pd.to_numeric(frame[self.column], errors="coerce") if self.column in frame else \
            pd.Series(np.nan, index=frame.index)
        return ratings.map(lambda r: str(int(round(r))) if np.isfinite(r) else "")


class FlagTarget(LabelTarget):
    """A yes/no column stored as a number (``recommended`` 1.0 / 0.0) as class labels "0" / "1"."""

    def values(self, frame: pd.DataFrame) -> pd.Series:
        numbers = pd.to_numeric(frame[self.column], errors="coerce") if self.column in frame else \
            pd.Series(np.nan, index=frame.index)
        return numbers.map(lambda v: str(int(v)) if np.isfinite(v) else "")


NUMERIC_FLAGS = ("recommended",)  # review columns holding 1.0 / 0.0
POSITIVE = "1"  # the positive class of a binary review target (recommends it / positive sentiment)


def review_target(column: str) -> LabelTarget:
    """The label encoder of a review column: ratings, numeric flags, or plain labels."""
    if column == "rating":
        return RatingTarget(column)
    return FlagTarget(column) if column in NUMERIC_FLAGS else LabelTarget(column)


def sentiment(ratings: np.ndarray) -> np.ndarray:
    return np.select([ratings <= 2, ratings == 3], ["negative", "neutral"], "positive")


class ReviewTask(ClassifyTask):
    """A classification of ratings (targets, strata, class weights, probabilities as for ``classify``) with an
    ordinal loss term and rating metrics."""

    name = "review"
    items = "reviews"
    default_text_fields = ("text", "title")

    def __init__(self, target: str = "rating", class_weight: str = "balanced", smoothing: float = 0.05,
                 dedupe: bool = True, ordinal: float = 1.0, min_count: int = 1):
        super().__init__(target, min_count=min_count, class_weight=class_weight, smoothing=smoothing)
        self.label = review_target(target)
        self.dedupe = dedupe
        self.ordinal = ordinal if self.is_rating else 0.0
        self.primary = "macro_f1" if target in {"rating", "category"} else "auc"

    @property
    def is_rating(self) -> bool:
        return isinstance(self.label, RatingTarget)

    @property
    def is_binary(self) -> bool:
        """Two classes, one of them "1": a recommends-it flag or a positive/negative label."""
        return not self.is_rating and POSITIVE in self.label.classes and len(self.label.classes) == 2

    def fit(self, frame: pd.DataFrame) -> None:
        super().fit(frame)
        if self.primary == "auc" and not self.is_binary:  # e.g. a label column with three values
            self.primary = "macro_f1"

    def rating_values(self) -> np.ndarray:
        """The rating of each class index."""
        return np.array([int(c) for c in self.label.classes])

    def group_column(self, frame: pd.DataFrame) -> str | None:
        return "group" if "group" in frame else None

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.target not in frame and not self.is_rating:
            raise KeyError(f"reviews have no column {self.target!r}; review targets: rating, recommended, label, "
                           "category")
        values = self.label.values(frame)
        kept = frame[(values != "").to_numpy()]
        self.notes = [f"{len(frame) - len(kept)} reviews without a {self.target} dropped"] \
            if len(kept) < len(frame) else []
        words = _words(kept)
        if (words == "").any():
            self.notes.append(f"{int((words == '').sum())} reviews without words (no text or title) dropped")
            kept, words = kept[(words != "").to_numpy()], words[words != ""]
        if self.dedupe and "group" in kept:
            before = len(kept)
            key = kept["group"].astype(str) + "\x1f" + words.to_numpy()
            kept = kept[~key.duplicated().to_numpy()]
            self.notes.append(f"{before} review lines → {len(kept)} distinct reviews (one row per group and text)")
        if kept.empty:
            raise ValueError(f"no review has a {self.target} and words")
        kept = kept.reset_index(drop=True)
        # a set whose reviews have no titles at all (the Chinese reviews) reads the text alone
        self.default_text_fields = tuple(f for f in ReviewTask.default_text_fields
                                         if f in kept and (kept[f].fillna("") != "").any()) or ("text",)
        if self.min_count > 1:
            kept, dropped = drop_rare(kept, self.label.values(kept), self.min_count)
            self.notes += dropped
        return kept

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
        if known.any() and self.is_rating:
            true, predicted = self.rating_values()[target[known]], self.ratings(probabilities[known])
            scores["mae"] = float(mean_absolute_error(true, predicted))
            scores["sentiment_accuracy"] = float(accuracy_score(sentiment(true), sentiment(predicted)))
        elif known.any() and self.is_binary:
            positive = self.label.classes.index(POSITIVE)
            truth = target[known] == positive
            scores["auc"] = float(roc_auc_score(truth, probabilities[known][:, positive])) \
                if 0 < truth.sum() < len(truth) else float("nan")
        return scores

    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        described = describe_label(self.label, predictions[self.target][row])
        if self.is_rating:
            rating = int(described["prediction"])
            return {"prediction": rating, "sentiment": str(sentiment(np.array([rating]))[0]),
                    "scores": described["scores"]}
        if self.is_binary:
            probability = float(predictions[self.target][row][self.label.classes.index(POSITIVE)])
            out: dict[str, Any] = {"prediction": described["prediction"], "probability": round(probability, 4)}
            if self.target != "recommended":
                out["sentiment"] = "positive" if described["prediction"] == POSITIVE else "negative"
            return {**out, "scores": described["scores"]}
        return described

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
                "smoothing": self.smoothing, "dedupe": self.dedupe, "ordinal": self.ordinal,
                "min_count": self.min_count, "notes": self.notes}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ReviewTask:
        column = state["label"]["column"]
        task = cls(column, state["class_weight"], state["smoothing"], state["dedupe"], state.get("ordinal", 0.0),
                   state.get("min_count", 1))
        task.label = type(review_target(column)).from_state(state["label"])
        task.notes = list(state.get("notes", []))
        return task


def _words(frame: pd.DataFrame) -> pd.Series:
    """A review's words, title and text together, lower-cased: what decides "no words" and what copies share."""
    parts = [frame[c].fillna("").astype(str) if c in frame else pd.Series("", index=frame.index)
             for c in ("title", "text")]
    return (parts[0] + "\n" + parts[1]).str.strip().str.lower()
