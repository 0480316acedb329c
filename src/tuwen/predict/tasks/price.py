"""``price``: regression on log price, reported in the catalog's own price units.

Why log: catalog prices span orders of magnitude (Flipkart: 35 to 201,000 INR), and a pricing
error is felt in proportion to the price. The network predicts the standardised log price with a
Huber loss (robust to the odd mispriced listing); predictions come back as prices. Metrics: MAE in
catalog units, MAE of the log price, R² of the log price, and the median absolute percentage error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import mean_absolute_error, r2_score
from torch.nn import functional as F

from tuwen.predict.features import column_values
from tuwen.predict.tasks.base import Task


class PriceTask(Task):
    name = "price"
    primary = "mae_log"
    higher_is_better = False

    def __init__(self, target: str = "price"):
        self.target = target
        self.mean = 0.0
        self.std = 1.0
        self.notes: list[str] = []

    def _prices(self, frame: pd.DataFrame) -> np.ndarray:
        if self.target in frame:
            values = pd.to_numeric(frame[self.target], errors="coerce")
        else:
            values = pd.to_numeric(column_values(frame, self.target).replace("", np.nan), errors="coerce")
        return values.to_numpy(dtype=np.float64)

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        prices = self._prices(frame)
        keep = np.isfinite(prices) & (prices > 0)
        self.notes = [f"{int((~keep).sum())} rows without a positive {self.target} dropped"] if (~keep).any() else []
        if not keep.any():
            raise ValueError(f"no item has a positive {self.target!r}")
        return frame[keep].reset_index(drop=True)

    def strata(self, frame: pd.DataFrame) -> np.ndarray:
        """Quintiles of log price, so train and test cover the same price range."""
        logs = np.log(self._prices(frame))
        edges = np.quantile(logs, [0.2, 0.4, 0.6, 0.8])
        return np.digitize(logs, edges).astype(str)

    def fit(self, frame: pd.DataFrame) -> None:
        logs = np.log(self._prices(frame))
        self.mean, self.std = float(logs.mean()), float(logs.std() or 1.0)

    def heads(self) -> dict[str, int]:
        return {self.target: 1}

    def targets(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        prices = self._prices(frame)
        with np.errstate(divide="ignore", invalid="ignore"):
            return {self.target: np.where(prices > 0, np.log(prices), np.nan).astype(np.float32)}

    def head_loss(self, head: str, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        valid = torch.isfinite(target)
        scaled = (torch.nan_to_num(target) - self.mean) / self.std
        return F.smooth_l1_loss(output[:, 0], scaled, reduction="none") * valid, valid

    def transform(self, head: str, output: torch.Tensor) -> np.ndarray:
        return np.exp(output[:, 0].double().cpu().numpy() * self.std + self.mean)

    def metrics(self, predictions: dict[str, np.ndarray], targets: dict[str, np.ndarray]) -> dict[str, float]:
        log_true = targets[self.target].astype(np.float64)
        known = np.isfinite(log_true)
        log_true, predicted = log_true[known], predictions[self.target][known]
        if not len(log_true):
            return {}
        true = np.exp(log_true)
        return {
            "mae": float(mean_absolute_error(true, predicted)),
            "mae_log": float(mean_absolute_error(log_true, np.log(predicted))),
            "r2": float(r2_score(log_true, np.log(predicted))) if len(log_true) > 1 else float("nan"),
            "mdape": float(np.median(np.abs(predicted - true) / true)),
            "n": float(len(true)),
        }

    def describe(self, predictions: dict[str, np.ndarray], row: int) -> dict[str, Any]:
        value = float(predictions[self.target][row])
        return {"prediction": round(value, 4), "scores": {"price": round(value, 4)}}

    def confidence(self, predictions: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> np.ndarray:
        return predictions[self.target]

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "mean": self.mean, "std": self.std, "notes": self.notes}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PriceTask:
        task = cls(state["target"])
        task.mean, task.std, task.notes = state["mean"], state["std"], list(state.get("notes", []))
        return task
