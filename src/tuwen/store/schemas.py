"""The canonical tables as Arrow schemas (products, interactions, reviews, questions, messages, shoppers,
rejects), the values their kind columns may take, and Python records that mirror the main rows.

Why a module of its own: every stage reads these schemas (loaders, validation, the workspace's tables, the
search index), while few need the validation rules; keeping them apart lets a reader of a table see its shape
without the checks that fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

INTERACTION_KINDS = ("purchase", "view", "click", "cart")

PRODUCT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("image_paths", pa.list_(pa.string())),
        ("has_image", pa.bool_()),
        ("category", pa.string()),
        ("attributes", pa.string()),  # JSON object: attributes differ per catalog
        ("price", pa.float64()),
        ("currency", pa.string()),
        ("source", pa.string()),
    ]
)

INTERACTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("product_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("kind", pa.string()),
        ("value", pa.float64()),
    ]
)

REVIEW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("product_id", pa.string()),
        ("user_id", pa.string()),
        ("rating", pa.float64()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("image_paths", pa.list_(pa.string())),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("group", pa.string()),  # same reviewer + same text: copies that must never straddle a split
        # Labels some review sets carry besides (or instead of) a rating; null where a set has none.
        ("recommended", pa.float64()),  # 1.0 / 0.0: the reviewer recommends the product
        ("label", pa.string()),  # a sentiment label as the source gives it ("1" positive / "0" negative)
        ("category", pa.string()),  # the reviewed product's category (reviews of sets without product rows)
        ("attributes", pa.string()),  # JSON object: the source's other columns (reviewer age, helpful votes…)
    ]
)

# Shoppers' questions about a product with one answer each (product Q&A pages).
QUESTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("product_id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("question_type", pa.string()),  # "yes/no" | "open-ended"
        ("answer_type", pa.string()),  # yes/no questions: "Y" | "N" | "?"; "" for open-ended ones
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
QUESTION_TYPES = ("yes/no", "open-ended")
ANSWER_TYPES = ("Y", "N", "?", "")

# Messages shoppers send to customer service, with the routing labels they were given.
MESSAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("intent", pa.string()),
        ("category", pa.string()),
        ("flags", pa.string()),  # the source's language-variation tags, one letter each
    ]
)

USER_SCHEMA = pa.schema([("id", pa.string()), ("attributes", pa.string())])

REJECT_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("row", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("kind", pa.string()),  # products / interactions / reviews / questions / messages
    ]
)


@dataclass(frozen=True)
class Product:
    """One product as tuwen stores it; ``attributes`` keeps every source column without a canonical slot."""

    id: str
    title: str = ""
    description: str = ""
    image_paths: list[str] = field(default_factory=list)
    category: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    price: float | None = None
    currency: str = ""


@dataclass(frozen=True)
class Interaction:
    """A shopper's event on a product; ``kind`` is one of purchase, view, click, cart."""

    user_id: str
    product_id: str
    timestamp: pd.Timestamp
    kind: str = "purchase"
    value: float = 1.0


@dataclass(frozen=True)
class Review:
    """A shopper's rating and words about a product."""

    id: str
    product_id: str
    user_id: str
    rating: float
    text: str = ""
    image_paths: list[str] = field(default_factory=list)
    timestamp: pd.Timestamp | None = None


def empty_frame(schema: pa.Schema) -> pd.DataFrame:
    return schema.empty_table().to_pandas()
