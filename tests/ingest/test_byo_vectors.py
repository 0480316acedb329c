"""Bring your own vectors: precomputed vectors keyed by product id land in the tables embed writes, with
row-level rejects (file, row, field, reason) for what cannot be used, all in one transaction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tuwen import Workspace
from tuwen.cli.main import app
from tuwen.encoders.byo import VectorFileError, ingest_vectors
from tuwen.encoders.cache import load_vectors, vector_counts
from tuwen.store.catalog import NoRowsLanded, RejectedInput


@pytest.fixture
def shop(tmp_path: Path) -> Workspace:
    catalog = tmp_path / "products.csv"
    catalog.write_text("id,title\n" + "".join(f"p{i},Product {i}\n" for i in range(20)))
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=catalog)
    return ws


def _vectors(n: int = 20, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_parquet_vectors_land_beside_embedded_ones_with_row_rejects(shop: Workspace, tmp_path: Path) -> None:
    vectors = _vectors()
    rows = [list(map(float, v)) for v in vectors]
    ids = [f"p{i}" for i in range(20)]
    rows[3] = rows[3][:5]  # wrong dimension
    rows[4][2] = float("nan")  # not finite
    rows[5] = [0.0] * 8  # no direction
    ids[6] = "nope"  # not in the catalog
    ids[7] = "p0"  # second vector for p0
    rows[8] = None  # missing
    path = tmp_path / "photos.parquet"
    pq.write_table(pa.table({"id": ids, "vector": rows}), path)
    report = ingest_vectors(shop, path, name="clip_service", field="image", progress=False)
    assert report["written"] == 14 and report["dim"] == 8
    got = {(r.row, r.field, r.reason.split(" (")[0].split(",")[0]) for r in report["rejects"]}
    assert got == {(4, "vector", "dimension 5"), (5, "vector", "not finite"), (6, "vector", "all zeros"),
                   (7, "id", "unknown product id 'nope'"), (8, "id", "duplicate product id 'p0'"),
                   (9, "vector", "missing vector")}
    assert all(r.file == str(path) for r in report["rejects"])
    loaded_ids, loaded = load_vectors(shop, "clip_service", "image")
    assert len(loaded_ids) == 14
    assert np.allclose(loaded[loaded_ids.index("p1")], vectors[1])
    assert vector_counts(shop)[("clip_service", "image")] == 14
    assert sorted(shop.read("rejects").query("kind == 'vectors'")["row"]) == [4, 5, 6, 7, 8, 9]
    # a second file with another dimension is refused row by row against the table's dimension
    other = tmp_path / "other.npz"
    np.savez(other, id=np.array(["p8", "p9"]), vector=_vectors(2, 4))
    with pytest.raises(NoRowsLanded):
        ingest_vectors(shop, other, name="clip_service", progress=False)
    assert vector_counts(shop)[("clip_service", "image")] == 14  # nothing half-written


def test_npy_with_ids_and_npz_and_reingest_updates(shop: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "text.npy"
    np.save(path, _vectors(20, 6))
    (tmp_path / "ids.txt").write_text("\n".join(f"p{i}" for i in range(20)))
    with pytest.raises(VectorFileError, match="--ids"):
        ingest_vectors(shop, path, name="mine", field="title", progress=False)
    ingest_vectors(shop, path, name="mine", field="title", ids=tmp_path / "ids.txt", progress=False)
    newer = tmp_path / "newer.npz"
    np.savez(newer, id=np.array(["p2"]), vector=np.ones((1, 6), dtype=np.float32))
    ingest_vectors(shop, newer, name="mine", field="title", progress=False)
    ids, vectors = load_vectors(shop, "mine", "title")
    assert len(ids) == 20 and np.allclose(vectors[ids.index("p2")], 1.0)
    assert shop.manifest["meta"]["vec__mine__title"]["source"] == "byo"


def test_strict_and_the_cli(shop: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "v.npz"
    vectors = _vectors(3, 4)
    vectors[1, 0] = np.inf
    np.savez(path, id=np.array(["p0", "p1", "p2"]), vector=vectors)
    with pytest.raises(RejectedInput, match="row 2: vector"):
        ingest_vectors(shop, path, name="v", strict=True, progress=False)
    assert ("v", "image") not in vector_counts(shop)
    result = CliRunner().invoke(app, ["vectors", str(shop.path), str(path), "--name", "v"])
    assert result.exit_code == 0, result.output
    assert "2 vectors of dimension 4" in result.output and "row 2: vector" in result.output
    bad = CliRunner().invoke(app, ["vectors", str(shop.path), str(tmp_path / "missing.parquet"), "--name", "v"])
    assert bad.exit_code == 2 and "no such file" in bad.output
