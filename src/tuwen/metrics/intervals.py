"""Bootstrap intervals over per-query or per-shopper scores: how sure a mean, or a difference of means, is."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bootstrap_interval(values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float,
                                                                                                             float]:
    """Percentile interval of the mean, resampling shoppers with replacement."""
    if len(values) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> float:
    """Share of bootstrap resamples (same shoppers for both) in which ``a`` beats ``b`` on the mean."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_boot, len(a)))
    return float(((a[idx].mean(axis=1) - b[idx].mean(axis=1)) > 0).mean())


def paired_difference_interval(metric: Callable[[np.ndarray], float], n: int, n_boot: int = 1000, seed: int = 0,
                               level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a difference of two models' scores on the same rows, resampling rows with replacement.

    ``metric(rows)`` scores both models on the resampled row indices and returns ``score_a - score_b`` (macro-F1,
    AUC, MAE: any metric, not only a mean of per-row values), so both models always see the same resample.
    """
    rng = np.random.default_rng(seed)
    draws = np.array([metric(rng.integers(0, n, size=n)) for _ in range(n_boot)])
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    return float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha))
