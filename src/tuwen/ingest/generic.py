"""The generic loader: a user's own catalog, shoppers' events and reviews, mapped onto tuwen's schema.

A mapping names, for each canonical field, one source column or several separated by
commas (several category columns become a path "A > B > C"; several text columns are
joined). Product columns that are not mapped are kept as attributes, so that any column
can later be a training target or a search filter without re-ingesting.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tuwen.ingest.readers import InputFileError, check_file, read_rows
from tuwen.store.catalog import (
    INTERACTION_SCHEMA,
    PRODUCT_SCHEMA,
    REVIEW_SCHEMA,
    Batch,
    Reject,
    clean_text,
    empty_frame,
    validate_interactions,
    validate_products,
    validate_reviews,
)

PRODUCT_FIELDS = ("id", "title", "description", "image", "category", "price", "currency", "attributes")
INTERACTION_FIELDS = ("user_id", "product_id", "timestamp", "kind", "value")
REVIEW_FIELDS = ("id", "product_id", "user_id", "rating", "title", "text", "timestamp", "image", "variant")

DEFAULT_PRODUCT_MAP = {name: name for name in PRODUCT_FIELDS if name != "attributes"}
DEFAULT_INTERACTION_MAP = {name: name for name in INTERACTION_FIELDS}
DEFAULT_REVIEW_MAP = {name: name for name in REVIEW_FIELDS}


class MappingError(ValueError):
    """A mapping names a field tuwen does not know, or a column the file does not have."""


@dataclass
class ColumnMap:
    """canonical field → source column(s); parsed from ``--map field=col[,col…]`` or a tuwen.toml table."""

    fields: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: list[str] | Mapping[str, str | list[str]], allowed: tuple[str, ...]) -> ColumnMap:
        pairs: list[tuple[str, str | list[str]]] = []
        if isinstance(items, Mapping):
            pairs = list(items.items())
        else:
            for item in items:
                name, sep, columns = item.partition("=")
                if not sep or not name.strip() or not columns.strip():
                    raise MappingError(f"--map {item!r}: expected FIELD=COLUMN (e.g. title=product_name)")
                pairs.append((name.strip(), columns))
        fields: dict[str, list[str]] = {}
        for name, columns in pairs:
            if name not in allowed:
                raise MappingError(f"unknown field {name!r} in the column mapping; known: {', '.join(allowed)}")
            listed = columns if isinstance(columns, list) else columns.split(",")
            fields[name] = [c.strip() for c in listed if c.strip()]
        return cls(fields)

    def with_defaults(self, defaults: Mapping[str, str], columns: list[str]) -> ColumnMap:
        """Fill unmapped fields with same-named columns, when the file has them."""
        merged = dict(self.fields)
        for name, column in defaults.items():
            if name not in merged and column in columns:
                merged[name] = [column]
        return ColumnMap(merged)

    def check(self, columns: list[str], file: Path) -> None:
        for name, sources in self.fields.items():
            missing = [c for c in sources if c not in columns]
            if missing:
                raise MappingError(f"{file}: field {name!r} is mapped to column(s) {', '.join(missing)} that the file "
                                   f"does not have; it has: {', '.join(c for c in columns if c != '_row')}")


def apply_map(raw: pd.DataFrame, mapping: ColumnMap, file: Path, joiners: Mapping[str, str] | None = None,
              keep_rest_as_attributes: bool = False) -> pd.DataFrame:
    """Build the canonical columns (plus ``_row``) from the source columns."""
    mapping.check(list(raw.columns), file)
    joiners = joiners or {}
    out = pd.DataFrame({"_row": raw["_row"].to_numpy()})
    for name, sources in mapping.fields.items():
        if name == "attributes":
            continue
        if len(sources) == 1:
            out[name] = pd.Series(raw[sources[0]].to_numpy(), dtype=object)
        else:
            joiner = joiners.get(name, " ")
            parts = raw[sources].map(clean_text)
            out[name] = pd.Series([joiner.join(p for p in values if p) for values in parts.itertuples(index=False)],
                                  dtype=object)
    if keep_rest_as_attributes:
        used = {c for name, cs in mapping.fields.items() if name not in {"category", "attributes"} for c in cs}
        columns = mapping.fields.get("attributes") or [c for c in raw.columns if c != "_row" and c not in used]
        values = raw[columns].map(clean_text).to_dict("records") if columns else [{}] * len(raw)
        out["attributes"] = pd.Series([{k: v for k, v in record.items() if v != ""} for record in values],
                                      dtype=object)
    return out


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
    raw, read_rejects = read_rows(file, "interactions")
    mapping = mapping.with_defaults(DEFAULT_INTERACTION_MAP, list(raw.columns))
    for required in ("user_id", "product_id", "timestamp"):
        if required not in mapping.fields:
            raise MappingError(f"{file}: no column for {required!r}; add --interaction-map {required}=COLUMN")
    frame, rejects = validate_interactions(apply_map(raw, mapping, file), str(file), default_kind)
    return frame, sorted(read_rejects + rejects, key=lambda r: r.row)


def load_reviews(file: Path, mapping: ColumnMap, image_root: Path | None = None) -> tuple[pd.DataFrame, list[Reject]]:
    raw, read_rejects = read_rows(file, "reviews")
    mapping = mapping.with_defaults(DEFAULT_REVIEW_MAP, list(raw.columns))
    for required in ("product_id", "rating"):
        if required not in mapping.fields:
            raise MappingError(f"{file}: no column for {required!r}; add --review-map {required}=COLUMN")
    frame, rejects = validate_reviews(apply_map(raw, mapping, file), str(file), image_root or file.parent)
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
        batch.interactions, rejects = load_interactions(Path(interactions), interaction_map or ColumnMap())
        batch.rejects += rejects
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
