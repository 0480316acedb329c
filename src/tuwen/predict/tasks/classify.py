"""``classify``: one label per product (fashion ``articleType``, H&M ``product_type_name``, Flipkart ``category:1``).

Loss: cross-entropy with (softened) class weights, so rare classes are not ignored. Metrics:
accuracy, macro-F1, top-3 accuracy. Classes with fewer than ``min_count`` items are dropped
before the split (a class seen twice can be neither learnt nor measured), and that is reported.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from tuwen.metrics.classification import classification_metrics
from tuwen.predict.tasks.base import (
    LabelTarget,
    Task,
    describe_label,
    drop_rare,
    label_loss,
)


class ClassifyTask(Task):
    name = "classify"
    primary = "macro_f1"

    def __init__(self, target: str, min_count: int = 20, class_weight: str = "sqrt", smoothing: float = 0.05):
        self.label = LabelTarget(target)
        self.min_count = min_count
        self.class_weight = class_weight
        self.smoothing = smoothing
        self.notes: list[str] = []

    @property
    def target(self) -> str:
        return self.label.column

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        kept, self.notes = drop_rare(frame, self.label.values(frame), self.min_count)
        if kept.empty:
            raise ValueError(f"no class of {self.target!r} has {self.min_count} or more items; lower --min-count")
        return kept

    def strata(self, frame: pd.DataFrame) -> np.ndarray:
        return self.label.values(frame).to_numpy()

    def fit(self, frame: pd.DataFrame) -> None:
        self.label.fit(frame, self.class_weight)

    def heads(self) -> dict[str, int]:
        return {self.target: len(self.label.classes)}

    def targets(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {self.target: self.label.encode(frame)}

    def head_loss(self, head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return label_loss(output, target, self.label.weights, self.smoothing)

    def transform(self, head: str, output: torch.Tensor) -> np.ndarray:
        return torch.softmax(output.float(), dim=-1).cpu().numpy()

    def metrics(self, predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
        return classification_metrics(predictions[self.target], targets[self.target])

    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        return describe_label(self.label, predictions[self.target][row])

    def confidence(self, predictions: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> np.ndarray:
        chosen = reference[self.target].argmax(axis=1)
        return predictions[self.target][np.arange(len(chosen)), chosen]

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label.state(), "min_count": self.min_count,
                "class_weight": self.class_weight, "smoothing": self.smoothing, "notes": self.notes}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ClassifyTask:
        task = cls(state["label"]["column"], state["min_count"], state["class_weight"], state["smoothing"])
        task.label = LabelTarget.from_state(state["label"])
        task.notes = list(state.get("notes", []))
        return task
