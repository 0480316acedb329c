"""Batch feature extraction into the workspace, cached per (product, encoder, content hash).

Each (encoder, field) pair has its own LanceDB table ``vec__<encoder>__<field>`` with
columns id, hash, vector. The hash covers the input content and the encoder's version,
so re-running embeds only what is new or changed. Vectors are committed chunk by chunk,
each chunk atomically, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tuwen.encoders import Encoder, encoder_for, encoder_names, get_encoder
from tuwen.store.workspace import Workspace, sql_list
from tuwen.util.progress import progress_bar

TEXT_FIELDS = ("title", "description", "ocr")
OCR_SCHEMA = pa.schema([("id", pa.string()), ("hash", pa.string()), ("text", pa.string())])


# Rows per commit while embedding: each commit is a transaction (lock, manifest, one table version, a merge that
# reads the table's ids), so committing every batch of 256 made a million products 4,000 transactions and a
# table compacted every 100 versions. An interrupted or failed batch commits what was done before it.
COMMIT_ROWS = 8192
# Texts per encoder call: the text encoders sort and share work within a call, so larger calls are cheaper per text.
TEXT_BATCH = 4096


def table_name(encoder: str, field: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_]+", "_", encoder).strip("_")
    return f"vec__{slug}__{field}"


def vector_schema(dim: int) -> pa.Schema:
    return pa.schema([("id", pa.string()), ("hash", pa.string()), ("vector", pa.list_(pa.float32(), dim))])


def _digest(*parts: str | bytes) -> str:
    sha = hashlib.sha1()
    for part in parts:
        sha.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass"))
        sha.update(b"\x1f")
    return sha.hexdigest()


def file_digest(path: str) -> str:
    return _digest(Path(path).read_bytes())


def _cached_hashes(workspace: Workspace, name: str) -> dict[str, str]:
    if not workspace.has_table(name):
        return {}
    frame = workspace.read(name, ["id", "hash"])
    return dict(zip(frame["id"], frame["hash"], strict=True))


def _vector_rows(ids: list[str], hashes: list[str], vectors: np.ndarray, schema: pa.Schema) -> pa.Table:
    """Rows for a vector table straight from the float32 matrix (no per-row Python arrays, no pandas)."""
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, schema.field("vector").type.list_size)
    return pa.table([pa.array(ids, pa.string()), pa.array(hashes, pa.string()), column], schema=schema)


def embed_items(workspace: Workspace, encoder: Encoder, field: str, ids: Sequence[str], inputs: Sequence[Any],
                content_hashes: Sequence[str], batch_size: int = 256, progress: bool = True) -> dict[str, int]:
    """Embed the items whose (content, encoder version) hash is not cached yet; commit per chunk.

    Texts go in sorted order: the text encoders share work between texts with common words in one batch, and a
    vector does not depend on its batch. Items new to the table are appended (a merge's cost grows with the
    table: at a million rows it dominated); items whose content changed replace their row. Should another
    writer have touched the table since this run last did, the whole chunk merges instead, so an id never
    appears twice.
    """
    name = table_name(encoder.name, field)
    hashes = [_digest(h, encoder.name, encoder.version) for h in content_hashes]
    cached = _cached_hashes(workspace, name)
    todo = list({item_id: i for i, (item_id, h) in enumerate(zip(ids, hashes, strict=True))
                 if cached.get(item_id) != h}.values())  # an id listed twice is embedded once, as its last row
    if encoder.modality == "text":
        keys = [str(inputs[i]) for i in todo]
        todo = [todo[j] for j in sorted(range(len(todo)), key=keys.__getitem__)]
    schema = vector_schema(encoder.dim)
    pending: list[pa.Table] = []
    last_version = [workspace.manifest["tables"].get(name)]

    def commit() -> None:
        rows = pa.concat_tables(pending)
        with workspace.transaction(f"embed {encoder.name} {field}") as writer:
            if workspace.manifest["tables"].get(name) != last_version[0]:  # someone else wrote it: merge all
                writer.upsert(name, rows, schema=schema)
            else:
                known = np.fromiter((item_id in cached for item_id in rows.column("id").to_pylist()), dtype=bool,
                                    count=rows.num_rows)
                if known.any():
                    writer.upsert(name, rows.filter(pa.array(known)), schema=schema)
                writer.append(name, rows.filter(pa.array(~known)), schema=schema)
            writer.meta[name] = {"encoder": encoder.name, "field": field, "dim": encoder.dim,
                                 "modality": encoder.modality}
        last_version[0] = workspace.manifest["tables"].get(name)
        pending.clear()

    with progress_bar(len(todo), f"{encoder.name} · {field}", progress) as advance:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            try:
                vectors = np.asarray(encoder.encode([inputs[i] for i in chunk]), dtype=np.float32)
            except BaseException:
                if pending:  # interrupted or failed: keep what is done, the next run resumes after it
                    commit()
                raise
            pending.append(_vector_rows([ids[i] for i in chunk], [hashes[i] for i in chunk], vectors, schema))
            if sum(table.num_rows for table in pending) >= COMMIT_ROWS:
                commit()
            advance(len(chunk))
        if pending:
            commit()
    return {"embedded": len(todo), "cached": len(ids) - len(todo)}


def read_ocr(workspace: Workspace, products: pd.DataFrame, batch_size: int = 64,
             progress: bool = True) -> dict[str, int]:
    """Read text printed on product photos into the ``ocr`` table (cached by photo content)."""
    from tuwen.encoders.ocr import OcrReader  # rapidocr (the optional `ocr` extra): loaded only when OCR is asked

    with_image = products[products["has_image"]]
    ids = list(with_image["id"])
    paths = [paths[0] for paths in with_image["image_paths"]]
    hashes = [file_digest(p) for p in paths]
    cached = _cached_hashes(workspace, "ocr")
    todo = [i for i, (item_id, h) in enumerate(zip(ids, hashes, strict=True)) if cached.get(item_id) != h]
    reader = OcrReader()
    with progress_bar(len(todo), "ocr · photos", progress) as advance:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            texts = reader.read([paths[i] for i in chunk])
            frame = pd.DataFrame({"id": [ids[i] for i in chunk], "hash": [hashes[i] for i in chunk], "text": texts})
            with workspace.transaction("ocr") as writer:
                writer.upsert("ocr", frame, schema=OCR_SCHEMA)
            advance(len(chunk))
    return {"read": len(todo), "cached": len(ids) - len(todo)}


def product_texts(workspace: Workspace, products: pd.DataFrame, field: str) -> pd.Series:
    """The text of one field per product id ("ocr" comes from the OCR table)."""
    if field == "ocr":
        ocr = workspace.read("ocr", ["id", "text"]) if workspace.has_table("ocr") else pd.DataFrame(columns=["id",
                                                                                                            "text"])
        return products["id"].map(dict(zip(ocr["id"], ocr["text"], strict=True))).fillna("")
    if field not in products:
        raise KeyError(f"unknown text field {field!r}; use one of {', '.join(TEXT_FIELDS)}")
    return products[field].fillna("")


def embed_workspace(workspace: Workspace, image_encoder: str | None, text_encoder: str | None, ocr: bool,
                    fields: Sequence[str], batch_size: int, progress: bool) -> dict[str, Any]:
    products = workspace.read("products", ["id", "title", "description", "image_paths", "has_image"])
    if products.empty:
        raise ValueError(f"{workspace.path}: the workspace holds no products, so there is nothing to embed; "
                         f"ingest a catalog first (`tuwen ingest {workspace.path} --catalog FILE ...`)")
    report: dict[str, Any] = {}
    # "mobilenet_v2+color_histogram": several photo encoders, each its own vector table (models read them all)
    image_encoders = [get_encoder(name) for name in encoder_names(image_encoder)]
    for encoder in image_encoders:
        if encoder.modality != "image":
            raise ValueError(f"{encoder.name!r} is a {encoder.modality} encoder, not an image encoder")
    if image_encoders:
        with_image = products[products["has_image"]]
        paths = [p[0] for p in with_image["image_paths"]]
        digests = [file_digest(p) for p in paths]
        for encoder in image_encoders:
            report[f"{encoder.name}/image"] = embed_items(workspace, encoder, "image", list(with_image["id"]), paths,
                                                          digests, min(batch_size, 256), progress)
    if ocr:
        report["ocr"] = read_ocr(workspace, products, progress=progress)
    if text_encoder:
        corpus = [t for t in pd.concat([products["title"], products["description"]]) if t]
        encoder = encoder_for(text_encoder, workspace, corpus)
        if encoder.modality != "text":
            raise ValueError(f"{text_encoder!r} is an {encoder.modality} encoder, not a text encoder")
        for field in [*fields, *(["ocr"] if ocr and "ocr" not in fields else [])]:
            texts = product_texts(workspace, products, field)
            keep = texts != ""
            report[f"{encoder.name}/{field}"] = embed_items(
                workspace, encoder, field, list(products.loc[keep, "id"]), list(texts[keep]),
                [_digest(t) for t in texts[keep]], max(batch_size, TEXT_BATCH), progress)
    return report


FEW_IDS = 1_000  # up to this many wanted ids, a filtered read beats reading the whole vector table


def load_vectors(workspace: Workspace, encoder: str, field: str = "image",
                 ids: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(ids, float32 matrix) of one encoder's vectors for one field; with a few ``ids``, only those rows.

    Predicting one product must not read a 10k x 1280 table to find that the product is not in it.
    """
    name = table_name(encoder, field)
    if not workspace.has_table(name):
        known = ", ".join(f"{m['encoder']}/{m['field']}" for m in vector_tables(workspace).values()) or "none"
        raise KeyError(f"{workspace.path}: no {field} vectors from {encoder!r} (have: {known}); run `tuwen embed`")
    if ids is not None and len(ids) <= FEW_IDS:
        wanted = sql_list(dict.fromkeys(ids))
        table = workspace.table(name).search().where(f"id IN ({wanted})" if wanted else "false") \
            .select(["id", "vector"]).limit(max(len(ids), 1)).to_arrow()
    else:
        table = workspace.table(name).to_arrow()
    ids = table.column("id").to_pylist()
    dim = table.schema.field("vector").type.list_size  # known even when no row matched
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().reshape(len(ids), dim)
    return ids, vectors.astype(np.float32, copy=False)


def vector_tables(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """``{table: its meta}`` for the workspace's vector tables only.

    The manifest's ``meta`` also holds other commands' entries (``segments``, ``recommend``,
    ``stale_models``…), and ``segments`` is a table too: only ``vec__`` tables carry an encoder.
    """
    meta = workspace.manifest.get("meta", {})
    return {name: m for name, m in meta.items()
            if name.startswith("vec__") and isinstance(m, dict) and "encoder" in m and workspace.has_table(name)}


def vector_counts(workspace: Workspace) -> dict[tuple[str, str], int]:
    return {(m["encoder"], m["field"]): workspace.count(name) for name, m in vector_tables(workspace).items()}
