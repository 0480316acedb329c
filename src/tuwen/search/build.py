"""Building and updating the search index: one LanceDB table of words, filter columns and vectors.

Every product becomes one row: jieba-segmented words for BM25, the filterable columns (price, category,
one column per catalog attribute), and unit-length vectors per signal. Re-running :func:`build_index`
writes only added and changed rows, deletes removed ones and folds them into the existing indexes
(``optimize``) instead of rebuilding. At and above ``ann_threshold`` products each vector column gets an
ANN index (``IndexSettings.ann_index``, IVF-flat by default); below it the engine scores exactly in memory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tuwen.encoders.cache import load_vectors, product_texts
from tuwen.search.align import image_features, load_alignment
from tuwen.search.common import VECTOR_COLUMNS, IndexSettings, SearchError, column_name, read_meta, write_meta
from tuwen.search.engine import query_encoder
from tuwen.search.learn import category_queries, learn_weights
from tuwen.search.tokens import segment
from tuwen.search.vocab import plan_vocabulary, write_vocabulary
from tuwen.store.review_scores import product_review_scores
from tuwen.store.workspace import Workspace, delete_rows, table_names
from tuwen.util.progress import progress_bar, stage
from tuwen.util.vectors import l2


def _aligned(ids: Sequence[str], have: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    """``vectors`` (rows named by ``have``) in the order of ``ids``; zeros where a product has none."""
    row = {pid: i for i, pid in enumerate(have)}
    out = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
    where = [(r, row[pid]) for r, pid in enumerate(ids) if pid in row]
    if where:
        dst, src = map(list, zip(*where, strict=True))
        out[dst] = vectors[src]
    return out


def _field_vectors(ids: Sequence[str], workspace: Workspace, encoder: str, field_: str) -> np.ndarray | None:
    """Vectors of ``encoder/field`` in the order of ``ids``, or None when the workspace has none."""
    try:
        return _aligned(ids, *load_vectors(workspace, encoder, field_))
    except KeyError:
        return None


def _joined_features(ids: Sequence[str], workspace: Workspace, image_encoder: str) -> np.ndarray | None:
    """Photo features the alignment was trained on (``a+b`` = side by side), in the order of ``ids``."""
    try:
        return _aligned(ids, *image_features(workspace, image_encoder))
    except KeyError:
        return None


def _tokens(workspace: Workspace, products: pd.DataFrame, settings: IndexSettings,
            progress: bool) -> tuple[list[str], list[str]]:
    """The BM25 words of every product (its text fields joined, Chinese segmented) and each text's digest.

    Only texts the previous index has not segmented are segmented now (looked up by digest): re-indexing a
    million products after a few changed used to run jieba over all of them again.
    """
    n = len(products)
    fields = [f for f in settings.fields if f != "ocr" or workspace.has_table("ocr")]
    texts = {f: product_texts(workspace, products, f) if f in ("title", "description", "ocr") or f in products
             else pd.Series([""] * n) for f in fields}
    if "category" in settings.fields:
        texts["category"] = products["category"].fillna("").str.replace(">", " ")
    joined = [" ".join(str(t) for t in row if t) for row in zip(*(texts[f].tolist() for f in texts), strict=True)]
    salt = _segmenter_version().encode()
    digests = [hashlib.sha1(salt + text.encode("utf-8", "surrogatepass")).hexdigest()[:20] for text in joined]
    known = _previous_tokens(workspace)
    todo = [i for i, digest in enumerate(digests) if digest not in known]
    fresh: dict[str, str] = {}
    with progress_bar(len(todo), "index · words (jieba)", progress and len(todo) > 2000) as advance:
        for lo in range(0, len(todo), 1000):
            for i in todo[lo:lo + 1000]:
                fresh[digests[i]] = segment(joined[i])
            advance(len(todo[lo:lo + 1000]))
    return [known.get(digest) if digest in known else fresh[digest] for digest in digests], digests


@functools.cache
def _segmenter_version() -> str:
    """Part of every text digest: a change to the word splitting (its code, or jieba's) re-segments everything."""
    import jieba

    from tuwen.search import tokens as tokens_module

    source = Path(tokens_module.__file__).read_bytes()
    return hashlib.sha1(source + getattr(jieba, "__version__", "").encode()).hexdigest()[:12]


def _previous_tokens(workspace: Workspace) -> dict[str, str]:
    """{text digest: words} from the index built last, when it records digests (empty otherwise)."""
    table = (read_meta(workspace) or {}).get("table")
    if not table or not workspace.has_table(table):
        return {}
    live = workspace.table(table)
    if "text_hash" not in live.schema.names:
        return {}
    rows = live.search().select(["text_hash", "tokens"]).limit(None).to_arrow()
    return dict(zip(rows.column("text_hash").to_pylist(), rows.column("tokens").to_pylist(), strict=True))


def _attribute_columns(attributes: list[str], settings: IndexSettings) -> dict[str, pa.Array]:
    """One string column per attribute key (SQL-friendly names, recorded in ``settings``)."""
    attrs = [json.loads(a) if a else {} for a in attributes]
    names: dict[str, str] = {}
    for key in dict.fromkeys(k for a in attrs for k in a):
        name = column_name(key)
        while name in names.values():
            name += "_"
        names[key] = name
    settings.attribute_columns = tuple(names.values())
    return {name: pa.array([None if a.get(key) is None else str(a.get(key)) for a in attrs], pa.string())
            for key, name in names.items()}


def _review_columns(ids: Sequence[str], workspace: Workspace) -> dict[str, pa.Array]:
    """Review scores as filter columns (``where="rating >= 4 AND reviews >= 10"``; ``aspect_fit > 0`` once
    ``tuwen insights`` ran), only when the workspace holds reviews: a catalog without any keeps its index layout."""
    scores = product_review_scores(workspace)
    if scores.empty:
        return {}
    aligned = scores.reindex(list(ids))
    aligned["reviews"] = aligned["reviews"].fillna(0.0)
    return {name: pa.array(aligned[name].to_numpy(np.float64), pa.float64(), from_pandas=True)
            for name in aligned.columns}


def _docs_frame(workspace: Workspace, settings: IndexSettings, progress: bool) -> tuple[pa.Table, dict[str, Any]]:
    """Every product as one search document: words, filterable columns and unit-length vectors."""
    products = workspace.read("products")
    ids = list(products["id"])
    n = len(ids)
    report: dict[str, Any] = {"products": n}
    text = np.zeros((n, 0), dtype=np.float32)
    for field_, weight in settings.text_weights.items():
        part = _field_vectors(ids, workspace, settings.text_encoder, field_)
        if part is not None:
            text = l2(part) * weight if text.shape[1] == 0 else text + l2(part) * weight
    image = _field_vectors(ids, workspace, settings.image_encoder, "image")
    alignment = load_alignment(workspace)
    xmodal = None
    if alignment is not None:
        raw = image if alignment.image_encoder == settings.image_encoder else _joined_features(
            ids, workspace, alignment.image_encoder)
        if raw is not None:
            xmodal = alignment.image_space(raw)
            report["alignment"] = alignment.kind
    columns: dict[str, Any] = {
        "id": pa.array(ids, pa.string()),
        "title": pa.array(products["title"].fillna("").astype(str).tolist(), pa.string()),
        "category": pa.array(products["category"].fillna("").astype(str).tolist(), pa.string()),
        "price": pa.array(products["price"].astype("float64").tolist(), pa.float64()),
        "currency": pa.array(products["currency"].fillna("").astype(str).tolist(), pa.string()),
        "image": pa.array([p[0] if len(p) else "" for p in products["image_paths"]], pa.string()),
        "has_image": pa.array(products["has_image"].astype(bool).tolist(), pa.bool_()),
        "attributes": pa.array(products["attributes"].fillna("{}").astype(str).tolist(), pa.string()),
    }
    words, text_hashes = _tokens(workspace, products, settings, progress)
    columns["tokens"] = pa.array(words, pa.string())
    columns["text_hash"] = pa.array(text_hashes, pa.string())
    columns.update(_attribute_columns(columns["attributes"].to_pylist(), settings))
    columns.update(_review_columns(ids, workspace))
    has_text = text.shape[1] > 0
    if has_text:
        text = l2(text)
        columns["text_vec"] = _fixed(text)
    if image is not None:
        image = l2(image)
        columns["image_vec"] = _fixed(image)
    if xmodal is not None:
        columns["xmodal_vec"] = _fixed(xmodal)
    if has_text and image is not None:
        w = settings.fused_image_weight
        columns["fused_vec"] = _fixed(np.hstack([math.sqrt(1 - w) * text, math.sqrt(w) * image]))
    report["signals"] = [s for s, ok in (("lexical", True), ("semantic", has_text), ("crossmodal", xmodal is not None),
                                          ("image", image is not None)) if ok]
    table = pa.table(columns)
    table = table.append_column("hash", pa.array(_row_digests(table), pa.string()))
    report["alignment_version"] = alignment.version if alignment is not None else None
    return table, report


def _fixed(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), matrix.shape[1])


def _row_digests(table: pa.Table) -> list[str]:
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


def _settings_key(settings: IndexSettings, schema: pa.Schema) -> str:
    """Settings that change every row's layout: when they change, the index is rebuilt into a new table."""
    fields = [settings.text_encoder, settings.image_encoder, list(settings.fields), settings.text_weights,
              settings.fused_image_weight, str(schema)]
    return hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:10]


def build_index(workspace: Workspace, settings: IndexSettings | None = None, progress: bool = True,
                learn: bool = True) -> dict[str, Any]:
    """Create or update the workspace's search index; only added, changed and deleted products are written.

    Everything lands in one workspace transaction: a crash leaves the previous index whole. Returns a report
    (rows added / updated / deleted, ANN or exact, seconds per step). With ``learn`` the hybrid fusion
    weights are then fitted on pseudo-queries made from the catalog's category names
    (:func:`tuwen.search.learn.learn_weights`).
    """
    settings = resolve_ann(settings or IndexSettings())
    start = time.perf_counter()
    docs, report = _docs_frame(workspace, settings, progress)
    report["seconds_prepare"] = round(time.perf_counter() - start, 2)
    table_name = f"search__{_settings_key(settings, docs.schema)}"
    previous = read_meta(workspace)
    use_ann = settings.ann == "on" or (settings.ann == "auto" and len(docs) >= settings.ann_threshold)
    settings.table = table_name
    t0 = time.perf_counter()
    vocabulary_plan = _vocabulary_plan(workspace, docs, settings, report["signals"], progress)
    report["seconds_vocabulary"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    with workspace.transaction("search index") as writer:
        fresh = not (previous and previous.get("table") == table_name and workspace.has_table(table_name))
        table, changed, removed = _write_rows(workspace, table_name, docs, fresh, progress)
        report.update({"table": table_name, "rebuilt": fresh, "written": len(changed), "deleted": len(removed),
                       "rows": table.count_rows()})
        report["seconds_write"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        create_indexes(table, settings, use_ann, fresh or not has_index(table, "tokens"), progress)
        if not fresh and (len(changed) or removed):
            table.optimize()  # folds new/changed rows into the existing FTS and vector indexes, no rebuild
        report["seconds_indexes"] = round(time.perf_counter() - t1, 2)
        report["ann"] = use_ann
        vocabulary = write_vocabulary(writer, vocabulary_plan) if vocabulary_plan else None
        report["vocabulary"] = vocabulary
        old_vocabulary = (previous or {}).get("vocabulary")
        if old_vocabulary and old_vocabulary != (vocabulary or {}).get("table") and workspace.has_table(old_vocabulary):
            writer.drop(old_vocabulary)  # a previous text encoder's words: never read again
        meta = {**asdict(settings), "table": table_name, "ann_built": use_ann, "signals": report["signals"],
                "vocabulary": vocabulary["table"] if vocabulary else None,
                "rows": report["rows"], "alignment_version": report["alignment_version"],
                "price_edges": _price_edges(docs), "built_at": time.time()}
        write_meta(writer, {"settings": meta})
        writer.versions[table_name] = table.version
        if previous and previous.get("table") and previous["table"] != table_name:
            writer.drop(previous["table"])
    if learn and len(report["signals"]) > 1:
        report.update(_learn_at_index_time(workspace))
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def _write_rows(workspace: Workspace, table_name: str, docs: pa.Table, fresh: bool,
                progress: bool) -> tuple[Any, pa.Table, list[str]]:
    """Write the new or changed rows (all of them when ``fresh``) and delete the removed ones."""
    db = workspace.db
    if fresh:
        if table_name in table_names(db):
            db.drop_table(table_name)
        table = db.create_table(table_name, schema=docs.schema)
        changed, removed = docs, []
    else:
        table = db.open_table(table_name)
        old = table.to_arrow().select(["id", "hash"]).to_pydict() if table.count_rows() else {"id": [], "hash": []}
        old_hash = dict(zip(old["id"], old["hash"], strict=True))
        new_ids = set(docs.column("id").to_pylist())
        mask = [old_hash.get(pid) != h for pid, h in zip(docs.column("id").to_pylist(),
                                                        docs.column("hash").to_pylist(), strict=True)]
        changed = docs.filter(pa.array(mask))
        removed = [pid for pid in old_hash if pid not in new_ids]
    with progress_bar(len(changed), "index · write rows", progress and len(changed) > 5000) as advance:
        for lo in range(0, len(changed), 50_000):
            chunk = changed.slice(lo, 50_000)
            if fresh:
                table.add(chunk)
            else:
                table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(chunk)
            advance(len(chunk))
    delete_rows(table, removed)
    return table, changed, removed


def _vocabulary_plan(workspace: Workspace, docs: pa.Table, settings: IndexSettings, signals: list[str],
                     progress: bool) -> dict[str, Any] | None:
    """The catalog's word vectors for soft (cross-lingual) coverage (:mod:`tuwen.search.vocab`), embedded with
    the semantic signal's encoder — before the write transaction, which no longer holds the workspace locked
    while words are embedded: only when that signal exists (its encoder is known to load) and
    ``settings.soft_vocabulary`` allows any words."""
    if "semantic" not in signals or settings.soft_vocabulary <= 0:
        return None
    stage("index · vocabulary words for soft matching", progress and len(docs) > 50_000)
    encoder = query_encoder(settings.text_encoder, workspace)
    return plan_vocabulary(workspace, docs.column("tokens").to_pylist(), settings.text_encoder,
                           lambda words: np.asarray(encoder.encode(words), np.float32), settings.soft_vocabulary)


def _learn_at_index_time(workspace: Workspace) -> dict[str, Any]:
    """Hybrid weights from the catalog's category pseudo-queries (see :func:`category_queries`)."""
    try:
        queries, relevant = category_queries(workspace)
        if len(queries) < 5:
            return {}
        learnt = learn_weights(workspace, queries, relevant)
        return {"weights": learnt.get("weights"), "weights_ndcg@10": learnt.get("ndcg@10")}
    except SearchError as error:
        return {"weights_error": str(error)}


def has_index(table: Any, column: str) -> bool:
    return any(column in idx.columns for idx in table.list_indices())


# type → LanceDB's name for it
ANN_INDEXES = {"ivf_flat": "IvfFlat", "ivf_sq": "IvfSq", "ivf_pq": "IvfPq", "ivf_hnsw_sq": "IvfHnswSq"}


def has_ann_index(table: Any, column: str, kind: str) -> bool:
    """Whether ``column`` already has an ANN index of ``kind`` (one of :data:`ANN_INDEXES`)."""
    return any(column in idx.columns and idx.index_type == ANN_INDEXES.get(kind) for idx in table.list_indices())


def resolve_ann(settings: IndexSettings) -> IndexSettings:
    """Fill in the settings left to the index type: ``refine_factor`` 0 → 1 for ivf_flat (its distances are
    exact already), 2 for the quantised types, 10 for ivf_pq."""
    if settings.ann_index not in ANN_INDEXES:
        raise SearchError(f"unknown ANN index {settings.ann_index!r}; choose one of {', '.join(ANN_INDEXES)}")
    if not settings.refine_factor:
        settings.refine_factor = {"ivf_flat": 1, "ivf_pq": 10}.get(settings.ann_index, 2)
    return settings


def ann_config(settings: IndexSettings, rows: int, dim: int, metric: str) -> Any:
    """The LanceDB index config for one vector column of ``rows`` vectors of ``dim`` numbers.

    IVF partitions default to √rows (1M → 1,000 of ~1,000 vectors each); IVF-HNSW-SQ keeps one graph per
    250k rows. IVF-PQ cuts each vector into sub-vectors of ~8 numbers (a divisor of ``dim``).
    """
    from lancedb.index import HnswSq, IvfFlat, IvfPq, IvfSq

    kind = resolve_ann(settings).ann_index
    auto = max(1, rows // 250_000) if kind == "ivf_hnsw_sq" else max(1, round(math.sqrt(rows)))
    common = {"distance_type": metric, "num_partitions": settings.ann_partitions or auto,
              "max_iterations": settings.ann_max_iterations, "sample_rate": settings.ann_sample_rate}
    if kind == "ivf_sq":
        return IvfSq(**common)
    if kind == "ivf_flat":
        return IvfFlat(**common)
    if kind == "ivf_pq":
        divisors = [d for d in range(1, dim + 1) if dim % d == 0]
        return IvfPq(**common, num_sub_vectors=min(divisors, key=lambda d: abs(d - dim / 8)))
    return HnswSq(**common, m=settings.hnsw_m, ef_construction=settings.hnsw_ef_construction)


def create_indexes(table: Any, settings: IndexSettings, use_ann: bool, fts: bool = True,
                   progress: bool = True) -> dict[str, float]:
    """Full-text index on ``tokens``, a B-tree on ``id`` and, with ``use_ann``, one ANN index per vector column
    (``settings.ann_index``, see :func:`ann_config`).

    Returns seconds per index. LanceDB builds each index in one call without progress callbacks, so the
    bar advances once per index built.
    """
    from lancedb.index import FTS, BTree


    names = set(table.schema.names)
    vectors = [c for c in VECTOR_COLUMNS if c in names] if use_ann else []
    jobs: list[tuple[str, Callable[[], None]]] = []
    if fts:
        jobs.append(("tokens", lambda: table.create_index("tokens", config=FTS(base_tokenizer="simple"),
                                                          replace=True)))
        jobs.append(("id", lambda: table.create_index("id", config=BTree(), replace=True)))
    rows = table.count_rows()
    for column in vectors:
        if has_ann_index(table, column, settings.ann_index):
            continue
        dim = table.schema.field(column).type.list_size
        config = ann_config(settings, rows, dim, "dot" if column == "xmodal_vec" else "cosine")
        jobs.append((column, functools.partial(table.create_index, column, config=config, replace=True)))
    seconds: dict[str, float] = {}
    with progress_bar(len(jobs), "index · building", progress and bool(vectors)) as advance:
        for name, job in jobs:
            t = time.perf_counter()
            job()
            seconds[name] = round(time.perf_counter() - t, 2)
            advance(1)
    return seconds


def _price_edges(docs: pa.Table) -> list[float]:
    prices = np.array([p for p in docs.column("price").to_pylist() if p is not None and p == p], dtype=float)
    if len(prices) < 5:
        return []
    edges = np.quantile(prices, [0.2, 0.4, 0.6, 0.8])
    return sorted({float(f"{e:.2g}") for e in edges if e > 0})
