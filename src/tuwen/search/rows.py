"""The columns of ANN candidates, read after fusion: the short ones from memory, the long ones from the table.

Above the ANN threshold the candidate queries return ids, scores and LanceDB row ids only: every column a
LanceDB query (or ``take``) returns is read by random access row by row, column by column, and at a million rows
reading the shown columns of a hybrid query's candidates cost more than finding them (benchmarks/scale.py,
search stage). So the short display columns of every row (title, category, price, attributes, ...) are read once,
in one scan, and kept as Arrow arrays ordered by row id; a query's hits and facets look their rows up there. The
long columns (the BM25 words) stay in the table and are read with one ``take`` for the few rows that need them.
Keys no list gave a row id for are read by id.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from tuwen.store.workspace import sql_list


class RowReader:
    """Rows of one index table version by LanceDB row id (see the module docstring).

    ``memory_columns`` are loaded on first need (one scan of the table) and shared by the request threads.
    """

    def __init__(self, table: Any, memory_columns: Sequence[str]) -> None:
        self.table = table
        self.memory_columns = list(dict.fromkeys(["id", *memory_columns]))
        self._block: tuple[np.ndarray, pa.Table] | None = None
        self._lock = threading.Lock()

    def block(self) -> tuple[np.ndarray, pa.Table]:
        """Every row's memory columns, ordered by row id, and those row ids."""
        if self._block is None:
            with self._lock:
                if self._block is None:
                    data = self.table.search().select(self.memory_columns).with_row_id(True).limit(None).to_arrow()
                    row_ids = data.column("_rowid").to_numpy()
                    data = data.drop_columns(["_rowid"])
                    if len(row_ids) > 1 and not bool(np.all(row_ids[1:] > row_ids[:-1])):
                        order = np.argsort(row_ids, kind="stable")
                        row_ids, data = row_ids[order], data.take(order)
                    self._block = (row_ids, data.combine_chunks())
        return self._block

    def rows(self, keys: Sequence[Any], row_ids: dict[Any, int], columns: Sequence[str]) -> dict[Any, dict[str, Any]]:
        """``columns`` (and ``id``) of each key, by its row id in ``row_ids`` (else by id); keys not found are left
        out."""
        columns = list(dict.fromkeys(["id", *columns]))
        wanted = list(dict.fromkeys(keys))
        known = [key for key in wanted if key in row_ids]
        found: dict[Any, dict[str, Any]] = {}
        if known:
            parts = {key: {} for key in known}
            ids = np.array([row_ids[key] for key in known], dtype=np.uint64)
            self._from_memory(known, ids, [c for c in columns if c in self.memory_columns], parts)
            self._from_table(known, ids, [c for c in columns if c not in self.memory_columns], parts)
            found = {key: {c: part[c] for c in columns} for key, part in parts.items() if len(part) == len(columns)}
        missing = [key for key in wanted if key not in found]
        if missing:
            query = self.table.search().where(f"id IN ({sql_list(missing)})").select(columns).limit(len(missing))
            found.update((row["id"], row) for row in query.to_list())
        return found

    def _from_memory(self, keys: list[Any], ids: np.ndarray, columns: list[str],
                     parts: dict[Any, dict[str, Any]]) -> None:
        if not columns:
            return
        block_ids, block = self.block()
        if not len(block_ids):
            return
        at = np.minimum(np.searchsorted(block_ids, ids), len(block_ids) - 1)
        hit = block_ids[at] == ids
        values = block.select(columns).take(pa.array(at[hit])).to_pylist()
        for key, row in zip([k for k, ok in zip(keys, hit, strict=True) if ok], values, strict=True):
            parts[key].update(row)

    def _from_table(self, keys: list[Any], ids: np.ndarray, columns: list[str],
                    parts: dict[Any, dict[str, Any]]) -> None:
        if not columns:
            return
        data = self.table.take_row_ids([int(i) for i in ids]).select([*columns, "_rowid"]).to_arrow()
        by_row = {row.pop("_rowid"): row for row in data.to_pylist()}
        for key, row_id in zip(keys, ids.tolist(), strict=True):
            if row_id in by_row:
                parts[key].update(by_row[row_id])
