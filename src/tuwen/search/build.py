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
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from tuwen.search.common import VECTOR_COLUMNS, IndexSettings, SearchError, read_meta, write_meta
from tuwen.search.docs import DocsPlan, doc_batches, plan_docs
from tuwen.search.encoding import query_encoder
from tuwen.search.learn import category_queries, learn_weights
from tuwen.search.vocab import plan_vocabulary, write_vocabulary
from tuwen.store.workspace import Workspace, delete_rows, table_names
from tuwen.util.progress import progress_bar, stage


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
    plan = plan_docs(workspace, settings, progress)
    report = dict(plan.report)
    report["seconds_prepare"] = round(time.perf_counter() - start, 2)
    previous = read_meta(workspace)
    use_ann = settings.ann == "on" or (settings.ann == "auto" and len(plan.ids) >= settings.ann_threshold)
    t0 = time.perf_counter()
    vocabulary_plan = _vocabulary_plan(workspace, plan.tokens, settings, report["signals"], progress)
    report["seconds_vocabulary"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    with workspace.transaction("search index") as writer:
        table, table_name, fresh, written, removed = _write_rows(workspace, settings, plan, previous, progress)
        settings.table = table_name
        report.update({"table": table_name, "rebuilt": fresh, "written": written, "deleted": len(removed),
                       "rows": table.count_rows()})
        report["seconds_write"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        create_indexes(table, settings, use_ann, fresh or not has_index(table, "tokens"), progress)
        if not fresh and (written or removed):
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
                "price_edges": _price_edges(plan.prices), "built_at": time.time()}
        write_meta(writer, {"settings": meta})
        writer.versions[table_name] = table.version
        if previous and previous.get("table") and previous["table"] != table_name:
            writer.drop(previous["table"])
    if learn and len(report["signals"]) > 1:
        report.update(_learn_at_index_time(workspace))
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def _write_rows(workspace: Workspace, settings: IndexSettings, plan: DocsPlan, previous: dict[str, Any] | None,
                progress: bool) -> tuple[Any, str, bool, int, list[str]]:
    """Write the documents slice by slice: all of them into a new table when the layout changed (``fresh``),
    else only the new or changed rows; then delete the removed ones. Returns (table, its name, fresh, rows
    written, ids removed)."""
    db = workspace.db
    batches = doc_batches(workspace, settings, plan)
    first = next(batches)
    table_name = f"search__{_settings_key(settings, first.schema)}"
    fresh = not (previous and previous.get("table") == table_name and workspace.has_table(table_name))
    if fresh:
        if table_name in table_names(db):
            db.drop_table(table_name)
        table = db.create_table(table_name, schema=first.schema)
        old_hash: dict[str, str] = {}
    else:
        table = db.open_table(table_name)
        old = table.search().select(["id", "hash"]).limit(None).to_arrow().to_pydict() if table.count_rows() \
            else {"id": [], "hash": []}
        old_hash = dict(zip(old["id"], old["hash"], strict=True))
    written = 0
    with progress_bar(len(plan.ids), "index · write rows", progress and len(plan.ids) > 5000) as advance:
        for docs in itertools.chain([first], batches):
            changed = docs if fresh else docs.filter(pa.array(
                [old_hash.get(pid) != h for pid, h in zip(docs.column("id").to_pylist(),
                                                          docs.column("hash").to_pylist(), strict=True)], pa.bool_()))
            if len(changed) and fresh:
                table.add(changed)
            elif len(changed):
                table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(changed)
            written += len(changed)
            advance(len(docs))
    current = set(plan.ids)
    removed = [pid for pid in old_hash if pid not in current]
    delete_rows(table, removed)
    return table, table_name, fresh, written, removed


def _vocabulary_plan(workspace: Workspace, tokens: list[str], settings: IndexSettings, signals: list[str],
                     progress: bool) -> dict[str, Any] | None:
    """The catalog's word vectors for soft (cross-lingual) coverage (:mod:`tuwen.search.vocab`), embedded with
    the semantic signal's encoder — before the write transaction, which no longer holds the workspace locked
    while words are embedded: only when that signal exists (its encoder is known to load) and
    ``settings.soft_vocabulary`` allows any words."""
    if "semantic" not in signals or settings.soft_vocabulary <= 0:
        return None
    stage("index · vocabulary words for soft matching", progress and len(tokens) > 50_000)
    encoder = query_encoder(settings.text_encoder, workspace)
    return plan_vocabulary(workspace, tokens, settings.text_encoder,
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


def _price_edges(values: list[float]) -> list[float]:
    prices = np.array([p for p in values if p is not None and p == p], dtype=float)
    if len(prices) < 5:
        return []
    edges = np.quantile(prices, [0.2, 0.4, 0.6, 0.8])
    return sorted({float(f"{e:.2g}") for e in edges if e > 0})
