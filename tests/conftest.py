"""Shared fixtures: where the real data sets live, and a rule for when they are missing.

Integration tests read slices of ``../shared/datasets``. Locally they skip when the
data is absent; under CI (``CI`` set) a missing data set is a failure, never a silent skip.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATASETS = Path(os.environ.get("TUWEN_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def dataset_path(name: str) -> Path:
    """Path of one shared data set folder; fails under CI and skips elsewhere when it is missing."""
    path = DATASETS / name
    if not path.is_dir():
        message = f"real data set {name!r} not found at {path}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def fashion_dir() -> Path:
    return dataset_path("fashion-product-images")


@pytest.fixture
def hm_dir() -> Path:
    return dataset_path("hm")


@pytest.fixture
def flipkart_dir() -> Path:
    return dataset_path("flipkart")


@pytest.fixture
def amazon_dir() -> Path:
    return dataset_path("amazon-fashion-reviews")
