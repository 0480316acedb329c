"""Products as search documents, a slice at a time: words, filter columns and unit-length vectors.

Why in slices: a million products with a 512-number text vector, a photo vector and their fused column are
gigabytes as one matrix, and the catalog's descriptions and attributes as Python objects more again. Here
the catalog is read twice in slices of :data:`BATCH_ROWS` products. The first pass, before the index's
write lock, collects what needs the whole catalog (each text's words, the attribute keys that name the
filter columns, prices for the price buckets); the second, inside the write transaction, builds each
slice's documents with the vectors of just those products, fetched by row offset from the vector tables,
and hands it on to be written. Memory is bounded by one slice plus a few strings per product.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tuwen.encoders import encoder_names
from tuwen.encoders.cache import table_name as vector_table
from tuwen.search.align import load_alignment
from tuwen.search.common import IndexSettings, column_name, read_meta
from tuwen.search.tokens import segment
from tuwen.store.review_scores import product_review_scores
from tuwen.store.workspace import Workspace
from tuwen.util.progress import progress_bar
from tuwen.util.vectors import l2

BATCH_ROWS = 50_000  # products per slice
TEXT_COLUMNS = ["id", "title", "description", "category", "attributes", "price"]


class VectorColumn:
    """One vector table's rows, looked up by product id a slice at a time.

    Only the ids are held (id → row offset); a slice's vectors are read with one ``take`` by offset, so the
    vectors are never all in memory at once and the table is not scanned once per slice.
    """

    def __init__(self, workspace: Workspace, encoder: str, field_: str):
        self.table = workspace.table(vector_table(encoder, field_))
        ids = self.table.search().select(["id"]).limit(None).to_arrow().column("id").to_pylist()
        self.row = {pid: i for i, pid in enumerate(ids)}
        self.dim = self.table.schema.field("vector").type.list_size

    @classmethod
    def open(cls, workspace: Workspace, encoder: str | None, field_: str) -> VectorColumn | None:
        """The column, or None when the workspace has no such vectors."""
        if not encoder or not workspace.has_table(vector_table(encoder, field_)):
            return None
        return cls(workspace, encoder, field_)

    def get(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(float32 vectors in the order of ``ids``, zeros where a product has none; which ones are present)."""
        rows = np.array([self.row.get(pid, -1) for pid in ids], dtype=np.int64)
        present = rows >= 0
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        if present.any():
            wanted = np.unique(rows[present])
            taken = self.table.take_offsets(wanted.tolist()).select(["vector"]).to_arrow().column("vector")
            matrix = taken.combine_chunks().flatten().to_numpy().reshape(len(wanted), self.dim)
            out[present] = matrix[np.searchsorted(wanted, rows[present])]
        return out, present


@dataclass
class DocsPlan:
    """What the first pass learnt about the whole catalog, and the vector columns the documents will carry."""

    ids: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    digests: list[str] = field(default_factory=list)
    prices: list[float] = field(default_factory=list)
    attribute_keys: dict[str, str] = field(default_factory=dict)  # catalog key → column name
    text: list[tuple[VectorColumn, float]] = field(default_factory=list)
    image: VectorColumn | None = None
    joined: list[VectorColumn] = field(default_factory=list)  # the alignment's photo features, side by side
    alignment: Any = None
    reviews: pd.DataFrame | None = None
    report: dict[str, Any] = field(default_factory=dict)

    def row_of(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.ids)}


def plan_docs(workspace: Workspace, settings: IndexSettings, progress: bool) -> DocsPlan:
    """First pass over the catalog (no lock held): words of every text, attribute keys, prices; and which vector
    columns the documents get."""
    plan = DocsPlan()
    fields = [f for f in settings.fields if f != "ocr" or workspace.has_table("ocr")]
    ocr = _ocr_texts(workspace) if "ocr" in fields else {}
    salt = _segmenter_version().encode()
    known = previous_tokens(workspace)
    keys: dict[str, None] = {}
    total = workspace.count("products")
    with progress_bar(total, "index · words (jieba)", progress and total > 2000) as advance:
        for batch in workspace.scan("products", _text_columns(fields), BATCH_ROWS):
            frame = batch.to_pandas()
            texts = [_field_texts(frame, f, ocr) for f in fields]
            joined = [" ".join(str(t) for t in row if t) for row in zip(*(t.tolist() for t in texts), strict=True)] \
                if texts else [""] * len(frame)
            for text in joined:
                digest = hashlib.sha1(salt + text.encode("utf-8", "surrogatepass")).hexdigest()[:20]
                words = known.get(digest)
                if words is None:
                    words = known[digest] = segment(text)
                plan.digests.append(digest)
                plan.tokens.append(words)
            plan.ids += frame["id"].tolist()
            plan.prices += frame["price"].astype("float64").tolist()
            for attributes in frame["attributes"].fillna("").tolist():
                keys.update(dict.fromkeys(json.loads(attributes) if attributes else {}))
            advance(len(frame))
    names: dict[str, str] = {}
    for key in keys:
        name = column_name(key)
        while name in names.values():
            name += "_"
        names[key] = name
    plan.attribute_keys = names
    settings.attribute_columns = tuple(names.values())
    plan.report["products"] = len(plan.ids)
    _plan_vectors(workspace, settings, plan)
    scores = product_review_scores(workspace)
    plan.reviews = None if scores.empty else scores
    return plan


def _plan_vectors(workspace: Workspace, settings: IndexSettings, plan: DocsPlan) -> None:
    for field_, weight in settings.text_weights.items():
        column = VectorColumn.open(workspace, settings.text_encoder, field_)
        if column is not None:
            plan.text.append((column, weight))
    plan.image = VectorColumn.open(workspace, settings.image_encoder, "image")
    alignment = load_alignment(workspace)
    if alignment is not None:
        if alignment.image_encoder == settings.image_encoder:
            plan.joined = [plan.image] if plan.image is not None else []
        else:
            parts = [VectorColumn.open(workspace, name, "image") for name in encoder_names(alignment.image_encoder)]
            plan.joined = [p for p in parts if p is not None] if all(p is not None for p in parts) else []
        if plan.joined:
            plan.alignment = alignment
            plan.report["alignment"] = alignment.kind
    plan.report["signals"] = [s for s, ok in (("lexical", True), ("semantic", bool(plan.text)),
                                              ("crossmodal", plan.alignment is not None),
                                              ("image", plan.image is not None)) if ok]
    plan.report["alignment_version"] = alignment.version if alignment is not None else None


def doc_batches(workspace: Workspace, settings: IndexSettings, plan: DocsPlan) -> Iterator[pa.Table]:
    """Second pass: the documents of :data:`BATCH_ROWS` products at a time, with the schema every slice shares."""
    row_of = plan.row_of()
    produced = False
    for batch in workspace.scan("products", None, BATCH_ROWS):
        yield build_docs(batch.to_pandas(), settings, plan, row_of)
        produced = True
    if not produced:  # an empty catalog still gets a (empty) table with the documents' columns
        from tuwen.store.catalog import PRODUCT_SCHEMA

        yield build_docs(PRODUCT_SCHEMA.empty_table().to_pandas(), settings, plan, row_of)


def build_docs(products: pd.DataFrame, settings: IndexSettings, plan: DocsPlan,
               row_of: dict[str, int] | None = None) -> pa.Table:
    """One slice of products as search documents (see the module docstring)."""
    ids = products["id"].astype(str).tolist()
    row_of = row_of if row_of is not None else plan.row_of()
    rows = [row_of[pid] for pid in ids]
    n = len(ids)
    columns: dict[str, Any] = {
        "id": pa.array(ids, pa.string()),
        "title": pa.array(products["title"].fillna("").astype(str).tolist(), pa.string()),
        "category": pa.array(products["category"].fillna("").astype(str).tolist(), pa.string()),
        "price": pa.array(products["price"].astype("float64").tolist(), pa.float64()),
        "currency": pa.array(products["currency"].fillna("").astype(str).tolist(), pa.string()),
        "image": pa.array([p[0] if p is not None and len(p) else "" for p in products["image_paths"]], pa.string()),
        "has_image": pa.array(products["has_image"].fillna(False).astype(bool).tolist(), pa.bool_()),
        "attributes": pa.array(products["attributes"].fillna("{}").astype(str).tolist(), pa.string()),
        "tokens": pa.array([plan.tokens[r] for r in rows], pa.string()),
        "text_hash": pa.array([plan.digests[r] for r in rows], pa.string()),
    }
    attrs = [json.loads(a) if a else {} for a in columns["attributes"].to_pylist()]
    for key, name in plan.attribute_keys.items():
        columns[name] = pa.array([None if a.get(key) is None else str(a.get(key)) for a in attrs], pa.string())
    if plan.reviews is not None:
        aligned = plan.reviews.reindex(ids)
        aligned["reviews"] = aligned["reviews"].fillna(0.0)
        for name in aligned.columns:
            columns[name] = pa.array(aligned[name].to_numpy(np.float64), pa.float64(), from_pandas=True)
    text = np.zeros((n, 0), dtype=np.float32)
    for column, weight in plan.text:
        part = l2(column.get(ids)[0]) * weight
        text = part if text.shape[1] == 0 else text + part
    image = plan.image.get(ids)[0] if plan.image is not None else None
    if plan.text:
        text = l2(text)
        columns["text_vec"] = fixed(text)
    if plan.alignment is not None:  # the photo features the alignment was trained on, before unit length
        parts = [column.get(ids) for column in plan.joined]
        present = np.logical_and.reduce([p for _, p in parts])
        raw = np.hstack([v for v, _ in parts]) * present[:, None]
        xmodal = plan.alignment.image_space(raw)
    if image is not None:
        image = l2(image)
        columns["image_vec"] = fixed(image)
    if plan.alignment is not None:
        columns["xmodal_vec"] = fixed(xmodal)
    if plan.text and image is not None:
        w = settings.fused_image_weight
        columns["fused_vec"] = fixed(np.hstack([math.sqrt(1 - w) * text, math.sqrt(w) * image]))
    table = pa.table(columns)
    return table.append_column("hash", pa.array(row_digests(table), pa.string()))


def fixed(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])


def row_digests(table: pa.Table) -> list[str]:
    """A content hash per row (every column, vectors by their bytes): what decides "changed" on re-index."""
    out: list[str] = []
    for lo in range(0, len(table), 50_000):  # Python objects for one slice at a time, not the whole catalog
        part = table.slice(lo, 50_000)
        plain = [part.column(c).to_pylist() for c in part.column_names
                 if not pa.types.is_fixed_size_list(part.column(c).type)]
        vectors = [part.column(c).combine_chunks().flatten().to_numpy().reshape(len(part), -1)
                   for c in part.column_names if pa.types.is_fixed_size_list(part.column(c).type)]
        for i in range(len(part)):
            sha = hashlib.sha1(repr(tuple(col[i] for col in plain)).encode("utf-8", "surrogatepass"))
            for matrix in vectors:
                sha.update(matrix[i].tobytes())
            out.append(sha.hexdigest())
    return out


def previous_tokens(workspace: Workspace) -> dict[str, str]:
    """{text digest: words} from the index built last, when it records digests (empty otherwise): re-indexing a
    million products after a few changed used to run jieba over all of them again."""
    table = (read_meta(workspace) or {}).get("table")
    if not table or not workspace.has_table(table):
        return {}
    live = workspace.table(table)
    if "text_hash" not in live.schema.names:
        return {}
    rows = live.search().select(["text_hash", "tokens"]).limit(None).to_arrow()
    return dict(zip(rows.column("text_hash").to_pylist(), rows.column("tokens").to_pylist(), strict=True))


@functools.cache
def _segmenter_version() -> str:
    """Part of every text digest: a change to the word splitting (its code, or jieba's) re-segments everything."""
    import jieba

    from tuwen.search import tokens as tokens_module

    source = Path(tokens_module.__file__).read_bytes()
    return hashlib.sha1(source + getattr(jieba, "__version__", "").encode()).hexdigest()[:12]


def _text_columns(fields: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*TEXT_COLUMNS, *(f for f in fields if f != "ocr")]))


def _ocr_texts(workspace: Workspace) -> dict[str, str]:
    frame = workspace.read("ocr", ["id", "text"])
    return dict(zip(frame["id"], frame["text"], strict=True))


def _field_texts(frame: pd.DataFrame, field_: str, ocr: dict[str, str]) -> pd.Series:
    """The text of one field per product (as :func:`tuwen.encoders.cache.product_texts`, OCR read once)."""
    if field_ == "ocr":
        return frame["id"].map(ocr).fillna("")
    if field_ == "category":  # "Women > Dresses": the path's words, not its separators
        return frame["category"].fillna("").str.replace(">", " ")
    if field_ not in frame:
        return pd.Series([""] * len(frame), index=frame.index)
    return frame[field_].fillna("")
