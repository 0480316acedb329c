"""Plain strong baselines as members of every cross-fitted model: logistic regression (label heads) or ridge
regression (number heads) on the TF-IDF word + character n-grams, and on every input at once (early concatenation,
dense vectors scaled to unit length), fitted by scikit-learn and carried as a :class:`LinearModel`.

Why scikit-learn and not :func:`tuwen.predict.linear.fit_linear`: these are the models a practitioner fits
first, and "never below a plain baseline" is easiest to keep when the baseline itself, with the same
solver and the same regularisation grid, is one of the members the stack may choose.

The regularisation strength (and, for labels, class weighting: none or balanced) is one point of
:func:`settings`; cross-fitting fits every point on each fold and keeps the one whose out-of-fold
predictions score best (see :mod:`tuwen.predict.training.crossfit`). Cross-fitted members weigh classes as
their task does (``settings(..., weighting=task.class_weight)``: the task's loss is the one every model of it
minimises), so only the strength is chosen on out-of-fold scores; choosing the weighting there as well made a
second noisy choice (README, "Cross-fitted models").
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge

from tuwen.predict.features import FeatureSet
from tuwen.predict.linear import LINEAR, LinearModel
from tuwen.predict.tasks import Task

C_GRID = (1.0, 10.0, 100.0)  # inverse L2 strengths for logistic regression (scikit-learn's C), the baselines' grid
ALPHA_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)  # ridge penalties, the price baseline's grid
CLASS_WEIGHTS = (None, "balanced")
ABSENT = -30.0  # logit of a class the fitting rows never showed: probability ~1e-13, never NaN in a blend


def is_label(targets: np.ndarray) -> bool:
    return targets.dtype.kind in "iu"


def settings(targets: dict[str, np.ndarray], weighting: str | None = None) -> list[dict[str, Any]]:
    """The grid one linear member is cross-fitted over: C × class weighting for labels (``weighting``: only the
    task's own, ``"none"``, ``"balanced"`` or ``"sqrt"``; default: none or balanced), alpha for numbers."""
    if all(is_label(v) for v in targets.values()):
        weights = CLASS_WEIGHTS if weighting is None else (None if weighting == "none" else weighting,)
        return [{"C": c, "class_weight": w} for w in weights for c in C_GRID]
    return [{"alpha": a} for a in ALPHA_GRID]


def class_weights(y: np.ndarray, weighting: str | None) -> str | dict[int, float] | None:
    """scikit-learn's ``class_weight`` for ``weighting`` on these labels: ``"sqrt"`` (the square root of the
    balanced weights, as :class:`tuwen.predict.tasks.base.LabelTarget` weighs classes) becomes a dictionary."""
    if weighting != "sqrt":
        return weighting
    classes, counts = np.unique(y, return_counts=True)
    return {int(c): float(np.sqrt(len(y) / (len(classes) * n))) for c, n in zip(classes, counts, strict=True)}


def design(features: FeatureSet) -> sp.csr_matrix:
    """The inputs as one sparse matrix: TF-IDF as it is, dense blocks with unit-length rows, absent inputs zero."""
    blocks = []
    for column, spec in enumerate(features.specs):
        if spec.name in features.sparse:
            blocks.append(features.sparse[spec.name])
        else:
            matrix = features.dense[spec.name].astype(np.float64)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            scaled = np.where(norms > 0, matrix / np.maximum(norms, 1e-12), 0.0) * features.mask[:, [column]]
            blocks.append(sp.csr_matrix(scaled))
    return sp.hstack(blocks, format="csr").astype(np.float64)


def raw_scale(task: Task) -> tuple[float, float]:
    """How a number head's raw output relates to its target: raw = (target - mean) / std (the price task
    standardises log prices; a task without ``mean``/``std`` reads its raw output as the target)."""
    return float(getattr(task, "mean", 0.0)), float(getattr(task, "std", 1.0) or 1.0)


def fit_heads(task: Task, x: sp.csr_matrix, targets: dict[str, np.ndarray],
              setting: dict[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per head, ``(weights (inputs × outputs), bias (outputs))`` of one grid point fitted on these rows.

    Every grid point starts from zero. Warm-starting along the C path looked cheaper, but scikit-learn's lbfgs
    measures its tolerance on the sample-averaged loss, so a fit started from the previous C's solution stopped
    almost at once and every C scored like the first: the grid chose nothing."""
    widths = task.heads()
    fitted = {}
    for head, width in widths.items():
        y = targets[head]
        weights, bias = np.zeros((x.shape[1], width)), np.zeros(width)
        if is_label(y):
            rows = np.flatnonzero(y >= 0)
            classes = np.unique(y[rows])
            bias[:] = ABSENT
            if len(classes) == 1:
                bias[classes[0]] = 0.0
            elif len(classes) > 1:
                model = LogisticRegression(C=setting["C"], class_weight=class_weights(y[rows], setting["class_weight"]),
                                           max_iter=300, tol=1e-3)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    model.fit(x[rows], y[rows])
                if len(classes) == 2:  # one decision function: logits (0, z)
                    bias[classes] = (0.0, float(model.intercept_[0]))
                    weights[:, classes[1]] = model.coef_[0]
                else:
                    bias[classes] = model.intercept_
                    weights[:, classes] = model.coef_.T
        else:
            mean, std = raw_scale(task)
            rows = np.flatnonzero(np.isfinite(y))
            model = Ridge(alpha=setting["alpha"]).fit(x[rows], (y[rows] - mean) / std)
            weights[:, 0], bias[0] = model.coef_, float(model.intercept_)
        fitted[head] = (weights, bias)
    return fitted


def raw_outputs(x: sp.csr_matrix, fitted: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    return {h: np.asarray(x @ w + b, dtype=np.float32) for h, (w, b) in fitted.items()}


def as_module(task: Task, features: FeatureSet, inputs: list[dict[str, Any]],
              fitted: dict[str, tuple[np.ndarray, np.ndarray]]) -> LinearModel:
    """The fitted heads as a :class:`LinearModel` over ``inputs`` (the saved model runs it like a network)."""
    model = LinearModel(inputs, task.heads(), kind=LINEAR, dense="l2")
    weights = np.concatenate([fitted[h][0] for h in model.head_names], axis=1)
    bias = np.concatenate([fitted[h][1] for h in model.head_names])
    dims = [i["dim"] for i in inputs]
    with torch.no_grad():
        start = 0
        for part, dim in zip(model.parts, dims, strict=True):
            part.copy_(torch.from_numpy(weights[start:start + dim]).float())
            start += dim
        model.bias.copy_(torch.from_numpy(bias).float())
    return model.eval()
