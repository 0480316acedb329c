"""Shoppers' events read, mapped and validated one bounded chunk at a time: ingest at 30M purchases.

Why: loading an events file whole costs about a kilobyte of Python objects per event, so memory grew with the
file (tens of gigabytes at a real shop's size). An :class:`EventStream` is handed to the workspace inside its
write transaction; the workspace pulls chunks from it, writes each, and commits once at the end, so the ingest
stays atomic as a whole while only one chunk is ever held. Rejects accumulate on the stream, with the same
file / row / field / reason as the whole-file path.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tuwen.ingest.mapping import DEFAULT_INTERACTION_MAP, ColumnMap, MappingError, apply_map
from tuwen.ingest.readers import CHUNK_ROWS, Chunk, iter_rows
from tuwen.store.catalog import INTERACTION_SCHEMA, Reject
from tuwen.store.events import EVENT_FIELDS, Occurrences, validate_events
from tuwen.util.progress import progress_bar


class EventStream:
    """The validated events of one file, as Arrow tables in INTERACTION_SCHEMA, read lazily when iterated.

    Iterate it once: rows read so far are counted in ``rows``, rejected rows collected in ``rejects``.
    """

    def __init__(self, file: Path | str, mapping: ColumnMap | None = None, default_kind: str = "purchase",
                 chunk_rows: int | None = None, progress: bool = True):
        self.file = Path(file)
        self.mapping = mapping or ColumnMap()
        self.default_kind = default_kind
        self.chunk_rows = chunk_rows or CHUNK_ROWS
        self.progress = progress
        self.rows = 0
        self.rejects: list[Reject] = []
        self._used = False

    def __iter__(self) -> Iterator[pa.Table]:
        if self._used:
            raise RuntimeError(f"{self.file}: an event stream can be read only once")
        self._used = True
        occurrences = Occurrences()
        mapping: ColumnMap | None = None
        size = self.file.stat().st_size if self.file.exists() else 0
        with progress_bar(size, f"events {self.file.name}", self.progress and size > (32 << 20)) as advance:
            for chunk in iter_rows(self.file, "interactions", self.chunk_rows):
                mapping = mapping or self._mapping(chunk)
                events, rejects = validate_events(_mapped(chunk, mapping, self.file), str(self.file),
                                                  self.default_kind, occurrences, texts_checked=True)
                self.rejects += sorted(chunk.rejects + rejects, key=lambda r: r.row)
                self.rows += events.num_rows
                advance(_approximate_bytes(chunk))
                if events.num_rows:
                    yield events

    def _mapping(self, chunk: Chunk) -> ColumnMap:
        columns = list(chunk.rows.column_names if isinstance(chunk.rows, pa.Table) else chunk.rows.columns)
        mapping = self.mapping.with_defaults(DEFAULT_INTERACTION_MAP, columns)
        for required in ("user_id", "product_id", "timestamp"):
            if required not in mapping.fields:
                raise MappingError(f"{self.file}: no column for {required!r}; add --interaction-map "
                                   f"{required}=COLUMN")
        mapping.check(columns, self.file)
        return mapping

    def frame(self) -> tuple[pd.DataFrame, list[Reject]]:
        """Every event at once, as the whole-file loader returned them (for small files and tests)."""
        tables = list(self)
        table = pa.concat_tables(tables) if tables else INTERACTION_SCHEMA.empty_table()
        return table.to_pandas(), self.rejects


def _mapped(chunk: Chunk, mapping: ColumnMap, file: Path) -> pa.Table | pd.DataFrame:
    """The chunk's canonical event columns; one source column per field stays in Arrow, joins go through pandas."""
    if isinstance(chunk.rows, pa.Table) and all(len(mapping.fields[name]) == 1 for name in EVENT_FIELDS
                                                if name in mapping.fields):
        fields = {name: chunk.rows[mapping.fields[name][0]] for name in EVENT_FIELDS if name in mapping.fields}
        return pa.table({"_row": chunk.rows["_row"], **fields})
    return apply_map(chunk.frame(), mapping, file)


def _approximate_bytes(chunk: Chunk) -> int:
    """About how much of the file a chunk covered, for the progress bar (text length plus separators)."""
    rows = chunk.rows
    if isinstance(rows, pa.Table):  # text bytes, less the 4-byte offsets, plus one separator per cell
        return int(sum(column.nbytes for column in rows.columns[1:])) - 3 * rows.num_rows * (rows.num_columns - 1)
    return int(rows.drop(columns="_row").map(len).to_numpy().sum()) + rows.size if len(rows) else 0
