"""``intent``: route a customer-service message — its intent (or coarse category) and whether a person should
take it instead.

Items are rows of the workspace's ``messages`` table (text, intent, category, flags); the only input is the
message's text. The classifier is ``classify``'s (class-weighted cross-entropy, accuracy / macro-F1), plus a
calibrated "needs a person" rule: a message whose top probability is below ``threshold`` is handed to a person.
The threshold is the lowest confidence at which the messages the model keeps are still right at least
``precision`` of the time (95% by default), chosen on predictions the model did not train on (its out-of-fold
or validation predictions, see :class:`tuwen.predict.intent.IntentModel`); the metrics report that threshold,
the share of messages the model keeps (coverage) and its accuracy on them.

Exact repeats of a message (same words, any case) share a group, so a copy is never on both sides of a split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tuwen.predict.tasks.classify import ClassifyTask

TEXT_KEY = "_text_key"  # the prepared frame's column that groups exact repeats of a message


def selective_threshold(confidence: np.ndarray, correct: np.ndarray, precision: float) -> tuple[float, float]:
    """(threshold, coverage): the lowest confidence threshold whose kept rows (confidence ≥ threshold) are right at
    least ``precision`` of the time, and the share of rows it keeps.

    Rows are sorted by confidence; the threshold is the confidence of the last row of the longest prefix whose
    accuracy reaches ``precision`` (ties included, so the rule is the same on new rows). None reaching it:
    a threshold above every confidence (coverage 0, everything goes to a person).
    """
    if len(confidence) == 0:
        return 1.0, 0.0
    order = np.argsort(-confidence, kind="stable")
    sorted_conf = confidence[order]
    accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # only cut between distinct confidences: rows with equal confidence are kept or handed over together
    last_of_tie = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    good = np.flatnonzero((accuracy >= precision) & last_of_tie)
    if len(good) == 0:
        return float(np.nextafter(sorted_conf[0], np.inf)), 0.0
    k = int(good[-1])
    return float(sorted_conf[k]), float((k + 1) / len(order))


class IntentTask(ClassifyTask):
    """A message's intent (``target="intent"``) or category, with a confidence and a "needs a person" flag."""

    name = "intent"
    items = "messages"
    default_text_fields = ("text",)
    primary = "macro_f1"

    def __init__(self, target: str = "intent", min_count: int = 5, class_weight: str = "sqrt",
                 smoothing: float = 0.05, precision: float = 0.95, threshold: float | None = None):
        super().__init__(target, min_count=min_count, class_weight=class_weight, smoothing=smoothing)
        self.precision = precision
        self.threshold = threshold  # set after training from held-out predictions (IntentModel)
        self.categories: dict[str, str] = {}  # intent → its category, when every intent has one

    @property
    def tag(self) -> str:
        """Metric-name suffix of the target precision: ``95`` for 0.95."""
        return f"{round(self.precision * 100):g}"

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.target not in frame:
            raise KeyError(f"messages have no column {self.target!r}; intent targets: intent, category")
        kept = super().prepare(frame)
        kept[TEXT_KEY] = kept["text"].fillna("").astype(str).str.lower().str.split().str.join(" ")
        return kept

    def group_column(self, frame: pd.DataFrame) -> str | None:
        return TEXT_KEY if TEXT_KEY in frame else None

    def fit(self, frame: pd.DataFrame) -> None:
        super().fit(frame)
        self.categories = {}
        if self.target == "intent" and "category" in frame:
            pairs = frame[["intent", "category"]].astype(str).drop_duplicates()
            if not pairs["intent"].duplicated().any():  # each intent belongs to exactly one category
                self.categories = dict(zip(pairs["intent"], pairs["category"], strict=True))

    def metrics(self, predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
        scores = super().metrics(predictions, targets)
        probabilities, target = predictions[self.target], targets[self.target]
        known = target >= 0
        if not known.any():
            return scores
        confidence = probabilities[known].max(axis=1)
        correct = probabilities[known].argmax(axis=1) == target[known]
        threshold, coverage = selective_threshold(confidence, correct, self.precision)
        scores[f"threshold_at_{self.tag}"] = threshold  # what these rows themselves would choose
        scores[f"coverage_at_{self.tag}"] = coverage
        if self.threshold is not None:  # the model's own (calibrated) threshold on these rows
            kept = confidence >= self.threshold
            scores["coverage"] = float(kept.mean())
            scores["covered_accuracy"] = float(correct[kept].mean()) if kept.any() else float("nan")
        return scores

    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        described = super().describe(predictions, row)
        confidence = float(predictions[self.target][row].max())
        out: dict[str, Any] = {"prediction": described["prediction"], "confidence": round(confidence, 4),
                               "needs_person": bool(self.threshold is not None and confidence < self.threshold)}
        if self.categories:
            out["category"] = self.categories.get(described["prediction"], "")
        return {**out, "scores": described["scores"]}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "precision": self.precision, "threshold": self.threshold,
                "categories": self.categories}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> IntentTask:
        base = ClassifyTask.from_state(state)
        task = cls(base.target, base.min_count, base.class_weight, base.smoothing, state.get("precision", 0.95),
                   state.get("threshold"))
        task.label, task.notes = base.label, base.notes
        task.categories = dict(state.get("categories") or {})
        return task
