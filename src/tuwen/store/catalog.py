"""The catalog's stable import path: its schema (Product, Interaction, Review, ...) and the validation that turns
raw rows into it.

The code lives in modules with one job each: :mod:`tuwen.store.schemas` (Arrow schemas and kinds),
:mod:`tuwen.store.cells` (checks and parsing of single cells), :mod:`tuwen.store.images` (photo checks),
:mod:`tuwen.store.rejects` (reject records and the errors over them), :mod:`tuwen.store.batch` (what a loader
produces) and :mod:`tuwen.store.validation` (rows → canonical tables). Loaders, the workspace, the CLI and
tests import them from here, so this module re-exports every name it has always offered.
"""

from __future__ import annotations

from tuwen.store.batch import Batch
from tuwen.store.cells import (
    _UNSTORABLE,
    FIELD_LIMITS,
    FUTURE_SLACK,
    ID_CHARS,
    SHORT_FIELD,
    _cell_problem,
    _suspect_cells,
    _text_rejects,
    clean_text,
    future_limit,
    parse_price,
    parse_timestamps,
    stable_id,
    text_problem,
)
from tuwen.store.images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, check_image, resolve_image, split_paths
from tuwen.store.rejects import NoRowsLanded, Reject, RejectedInput, rejects_frame
from tuwen.store.schemas import (
    ANSWER_TYPES,
    INTERACTION_KINDS,
    INTERACTION_SCHEMA,
    MESSAGE_SCHEMA,
    PRODUCT_SCHEMA,
    QUESTION_SCHEMA,
    QUESTION_TYPES,
    REJECT_SCHEMA,
    REVIEW_SCHEMA,
    USER_SCHEMA,
    Interaction,
    Product,
    Review,
    empty_frame,
)
from tuwen.store.validation import (
    _review_number,
    validate_messages,
    validate_products,
    validate_questions,
    validate_reviews,
)

__all__ = [
    "ANSWER_TYPES", "FIELD_LIMITS", "FUTURE_SLACK", "ID_CHARS", "INTERACTION_KINDS", "INTERACTION_SCHEMA",
    "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MESSAGE_SCHEMA", "PRODUCT_SCHEMA", "QUESTION_SCHEMA", "QUESTION_TYPES",
    "REJECT_SCHEMA", "REVIEW_SCHEMA", "SHORT_FIELD", "USER_SCHEMA",
    "Batch", "Interaction", "NoRowsLanded", "Product", "Reject", "RejectedInput", "Review",
    "_UNSTORABLE", "_cell_problem", "_review_number", "_suspect_cells", "_text_rejects",
    "check_image", "clean_text", "empty_frame", "future_limit", "parse_price", "parse_timestamps", "rejects_frame",
    "resolve_image", "split_paths", "stable_id", "text_problem",
    "validate_messages", "validate_products", "validate_questions", "validate_reviews",
]
