"""``tag``: several attributes of a product at once (colour, gender, usage, season, garment group…).

One classification head per attribute over one shared fused representation (multi-head), so
the attributes share what the image and text encoders see. A product missing one attribute
still trains the others (its missing target is masked out of the loss). Metrics per attribute
(accuracy, macro-F1, micro-F1) plus their means, which early stopping watches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from tuwen.metrics.classification import classification_metrics
from tuwen.predict.tasks.base import LabelTarget, Task, describe_label, label_loss


class TagTask(Task):
    name = "tag"
    primary = "macro_f1"

    def __init__(self, targets: list[str], min_count: int = 20, class_weight: str = "sqrt", smoothing: float = 0.05):
        if not targets:
            raise ValueError("tag needs at least one attribute")
        self.labels = {t: LabelTarget(t) for t in targets}
        self.min_count = min_count
        self.class_weight = class_weight
        self.smoothing = smoothing
        self.notes: list[str] = []

    @property
    def target(self) -> str:
        return ",".join(self.labels)

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rare values of an attribute become "missing" for that attribute only; rows with no target at all go."""
        frame = frame.copy()
        self.notes = []
        known = np.zeros(len(frame), dtype=bool)
        for column, label in self.labels.items():
            values = label.values(frame)
            counts = values[values != ""].value_counts()
            rare = set(counts[counts < self.min_count].index)
            if rare:
                self.notes.append(f"{column}: {len(rare)} values with < {self.min_count} items treated as missing")
            values = values.where(~values.isin(rare), "")
            frame[f"_tag_{column}"] = values.to_numpy()
            known |= (values != "").to_numpy()
        return frame[known].reset_index(drop=True)

    def strata(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[f"_tag_{next(iter(self.labels))}"].to_numpy()

    def _relabelled(self, frame: pd.DataFrame, column: str) -> pd.DataFrame:
        own = f"_tag_{column}"
        if own in frame:
            return pd.DataFrame({column: frame[own].to_numpy()})
        return frame

    def fit(self, frame: pd.DataFrame) -> None:
        for column, label in self.labels.items():
            label.fit(self._relabelled(frame, column), self.class_weight)

    def heads(self) -> dict[str, int]:
        return {column: len(label.classes) for column, label in self.labels.items()}

    def targets(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {column: label.encode(self._relabelled(frame, column)) for column, label in self.labels.items()}

    def head_loss(self, head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return label_loss(output, target, self.labels[head].weights, self.smoothing)

    def transform(self, head: str, output: torch.Tensor) -> np.ndarray:
        return torch.softmax(output.float(), dim=-1).cpu().numpy()

    def metrics(self, predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
        scores: dict[str, float] = {}
        for column in self.labels:
            scores.update(classification_metrics(predictions[column], targets[column], prefix=f"{column}/"))
        for metric in ("accuracy", "macro_f1", "micro_f1"):
            values = [scores[f"{c}/{metric}"] for c in self.labels if f"{c}/{metric}" in scores]
            scores[metric] = float(np.mean(values)) if values else float("nan")
        return scores

    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        parts = {column: describe_label(label, predictions[column][row], top=3) for column, label in
                 self.labels.items()}
        return {"prediction": {c: p["prediction"] for c, p in parts.items()},
                "scores": {c: p["scores"] for c, p in parts.items()}}

    def confidence(self, predictions: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> np.ndarray:
        per_head = []
        for column in self.labels:
            chosen = reference[column].argmax(axis=1)
            per_head.append(predictions[column][np.arange(len(chosen)), chosen])
        return np.mean(per_head, axis=0)

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "labels": [label.state() for label in self.labels.values()],
                "min_count": self.min_count, "class_weight": self.class_weight, "smoothing": self.smoothing,
                "notes": self.notes}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TagTask:
        labels = [LabelTarget.from_state(s) for s in state["labels"]]
        task = cls([label.column for label in labels], state["min_count"], state["class_weight"], state["smoothing"])
        task.labels = {label.column: label for label in labels}
        task.notes = list(state.get("notes", []))
        return task
