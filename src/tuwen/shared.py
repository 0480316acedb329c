"""Two helpers that several parts of tuwen need without depending on one another (search, align, benchmarks).

They used to live in ``tuwen.search.common``, which made the alignment import the search package just to
normalise vectors; here they import neither.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def l2(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32: cosines become dot products."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def as_workspace(workspace: Any) -> Any:
    """A Workspace from a Workspace or a folder path (an existing workspace: never creates one)."""
    if isinstance(workspace, str | Path):
        from tuwen.workspace import Workspace

        return Workspace(workspace, create=False)
    return workspace
