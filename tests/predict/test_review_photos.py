"""Review photos: the synthetic generator's shopper photos reach the review model as an image input, and the
modality ablation reports what the photo contributes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tuwen import Workspace
from tuwen.ingest.synthetic import generate_catalog
from tuwen.predict.features import InputSpec
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.vectors import workspace_vectors


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("review-photos")
    catalog = generate_catalog(root / "catalog", n_products=50, n_users=90, seed=1, image_size=32, review_photos=0.8)
    ws = Workspace(root / "ws")
    ws.ingest(preset="synthetic", path=catalog)
    ws.embed(image_encoder="color_histogram", text_encoder="tfidf", progress=False)
    return ws


def test_generator_writes_review_photos_only_when_asked(tmp_path: Path) -> None:
    plain = generate_catalog(tmp_path / "plain", n_products=20, n_users=20, seed=1, image_size=16)
    assert "image" not in json.loads((plain / "reviews.jsonl").read_text().splitlines()[0])
    assert not (plain / "images" / "reviews").exists()
    with_photos = generate_catalog(tmp_path / "photos", n_products=20, n_users=20, seed=1, image_size=16,
                                   review_photos=1.0)
    lines = [json.loads(line) for line in (with_photos / "reviews.jsonl").read_text().splitlines()]
    assert all((with_photos / line["image"]).is_file() for line in lines)
    # the photos take their own random stream: every other file is what the generator wrote without them
    for name in ("products.csv", "interactions.csv"):
        assert (plain / name).read_bytes() == (with_photos / name).read_bytes()
    assert [{k: v for k, v in line.items() if k != "image"} for line in lines] == [
        json.loads(line) for line in (plain / "reviews.jsonl").read_text().splitlines()]


def test_review_model_uses_the_photo_and_reports_its_contribution(shop: Workspace) -> None:
    reviews = shop.read("reviews")
    assert reviews["image_paths"].map(len).gt(0).mean() > 0.6
    config = TrainConfig(epochs=6, ensemble=1, progress=False, experts=False, linear=False, quality="fast")
    summary = shop.evaluate("review", modalities=("text", "image"), fusions=("concat",), config=config,
                            report=False)
    variants = {r["variant"]: r for r in summary["results"]}
    assert {"text", "image"} <= set(variants)
    assert all(name.startswith("image@") for name in variants["image"]["inputs"])
    # a damaged product in the photo marks most unhappy reviews: the photo alone does far better than chance
    image_only = variants["image"]["metrics"]["sentiment_accuracy"]
    majority = reviews["rating"].map(lambda r: "neg" if r <= 2 else "neu" if r == 3 else "pos").value_counts(
        normalize=True).max()
    assert image_only > majority + 0.05
    fused = variants["fusion:concat"]
    assert any(name.startswith("image@") for name in fused["inputs"])  # the fused model reads the photo too


def test_review_vectors_never_overwrite_the_vectors_of_a_product_with_the_same_id(shop: Workspace) -> None:
    """Reviews share the cache tables with products; a review numbered like a product keeps to its own entry."""
    products = shop.read("products").head(4)
    ids, before = shop.vectors("tfidf", "title")
    reviews = shop.read("reviews").head(4).copy()
    reviews["id"] = products["id"].to_numpy()  # the women's reviews and their products share numbers like this
    reviews["title"] = ["completely different words", "nothing like a title", "another review", "more words"]
    spec = InputSpec("title", "tfidf", "text")

    matrix, present = workspace_vectors(shop, compute_missing=True, items="reviews")(spec, list(reviews["id"]),
                                                                                  reviews)
    assert present.all()
    ids_after, after = shop.vectors("tfidf", "title")
    row = {item: i for i, item in enumerate(ids_after)}
    for position, item in enumerate(products["id"]):  # every product's own vector is what it was
        assert np.array_equal(after[row[item]], before[ids.index(item)])
        assert not np.allclose(matrix[position], after[row[item]])  # and the review got its own words' vector
    product_matrix, product_present = workspace_vectors(shop)(spec, list(products["id"]), products)
    assert product_present.all() and np.array_equal(product_matrix[0], before[ids.index(products["id"].iat[0])])
