"""Integration: the four real data sets ingest completely, with zero rejects, and embed."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tuwen import Workspace
from tuwen.ingest import load_preset

pytestmark = pytest.mark.realdata


def test_fashion_ingests_every_product(fashion_dir: Path) -> None:
    batch = load_preset("fashion", fashion_dir)
    assert batch.summary() == {"products": 10106, "interactions": 0, "reviews": 0, "rejects": 0, "missing_images": 0,
                               "forgotten": 0}
    assert batch.products["has_image"].all()
    first = batch.products.iloc[0]
    assert first["category"].count(" > ") == 2
    assert "articleType" in json.loads(first["attributes"]) and "baseColour" in json.loads(first["attributes"])


def test_hm_keeps_purchases_of_articles_without_content(hm_dir: Path, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "hm")
    batch = ws.ingest(preset="hm", path=hm_dir)
    info = ws.info()
    assert (info["products"], info["interactions"], info["rejects"], info["users"]) == (11800, 30848, 0, 1364)
    assert info["products_with_image"] == 11800
    purchases = ws.read("interactions")
    known = purchases["product_id"].isin(set(batch.products["id"]))
    assert 0.2 < known.mean() < 0.5  # about a third of purchases are of listed articles
    assert (purchases["kind"] == "purchase").all()
    assert purchases["timestamp"].min() == pd.Timestamp("2018-09-20", tz="UTC")
    assert batch.products["id"].str.len().eq(10).all()  # leading zeros of article ids survive
    ws.ingest(preset="hm", path=hm_dir)  # idempotent
    assert ws.info()["interactions"] == 30848


def test_flipkart_parses_the_category_tree_and_prices(flipkart_dir: Path) -> None:
    batch = load_preset("flipkart", flipkart_dir)
    summary = batch.summary()
    assert (summary["products"], summary["rejects"], summary["missing_images"]) == (939, 0, 3)
    assert batch.products["category"].str.split(" > ").str[0].nunique() == 7
    assert not batch.products["category"].str.contains(">>").any()
    assert batch.products["price"].dropna().between(35, 201_000).all() and (batch.products["currency"] == "INR").all()


def test_amazon_reviews_copies_share_a_group(amazon_dir: Path) -> None:
    batch = load_preset("amazon-reviews", amazon_dir)
    assert (len(batch.reviews), len(batch.rejects)) == (2822, 0)
    assert batch.reviews["id"].is_unique and batch.reviews["group"].nunique() == 401
    assert set(batch.reviews["rating"]) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_real_slice_embeds_image_and_text(fashion_dir: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(fashion_dir / "products.csv", dtype=str).head(40)
    frame["image"] = [str(fashion_dir / p) for p in frame["image"]]
    frame.to_csv(tmp_path / "slice.csv", index=False)
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=tmp_path / "slice.csv", mapping=["title=productDisplayName"], image_root=fashion_dir)
    report = ws.embed(progress=False)
    assert report["mobilenet_v2/image"] == {"embedded": 40, "cached": 0}
    assert report["use_multilingual/title"] == {"embedded": 40, "cached": 0}
    info = ws.info()
    assert report["color_histogram/image"] == {"embedded": 40, "cached": 0}  # the default photo encoders
    assert info["vectors"] == {"mobilenet_v2": 40, "color_histogram": 40, "use_multilingual": 40}
    ids, vectors = ws.vectors("mobilenet_v2", "image")
    assert vectors.shape == (40, 1280) and (vectors.std(axis=0) > 0).sum() > 500
