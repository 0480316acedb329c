"""``purchase``: will this shopper buy this product? The task (targets, loss, metrics); the model that learns it,
its pairs and its temporal split are in :mod:`tuwen.predict.purchase`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import log_loss, roc_auc_score
from torch.nn import functional as F

from tuwen.predict.tasks.base import Task


class PurchaseTask(Task):
    name = "purchase"
    primary = "auc"
    default_text_fields = ("title",)

    def __init__(self, negatives: int = 4):
        self.negatives = negatives
        self.notes: list[str] = []

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    def fit(self, frame: pd.DataFrame) -> None:
        return None

    def heads(self) -> dict[str, int]:
        return {"purchase": 1}

    def targets(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"purchase": frame["label"].to_numpy(dtype=np.float32)}

    def head_loss(self, head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.binary_cross_entropy_with_logits(output[:, 0], target, reduction="none"), torch.ones_like(
            target, dtype=torch.bool)

    def transform(self, head: str, output: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(output[:, 0].double()).cpu().numpy()

    def metrics(self, predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
        y, p = targets["purchase"], predictions["purchase"]
        if len(np.unique(y)) < 2:
            return {"n": float(len(y))}
        return {"auc": float(roc_auc_score(y, p)), "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7))),
                "n": float(len(y)), "positives": float(y.sum())}

    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        value = round(float(predictions["purchase"][row]), 4)
        return {"prediction": value, "scores": {"purchase": value}}

    def confidence(self, predictions: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> np.ndarray:
        return predictions["purchase"]

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "negatives": self.negatives, "notes": self.notes}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PurchaseTask:
        task = cls(state["negatives"])
        task.notes = list(state.get("notes", []))
        return task
