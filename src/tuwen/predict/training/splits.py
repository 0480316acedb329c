"""The train / validation / test split every model of a task shares: one rule, one seed, so numbers compare.

80/20 train/test, with 1/8 of train held out for validation (70/10/20 overall), stratified by the target and
grouped where copies exist (H&M colour variants by ``product_code``, Amazon review copies by ``group``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold


def split_items(strata: np.ndarray | None, groups: np.ndarray | None, seed: int = 0, test_size: float = 0.2,
                val_size: float = 0.1, test_fold: int = 0) -> np.ndarray:
    """"train" / "val" / "test" per row: test is fold ``test_fold`` of round(1/test_size), val one fold of the rest.

    scikit-learn's (Stratified)(Group)KFold does the work, so stratification and grouping hold together. One seed's
    ``test_fold`` 0, 1, … round(1/test_size) - 1 put every row in a test part exactly once: repeated cross-validation
    (benchmarks/fusion.py ``--outer-folds``) for data sets whose one test part is too small to compare models on.
    """
    n = len(strata) if strata is not None else len(groups) if groups is not None else 0
    labels = np.full(n, "train", dtype=object)
    if test_size > 0:  # 0: no test part (a model refitted on every labelled row)
        labels[_one_fold(np.arange(n), strata, groups, max(2, round(1 / test_size)), seed, test_fold)] = "test"
    rest = np.flatnonzero(labels == "train")
    if val_size > 0:
        folds = max(2, round((1 - test_size) / val_size))
        sub = lambda a: a[rest] if a is not None else None  # noqa: E731
        labels[rest[_one_fold(np.arange(len(rest)), sub(strata), sub(groups), folds, seed + 1)]] = "val"
    return labels


def fold_of(strata: np.ndarray | None, groups: np.ndarray | None, folds: int, seed: int) -> np.ndarray:
    """Each row's cross-fitting fold (0..folds-1), stratified and grouped like the split; fewer folds when there
    are fewer groups (or rows) than ``folds``."""
    n = len(strata) if strata is not None else len(groups) if groups is not None else 0
    distinct = len(np.unique(groups)) if groups is not None else n
    folds = max(2, min(folds, distinct))
    usable = strata if strata is not None and pd.Series(strata).value_counts().min() >= folds else None
    if groups is not None:
        splitter: Any = StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if usable is not None \
            else GroupKFold(folds, shuffle=True, random_state=seed)
        parts = splitter.split(np.arange(n), usable, groups)
    else:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed) if usable is not None \
            else KFold(folds, shuffle=True, random_state=seed)
        parts = splitter.split(np.arange(n), usable)
    fold = np.zeros(n, dtype=np.int64)
    for k, (_, held) in enumerate(parts):
        fold[held] = k
    return fold


def _one_fold(rows: np.ndarray, strata: np.ndarray | None, groups: np.ndarray | None, folds: int,
              seed: int, which: int = 0) -> np.ndarray:
    if len(rows) < folds:
        return rows[:0]
    if strata is not None:
        counts = pd.Series(strata).value_counts()
        usable = strata if counts.min() >= folds else None  # too-rare strata: fall back to unstratified
    else:
        usable = None
    if groups is not None:
        if len(np.unique(groups)) < folds:
            return rows[:0]
        splitter: Any = StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if usable is not None \
            else GroupKFold(folds, shuffle=True, random_state=seed)
        parts = splitter.split(rows, usable, groups)
    else:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed) if usable is not None \
            else KFold(folds, shuffle=True, random_state=seed)
        parts = splitter.split(rows, usable)
    for _ in range(which % folds):
        next(parts)
    _, test = next(parts)
    return rows[test]
