"""Unit-length rows: what cosine similarity needs everywhere (search, alignment, recommenders, the demo)."""

from __future__ import annotations

import numpy as np


def l2(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32: cosines become dot products."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
