"""Presets: the column mappings and small fix-ups for the catalogs tuwen ships benchmarks on.

Each preset takes the folder of its data set, wherever it lives. The mappings are plain
data, so a user whose files look like one of these can copy the mapping into a tuwen.toml.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tuwen.ingest.generic import ColumnMap, apply_map, load_interactions, load_products, load_reviews
from tuwen.ingest.readers import InputFileError, read_rows
from tuwen.store.catalog import (
    INTERACTION_SCHEMA,
    PRODUCT_SCHEMA,
    REVIEW_SCHEMA,
    USER_SCHEMA,
    Batch,
    clean_text,
    empty_frame,
    validate_products,
)


def _require(folder: Path, *names: str) -> None:
    for name in names:
        if not (folder / name).exists():
            raise InputFileError(f"{folder}: expected {name} in this folder (is it the right preset?)")


def _columns(raw: pd.DataFrame, file: Path, *names: str) -> pd.DataFrame:
    """The frame, once it has every column a preset reads directly (else an error naming file and column)."""
    missing = [name for name in names if name not in raw.columns]
    if missing:
        raise InputFileError(f"{file}: expected column(s) {', '.join(missing)} (is it the right preset?)")
    return raw


def load_fashion(folder: Path) -> Batch:
    """Myntra "Fashion Product Images": the title names article type and colour; labels are attributes."""
    _require(folder, "products.csv")
    mapping = ColumnMap.parse({"id": "id", "title": "productDisplayName", "image": "image",
                               "category": "masterCategory,subCategory,articleType"}, ("id", "title", "image",
                                                                                        "category"))
    return load_products(folder / "products.csv", mapping, folder, source="fashion")


def load_hm(folder: Path) -> Batch:
    """H&M articles, purchases and customers.

    Purchases of articles missing from articles.csv are kept (items without text or photo).
    A product's price is the median price paid for it (H&M's prices are normalised, not a currency).
    """
    _require(folder, "articles.csv")
    mapping = ColumnMap.parse({"id": "article_id", "title": "prod_name", "description": "detail_desc",
                               "image": "image", "category": "index_group_name,product_group_name,product_type_name"},
                              ("id", "title", "description", "image", "category"))
    batch = load_products(folder / "articles.csv", mapping, folder, source="hm", currency="normalised")
    if (folder / "transactions.csv").exists():
        events = ColumnMap.parse({"user_id": "customer_id", "product_id": "article_id", "timestamp": "t_dat"},
                                 ("user_id", "product_id", "timestamp"))
        batch.interactions, rejects = load_interactions(folder / "transactions.csv", events)
        batch.rejects += rejects
        raw = _columns(read_rows(folder / "transactions.csv", "interactions")[0], folder / "transactions.csv",
                       "price", "article_id")
        prices = pd.to_numeric(raw["price"], errors="coerce").groupby(raw["article_id"]).median()
        batch.products["price"] = batch.products["id"].map(prices).astype(float)
    if (folder / "customers.csv").exists():
        raw = _columns(read_rows(folder / "customers.csv", "users")[0], folder / "customers.csv", "customer_id")
        attributes = raw.drop(columns=["_row", "customer_id"]).map(clean_text).to_dict("records")
        batch.users = pd.DataFrame({"id": raw["customer_id"].map(clean_text),
                                    "attributes": [json.dumps({k: v for k, v in a.items() if v}) for a in attributes]},
                                   columns=USER_SCHEMA.names)
    return batch


def _category_path(tree: str) -> str:
    """'["A >> B >> C >> Product name..."]' → "A > B > C" (the last element repeats the product name)."""
    try:
        items = ast.literal_eval(tree)
        text = items[0] if isinstance(items, list) and items else str(tree)
    except (ValueError, SyntaxError):
        text = str(tree).strip("[]\"' ")
    levels = [level.strip() for level in text.split(">>") if level.strip()]
    if len(levels) > 1 and levels[-1].endswith("..."):
        levels = levels[:-1]
    return " > ".join(levels)


def load_flipkart(folder: Path) -> Batch:
    """Flipkart products: category tree parsed into a path; price is the retail price in INR."""
    _require(folder, "products.csv")
    raw, read_rejects = read_rows(folder / "products.csv")
    _columns(raw, folder / "products.csv", "image", "product_category_tree")
    raw["image"] = ["images/" + clean_text(name) if clean_text(name) else "" for name in raw["image"]]
    raw["category_path"] = raw["product_category_tree"].map(_category_path)
    staged = folder / "products.csv"
    mapping = ColumnMap.parse({"id": "uniq_id", "title": "product_name", "description": "description",
                               "image": "image", "category": "category_path", "price": "retail_price",
                               "attributes": "brand,discounted_price,product_rating,overall_rating,"
                                             "product_specifications,pid,product_category_tree"},
                              ("id", "title", "description", "image", "category", "price", "attributes"))
    batch = _products_from_frame(raw, staged, mapping, folder, "flipkart", "INR")
    batch.rejects = sorted(read_rejects + batch.rejects, key=lambda r: r.row)
    return batch


def _products_from_frame(raw: pd.DataFrame, file: Path, mapping: ColumnMap, root: Path, source: str,
                         currency: str) -> Batch:
    mapped = apply_map(raw, mapping, file, {"category": " > "}, keep_rest_as_attributes=True)
    mapped["currency"] = currency
    return validate_products(mapped, str(file), root, source)


def load_amazon_reviews(folder: Path) -> Batch:
    """Amazon fashion 5-core reviews.

    Rule for its repeated copies: the file repeats a review once per product variant it
    was attached to (same reviewer, same words, another asin or size). Every line is kept
    as its own review record (exact repeats are numbered), and all copies share one
    ``group`` id (reviewer + text), so models split and deduplicate by group: 2,822 lines
    hold 401 groups. Reviews of an asin missing from products.csv are kept, like purchases.
    """
    _require(folder, "reviews.jsonl")
    products_file = folder / "products.csv"
    batch = Batch(*[frame for frame in _empty_tables()])
    if products_file.exists():
        mapping = ColumnMap.parse({"id": "asin", "title": "productName"}, ("id", "title"))
        raw, read_rejects = read_rows(products_file)
        _columns(raw, products_file, "asin")
        # products.csv lists some asins twice under one name: keep the first, it is the same product.
        first = raw.drop_duplicates("asin")
        batch = _products_from_frame(first, products_file, mapping, folder, "amazon-reviews", "USD")
        batch.rejects = read_rejects + batch.rejects
    reviews_map = ColumnMap.parse({"product_id": "asin", "user_id": "reviewerID", "rating": "overall",
                                   "title": "summary", "text": "reviewText", "timestamp": "unixReviewTime",
                                   "variant": "style"}, ("product_id", "user_id", "rating", "title", "text",
                                                         "timestamp", "variant"))
    batch.reviews, rejects = load_reviews(folder / "reviews.jsonl", reviews_map, folder)
    batch.rejects += rejects
    return batch


def _empty_tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:

    return empty_frame(PRODUCT_SCHEMA), empty_frame(INTERACTION_SCHEMA), empty_frame(REVIEW_SCHEMA)


def load_synthetic(folder: Path) -> Batch:
    """The SYNTHETIC catalog written by :func:`tuwen.ingest.synthetic.generate_catalog`."""
    _require(folder, "products.csv")
    batch = load_products(folder / "products.csv", ColumnMap(), folder, source="synthetic")
    if (folder / "interactions.csv").exists():
        batch.interactions, rejects = load_interactions(folder / "interactions.csv", ColumnMap())
        batch.rejects += rejects
    if (folder / "reviews.jsonl").exists():
        batch.reviews, rejects = load_reviews(folder / "reviews.jsonl", ColumnMap(), folder)
        batch.rejects += rejects
    return batch


PRESETS: dict[str, Callable[[Path], Batch]] = {
    "fashion": load_fashion,
    "hm": load_hm,
    "flipkart": load_flipkart,
    "amazon-reviews": load_amazon_reviews,
    "synthetic": load_synthetic,
}


def load_preset(name: str, folder: Path) -> Batch:
    if name not in PRESETS:
        raise InputFileError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder (a preset reads its data set's folder)")
    return PRESETS[name](folder)
