"""The table writes of one workspace transaction (``with workspace.transaction(note) as writer``).

The writer only writes new table versions and records them; :meth:`tuwen.store.workspace.Workspace.transaction`
commits the recorded versions to the manifest together (or rolls them all back), then tidies the tables. Kept
apart from the workspace so that each write's own logic (merge, append, delete, erase from disk) reads on its own.
"""

from __future__ import annotations

import secrets
from typing import Any, Protocol

import lancedb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tuwen.store.forgotten import shopper_digest
from tuwen.store.tables import TABLE_SCHEMAS, delete_rows, table_names


class Store(Protocol):
    """What a writer needs of its workspace: the database and the manifest (read live, never written)."""

    db: lancedb.DBConnection
    manifest: dict[str, Any]


class Writer:
    """Table writes inside one transaction; records the versions to commit."""

    def __init__(self, workspace: Store):
        self.workspace = workspace
        self.versions: dict[str, int] = {}
        self.dropped: set[str] = set()
        self.meta: dict[str, Any] = {}
        self.forgotten: set[str] = set()
        self.purge: set[str] = set()  # tables whose old versions must go at once (a forget removed rows)
        self.salt: str = (workspace.manifest.get("forgotten") or {}).get("salt") or secrets.token_hex(16)

    def forget_shopper(self, user: str) -> None:
        """Remember (as a keyed hash) that ``user`` was forgotten, so later ingests drop their rows."""
        self.forgotten.add(shopper_digest(self.salt, user))

    def _open_or_create(self, name: str, schema: pa.Schema) -> lancedb.table.Table:
        db = self.workspace.db
        if name in self.workspace.manifest["tables"] or name in self.versions:
            table = db.open_table(name)
            missing = [f for f in schema if f.name not in table.schema.names]
            if missing:  # a table from before these columns existed: add them (null in the old rows)
                table.add_columns(missing)
            return table
        if name in table_names(db):
            db.drop_table(name)
        return db.create_table(name, schema=schema)

    def append(self, name: str, data: pa.Table, schema: pa.Schema | None = None) -> None:
        """Add rows whose keys the table does not hold yet (the caller knows): no merge, whose cost grows with the
        table, so a stream of chunks costs the same per chunk from first to last."""
        schema = schema or TABLE_SCHEMAS[name]
        table = self._open_or_create(name, schema)
        if data.num_rows:
            table.add(data.select(schema.names).cast(schema))
        self.versions[name] = table.version

    def upsert(self, name: str, frame: pd.DataFrame | pa.Table, key: str = "id",
               schema: pa.Schema | None = None) -> None:
        """Insert new rows and replace existing ones with the same key: re-running is idempotent."""
        schema = schema or TABLE_SCHEMAS[name]
        table = self._open_or_create(name, schema)
        if len(frame):
            data = frame.select(schema.names).cast(schema) if isinstance(frame, pa.Table) else \
                pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
            (table.merge_insert(key).when_matched_update_all().when_not_matched_insert_all().execute(data))
        self.versions[name] = table.version

    def replace_rows(self, name: str, frame: pd.DataFrame, column: str, values: list[str]) -> None:
        """Delete rows whose ``column`` is in ``values``, then add ``frame``."""
        schema = TABLE_SCHEMAS[name]
        table = self._open_or_create(name, schema)
        delete_rows(table, values, column)
        if len(frame):
            table.add(pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False))
        self.versions[name] = table.version

    def delete(self, name: str, values: list[str], key: str = "id") -> None:
        """Delete the rows whose ``key`` is in ``values`` from an existing table."""
        table = self.workspace.db.open_table(name)
        delete_rows(table, values, key)
        self.versions[name] = table.version

    def erase(self, name: str, where: str) -> int:
        """Remove the rows matching the SQL filter ``where`` so that they leave the disk, not just the view.

        A LanceDB delete only hides rows (a deletion file beside the data file). Here every data file (fragment)
        that holds a matching row is rewritten without them: its other rows are streamed into a new fragment,
        then the old fragment is deleted whole, which drops it from the table; the commit's clean-up (``purge``)
        then deletes the old files. Fragments without a match are left alone, so the cost is that of the
        fragments the rows sit in, not of the table. Returns how many rows went.
        """
        table = self.workspace.db.open_table(name)
        hits = table.search().where(where).select(["_rowaddr"]).limit(None).to_arrow()["_rowaddr"]
        if not len(hits):
            return 0
        fragments = pc.unique(pc.shift_right(hits, 32)).to_pylist()  # a row address is fragment << 32 | offset
        spans = " OR ".join(f"(_rowaddr >= {lo << 32} AND _rowaddr < {hi << 32})"
                            for lo, hi in _fragment_runs(table, sorted(fragments)))
        # IS NOT TRUE, not NOT: a row where the filter is NULL (a null key) is kept, not lost
        kept = table.search().where(f"({spans}) AND (({where}) IS NOT TRUE)").limit(None).to_batches(65_536)
        table.add(kept)  # reads the version before this add: the new fragment's rows are not in ``spans``
        table.delete(spans)
        self.versions[name] = table.version
        self.purge.add(name)
        return len(hits)

    def drop(self, name: str) -> None:
        self.dropped.add(name)


def _fragment_runs(table: Any, fragments: list[int]) -> list[tuple[int, int]]:
    """Sorted fragment ids as few half-open ranges ``[lo, hi)``: neighbours join when no other fragment lies
    between them (a count over the gap's row addresses, answered from the table's metadata). A filter of a few
    ranges scans much faster than one with a range per fragment when a shopper's rows sit in most of them."""
    runs: list[tuple[int, int]] = []
    for fragment in fragments:
        if runs and (runs[-1][1] == fragment or table.count_rows(
                f"_rowaddr >= {runs[-1][1] << 32} AND _rowaddr < {fragment << 32}") == 0):
            runs[-1] = (runs[-1][0], fragment + 1)
        else:
            runs.append((fragment, fragment + 1))
    return runs
