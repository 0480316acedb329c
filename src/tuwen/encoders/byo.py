"""Bring your own vectors: photo or text vectors computed elsewhere, ingested into the tables ``embed`` writes.

Why: a shop that already runs an embedding model (a CLIP service, a vendor's API, last year's pipeline) should
not have to re-embed a million photos to search and recommend with them. Its vectors land in
``vec__<name>__<field>`` exactly like an encoder's, so search (``IndexSettings.image_encoder = name``),
recommenders and ``tuwen info`` use them as they are.

Input, keyed by product id:

* Parquet with an id column and a vector column (a list of numbers per row), read in bounded chunks;
* ``.npz`` with two arrays, ``id`` and ``vector`` (rows × dimension);
* ``.npy`` (rows × dimension) with ``ids``: a text file of one product id per line, in the same order.

Each row is checked: a product id the catalog holds, once per file, a vector of the file's dimension (the
first good row's, or the existing table's) with finite numbers and not all zero. A bad row is a reject naming
file, row, field and reason (also kept in the workspace's rejects table); good rows go in, all in one
transaction, so a failed run leaves the previous vectors whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tuwen.encoders.cache import table_name, vector_schema
from tuwen.store.catalog import NoRowsLanded, Reject, RejectedInput, rejects_frame
from tuwen.store.workspace import Workspace
from tuwen.util.progress import progress_bar

CHUNK_ROWS = 100_000
KIND = "vectors"


class VectorFileError(ValueError):
    """The vectors file as a whole cannot be used (missing, unknown format, no id or vector column)."""


def ingest_vectors(workspace: Workspace, path: str | Path, name: str, field: str = "image", *,
                   ids: str | Path | None = None, id_column: str = "id", vector_column: str = "vector",
                   strict: bool = False, progress: bool = True) -> dict[str, Any]:
    """Write the vectors of ``path`` into ``vec__<name>__<field>``; returns counts and the rejects."""
    path = Path(path)
    if not path.is_file():
        raise VectorFileError(f"{path}: no such file")
    if not name or not name.replace("_", "").replace("-", "").isalnum():
        raise VectorFileError(f"vector name {name!r}: use letters, digits, '-' or '_' (it names the table)")
    table = table_name(name, field)
    known = set(workspace.read("products", ["id"])["id"])
    if not known:
        raise VectorFileError(f"{workspace.path}: no products yet; ingest the catalog before its vectors")
    dim = _existing_dim(workspace, table)
    rejects: list[Reject] = []
    written = 0
    seen: set[str] = set()
    with workspace.transaction(f"vectors {name} {field} from {path.name}") as writer:
        append = not workspace.has_table(table) or workspace.count(table) == 0
        with progress_bar(_rows(path, ids), f"vectors · {name} {field}", progress) as advance:
            for first_row, chunk_ids, vectors, lengths in _chunks(path, ids, id_column, vector_column):
                good, dim, bad = _check(chunk_ids, vectors, lengths, first_row, dim, known, seen, str(path))
                rejects += bad
                if good.any() and dim:
                    rows = _table(np.asarray(chunk_ids, dtype=object)[good], vectors[good], dim)
                    if append:
                        writer.append(table, rows, vector_schema(dim))
                    else:
                        writer.upsert(table, rows, schema=vector_schema(dim))
                    written += int(good.sum())
                advance(len(chunk_ids))
        if strict and rejects:
            raise RejectedInput(rejects)
        if written == 0:
            raise NoRowsLanded(rejects)
        writer.meta[table] = {"encoder": name, "field": field, "dim": dim,
                              "modality": "image" if field == "image" else "text", "source": "byo", "file": str(path)}
        writer.replace_rows("rejects", rejects_frame(rejects), "file", [str(path)])
    return {"table": table, "written": written, "dim": dim, "rejects": rejects}


def _existing_dim(workspace: Workspace, table: str) -> int | None:
    if not workspace.has_table(table):
        return None
    return workspace.table(table).schema.field("vector").type.list_size


def _rows(path: Path, ids: str | Path | None) -> int:
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        return pq.ParquetFile(path).metadata.num_rows
    if suffix == ".npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    return 0


def _chunks(path: Path, ids: str | Path | None, id_column: str,
            vector_column: str) -> Iterator[tuple[int, list[str], np.ndarray, np.ndarray]]:
    """(1-based row of the chunk's first row, ids, vectors as float64 rows NaN-padded to the longest, each
    row's length)."""
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".pq"}:
        yield from _parquet_chunks(path, id_column, vector_column)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in ("id", "vector") if k not in data]
            if missing:
                raise VectorFileError(f"{path}: expected arrays 'id' and 'vector' in the .npz (missing "
                                      f"{', '.join(missing)})")
            yield from _array_chunks(path, [str(i) for i in data["id"].tolist()], data["vector"])
    elif suffix == ".npy":
        if ids is None:
            raise VectorFileError(f"{path}: a .npy file holds no product ids; give --ids FILE (one id per line)")
        lines = Path(ids).read_text(encoding="utf-8").splitlines()
        yield from _array_chunks(path, lines, np.load(path, mmap_mode="r", allow_pickle=False))
    else:
        raise VectorFileError(f"{path}: unsupported vectors file {suffix!r} (use .parquet, .npz or .npy)")


def _parquet_chunks(path: Path, id_column: str,
                    vector_column: str) -> Iterator[tuple[int, list[str], np.ndarray, np.ndarray]]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise VectorFileError(f"{path}: cannot read it as Parquet: {error}") from error
    names = parquet.schema_arrow.names
    for column in (id_column, vector_column):
        if column not in names:
            raise VectorFileError(f"{path}: no column {column!r} (it has: {', '.join(names)}); "
                                  "name the columns with --id-column / --vector-column")
    row = 1
    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=[id_column, vector_column]):
        ids = [("" if v is None else str(v)) for v in batch.column(0).to_pylist()]
        yield row, ids, *_ragged(batch.column(1))
        row += batch.num_rows


def _ragged(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list column as (float64 matrix NaN-padded to the longest row, each row's length; 0 for a null row)."""
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)
            or pa.types.is_fixed_size_list(column.type)):
        raise VectorFileError(f"the vector column holds {column.type}, not lists of numbers")
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    width = int(lengths.max()) if len(lengths) else 0
    out = np.full((len(column), max(width, 1)), np.nan)
    flat = pc.cast(pc.list_flatten(column), pa.float64()).to_numpy(zero_copy_only=False)
    rows = np.repeat(np.arange(len(column)), lengths)
    cols = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = flat
    return out, lengths


def _array_chunks(path: Path, ids: list[str],
                  vectors: np.ndarray) -> Iterator[tuple[int, list[str], np.ndarray, np.ndarray]]:
    if vectors.ndim != 2:
        raise VectorFileError(f"{path}: expected a 2-d array (rows × dimension), got shape {vectors.shape}")
    if len(ids) != len(vectors):
        raise VectorFileError(f"{path}: {len(vectors)} vectors but {len(ids)} ids; they must pair up row by row")
    for lo in range(0, len(ids), CHUNK_ROWS):
        chunk = np.asarray(vectors[lo:lo + CHUNK_ROWS], dtype=np.float64)
        yield lo + 1, ids[lo:lo + CHUNK_ROWS], chunk, np.full(len(chunk), vectors.shape[1], dtype=np.int64)


def _check(ids: list[str], matrix: np.ndarray, lengths: np.ndarray, first_row: int, dim: int | None,
           known: set[str], seen: set[str], file: str) -> tuple[np.ndarray, int | None, list[Reject]]:
    """Which rows go in, the dimension (the existing table's, else the first good row's), a reject per bad row."""
    rejects: list[Reject] = []
    good = np.ones(len(ids), dtype=bool)
    finite = np.isfinite(matrix)
    nonzero = np.abs(np.nan_to_num(matrix)).sum(axis=1) > 0
    for i, product in enumerate(ids):
        length = int(lengths[i])
        field = "id"
        if not product:
            reason = "missing product id"
        elif product not in known:
            reason = f"unknown product id {product[:60]!r} (not in the catalog)"
        elif product in seen:
            reason = f"duplicate product id {product[:60]!r} (one vector per product)"
        else:
            field = "vector"
            if length == 0:
                reason = "missing vector"
            elif dim is not None and length != dim:
                reason = f"dimension {length}, expected {dim}"
            elif not finite[i, :length].all():
                reason = "not finite (NaN or infinity)"
            elif not nonzero[i]:
                reason = "all zeros (no direction to compare)"
            else:
                reason = ""
        if reason:
            good[i] = False
            rejects.append(Reject(file, first_row + i, field, reason, KIND))
            continue
        dim = dim or length
        seen.add(product)
    return good, dim, rejects


def _table(ids: np.ndarray, vectors: np.ndarray, dim: int) -> pa.Table:
    matrix = np.ascontiguousarray(vectors[:, :dim], dtype=np.float32)
    hashes = [hashlib.sha1(row.tobytes()).hexdigest() for row in matrix]
    return pa.table({"id": pa.array(ids.tolist(), pa.string()), "hash": pa.array(hashes, pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), dim)})
