"""Fixtures shared by the recommender tests: a small scale-generator workspace and random product vectors."""

from __future__ import annotations

import numpy as np
import pytest

from tuwen import Workspace
from tuwen.ingest.synthetic.scale import generate_scale_catalog
from tuwen.recommend.base import ItemContent


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """300 products, 200 shoppers, 8,000 events from the scale generator; one per test module, since some of
    them forget shoppers."""
    root = tmp_path_factory.mktemp("scale")
    folder = generate_scale_catalog(root / "catalog", 300, 200, 8_000, seed=3)
    ws = Workspace(root / "ws")
    ws.ingest("synthetic", folder)
    return ws


@pytest.fixture(scope="module")
def content(workspace: Workspace) -> ItemContent:
    """Random 6-d image and text vectors for every product of ``workspace``."""
    ids = list(workspace.read("products", ["id"])["id"])
    rng = np.random.default_rng(0)
    return ItemContent.from_arrays(ids, rng.standard_normal((len(ids), 6)).astype(np.float32),
                                   rng.standard_normal((len(ids), 6)).astype(np.float32))
