"""The workspace keeps its last complete state through crashes, and re-running is safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.helpers import photo, write_csv
from tuwen import Workspace
from tuwen.encoders import base
from tuwen.store.workspace import WorkspaceError

MAPPING = ["id=sku", "title=name", "image=img", "price=cost"]


def _catalog(folder: Path, rows: list[list[str]]) -> Path:
    photo(folder / "a.png", "red")
    photo(folder / "b.png", "blue")
    return write_csv(folder / "products.csv", ["sku", "name", "img", "cost", "colour"], rows)


def test_reingest_is_idempotent_and_upserts(tmp_path: Path) -> None:
    file = _catalog(tmp_path, [["p1", "Red mug", "a.png", "5", "red"], ["p2", "Blue mug", "b.png", "7", "blue"]])
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file, mapping=MAPPING)
    ws.ingest(catalog=file, mapping=MAPPING)
    assert ws.info()["products"] == 2
    _catalog(tmp_path, [["p1", "Red mug, large", "a.png", "6", "red"], ["p3", "New", "b.png", "1", "x"]])
    ws.ingest(catalog=file, mapping=MAPPING)
    products = ws.read("products").set_index("id")
    assert sorted(products.index) == ["p1", "p2", "p3"]
    assert products.loc["p1", "title"] == "Red mug, large" and products.loc["p1", "price"] == 6.0
    assert json.loads(products.loc["p2", "attributes"]) == {"colour": "blue"}


def test_failure_mid_transaction_leaves_previous_state(tmp_path: Path) -> None:
    file = _catalog(tmp_path, [["p1", "Red mug", "a.png", "5", "red"]])
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file, mapping=MAPPING)
    with pytest.raises(RuntimeError, match="boom"):
        with ws.transaction("test") as writer:
            writer.upsert("products", ws.read("products").assign(title="CHANGED"))
            raise RuntimeError("boom")
    assert list(Workspace(tmp_path / "ws").read("products")["title"]) == ["Red mug"]


def test_killed_process_leaves_previous_state(tmp_path: Path) -> None:
    """A writer killed after writing a table but before committing is rolled back on the next open."""
    file = _catalog(tmp_path, [["p1", "Red mug", "a.png", "5", "red"]])
    ws_path = tmp_path / "ws"
    Workspace(ws_path).ingest(catalog=file, mapping=MAPPING)
    script = textwrap.dedent(f"""
        import os, signal
        from tuwen import Workspace
        ws = Workspace({str(ws_path)!r})
        with ws.transaction("killed") as writer:
            writer.upsert("products", ws.read("products").assign(title="HALF WRITTEN"))
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    ws = Workspace(ws_path)
    assert list(ws.read("products")["title"]) == ["Red mug"]  # readers see the committed version
    ws.ingest(catalog=file, mapping=MAPPING)  # and the next writer rolls the leftover back first
    assert list(ws.read("products")["title"]) == ["Red mug"] and ws.info()["products"] == 1


def test_incompatible_schema_version_is_refused_clearly(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    manifest = json.loads(ws.manifest_path.read_text())
    ws.manifest_path.write_text(json.dumps({**manifest, "schema_version": 99}))
    with pytest.raises(WorkspaceError, match="schema version 99 is not supported"):
        Workspace(tmp_path / "ws")


def test_not_a_workspace(tmp_path: Path) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "file.txt").write_text("x")
    with pytest.raises(WorkspaceError, match="not empty and is not a tuwen workspace"):
        Workspace(tmp_path / "stuff")
    with pytest.raises(WorkspaceError, match="not a tuwen workspace"):
        Workspace(tmp_path / "nothing", create=False)


class _CountingEncoder:
    """A test double: mean colour of the photo; optionally dies after some calls."""

    name, modality, dim, version = "test_mean_colour", "image", 3, "1"
    calls: list[int] = []
    fail_after: int | None = None

    def encode(self, batch: list[str]) -> np.ndarray:
        from PIL import Image

        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt
        self.calls.append(len(batch))
        return np.array([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32).mean((0, 1)) for p in batch],
                        dtype=np.float32)


def test_embedding_is_cached_resumes_after_interruption_and_redoes_changed(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(base.REGISTERED, "test_mean_colour", _CountingEncoder)
    rows = [[f"p{i}", f"item {i}", "a.png" if i % 2 else "b.png", "1", ""] for i in range(10)]
    file = _catalog(tmp_path, rows)
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file, mapping=MAPPING)
    _CountingEncoder.calls, _CountingEncoder.fail_after = [], 2
    with pytest.raises(KeyboardInterrupt):
        ws.embed(image_encoder="test_mean_colour", text_encoder=None, batch_size=3, progress=False)
    assert Workspace(tmp_path / "ws").info()["vectors"] == {"test_mean_colour": 6}  # two chunks committed
    _CountingEncoder.calls, _CountingEncoder.fail_after = [], None
    report = ws.embed(image_encoder="test_mean_colour", text_encoder=None, batch_size=3, progress=False)
    assert report["test_mean_colour/image"] == {"embedded": 4, "cached": 6}
    assert ws.embed(image_encoder="test_mean_colour", text_encoder=None, progress=False)[
        "test_mean_colour/image"] == {"embedded": 0, "cached": 10}
    photo(tmp_path / "a.png", "green")  # the photo changed: its products are embedded again
    report = ws.embed(image_encoder="test_mean_colour", text_encoder=None, progress=False)
    assert report["test_mean_colour/image"] == {"embedded": 5, "cached": 5}
    ids, vectors = ws.vectors("test_mean_colour", "image")
    by_id = dict(zip(ids, vectors, strict=True))
    np.testing.assert_allclose(by_id["p1"], [0, 128, 0], atol=1)
    np.testing.assert_allclose(by_id["p0"], [0, 0, 255], atol=1)


def test_concurrent_writer_is_refused_after_its_wait(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    other = Workspace(tmp_path / "ws", lock_timeout=0.5)
    with ws.transaction("first"):
        with pytest.raises(WorkspaceError, match="another tuwen process"):
            with other.transaction("second"):
                pass


def test_rejects_are_replaced_when_the_file_is_fixed(tmp_path: Path) -> None:
    file = _catalog(tmp_path, [["p1", "ok", "a.png", "5", ""], ["p2", "bad", "a.png", "-5", ""]])
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file, mapping=MAPPING)
    assert ws.info()["rejects"] == 1
    _catalog(tmp_path, [["p1", "ok", "a.png", "5", ""], ["p2", "fixed", "a.png", "5", ""]])
    ws.ingest(catalog=file, mapping=MAPPING)
    assert ws.info()["rejects"] == 0 and ws.info()["products"] == 2
    assert isinstance(ws.read("rejects"), pd.DataFrame)
    assert os.path.isdir(ws.path / "db")


def test_read_keys_reads_the_rows_of_many_keys_in_slices_and_quotes_them(tmp_path: Path) -> None:
    rows = [[f"p{i}", f"Mug {i}", "a.png", str(i), "red"] for i in range(1, 1201)] + \
        [["o'brien", "Quoted mug", "b.png", "3", "blue"]]
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=_catalog(tmp_path, rows), mapping=MAPPING)
    wanted = [f"p{i}" for i in range(1, 1201, 2)] + ["o'brien", "nowhere", "p1"]  # 602 ids: two slices, a repeat
    found = ws.read_keys("products", "id", wanted, ["id", "title"])
    assert sorted(found["id"]) == sorted(set(wanted) - {"nowhere"}) and list(found.columns) == ["id", "title"]
    assert found.set_index("id").loc["o'brien", "title"] == "Quoted mug"
    assert ws.read_keys("products", "id", []).empty and ws.read_keys("reviews", "id", ["p1"]).empty
