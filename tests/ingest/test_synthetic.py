"""The SYNTHETIC catalog generator: layout, determinism, photos, and the ground truth it promises.

These tests pin down the properties other tests and the demo rely on: that the category really
needs both the photo (shape) and the text (material), that files are byte-identical per seed, and
that every interaction and review points at a product and a shopper that exist.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tuwen.ingest import synthetic
from tuwen.ingest.synthetic import (
    CATEGORY_GRID,
    COLOURS,
    INTERACTION_COLUMNS,
    MATERIALS,
    PRODUCT_COLUMNS,
    REVIEW_KEYS,
    SHAPES,
    generate_catalog,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
SMALL = {"n_products": 48, "n_users": 8, "image_size": 64}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default-sized catalog, shared because the statistical checks want the full 400 products."""
    return generate_catalog(tmp_path_factory.mktemp("syn") / "catalog", seed=0)


@pytest.fixture(scope="module")
def products(catalog: Path) -> pd.DataFrame:
    return pd.read_csv(catalog / "products.csv", dtype={"id": str})


@pytest.fixture(scope="module")
def interactions(catalog: Path) -> pd.DataFrame:
    return pd.read_csv(catalog / "interactions.csv")


@pytest.fixture(scope="module")
def reviews(catalog: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (catalog / "reviews.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def manifest(catalog: Path) -> dict[str, Any]:
    return json.loads((catalog / "synthetic.json").read_text(encoding="utf-8"))


def _siblings_left(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if "synthetic-tmp" in p.name or "synthetic-old" in p.name)


# ------------------------------------------------------------------------------------------- layout


def test_files_columns_and_synthetic_labels(catalog: Path, products: pd.DataFrame, manifest: dict[str, Any]) -> None:
    assert {p.name for p in catalog.iterdir()} == {
        "products.csv", "interactions.csv", "reviews.jsonl", "images", "README.txt", "synthetic.json",
    }
    assert tuple(products.columns) == PRODUCT_COLUMNS
    assert len(products) == 400 and products["id"].is_unique
    assert products["id"].str.fullmatch(r"syn-\d{4}").all()
    assert (products["image"] == "images/" + products["id"] + ".png").all()
    assert all((catalog / image).is_file() for image in products["image"])
    assert len(list((catalog / "images").iterdir())) == 400
    assert tuple(pd.read_csv(catalog / "interactions.csv", nrows=0).columns) == INTERACTION_COLUMNS
    first_review = json.loads((catalog / "reviews.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert tuple(first_review) == REVIEW_KEYS
    assert "SYNTHETIC" in (catalog / "README.txt").read_text(encoding="utf-8")
    assert manifest["source"] == "synthetic"
    assert manifest["params"] == {"n_products": 400, "n_users": 60, "seed": 0, "image_size": 96}
    assert set(products["currency"]) == {"CNY"}
    assert products["category"].str.fullmatch(r"(Home|Apparel) > \w+").all()


# -------------------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = generate_catalog(tmp_path / "a", seed=7, **SMALL)
    b = generate_catalog(tmp_path / "b", seed=7, **SMALL)
    c = generate_catalog(tmp_path / "c", seed=8, **SMALL)
    for name in ("products.csv", "interactions.csv", "reviews.jsonl", "synthetic.json", "README.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    for image in ("syn-0001.png", "syn-0017.png", "syn-0048.png"):
        assert (a / "images" / image).read_bytes() == (b / "images" / image).read_bytes(), image
    assert (a / "products.csv").read_bytes() != (c / "products.csv").read_bytes()
    assert (a / "interactions.csv").read_bytes() != (c / "interactions.csv").read_bytes()
    assert (a / "images" / "syn-0001.png").read_bytes() != (c / "images" / "syn-0001.png").read_bytes()


# ------------------------------------------------------------------------------------------- photos


def _nearest_colour_share(path: Path) -> dict[str, float]:
    """Share of non-white pixels whose nearest named colour is each palette colour."""
    names = list(COLOURS)
    palette = np.array([COLOURS[n][0] for n in names], dtype=int)
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=int).reshape(-1, 3)
    ink = pixels[(255 - pixels).max(axis=1) > 40]
    nearest = ((ink[:, None, :] - palette[None]) ** 2).sum(axis=-1).argmin(axis=1)
    counts = np.bincount(nearest, minlength=len(names)) / len(ink)
    return dict(zip(names, counts.tolist(), strict=True))


def test_images_have_the_size_and_the_colour_dominates(catalog: Path, products: pd.DataFrame) -> None:
    for row in products.iloc[::5].itertuples():
        with Image.open(catalog / row.image) as image:
            assert image.size == (96, 96) and image.mode == "RGB"
            corner = image.getpixel((0, 0))
        shares = _nearest_colour_share(catalog / row.image)
        assert max(shares, key=shares.__getitem__) == row.colour, row.id
        assert shares[row.colour] > 0.6, (row.id, shares)
        assert corner == (255, 255, 255), "the shape sits on a white background"


def test_requested_image_size_is_honoured(tmp_path: Path) -> None:
    folder = generate_catalog(tmp_path / "small", seed=1, **SMALL)
    with Image.open(folder / "images" / "syn-0003.png") as image:
        assert image.size == (64, 64)


# ------------------------------------------------------------------------- complementary modalities


def test_category_needs_both_shape_and_material(products: pd.DataFrame, manifest: dict[str, Any]) -> None:
    assert (products.groupby("shape")["category"].nunique() > 1).all(), "shape alone must not decide"
    assert (products.groupby("material")["category"].nunique() > 1).all(), "material alone must not decide"
    assert (products.groupby(["shape", "material"])["category"].nunique() == 1).all(), "both together must"
    # the table follows the grid recorded as ground truth, and every grid cell occurs
    for row in products.itertuples():
        assert manifest["category_grid"][row.shape][row.material] == row.category
    assert set(zip(products["shape"], products["material"], strict=True)) == set(CATEGORY_GRID)
    assert 6 <= products["category"].nunique() <= 8


def test_text_names_material_never_shape_and_colour_half_the_time(products: pd.DataFrame) -> None:
    cjk_share = products["title"].map(lambda t: bool(CJK.search(t))).mean()
    assert 0.15 < cjk_share < 0.45
    assert products["description"].map(lambda t: bool(CJK.search(t))).any()
    text = (products["title"] + " " + products["description"]).str.lower()
    for shape in SHAPES:
        assert not text.str.contains(rf"\b{shape}", regex=True).any(), f"{shape} leaks into the text"
    assert all(
        material in title.lower() or MATERIALS[material][0] in title
        for material, title in zip(products["material"], products["title"], strict=True)
    )
    named = [
        colour in title.lower() or COLOURS[colour][1] in title
        for colour, title in zip(products["colour"], products["title"], strict=True)
    ]
    assert 0.3 < np.mean(named) < 0.7


def test_prices_are_positive_and_follow_material(products: pd.DataFrame) -> None:
    assert (products["price"] > 0).all()
    by_material = products.groupby("material")["price"].mean()
    dearest = max(MATERIALS, key=lambda m: MATERIALS[m][1])
    cheapest = min(MATERIALS, key=lambda m: MATERIALS[m][1])
    assert by_material[dearest] > by_material[cheapest] * 1.3


# ------------------------------------------------------------------------------- shoppers and reviews


def test_interactions_and_reviews_reference_existing_products_and_users(
    products: pd.DataFrame, interactions: pd.DataFrame, reviews: list[dict[str, Any]], manifest: dict[str, Any]
) -> None:
    product_ids = set(products["id"])
    user_ids = {u["id"] for u in manifest["users"]}
    assert len(user_ids) == 60
    assert set(interactions["product_id"]) <= product_ids
    assert set(interactions["user_id"]) <= user_ids
    assert reviews and {r["product_id"] for r in reviews} <= product_ids
    assert {r["user_id"] for r in reviews} <= user_ids
    bought = interactions[interactions["kind"] == "purchase"]
    purchases = set(zip(bought["user_id"], bought["product_id"], strict=True))
    assert all((r["user_id"], r["product_id"]) in purchases for r in reviews), "reviews follow purchases"
    assert len({r["id"] for r in reviews}) == len(reviews)


def test_interaction_kinds_counts_and_timestamps(interactions: pd.DataFrame) -> None:
    assert set(interactions["kind"]) <= {"purchase", "view", "click", "cart"}
    assert interactions["kind"].value_counts().idxmax() == "purchase"
    assert interactions.groupby("user_id").size().between(5, 40).all()
    assert (interactions["value"] >= 1.0).all()
    times = pd.to_datetime(interactions["timestamp"], utc=True)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert times.min() >= pd.Timestamp(start) and times.max() < pd.Timestamp(start + timedelta(days=120))
    assert interactions["timestamp"].str.endswith("Z").all()


def test_shoppers_buy_what_they_prefer(interactions: pd.DataFrame, products: pd.DataFrame, manifest: dict) -> None:
    """Purchases concentrate on each shopper's favourite categories, which content-aware models can use."""
    category = dict(zip(products["id"], products["category"], strict=True))
    favourite = {u["id"]: max(u["category_preference"], key=u["category_preference"].get) for u in manifest["users"]}
    buys = interactions[interactions["kind"] == "purchase"]
    hit = np.mean([category[p] == favourite[u] for u, p in zip(buys["user_id"], buys["product_id"], strict=True)])
    assert hit > 2.5 / len(manifest["categories"])


def test_ratings_are_valid_and_text_tracks_them(reviews: list[dict[str, Any]]) -> None:
    ratings = np.array([r["rating"] for r in reviews])
    assert all(isinstance(r["rating"], int) for r in reviews)
    assert ratings.min() >= 1 and ratings.max() <= 5 and len(set(ratings.tolist())) >= 4
    assert any(CJK.search(r["text"]) for r in reviews) and any(not CJK.search(r["text"]) for r in reviews)
    praise = [r["rating"] for r in reviews if re.search(r"love it|Five stars|非常喜欢|五星", r["text"])]
    complaints = [r["rating"] for r in reviews if re.search(r"waste of money|returning|退货|浪费钱", r["text"])]
    assert praise and complaints and np.mean(praise) > np.mean(complaints) + 2


# -------------------------------------------------------------------------------------- folder rules


def test_rerun_on_existing_catalog_is_a_no_op(tmp_path: Path) -> None:
    first = generate_catalog(tmp_path / "cat", seed=3, **SMALL)
    stamp = (first / "products.csv").stat().st_mtime_ns
    again = generate_catalog(str(tmp_path / "cat"), seed=3, **SMALL)
    assert again == first
    assert (first / "products.csv").stat().st_mtime_ns == stamp
    assert _siblings_left(tmp_path) == []


def test_other_parameters_replace_a_synthetic_catalog(tmp_path: Path) -> None:
    generate_catalog(tmp_path / "cat", seed=3, **SMALL)
    folder = generate_catalog(tmp_path / "cat", seed=4, **SMALL)
    assert json.loads((folder / "synthetic.json").read_text(encoding="utf-8"))["params"]["seed"] == 4
    assert _siblings_left(tmp_path) == []


def test_refuses_to_replace_a_foreign_folder(tmp_path: Path) -> None:
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(FileExistsError):
        generate_catalog(foreign, **SMALL)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_a_crash_leaves_no_half_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic.api, "_write_jsonl", boom)  # the last file written: a crash after most of them
    with pytest.raises(RuntimeError, match="disk full"):
        generate_catalog(tmp_path / "cat", **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [{"n_products": 0}, {"n_users": 0}, {"image_size": 8}])
def test_rejects_nonsense_parameters(tmp_path: Path, bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        generate_catalog(tmp_path / "cat", **bad)
