"""Presets: the column mappings and small fix-ups for the catalogs tuwen ships benchmarks on.

Each preset takes the folder of its data set, wherever it lives. The mappings are plain
data, so a user whose files look like one of these can copy the mapping into a tuwen.toml.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from tuwen.ingest.generic import (
    ColumnMap,
    apply_map,
    load_interactions,
    load_messages,
    load_products,
    load_questions,
    load_reviews,
)
from tuwen.ingest.readers import InputFileError, check_file, read_rows
from tuwen.ingest.stream import EventStream
from tuwen.store.catalog import (
    INTERACTION_SCHEMA,
    PRODUCT_SCHEMA,
    REVIEW_SCHEMA,
    USER_SCHEMA,
    Batch,
    Reject,
    clean_text,
    empty_frame,
    validate_products,
    validate_reviews,
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
    if (folder / "interactions.csv").exists():  # streamed: a scale catalog holds tens of millions of events
        batch.event_stream = EventStream(folder / "interactions.csv", ColumnMap())
    if (folder / "reviews.jsonl").exists():
        batch.reviews, rejects = load_reviews(folder / "reviews.jsonl", ColumnMap(), folder)
        batch.rejects += rejects
    return batch


def load_support_intents(folder: Path) -> Batch:
    """Bitext customer-support messages: utterance → ``messages`` (id = its row number), with intent, category
    and the language-variation flags (which the benchmark groups by)."""
    _require(folder, "utterances.csv")
    mapping = ColumnMap.parse({"text": "utterance", "intent": "intent", "category": "category", "flags": "flags"},
                              ("text", "intent", "category", "flags"))
    batch = Batch(*_empty_tables())
    batch.messages, batch.rejects = load_messages(folder / "utterances.csv", mapping)
    return batch


def load_amazon_qa(folder: Path) -> Batch:
    """Amazon product questions (McAuley & Yang): ``questions`` (id = line number in qa.jsonl) plus one product
    per asin, so product pages, search and review insight have something to hang on.

    The file has no product data at all, so the products are bare: an id, no title, photo or price. A relative
    ``answerTime`` ("25 days ago", no ``unixTime``) is not a date: those questions keep a null timestamp.
    """
    _require(folder, "qa.jsonl")
    mapping = ColumnMap.parse({"product_id": "asin", "question": "question", "answer": "answer",
                               "question_type": "questionType", "answer_type": "answerType",
                               "timestamp": "unixTime"}, ("product_id", "question", "answer", "question_type",
                                                          "answer_type", "timestamp"))
    file = folder / "qa.jsonl"
    questions, rejects = load_questions(file, mapping)
    ids = pd.Series(questions["product_id"].unique())
    products = pd.DataFrame({"_row": range(1, len(ids) + 1), "id": ids, "title": "", "category": ""})
    batch = validate_products(products, str(file), folder, "amazon-qa", check_images=False)
    batch.questions = questions
    batch.rejects = rejects + batch.rejects
    return batch


def read_quoted_csv(file: Path, kind: str) -> tuple[pd.DataFrame, list[Reject]]:
    """A CSV whose quoted fields hold line breaks, read by the csv module alone (``_row`` = record number).

    Why not :func:`read_rows`: its guard against stray quotes takes a quoted field whose later lines each
    look like a whole row for a swallowed row; review texts that end a line with a comma-rich sentence
    look exactly like that, and real reviews were split in two. This file's quotes are known to be balanced, and
    a record with the wrong number of fields is still rejected here, by row.
    """
    check_file(file)
    rejects: list[Reject] = []
    records: list[list[str]] = []
    numbers: list[int] = []
    with file.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [name.strip() for name in next(reader)]
            for number, values in enumerate(reader, start=1):
                if len(values) != len(header):
                    rejects.append(Reject(str(file), number, "*", f"{len(values)} fields where the header has "
                                          f"{len(header)}", kind))
                    continue
                records.append(values)
                numbers.append(number)
        except StopIteration as error:
            raise InputFileError(f"{file}: empty file (no header row)") from error
        except csv.Error as error:
            raise InputFileError(f"{file}: not a readable CSV file near record {reader.line_num}: {error}") from error
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame.insert(0, "_row", numbers)
    return frame, rejects


def load_womens_reviews(folder: Path) -> Batch:
    """Women's clothing reviews: ``reviews`` (id = review_id) with rating, "recommends it", the catalogue path and
    the reviewer's age, plus one product per Clothing ID ("Dresses 1080"; category "Department > Class").

    Split rule carried in the data: a review's ``group`` is its product, so every split keeps a product's
    reviews on one side (the README asks models to generalise to unseen products).
    """
    _require(folder, "reviews.csv")
    file = folder / "reviews.csv"
    raw, read_rejects = read_quoted_csv(file, "reviews")
    _columns(raw, file, "review_id", "Clothing ID", "Rating", "Recommended IND", "Title", "Review Text",
             "Division Name", "Department Name", "Class Name")
    cells = raw.drop(columns="_row").map(clean_text)
    cells.insert(0, "_row", raw["_row"])
    path = [" > ".join(v for v in levels if v) for levels in
            zip(cells["Division Name"], cells["Department Name"], cells["Class Name"], strict=True)]
    mapped = pd.DataFrame({"_row": raw["_row"], "id": cells["review_id"], "product_id": cells["Clothing ID"],
                           "rating": cells["Rating"], "recommended": cells["Recommended IND"],
                           "title": cells["Title"], "text": cells["Review Text"], "category": path,
                           "group": "product " + cells["Clothing ID"],
                           "attributes": [_womens_attributes(age, votes) for age, votes in
                                          zip(_optional(cells, "Age"),
                                              _optional(cells, "Positive Feedback Count"), strict=True)]})
    reviews, rejects = validate_reviews(mapped, str(file), None)
    kept = cells[mapped["id"].isin(set(reviews["id"])).to_numpy()]
    products = _womens_products(kept)
    batch = validate_products(products, str(file), folder, "womens-reviews", check_images=False)
    batch.reviews = reviews
    batch.rejects = sorted(read_rejects + rejects + batch.rejects, key=lambda r: r.row)
    return batch


def _optional(cells: pd.DataFrame, column: str) -> list[str]:
    return list(cells[column]) if column in cells else [""] * len(cells)


def _womens_attributes(age: str, votes: str) -> dict[str, int | str]:
    """The reviewer's age and the review's helpful votes (numbers where they are whole numbers)."""
    pairs = (("age", age), ("positive_feedback", votes))
    return {key: int(value) if value.isdigit() else value for key, value in pairs if value}


def _womens_products(cells: pd.DataFrame) -> pd.DataFrame:
    """One product per Clothing ID, named by its most common class ("Dresses 1080")."""
    named = cells[cells["Class Name"] != ""]
    counts = named.groupby(["Clothing ID", "Department Name", "Class Name"]).size().rename("n").reset_index()
    top = counts.sort_values(["n", "Department Name", "Class Name"], ascending=[False, True, True]) \
        .drop_duplicates("Clothing ID").set_index("Clothing ID")
    ids = pd.Series(cells["Clothing ID"].unique())
    kind = ids.map(top["Class Name"]).fillna("")
    department = ids.map(top["Department Name"]).fillna("")
    return pd.DataFrame({"_row": range(1, len(ids) + 1), "id": ids,
                         "title": [f"{k or 'Item'} {i}" for k, i in zip(kind, ids, strict=True)],
                         "category": [" > ".join(v for v in pair if v) for pair in zip(department, kind, strict=True)]})


def load_chinese_reviews(folder: Path) -> Batch:
    """Chinese shopping reviews (9 categories): ``reviews`` with a sentiment ``label`` ("1"/"0") and the product
    ``category``; no product, no rating. Repeated texts share a ``group`` (reviewer "" + text), so models
    de-duplicate them and never put copies on both sides of a split."""
    _require(folder, "reviews.csv")
    mapping = ColumnMap.parse({"id": "id", "label": "label", "category": "category", "text": "review"},
                              ("id", "label", "category", "text"))
    file = folder / "reviews.csv"
    raw, read_rejects = read_rows(file, "reviews")
    _columns(raw, file, "id", "label", "category", "review")
    mapped = apply_map(raw, mapping, file)
    mapped["product_id"] = ""
    labels = mapped["label"].map(clean_text)
    bad = ~labels.isin(["0", "1"])
    label_rejects = [Reject(str(file), int(row), "label", f"sentiment label must be 1 or 0, not {value[:20]!r}",
                            "reviews") for row, value in zip(mapped.loc[bad, "_row"], labels[bad], strict=True)]
    reviews, rejects = validate_reviews(mapped[~bad], str(file), None, require_rating=False, require_product=False)
    batch = Batch(*_empty_tables())
    batch.reviews = reviews
    batch.rejects = sorted(read_rejects + label_rejects + rejects, key=lambda r: r.row)
    return batch


PRESETS: dict[str, Callable[[Path], Batch]] = {
    "fashion": load_fashion,
    "hm": load_hm,
    "flipkart": load_flipkart,
    "amazon-reviews": load_amazon_reviews,
    "synthetic": load_synthetic,
    "support-intents": load_support_intents,
    "amazon-qa": load_amazon_qa,
    "womens-reviews": load_womens_reviews,
    "chinese-reviews": load_chinese_reviews,
}


def load_preset(name: str, folder: Path) -> Batch:
    if name not in PRESETS:
        raise InputFileError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"{folder}: not a folder (a preset reads its data set's folder)")
    return PRESETS[name](folder)
