"""Search on slices of the real catalogs (fashion, H&M): every mode in English and Chinese, filters, similar.

A 300-product slice of each catalog is ingested through its preset, embedded with the real encoders
(MobileNetV2, multilingual USE), aligned and indexed once per module (~1 min on two busy cores).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import tuwen.cli.search  # noqa: F401  (registers the search commands)
from tests.conftest import dataset_path
from tuwen import Workspace
from tuwen.cli.main import app
from tuwen.search import build_index, search, similar
from tuwen.search.align import AlignConfig, align_workspace

pytestmark = pytest.mark.realdata
N = 300


def _slice(source: Path, file: str, target: Path) -> Path:
    """The first N rows with their photos copied in (loaders refuse photos outside the catalog folder)."""
    frame = pd.read_csv(source / file, dtype=str, keep_default_na=False).head(N)
    for image in frame["image"]:
        (target / image).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / image, target / image)
    frame.to_csv(target / file, index=False)
    return target


def _workspace(root: Path, preset: str, folder: Path) -> Workspace:
    ws = Workspace(root / "ws")
    ws.ingest(preset=preset, path=folder)
    ws.embed(progress=False)
    align_workspace(ws, config=AlignConfig(epochs=15, batch_size=128), progress=False)
    build_index(ws, progress=False)
    return ws


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, pd.DataFrame]:
    root = tmp_path_factory.mktemp("fashion-search")
    ws = _workspace(root, "fashion", _slice(dataset_path("fashion-product-images"), "products.csv", root / "data"))
    products = ws.read("products")
    labels = pd.DataFrame([json.loads(a) for a in products["attributes"]], index=products["id"])
    return ws, labels


@pytest.fixture(scope="module")
def hm(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, pd.DataFrame]:
    root = tmp_path_factory.mktemp("hm-search")
    ws = _workspace(root, "hm", _slice(dataset_path("hm"), "articles.csv", root / "data"))
    products = ws.read("products")
    labels = pd.DataFrame([json.loads(a) for a in products["attributes"]], index=products["id"])
    return ws, labels


def _share(hits: list, ok) -> float:  # noqa: ANN001
    return sum(bool(ok(h.id)) for h in hits) / max(1, len(hits))


def test_fashion_every_mode_english_and_chinese(fashion: tuple[Workspace, pd.DataFrame]) -> None:
    ws, labels = fashion

    def black_shoe(pid: str) -> bool:
        return labels.loc[pid, "baseColour"] == "Black" and "Shoes" in labels.loc[pid, "articleType"]

    base = _share([type("H", (), {"id": i}) for i in labels.index], black_shoe)
    for query, mode in (("black shoes", "lexical"), ("black shoes", "semantic"), ("黑色 鞋", "semantic"),
                        ("black shoes", "crossmodal"), ("黑色的鞋子", "crossmodal"), ("black shoes", "hybrid"),
                        ("黑色 鞋子", "hybrid")):
        hits = search(ws, query, mode=mode, k=10).hits
        assert len(hits) == 10, (query, mode)
        assert _share(hits, black_shoe) >= max(0.5, 3 * base), (query, mode, [h.title for h in hits])
    photo = ws.read("products").iloc[0]
    hits = search(ws, image=photo["image_paths"][0], mode="image", k=5).hits
    assert hits[0].id == photo["id"]
    assert _share(hits, lambda pid: labels.loc[pid, "articleType"] == labels.loc[photo["id"], "articleType"]) >= 0.6


def test_fashion_filters_facets_and_similar(fashion: tuple[Workspace, pd.DataFrame]) -> None:
    ws, labels = fashion
    result = search(ws, "watch", k=10, where="gender = 'Women' AND category LIKE 'Accessories%'",
                    facets=["basecolour", "gender"])
    assert result.hits and all(labels.loc[h.id, "gender"] == "Women" for h in result.hits)
    assert all(h.category.startswith("Accessories") for h in result.hits)
    assert set(result.facets["gender"]) == {"Women"}
    pid = result.hits[0].id
    kin = similar(ws, pid, k=5).hits
    assert pid not in [h.id for h in kin]
    assert _share(kin, lambda i: labels.loc[i, "articleType"] == labels.loc[pid, "articleType"]) >= 0.6


def test_hm_crossmodal_sees_what_the_name_does_not_say(hm: tuple[Workspace, pd.DataFrame]) -> None:
    ws, labels = hm
    base = (labels["product_type_name"] == "Trousers").mean()  # 16% of this slice
    hits = search(ws, "trousers", mode="crossmodal", k=10).hits
    trousers = [h for h in hits if labels.loc[h.id, "product_type_name"] == "Trousers"]
    assert len(trousers) / 10 >= max(0.5, 3 * base), [labels.loc[h.id, "product_type_name"] for h in hits]
    assert any(not any(w in h.title.lower() for w in ("trouser", "trs", "pant")) for h in trousers), \
        "found by the photo, not the name"


def test_hm_cli_batch_in_two_languages(hm: tuple[Workspace, pd.DataFrame], tmp_path: Path) -> None:
    ws, labels = hm
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"query": "dress"}\n{"query": "连衣裙"}\n{"query": "trousers", "where": "price < 0.05"}\n',
                       encoding="utf-8")
    result = CliRunner().invoke(app, ["search", str(ws.path), "--queries", str(queries), "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["query"] for a in answers] == ["dress", "连衣裙", "trousers"]
    for answer in answers[:2]:
        types = [labels.loc[h["id"], "product_type_name"] for h in answer["hits"]]
        assert types.count("Dress") >= 3, (answer["query"], types)
    assert all(h["price"] < 0.05 for h in answers[2]["hits"])
