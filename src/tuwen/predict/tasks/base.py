"""The task contract and what label tasks share: what to predict (targets), how wrong a prediction is
(loss) and how to score it (metrics).

A task knows nothing about modalities or fusion: it turns item rows into per-head targets, turns
the network's raw outputs into probabilities or catalog units, and computes its metrics with
scikit-learn. That is why one training loop (:mod:`tuwen.train`) serves every task.

Tasks by name: ``classify``, ``tag``, ``price``, ``review`` (see :func:`make_task`); ``purchase``
pairs shoppers with products and has its own pipeline in :mod:`tuwen.predict.tasks.purchase`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.utils.class_weight import compute_class_weight
from torch.nn import functional as F

from tuwen.predict.features import column_values, parse_attributes


class Task(ABC):
    """The contract every task implements; ``state()``/``from_state()`` save its label encoders as JSON."""

    name: str = ""
    items: str = "products"  # the workspace table whose rows are the items
    default_text_fields: tuple[str, ...] = ("title", "description")
    primary: str = ""  # the validation metric early stopping watches
    higher_is_better: bool = True

    @abstractmethod
    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows this task can learn from (a target present, rare classes dropped), with reasons in ``notes``."""

    @abstractmethod
    def fit(self, frame: pd.DataFrame) -> None:
        """Learn label encoders / target scaling from the *training* rows only."""

    @abstractmethod
    def heads(self) -> dict[str, int]:
        """Output width of each head."""

    @abstractmethod
    def targets(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Encoded targets per head (-1 or NaN where a row has none)."""

    @abstractmethod
    def head_loss(self, head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss and a validity mask (False where the target is missing)."""

    def loss(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
        """Sum over heads of each head's mean loss over the rows that have a target: what every model of the
        task minimises (the networks' fused outputs, the linear member)."""
        total = torch.zeros((), device=next(iter(outputs.values())).device)
        for head, output in outputs.items():
            losses, valid = self.head_loss(head, output, targets[head])
            total = total + losses.sum() / valid.sum().clamp(min=1)
        return total

    @abstractmethod
    def transform(self, head: str, output: torch.Tensor) -> np.ndarray:
        """Raw network output → probabilities (classes) or catalog units (regression)."""

    @abstractmethod
    def metrics(self, predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
        """Scores of transformed predictions against encoded targets."""

    @abstractmethod
    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        """One item's prediction as JSON-ready ``{"prediction": ..., "scores": {...}}``."""

    @abstractmethod
    def confidence(self, predictions: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> np.ndarray:
        """Per-item score used for leave-one-modality-out contributions: the probability of the class
        predicted in ``reference`` (classes) or the predicted value (regression)."""

    @abstractmethod
    def state(self) -> dict[str, Any]: ...

    def strata(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Labels to stratify the split by (None: no stratification)."""
        return None

    def group_column(self, frame: pd.DataFrame) -> str | None:
        """Rows sharing this column's value stay on one side of the split (H&M ``product_code``)."""
        return "product_code" if "product_code" in _attribute_keys(frame) else None

    notes: list[str]


def _attribute_keys(frame: pd.DataFrame, sample: int = 50) -> set[str]:
    return {key for attributes in parse_attributes(frame.head(sample)) for key in attributes}


def group_values(frame: pd.DataFrame, column: str) -> np.ndarray:
    """Group ids for a split (a column or an attribute); rows without one form their own group."""
    values = column_values(frame, column)
    return np.array([v if v else f"__row{i}" for i, v in enumerate(values)])


# ------------------------------------------------------------------------------------------- labels


class LabelTarget:
    """One categorical target: its classes (sorted, from training rows) and class weights."""

    def __init__(self, column: str, classes: list[str] | None = None, weights: list[float] | None = None):
        self.column = column
        self.classes = classes or []
        self.weights = weights or []

    def values(self, frame: pd.DataFrame) -> pd.Series:
        return column_values(frame, self.column)

    def fit(self, frame: pd.DataFrame, class_weight: str = "sqrt") -> None:
        values = self.values(frame)
        values = values[values != ""]
        self.classes = sorted(values.unique())
        encoded = np.searchsorted(self.classes, values)
        if class_weight == "none" or len(self.classes) < 2:
            self.weights = [1.0] * len(self.classes)
            return
        balanced = compute_class_weight("balanced", classes=np.arange(len(self.classes)), y=encoded)
        # "sqrt" softens balancing: rare classes count more, without trading away much accuracy.
        weights = np.sqrt(balanced) if class_weight == "sqrt" else balanced
        self.weights = (weights / weights.mean()).tolist()

    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index.get(v, -1) for v in self.values(frame)], dtype=np.int64)

    def state(self) -> dict[str, Any]:
        return {"column": self.column, "classes": self.classes, "weights": self.weights}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LabelTarget:
        return cls(state["column"], list(state["classes"]), list(state["weights"]))


def label_loss(output: torch.Tensor, target: torch.Tensor, weights: list[float],
               smoothing: float) -> tuple[torch.Tensor, torch.Tensor]:
    valid = target >= 0
    weight = torch.tensor(weights, dtype=output.dtype, device=output.device) if weights else None
    loss = F.cross_entropy(output, target.clamp(min=0), weight=weight, reduction="none", label_smoothing=smoothing)
    return loss * valid, valid


def describe_label(target: LabelTarget, probabilities: np.ndarray, top: int = 5) -> dict[str, Any]:
    order = np.argsort(-probabilities)[:top]
    return {"prediction": target.classes[int(order[0])],
            "scores": {target.classes[int(i)]: round(float(probabilities[i]), 4) for i in order}}


def drop_rare(frame: pd.DataFrame, values: pd.Series, min_count: int) -> tuple[pd.DataFrame, list[str]]:
    """Rows of classes with fewer than ``min_count`` items are dropped (the issue's "classes with ≥ 20 products")."""
    counts = values[values != ""].value_counts()
    keep_classes = set(counts[counts >= min_count].index)
    keep = values.isin(keep_classes).to_numpy()
    notes = [f"{int((values == '').sum())} rows without a target dropped"] if (values == "").any() else []
    dropped = sorted(set(counts.index) - keep_classes)
    if dropped:
        notes.append(f"{len(dropped)} classes with < {min_count} items dropped "
                     f"({int(counts[dropped].sum())} rows)")
    return frame[keep].reset_index(drop=True), notes
