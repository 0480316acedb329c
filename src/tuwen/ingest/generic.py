"""The generic loader: a user's own catalog, shoppers' events and reviews, mapped onto tuwen's schema.

A mapping names, for each canonical field, one source column or several separated by
commas (several category columns become a path "A > B > C"; several text columns are
joined). Product columns that are not mapped are kept as attributes, so that any column
can later be a training target or a search filter without re-ingesting.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from tuwen.ingest.mapping import (  # noqa: F401 (re-exported: loaders and users import them from here)
    DEFAULT_INTERACTION_MAP,
    INTERACTION_FIELDS,
    ColumnMap,
    MappingError,
    apply_map,
)
from tuwen.ingest.readers import InputFileError, check_file, read_rows
from tuwen.ingest.stream import EventStream
from tuwen.store.catalog import (
    INTERACTION_SCHEMA,
    PRODUCT_SCHEMA,
    REVIEW_SCHEMA,
    Batch,
    Reject,
    empty_frame,
    validate_messages,
    validate_products,
    validate_questions,
    validate_reviews,
)

PRODUCT_FIELDS = ("id", "title", "description", "image", "category", "price", "currency", "attributes")
REVIEW_FIELDS = ("id", "product_id", "user_id", "rating", "title", "text", "timestamp", "image", "variant",
                 "recommended", "label", "category")
QUESTION_FIELDS = ("id", "product_id", "question", "answer", "question_type", "answer_type", "timestamp")
MESSAGE_FIELDS = ("id", "text", "intent", "category", "flags")
# Labels that make a review worth keeping without a star rating (a sentiment label, "recommends it").
REVIEW_LABELS = ("rating", "recommended", "label")

DEFAULT_PRODUCT_MAP = {name: name for name in PRODUCT_FIELDS if name != "attributes"}
DEFAULT_REVIEW_MAP = {name: name for name in REVIEW_FIELDS}


def load_products(file: Path, mapping: ColumnMap, image_root: Path | None = None, source: str = "catalog",
                  currency: str = "", check_images: bool = True) -> Batch:
    raw, read_rejects = read_rows(file, "products")
    mapping.check(list(raw.columns), file)
    mapping = mapping.with_defaults(DEFAULT_PRODUCT_MAP, list(raw.columns))
    if "id" not in mapping.fields:
        raise MappingError(f"{file}: no column for the product id; add --map id=COLUMN")
    mapped = apply_map(raw, mapping, file, {"category": " > "}, keep_rest_as_attributes=True)
    if currency and "currency" not in mapped:
        mapped["currency"] = currency
    batch = validate_products(mapped, str(file), image_root or file.parent, source, check_images)
    batch.rejects = sorted(read_rejects + batch.rejects, key=lambda r: r.row)
    return batch


def load_interactions(
    file: Path, mapping: ColumnMap, default_kind: str = "purchase"
) -> tuple[pd.DataFrame, list[Reject]]:
    """Every event of ``file`` at once; the streaming path (:class:`tuwen.ingest.stream.EventStream`) does the
    reading and validating, so both apply the same rules."""
    return EventStream(file, mapping, default_kind, progress=False).frame()


def load_reviews(file: Path, mapping: ColumnMap, image_root: Path | None = None) -> tuple[pd.DataFrame, list[Reject]]:
    raw, read_rejects = read_rows(file, "reviews")
    mapping = mapping.with_defaults(DEFAULT_REVIEW_MAP, list(raw.columns))
    if "product_id" not in mapping.fields:
        raise MappingError(f"{file}: no column for 'product_id'; add --review-map product_id=COLUMN")
    if not any(label in mapping.fields for label in REVIEW_LABELS):
        raise MappingError(f"{file}: no column for 'rating'; add --review-map rating=COLUMN (or recommended=COLUMN "
                           "or label=COLUMN for reviews labelled otherwise)")
    frame, rejects = validate_reviews(apply_map(raw, mapping, file), str(file), image_root or file.parent,
                                      require_rating="rating" in mapping.fields)
    return frame, sorted(read_rejects + rejects, key=lambda r: r.row)


def row_numbers(raw: pd.DataFrame) -> pd.Series:
    """Each row's 1-based number in its file (the id of rows whose file has no id column)."""
    return raw["_row"].astype(int).astype(str)


def load_questions(file: Path, mapping: ColumnMap) -> tuple[pd.DataFrame, list[Reject]]:
    """Product questions with their answers; without an ``id`` column a question's id is its row number.

    A JSON-lines file has a column only where some line has the key: open questions carry no answer type, and
    relative dates no timestamp, so a file of only such lines lacks those columns altogether."""
    return _load_service_rows(file, "questions", mapping, QUESTION_FIELDS, ("product_id", "question"),
                              validate_questions, optional={"answer", "answer_type", "timestamp"})


def load_messages(file: Path, mapping: ColumnMap) -> tuple[pd.DataFrame, list[Reject]]:
    """Customer-service messages with their labels; without an ``id`` column a message's id is its row number."""
    return _load_service_rows(file, "messages", mapping, MESSAGE_FIELDS, ("text",), validate_messages)


def _load_service_rows(file: Path, kind: str, mapping: ColumnMap, fields: Iterable[str], required: tuple[str, ...],
                       validate: Callable[[pd.DataFrame, str], tuple[pd.DataFrame, list[Reject]]],
                       optional: set[str] | frozenset[str] = frozenset()) -> tuple[pd.DataFrame, list[Reject]]:
    """Read, map and validate a questions or messages file: ``optional`` fields are dropped from the mapping when
    the file lacks their columns, the rest default to same-named columns, and rows without an id get their row
    number."""
    raw, read_rejects = read_rows(file, kind)
    mapping = ColumnMap({name: columns for name, columns in mapping.fields.items()
                         if name not in optional or all(c in raw.columns for c in columns)})
    mapping = mapping.with_defaults({name: name for name in fields}, list(raw.columns))
    for name in required:
        if name not in mapping.fields:
            raise MappingError(f"{file}: no column for {name!r}; map {name}=COLUMN")
    mapped = apply_map(raw, mapping, file)
    if "id" not in mapping.fields:
        mapped["id"] = row_numbers(raw).to_numpy()
    frame, rejects = validate(mapped, str(file))
    return frame, sorted(read_rejects + rejects, key=lambda r: r.row)


def load_generic(
    catalog: Path | None = None,
    product_map: ColumnMap | None = None,
    interactions: Path | None = None,
    interaction_map: ColumnMap | None = None,
    reviews: Path | None = None,
    review_map: ColumnMap | None = None,
    image_root: Path | None = None,
    currency: str = "",
    source: str = "catalog",
) -> Batch:
    """Any combination of a product file, an events file and a reviews file, each with its mapping."""
    if catalog is None and interactions is None and reviews is None:
        raise InputFileError("nothing to load: give a catalog, interactions or reviews file")
    batch = Batch(empty_frame(PRODUCT_SCHEMA), empty_frame(INTERACTION_SCHEMA), empty_frame(REVIEW_SCHEMA))
    if catalog is not None:
        batch = load_products(Path(catalog), product_map or ColumnMap(), image_root, source, currency)
    if interactions is not None:
        batch.event_stream = EventStream(Path(interactions), interaction_map or ColumnMap())
    if reviews is not None:
        batch.reviews, rejects = load_reviews(Path(reviews), review_map or ColumnMap(), image_root)
        batch.rejects += rejects
    return batch


def load_toml(config: Path) -> Batch:
    """Load what a ``tuwen.toml`` describes; its relative paths are relative to the file itself.

    ```toml
    currency = "INR"            # optional
    image_root = "."            # optional, default: the products file's folder
    [products]
    file = "products.csv"
    map = { id = "uniq_id", title = "product_name", image = "image", category = "cat1,cat2" }
    [interactions]
    file = "events.csv"
    map = { user_id = "customer", product_id = "sku", timestamp = "date" }
    [reviews]
    file = "reviews.jsonl"
    map = { product_id = "asin", user_id = "reviewerID", rating = "overall", text = "reviewText" }
    ```
    """
    config = Path(config)
    check_file(config)
    try:
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise InputFileError(f"{config}: cannot read configuration: {error}") from error
    base = config.parent

    def section(name: str, allowed: tuple[str, ...]) -> tuple[Path | None, ColumnMap | None]:
        part = data.get(name)
        if part is None:
            return None, None
        if "file" not in part:
            raise MappingError(f"{config}: [{name}] needs a 'file' entry")
        return base / part["file"], ColumnMap.parse(part.get("map", {}), allowed)

    catalog, product_map = section("products", PRODUCT_FIELDS)
    interactions, interaction_map = section("interactions", INTERACTION_FIELDS)
    reviews, review_map = section("reviews", REVIEW_FIELDS)
    root = base / data["image_root"] if "image_root" in data else None
    return load_generic(catalog, product_map, interactions, interaction_map, reviews, review_map, root,
                        data.get("currency", ""))
