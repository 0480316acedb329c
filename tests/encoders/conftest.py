"""Shared fixtures of the encoder tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``TUWEN_CACHE`` per test module: exported and quantised ONNX graphs are built there, not in the
    user's cache, so a test sees a cold cache and leaves nothing behind."""
    folder = tmp_path_factory.mktemp("tuwen-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUWEN_CACHE", str(folder))
        yield folder
