"""Classification scores for a model's predicted probabilities (scikit-learn does the counting)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, top_k_accuracy_score


def classification_metrics(probabilities: np.ndarray, target: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Accuracy, macro-F1 and top-3 accuracy over the rows whose target is known."""
    known = target >= 0
    y, p = target[known], probabilities[known]
    if len(y) == 0:
        return {}
    predicted = p.argmax(axis=1)
    n_classes = p.shape[1]
    top3 = 1.0 if n_classes <= 3 else float(top_k_accuracy_score(y, p, k=3, labels=np.arange(n_classes)))
    return {
        f"{prefix}accuracy": float(accuracy_score(y, predicted)),
        f"{prefix}macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
        f"{prefix}micro_f1": float(f1_score(y, predicted, average="micro", zero_division=0)),
        f"{prefix}top3": top3,
        f"{prefix}n": float(len(y)),
    }
