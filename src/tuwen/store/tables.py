"""The workspace's tables as LanceDB holds them: which tables it knows (and their schemas), listing them, and
addressing rows by key in SQL filters.

Why a module of its own: the workspace's readers, the transaction writer (:mod:`tuwen.store.writer`) and the
stages above (search index build, embedding cache) all address rows by key the same way, and the writer cannot
import :mod:`tuwen.store.workspace` (which imports it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import lancedb
import pyarrow as pa

from tuwen.store.catalog import (
    INTERACTION_SCHEMA,
    MESSAGE_SCHEMA,
    PRODUCT_SCHEMA,
    QUESTION_SCHEMA,
    REJECT_SCHEMA,
    REVIEW_SCHEMA,
    USER_SCHEMA,
)

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "products": PRODUCT_SCHEMA,
    "interactions": INTERACTION_SCHEMA,
    "reviews": REVIEW_SCHEMA,
    "users": USER_SCHEMA,
    "rejects": REJECT_SCHEMA,
    "questions": QUESTION_SCHEMA,
    "messages": MESSAGE_SCHEMA,
}


def table_names(db: lancedb.DBConnection) -> list[str]:
    """Every table in the database (LanceDB pages its listing; a single page silently stops at a limit)."""
    names: list[str] = []
    token = None
    while True:
        page = db.list_tables(page_token=token, limit=1000)
        names += page.tables
        token = page.page_token
        if not token or not page.tables:
            return names


def sql_list(values: Any) -> str:
    """Values as a quoted SQL ``IN (...)`` list (single quotes doubled), for LanceDB filters and deletes."""
    return ", ".join("'" + str(v).replace("'", "''") + "'" for v in values)


KEYS_PER_FILTER = 500  # values per ``IN (...)`` filter: LanceDB parses long lists slowly


def key_filters(values: Sequence[Any], key: str = "id") -> Iterator[str]:
    """SQL filters ``key IN (...)`` covering ``values``, :data:`KEYS_PER_FILTER` at a time."""
    values = list(values)
    for lo in range(0, len(values), KEYS_PER_FILTER):
        yield f"`{key}` IN ({sql_list(values[lo:lo + KEYS_PER_FILTER])})"


def delete_rows(table: Any, values: Sequence[str], key: str = "id") -> None:
    """Delete a LanceDB table's rows whose ``key`` is in ``values`` (a filter per slice of them)."""
    for where in key_filters(values, key):
        table.delete(where)
