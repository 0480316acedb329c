"""Bootstrap intervals over per-query or per-shopper scores: how sure a mean, or a difference of means, is."""

from __future__ import annotations

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
