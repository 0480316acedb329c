"""Each signal's ranked candidates from the index: BM25 through LanceDB's full-text index, and the nearest products
of a vector column, exactly in memory below the ANN threshold or through LanceDB's ANN index above it.

Kept apart from the engine, which decides which signals a query asks for and fuses their lists: this is the one
place that knows how the two modes read the index (keys are row numbers in exact mode, product ids with ANN) and
how a filter is applied in each (a cached row mask in memory, a LanceDB prefilter with ANN).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa

from tuwen.search.common import SIGNAL_COLUMNS, IndexSettings, SearchError, query_error, top
from tuwen.search.results import Ranked
from tuwen.store.workspace import sql_list


class Retriever:
    """Ranked lists from one loaded index. In exact mode ``row`` maps product ids to row numbers and ``matrices``
    holds the unit-length vector columns (the engine loads both); with ANN both are empty."""

    def __init__(self, table: Any, settings: IndexSettings, ann: bool, row: dict[str, int],
                 matrices: dict[str, np.ndarray]) -> None:
        self.table = table
        self.settings = settings
        self.ann = ann
        self.row = row
        self.matrices = matrices
        self._filters: OrderedDict[str, np.ndarray] = OrderedDict()

    def clear(self) -> None:
        """Forget the filter masks of earlier queries."""
        self._filters.clear()

    def mask(self, where: str | None) -> np.ndarray | None:
        """Rows passing the SQL filter (exact mode), evaluated by LanceDB and cached per filter text."""
        if not where:
            return None
        cached = self._filters.get(where)
        if cached is None:
            try:
                rows = self.table.search().where(where).select(["id"]).limit(None).to_arrow()
            except Exception as error:  # LanceDB raises ValueError/RuntimeError with the parser's message
                raise query_error(where, error) from error
            cached = np.zeros(len(self.row), dtype=bool)
            cached[[self.row[pid] for pid in rows.column("id").to_pylist() if pid in self.row]] = True
            self._filters[where] = cached
            if len(self._filters) > 128:
                self._filters.popitem(last=False)
        return cached

    def lexical(self, words: str, where: str | None, n: int) -> Ranked:
        """BM25 of the (already segmented) query ``words`` over the indexed words."""
        if not words.strip():
            return Ranked([], np.zeros(0, np.float32))
        rows = self._run(self.table.search(words, query_type="fts", fts_columns="tokens"), "_score", where, n)
        ids = rows.column("id").to_pylist()
        keys = ids if self.ann else [self.row[pid] for pid in ids]
        return Ranked(keys, np.asarray(rows.column("_score").to_numpy(), np.float32), row_ids=self._row_ids(rows))

    def _run(self, builder: Any, score: str, where: str | None, n: int) -> pa.Table:
        """Run a LanceDB query with the filter applied first; its errors become a :class:`SearchError`.

        Only ids, scores and (ANN mode) LanceDB row ids: every column a query returns is read row by row for
        each of its ``n`` candidates, and at a million rows those reads cost more than the search itself. The
        columns are read once, after fusion, for the few candidates that are shown (:mod:`tuwen.search.rows`).
        """
        if where:
            builder = builder.where(where, prefilter=True)
        if self.ann:
            builder = builder.with_row_id(True)
        try:
            return builder.select(["id", score]).limit(n).to_arrow()
        except Exception as error:
            raise query_error(where, error) from error

    def _row_ids(self, rows: pa.Table) -> dict[Any, int] | None:
        if not self.ann:
            return None
        return dict(zip(rows.column("id").to_pylist(), rows.column("_rowid").to_pylist(), strict=True))

    def vector(self, column: str, query: np.ndarray, where: str | None, n: int) -> Ranked:
        """The ``n`` nearest products of one vector column: exact in memory, or through the ANN index."""
        if column not in self.table.schema.names:
            raise SearchError(f"this index has no {column}; re-run `tuwen embed` / `tuwen align` and `tuwen index`")
        if not self.ann:
            scores = self.matrices[column] @ query if column in self.matrices else self._fused_scores(query)
            mask = self.mask(where)
            if mask is not None:
                scores = np.where(mask, scores, -np.inf)
            best = top(scores, n)
            best = best[np.isfinite(scores[best])]
            return Ranked(list(best), scores[best].astype(np.float32))
        metric = "dot" if column == "xmodal_vec" else "cosine"  # xmodal carries the hubness penalty: dot product
        builder = (self.table.search(query, vector_column_name=column).distance_type(metric)
                   .ef(max(self.settings.ef, n * max(1, self.settings.refine_factor))).nprobes(self.settings.nprobes))
        if self.settings.refine_factor > 1:
            builder = builder.refine_factor(self.settings.refine_factor)
        rows = self._run(builder, "_distance", where, n)
        return Ranked(rows.column("id").to_pylist(), 1.0 - np.asarray(rows.column("_distance").to_numpy(), np.float32),
                      row_ids=self._row_ids(rows))

    def _fused_scores(self, query: np.ndarray) -> np.ndarray:
        w = self.settings.fused_image_weight
        d = self.matrices["text_vec"].shape[1]
        return self.matrices["text_vec"] @ query[:d] * math.sqrt(1 - w) + self.matrices["image_vec"] @ query[d:] * \
            math.sqrt(w)

    def exact_scores(self, signal: str, queries: dict[str, np.ndarray], keys: list[Any]) -> np.ndarray | None:
        """Exact scores of ``keys`` for a vector signal (exact mode only): weighted fusion needs every value."""
        if self.ann or signal not in queries:
            return None
        return self.matrices[SIGNAL_COLUMNS[signal]][np.asarray(keys, dtype=np.int64)] @ queries[signal]

    def product_vectors(self, product_id: str) -> dict[str, np.ndarray]:
        """A product's stored text and photo vectors, those it has (an all-zero vector is a missing one)."""
        if not isinstance(product_id, str) or not product_id:
            raise SearchError("similar needs a product id")
        if not self.ann:
            if product_id not in self.row:
                raise SearchError(f"no product with id {product_id!r} in the search index")
            r = self.row[product_id]
            return {c: self.matrices[c][r] for c in ("text_vec", "image_vec") if c in self.matrices
                    and np.abs(self.matrices[c][r]).sum() > 0}
        columns = [c for c in ("text_vec", "image_vec") if c in self.table.schema.names]
        rows = self.table.search().where(f"id IN ({sql_list([product_id])})").select(["id", *columns]).limit(1)
        found = rows.to_list()
        if not found:
            raise SearchError(f"no product with id {product_id!r} in the search index")
        return {c: np.asarray(found[0][c], np.float32) for c in columns if np.abs(np.asarray(found[0][c])).sum() > 0}
