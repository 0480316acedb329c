"""The index is built from the catalog in slices: slices of a few products give the same table as one slice
holding the whole catalog (what the index build did in memory), vectors included."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import tuwen.search.docs as docs
from tests.helpers import synthetic_shop
from tuwen import Workspace
from tuwen.encoders.cache import load_vectors
from tuwen.search import IndexSettings, build_index
from tuwen.search.common import read_meta
from tuwen.util.vectors import l2


def _index(ws: Workspace) -> pa.Table:
    table = ws.table(read_meta(ws)["table"]).to_arrow()
    return table.sort_by("id")


def test_index_built_in_slices_equals_the_one_built_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = synthetic_shop(tmp_path, text_encoder="tfidf", n_products=45, n_users=3, seed=5, image_size=24)
    shutil.copytree(ws.path, tmp_path / "copy")
    settings = dict(text_encoder="tfidf", image_encoder="color_histogram", ann="off")

    monkeypatch.setattr(docs, "BATCH_ROWS", 1_000_000)  # the whole catalog in one slice
    whole = build_index(ws, IndexSettings(**settings), progress=False, learn=False)
    monkeypatch.setattr(docs, "BATCH_ROWS", 7)  # 45 products: 7 slices, the last one short
    copy = Workspace(tmp_path / "copy", create=False)
    sliced = build_index(copy, IndexSettings(**settings), progress=False, learn=False)

    assert whole["table"] == sliced["table"] and whole["rows"] == sliced["rows"] == 45
    a, b = _index(ws), _index(copy)
    assert a.schema == b.schema and {"text_vec", "image_vec", "fused_vec", "tokens"} <= set(a.column_names)
    assert a.equals(b)
    # and the vectors are the workspace's, unit length, each product's own
    order = a.column("id").to_pylist()
    parts = []
    for field, weight in IndexSettings().text_weights.items():  # title 1.0, description 0.5
        ids, vectors = load_vectors(ws, "tfidf", field)
        row = {pid: i for i, pid in enumerate(ids)}
        parts.append(l2(vectors[[row[pid] for pid in order]]) * weight)
    expected = l2(sum(parts))
    text = a.column("text_vec").combine_chunks().flatten().to_numpy().reshape(len(a), -1)
    np.testing.assert_allclose(text, expected, atol=1e-6)

    # re-indexing in slices after nothing changed writes nothing
    again = build_index(copy, IndexSettings(**settings), progress=False, learn=False)
    assert again["written"] == 0 and again["deleted"] == 0 and not again["rebuilt"]
