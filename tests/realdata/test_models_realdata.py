"""Models on slices of the real data sets (../shared/datasets): fail under CI when the data is missing.

Quality here is checked with loose floors on small slices (the measured numbers live in
benchmarks/fusion.py); what these tests pin down is that the real catalogs flow through
split → features → training → save → predict, and that the split rules hold on real ids.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tuwen import Workspace
from tuwen.predict.features import parse_attributes
from tuwen.predict.registry import load_model, run_ablation, train_model
from tuwen.predict.tasks import make_task
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.prepare import prepare

pytestmark = pytest.mark.realdata
torch.set_num_threads(1)
FAST = TrainConfig(epochs=20, ensemble=1, progress=False)


def test_flipkart_fusion_of_photo_and_name_classifies_and_predicts_a_new_product(flipkart_dir: Path,
                                                                                tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ingest(preset="flipkart", path=flipkart_dir)
    ws.embed(image_encoder="mobilenet_v2", text_encoder=None, progress=False)
    summary = run_ablation(ws, "classify", "category:1", text_fields=("title",), fusions=("gated",), config=FAST,
                            report=False)
    scores = {r["variant"]: r["metrics"]["accuracy"] for r in summary["results"]}
    assert summary["split"]["items"] > 900 and summary["split"]["test"] > 150
    assert scores["image"] > 0.7 and scores["text"] > 0.8
    assert scores["fusion:gated"] > 0.85 and scores["fusion:gated"] >= scores["image"]

    model = train_model(ws, "classify", "category:1", name="top", text_fields=("title",), fusion="gated",
                        config=FAST)
    products = ws.read("products")
    test_ids = set(json.loads((ws.artifacts / "models" / "top" / "split.json").read_text())["test"])
    item = products[products["id"].isin(test_ids) & products["has_image"]].iloc[0]
    reloaded = load_model(ws, "top")
    new = item.to_frame().T.assign(id="brand-new")  # same photo and name, unknown id: embedded live
    [live] = reloaded.predict(new, ws)
    [cached] = model.predict(item.to_frame().T, ws)
    assert live["prediction"] == cached["prediction"]
    assert live["scores"] == pytest.approx(cached["scores"], abs=1e-3)
    assert set(live["contributions"]) >= {"text", "image", "weights"}


def _hm_slice(hm_dir: Path, folder: Path, rows: int = 2500) -> Path:
    """The first articles of H&M's articles.csv, written by the test (without photos: these tests read text)."""
    folder.mkdir()
    with (hm_dir / "articles.csv").open(encoding="utf-8") as source, \
            (folder / "articles.csv").open("w", encoding="utf-8", newline="") as target:
        reader, writer = csv.reader(source), csv.writer(target)
        for index, row in enumerate(reader):
            if index > rows:
                break
            writer.writerow(row)
    return folder


def test_hm_split_keeps_colour_variants_of_a_garment_together(hm_dir: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ingest(preset="hm", path=_hm_slice(hm_dir, tmp_path / "hm"))
    task = make_task("classify", "product_type_name", min_count=10)
    prepared = prepare(ws, task, ("title", "description"), modalities=("text",), seed=0)
    assert "grouped by product_code" in prepared.split_info["rule"]
    codes = np.array([a["product_code"] for a in parse_attributes(prepared.frame)])
    sides = {code: set(prepared.split[codes == code]) for code in np.unique(codes)}
    assert all(len(parts) == 1 for parts in sides.values())
    assert 0.15 < (prepared.split == "test").mean() < 0.25

    summary = run_ablation(ws, task, text_fields=("prod_name", "detail_desc"), modalities=("text",), config=FAST,
                            report=False)
    [text] = summary["results"]
    assert text["variant"] == "text" and text["metrics"]["macro_f1"] > 0.5
    assert "title@tfidf_sparse" in text["inputs"] and "description@tfidf_sparse" in text["inputs"]


def test_amazon_review_ratings_split_by_group_and_predict_every_line(amazon_dir: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ingest(preset="amazon-reviews", path=amazon_dir)
    prepared = prepare(ws, make_task("review"), encoders=(), seed=0)
    # one row per distinct review: a group's copies count once unless their words differ (a changed summary)
    reviews = ws.read("reviews")
    words = (reviews["title"].fillna("") + "\n" + reviews["text"].fillna("")).str.strip().str.lower()
    distinct = reviews.assign(words=words)[words != ""].drop_duplicates(["group", "words"])
    assert prepared.split_info["items"] == len(distinct)
    assert len(distinct) - ws.info()["review_groups"] <= 2
    groups = prepared.frame["group"].to_numpy()
    assert len(set(groups[prepared.split == "test"]) & set(groups[prepared.split != "test"])) == 0

    model = train_model(ws, "review", name="stars", encoders=(), config=replace(FAST, epochs=30))
    metrics = model.info["metrics"]["test"]
    assert metrics["accuracy"] > 0.5 and metrics["mae"] < 0.9 and metrics["macro_f1"] > 0.3

    import tuwen.cli.models  # noqa: F401
    from tuwen.cli.main import app

    done = CliRunner().invoke(app, ["predict", str(ws.path), "--model", "stars", "--file", str(amazon_dir),
                                    "--preset", "amazon-reviews", "--json"])
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stdout.strip().splitlines()]
    assert len(lines) == ws.count("reviews")
    assert all(1 <= line["prediction"] <= 5 and line["sentiment"] in {"negative", "neutral", "positive"}
               for line in lines)
    table = CliRunner().invoke(app, ["predict", str(ws.path), "--model", "stars", "--file", str(amazon_dir),
                                     "--preset", "amazon-reviews"])
    assert table.exit_code == 0, table.output
    assert "per product: mean predicted rating" in table.output
    first_product = str(ws.read("reviews")["product_id"].value_counts().index[0])
    assert first_product in table.output  # the most reviewed product heads the per-product table
