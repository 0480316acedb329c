"""The workspace: one folder holding a shop's catalog, events, reviews and feature vectors.

Layout::

    WS/tuwen.json        schema version + the committed version of every table
    WS/db/               LanceDB tables (embedded, no server)
    WS/artifacts/        fitted encoders, trained models, reports

``WS`` may also be ``s3://bucket/path`` (an S3-compatible bucket every node of a cluster reaches): the manifest,
the writer lock and the tables live in the bucket, the artefacts on the local disk (:mod:`tuwen.store.objectstore`).

Why the manifest: LanceDB commits each table write atomically, but an ingest writes
several tables. ``tuwen.json`` records which table versions belong to the last complete
operation and is replaced atomically (write + rename) only after all of them landed.
Readers see those versions; a writer that finds newer, uncommitted versions (a crash or
Ctrl-C mid-ingest) rolls them back first. So a failed run leaves the previous state whole.

One writer at a time (:mod:`tuwen.store.lock`). After a commit, tables that carry much dead data (old
versions left by upserts) are compacted, the compacted version committed, and only then are versions older
than ``TUWEN_KEEP_VERSIONS_S`` (60 s) deleted — never the one the manifest points to.

Reads by shopper (one shopper's history, forgetting a shopper) filter the events on ``user_id``; once a table
holds enough rows the commit's clean-up gives that column a B-tree index, committed to the manifest like a
compaction, so such a read looks the shopper up instead of scanning every shopper id.

Forgotten shoppers (``tuwen forget``) are remembered in the manifest as keyed hashes, and their rows are
dropped at every later ingest (:mod:`tuwen.store.forgotten`).

The parts live beside this module, which re-exports their public names: the manifest file
(:mod:`tuwen.store.manifest`), the tables and key filters (:mod:`tuwen.store.tables`), the writes of a
transaction (:mod:`tuwen.store.writer`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lancedb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from lancedb.index import BTree

from tuwen.store.catalog import Batch, NoRowsLanded, RejectedInput, rejects_frame
from tuwen.store.forgotten import drop_forgotten, drop_forgotten_rows, shopper_digest
from tuwen.store.lock import writer_lock
from tuwen.store.manifest import (
    MANIFEST,
    SCHEMA_VERSION,
    WorkspaceError,
    atomic_write_text,
    new_manifest,
    read_manifest,
    save_manifest,
)
from tuwen.store.objectstore import ObjectStoreError, S3Folder, is_remote, storage_options
from tuwen.store.tables import KEYS_PER_FILTER, TABLE_SCHEMAS, delete_rows, key_filters, sql_list, table_names
from tuwen.store.writer import Writer

__all__ = [  # the store's public names, wherever they live: other packages import them from here
    "KEEP_VERSIONS_S", "KEY_INDEXES", "KEY_INDEX_MIN_ROWS", "KEYS_PER_FILTER", "LOCK_TIMEOUT_S", "MANIFEST",
    "SCHEMA_VERSION", "TABLE_SCHEMAS", "TIDY_DISK_RATIO", "TIDY_VERSIONS", "Workspace", "WorkspaceError", "Writer",
    "as_workspace", "delete_rows", "key_filters", "shopper_digest", "sql_list", "table_names",
]


LOCK_TIMEOUT_S = 60.0  # how long a second writer waits for the first (env TUWEN_LOCK_TIMEOUT)
KEEP_VERSIONS_S = 60.0  # table versions younger than this survive clean-up, for readers still on them
# A table is compacted and cleaned once its folder holds this many times its live data (dead rows of old
# versions), or once it has this many versions: appends alone (embedding chunks) never trigger a rewrite.
TIDY_DISK_RATIO = 2.0
TIDY_VERSIONS = 100
# Columns read one key at a time (a shopper's history, a forget) get a B-tree index once their table holds
# KEY_INDEX_MIN_ROWS rows, and rows the index does not cover yet are folded in once there are that many: below
# it, scanning the column costs about what the index lookup does, and an index would only add files and versions.
KEY_INDEXES: dict[str, str] = {"interactions": "user_id", "reviews": "user_id"}
KEY_INDEX_MIN_ROWS = 100_000


def _env_seconds(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    try:
        return max(0.0, float(value)) if value.strip() else default
    except ValueError as error:
        raise WorkspaceError(f"{name}={value!r}: expected a number of seconds") from error


def _folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class Workspace:
    """A tuwen workspace folder; created on first use.

    >>> ws = Workspace("shop")                               # doctest: +SKIP
    >>> ws.ingest(preset="fashion", path="datasets/fashion")  # doctest: +SKIP
    >>> ws.embed()                                            # doctest: +SKIP
    >>> ws.info()                                             # doctest: +SKIP
    """

    def __init__(self, path: str | Path, create: bool = True, lock_timeout: float | None = None,
                 keep_versions_s: float | None = None, storage: dict[str, str] | None = None):
        # s3://bucket/path: manifest, lock and tables in the bucket, artefacts in a local cache (``path``)
        self.remote = S3Folder(str(path), storage_options(storage)) if is_remote(path) else None
        self.uri = self.remote.uri if self.remote else str(path)
        self.path = self.remote.cache_folder() if self.remote else Path(path)
        self.lock_timeout = _env_seconds("TUWEN_LOCK_TIMEOUT", LOCK_TIMEOUT_S) if lock_timeout is None \
            else lock_timeout
        self.keep_versions_s = _env_seconds("TUWEN_KEEP_VERSIONS_S", KEEP_VERSIONS_S) if keep_versions_s is None \
            else keep_versions_s
        self.manifest_path = self.path / MANIFEST
        if self.remote is not None:
            self._open_remote(create)
        elif self.manifest_path.exists():
            self.manifest = self._read_manifest()
        elif not create:
            raise WorkspaceError(f"{self.path}: not a tuwen workspace (no {MANIFEST}); run `tuwen ingest` first")
        else:
            if self.path.exists() and any(self.path.iterdir()):
                raise WorkspaceError(f"{self.path}: folder exists, is not empty and is not a tuwen workspace")
            self.path.mkdir(parents=True, exist_ok=True)
            self.manifest = new_manifest()
            atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=2))
        self.artifacts = self.path / "artifacts"
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.db = lancedb.connect(self.remote.db_uri, storage_options=self.remote.options) if self.remote \
            else lancedb.connect(str(self.path / "db"))

    def _open_remote(self, create: bool) -> None:
        """Read (or, with ``create``, start) the manifest of a workspace in a bucket."""
        assert self.remote is not None
        try:
            if self.remote.exists(MANIFEST):
                self.manifest = self._read_manifest()
                return
            if not create:
                raise WorkspaceError(f"{self.uri}: not a tuwen workspace (no {MANIFEST}); run `tuwen ingest` first")
            if not self.remote.is_empty():
                raise WorkspaceError(f"{self.uri}: holds objects and is not a tuwen workspace")
            self.manifest = new_manifest()
            self.remote.write_text(MANIFEST, json.dumps(self.manifest, indent=2), create=True)
        except ObjectStoreError as error:  # unreachable, refused, or raced: one clear line naming the bucket
            raise WorkspaceError(str(error)) from error

    def _save_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace the manifest in one step (:func:`tuwen.store.manifest.save_manifest`)."""
        save_manifest(self.path, self.remote, manifest)

    # ----------------------------------------------------------------- manifest
    def _read_manifest(self) -> dict[str, Any]:
        """The manifest as committed now, checked to be a version this tuwen reads."""
        return read_manifest(self.path, self.remote)

    def committed_tables(self) -> dict[str, int]:
        return dict(self.manifest["tables"])

    def has_table(self, name: str) -> bool:
        return name in self.manifest["tables"]

    def table(self, name: str) -> lancedb.table.Table:
        """The table as of the last complete operation (never a half-written newer version)."""
        if name not in self.manifest["tables"]:
            raise KeyError(f"{self.path}: no table {name!r} in this workspace")
        table = self.db.open_table(name)
        if table.version != self.manifest["tables"][name]:
            table.checkout(self.manifest["tables"][name])
        return table

    def read(self, name: str, columns: list[str] | None = None, where: str | None = None) -> pd.DataFrame:
        """A whole table as a DataFrame (only the rows matching the SQL filter ``where``, when given); an absent
        table reads as empty with its schema."""
        if name not in self.manifest["tables"]:
            schema = TABLE_SCHEMAS.get(name)
            if schema is None:
                return pd.DataFrame(columns=columns or [])
            frame = schema.empty_table().to_pandas()
            return frame[columns] if columns else frame
        table = self.read_arrow(name, columns, where)
        return table.select(columns).to_pandas() if columns else table.to_pandas()

    def read_keys(self, name: str, key: str, values: Sequence[Any], columns: list[str] | None = None
                  ) -> pd.DataFrame:
        """The rows whose ``key`` is one of ``values`` (table order within each slice of them), read with filters:
        one shopper's events or a page's products without the whole table in memory."""
        values = list(dict.fromkeys(str(v) for v in values))
        if not values or name not in self.manifest["tables"]:
            return self.read(name, columns).iloc[0:0]
        frames = [self.read(name, columns, where=where) for where in key_filters(values, key)]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def read_arrow(self, name: str, columns: list[str] | None = None, where: str | None = None) -> pa.Table:
        """A committed table as Arrow, only ``columns`` read from disk (a million products' descriptions and
        attributes are gigabytes once in Python: reading them to use the ids was what made ``info`` heavy).
        ``where``: only the rows matching this SQL filter, filtered by LanceDB as it scans (one product or one
        shopper's events without the whole table in memory). Columns the schema knows but an older workspace
        lacks read as null."""
        live = self.table(name)
        present = live.schema.names
        wanted = [c for c in columns if c in present] if columns else None
        if where is not None:
            table = live.search().where(where).select(wanted or present).limit(None).to_arrow()
        else:
            table = live.search().select(wanted).limit(None).to_arrow() if wanted else live.to_arrow()
        schema = TABLE_SCHEMAS.get(name)
        if schema is not None:  # a workspace written before a column existed reads it as null
            for missing in [f for f in schema if f.name not in table.column_names and (not columns or
                                                                                       f.name in columns)]:
                table = table.append_column(missing, pa.nulls(len(table), missing.type))
        return table

    def scan(self, name: str, columns: list[str] | None = None, batch_rows: int = 50_000) -> Iterator[pa.Table]:
        """A committed table in slices of at most ``batch_rows`` rows, only ``columns`` read: memory bounded
        by one slice, whatever the table's size (the search index build streams a million products this way)."""
        if name not in self.manifest["tables"]:
            return
        live = self.table(name)
        present = live.schema.names
        wanted = [c for c in columns if c in present] if columns else present
        schema = TABLE_SCHEMAS.get(name)
        absent = [f for f in (schema or []) if f.name not in present and (not columns or f.name in columns)]
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in live.search().select(wanted).limit(None).to_batches(batch_rows):
            pending.append(batch)
            size += batch.num_rows
            while size >= batch_rows:  # the reader's batches end at data-file boundaries: re-cut them
                joined = pa.Table.from_batches(pending)
                yield self._with_absent(joined.slice(0, batch_rows), absent)
                pending = joined.slice(batch_rows).to_batches()
                size -= batch_rows
        if size:
            yield self._with_absent(pa.Table.from_batches(pending), absent)

    @staticmethod
    def _with_absent(table: pa.Table, absent: list[pa.Field]) -> pa.Table:
        for field in absent:
            table = table.append_column(field, pa.nulls(len(table), field.type))
        return table

    def event_summary(self) -> tuple[dict[str, int], int]:
        """(events per kind, distinct shoppers with any event), streamed: 30M events' shopper ids as Python
        strings are gigabytes, while the distinct ones and the kinds are small."""
        kinds: dict[str, int] = {}
        shoppers: pa.Array = pa.array([], pa.string())
        for part in self.scan("interactions", ["user_id", "kind"], batch_rows=1_000_000):
            for item in pc.value_counts(part.column("kind")).to_pylist():
                if item["values"] is None:
                    continue
                kinds[str(item["values"])] = kinds.get(str(item["values"]), 0) + int(item["counts"])
            shoppers = pc.unique(pa.concat_arrays([shoppers, pc.unique(part.column("user_id")).cast(pa.string())]))
        return dict(sorted(kinds.items())), len(pc.drop_null(shoppers))

    def count(self, name: str, where: str | None = None) -> int:
        return self.table(name).count_rows(where) if name in self.manifest["tables"] else 0

    # -------------------------------------------------------------- transaction
    @contextlib.contextmanager
    def transaction(self, note: str) -> Iterator[Writer]:
        """Write several tables so that they become visible together, or not at all."""
        with writer_lock(self.path, self.remote, self.lock_timeout):
            self.manifest = self._read_manifest()
            self._roll_back_uncommitted()
            writer = Writer(self)
            try:
                yield writer
            except BaseException:
                self._roll_back_uncommitted()
                raise
            tables = {**self.manifest["tables"], **writer.versions}
            for name in writer.dropped:
                tables.pop(name, None)
            history = (self.manifest.get("history") or [])[-49:] + [{"time": time.time(), "note": note}]
            meta = {**self.manifest.get("meta", {}), **writer.meta}
            manifest = {**self.manifest, "tables": tables, "history": history, "meta": meta}
            if writer.forgotten:
                known = self.manifest.get("forgotten") or {}
                manifest["forgotten"] = {"salt": writer.salt,
                                         "hashes": sorted(set(known.get("hashes", [])) | writer.forgotten)}
            self._save_manifest(manifest)
            self.manifest = manifest
            for name in writer.dropped:
                if name in table_names(self.db):
                    self.db.drop_table(name)
            try:
                self._tidy([name for name in writer.versions if name not in writer.dropped], writer.purge)
            except (OSError, RuntimeError, ValueError) as error:  # the commit stands; clean-up retries next time
                if writer.purge:  # a forget's removed rows must not stay on disk in old versions: say so loudly
                    raise
                warnings.warn(f"{self.path}: could not clean up old table versions: {error}", stacklevel=3)

    def _commit_versions(self, versions: dict[str, int]) -> None:
        """Point the manifest at new versions of tables whose content did not change (compaction)."""
        self.manifest = {**self.manifest, "tables": {**self.manifest["tables"], **versions}}
        self._save_manifest(self.manifest)

    def _needs_tidy(self, name: str, table: Any) -> bool:
        stored = self.remote.folder_bytes(f"db/{name}.lance") if self.remote \
            else _folder_bytes(self.path / "db" / f"{name}.lance")
        live = int(table.stats().get("total_bytes") or 0)
        return (stored > TIDY_DISK_RATIO * live + 8_192
                or len(table.list_versions()) > TIDY_VERSIONS)

    def _tidy(self, names: Sequence[str], purge: set[str] | frozenset[str] = frozenset()) -> None:
        """Compact tables that carry dead data and delete their old versions, crash-safely (under the lock);
        then index their key columns (:meth:`_index_keys`).

        LanceDB's ``optimize`` compacts and deletes versions in one call, so it runs twice: first with
        a clean-up age no version has (compaction only); the compacted version, same rows, is committed
        to the manifest; then with ``keep_versions_s``, which deletes older versions but never the latest
        (the committed one). A crash between the two leaves old versions, never a missing committed one.
        Tables in ``purge`` (rows a ``forget`` removed) lose every old version now, whatever their size.
        """
        for name in names:
            if name not in self.manifest["tables"]:
                continue
            table = self.db.open_table(name)
            if table.version != self.manifest["tables"][name]:
                continue
            compact = name in purge or self._needs_tidy(name, table)
            if name in KEY_INDEXES:  # first: a purge's clean-up below must also delete the index it replaces
                try:
                    self._index_keys(name, table, KEY_INDEXES[name], rebuild=name in purge, fold=not compact)
                except (OSError, RuntimeError, ValueError) as error:
                    if name in purge:  # the old index holds the forgotten shopper's id: say so loudly
                        raise
                    warnings.warn(f"{self.path}: could not index {name}.{KEY_INDEXES[name]} (reads by it scan the "
                                  f"column until a later write retries): {error}", stacklevel=4)
            if compact:
                self._compact(name, table, purge)

    def _compact(self, name: str, table: Any, purge: set[str] | frozenset[str]) -> None:
        """The two ``optimize`` runs of :meth:`_tidy` (the first also folds new rows into the table's indexes)."""
        table.optimize(cleanup_older_than=dt.timedelta(days=36_500))
        if table.version != self.manifest["tables"][name]:
            self._commit_versions({name: table.version})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "removes every version except the latest": intended
            table.optimize(cleanup_older_than=dt.timedelta(seconds=0 if name in purge else self.keep_versions_s),
                           delete_unverified=name in purge)
        if table.version != self.manifest["tables"][name]:
            self._commit_versions({name: table.version})

    def _index_keys(self, name: str, table: Any, column: str, rebuild: bool = False, fold: bool = True) -> None:
        """Give ``column`` a B-tree index once the table holds :data:`KEY_INDEX_MIN_ROWS` rows, and keep it
        covering the table; the new table version is committed to the manifest like a compaction (same rows).

        Reads stay exact whatever the index covers: LanceDB looks the indexed data files up and scans the rest.
        Rows added since the index was built are folded in (``optimize``, incremental) once there are
        :data:`KEY_INDEX_MIN_ROWS` of them, unless the compaction about to run does it anyway (``fold=False``).
        ``rebuild`` (rows were forgotten): built again from the live rows, because an index keeps its pages for a
        deleted data file when nothing new is merged in, and those pages hold the forgotten shopper's id.
        A crash before the commit leaves the manifest on the previous version, which the next writer restores.
        """
        if column not in table.schema.names:
            return
        index = next((i for i in table.list_indices() if list(i.columns) == [column]), None)
        if index is None or rebuild:
            if index is None and table.count_rows() < KEY_INDEX_MIN_ROWS:
                return
            table.create_index(column, config=BTree(), replace=True, name=index.name if index else None)
        elif fold and (table.index_stats(index.name).num_unindexed_rows or 0) >= KEY_INDEX_MIN_ROWS:
            table.optimize(cleanup_older_than=dt.timedelta(days=36_500))
        if table.version != self.manifest["tables"][name]:
            self._commit_versions({name: table.version})

    # ---------------------------------------------------------------- forgotten
    def forgotten_hashes(self) -> set[str]:
        """Keyed hashes of every shopper ``forget`` removed (see :func:`shopper_digest`)."""
        return set((self.manifest.get("forgotten") or {}).get("hashes", []))

    def _roll_back_uncommitted(self) -> None:
        committed = self.manifest["tables"]
        for name in table_names(self.db):
            if name not in committed:
                self.db.drop_table(name)  # created by an operation that never completed
                continue
            table = self.db.open_table(name)
            if table.version != committed[name]:
                table.restore(committed[name])
                self.manifest["tables"][name] = table.version
        self._save_manifest(self.manifest)

    # ------------------------------------------------------------------- ingest
    def write_batch(self, batch: Batch, files: set[str], note: str) -> Batch:
        """Upsert an ingested batch by id in one transaction, less the rows of forgotten shoppers; the rejects of
        ``files`` (the batch's input files) replace those files' earlier rejects, so a fixed file clears them."""
        with self.transaction(note) as writer:
            # under the lock: a forget that just ran counts
            batch.forgotten = drop_forgotten(batch, self.manifest.get("forgotten"))
            if batch.event_stream is not None:
                self._write_event_stream(writer, batch)
            if batch.landed() == 0:
                raise NoRowsLanded(batch.rejects, batch.forgotten)
            if batch.strict and batch.rejects:
                raise RejectedInput(batch.rejects)
            writer.upsert("products", batch.products)
            writer.upsert("interactions", batch.interactions)
            writer.upsert("reviews", batch.reviews)
            if batch.users is not None:
                writer.upsert("users", batch.users)
            for name in ("questions", "messages"):
                if getattr(batch, name) is not None:
                    writer.upsert(name, getattr(batch, name))
            writer.replace_rows("rejects", rejects_frame(batch.rejects), "file",
                                sorted({r.file for r in batch.rejects} | files))
        return batch


    def _write_event_stream(self, writer: Writer, batch: Batch) -> None:
        """Write a batch's event stream chunk by chunk (one table version each, committed with the rest).

        Into an empty events table the chunks are appended: the stream numbers repeated events across the whole
        file, so its ids are unique and a merge (whose cost grows with the table) would find nothing to update.
        """
        stream = batch.event_stream
        append = self.count("interactions") == 0
        for events in stream:
            events, dropped = drop_forgotten_rows(events, "user_id", self.manifest.get("forgotten"))
            batch.forgotten += dropped
            batch.streamed += events.num_rows
            if append:
                writer.append("interactions", events)
            else:
                writer.upsert("interactions", events)
        batch.rejects += stream.rejects


def as_workspace(workspace: Workspace | str | Path) -> Workspace:
    """A workspace from a workspace or a folder path (an existing workspace: never creates one)."""
    return Workspace(workspace, create=False) if isinstance(workspace, str | Path) else workspace
