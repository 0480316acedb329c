"""Multimodal product search over a workspace: words, meaning, photos, and all three fused.

Signals (each one a ranked list of products):

* **lexical** — BM25 from LanceDB's native full-text index over title, description and OCR text. LanceDB's
  tokenizers cannot cut Chinese without a downloaded model (``jieba/*`` needs a language-model folder;
  ``icu`` works but keeps 连衣裙 whole, so 衣裙 never matches), so tuwen pre-segments every text into a
  dedicated ``tokens`` column with jieba's *search mode* (连衣裙 → 连衣 / 衣裙 / 连衣裙) and leaves the rest to
  LanceDB's ``simple`` tokenizer, which lower-cases, folds accents, drops English stop words and stems
  (dresses → dress). Queries go through the same two steps.
* **semantic** — cosine between the query's multilingual sentence vector and each product's text vector
  (title + ½ description), so 红色连衣裙 finds "Red Dress".
* **crossmodal** — the query's vector mapped by the learnt text↔image alignment (:mod:`tuwen.align`)
  against every product *photo*: finds the black dress whose title only says "Zoe".
* **image** — an uploaded photo against product photos (MobileNetV2 features).

``hybrid`` fuses the text signals (plus the photo, if one is given) by reciprocal rank fusion (RRF) or
by a weighted sum of per-signal scores whose weights are *learnt* from labelled queries
(:func:`learn_weights`); both are measured in ``benchmarks/search_quality.py``. Every hit says which
signals found it, at what rank and score, and which query words it matched.

Vectors: below ``ann_threshold`` products the engine keeps unit-length matrices in memory and scores
exactly (a 10k × 512 matrix-vector product is ~1 ms; LanceDB's flat scan of the same table is 15-250 ms
because it re-reads the column per query). At and above the threshold it builds LanceDB ANN indexes
(IVF-HNSW-SQ) and searches them. Filters are SQL ``where`` clauses evaluated by LanceDB either way.
Re-running :func:`build_index` updates only added, changed and deleted products and folds them into the
existing indexes (``optimize``) instead of rebuilding.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

MODES = ("hybrid", "lexical", "semantic", "crossmodal", "image")
SIGNALS = ("lexical", "semantic", "crossmodal", "image")
FUSIONS = ("auto", "rrf", "weighted")
META_TABLE = "search_meta"
MAX_QUERY_CHARS = 1000
MAX_K = 1000
RRF_K = 60
DEFAULT_WEIGHTS = {"lexical": 0.4, "semantic": 0.3, "crossmodal": 0.3, "image": 0.5}
CORE_COLUMNS = ("id", "title", "category", "price", "currency", "image", "has_image", "attributes", "tokens", "hash")
VECTOR_COLUMNS = ("text_vec", "image_vec", "xmodal_vec", "fused_vec")
META_SCHEMA = pa.schema([("id", pa.string()), ("json", pa.string())])


class SearchError(ValueError):
    """A search request that cannot be answered as asked (empty query, bad filter, no index, ...)."""


# ------------------------------------------------------------------------------------------- tokenisation

_CJK = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")
_WORD = re.compile(r"[\w\u3400-\u4dbf\u4e00-\u9fff]+", re.UNICODE)
_jieba_lock = threading.Lock()


@functools.cache
def _jieba() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    with _jieba_lock:
        jieba.initialize()  # ~1-4 s once per process (cached dictionary); only paid when Chinese text appears
    return jieba


def segment(text: str | None) -> str:
    """Space-separated words for the full-text index: Chinese runs cut by jieba (search mode), the rest as is.

    Search mode emits the whole word and its dictionary sub-words (连衣裙 → 连衣 衣裙 连衣裙), so a query for a
    part of a compound still matches. English stemming, lower-casing and stop words are left to LanceDB's
    tokenizer, applied identically to documents and queries.
    """
    if not text:
        return ""
    parts = []
    for piece in _CJK.split(str(text)):
        if not piece:
            continue
        if _CJK.fullmatch(piece):
            parts.extend(w for w in _jieba().cut_for_search(piece) if w.strip())
        else:
            parts.append(piece.strip())
    return " ".join(p for p in parts if p)


def query_terms(text: str) -> list[str]:
    """The words of a query as the hit explanations report them (lower case, de-duplicated, in order)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(segment(text)) if len(w) > 1 or _CJK.match(w)))


# ------------------------------------------------------------------------------------------ index build


@dataclass
class IndexSettings:
    """How the search index is built; stored with it so queries use the same encoders."""

    text_encoder: str = "use_multilingual"
    image_encoder: str = "mobilenet_v2"
    fields: tuple[str, ...] = ("title", "description", "ocr")  # words for BM25
    text_weights: dict[str, float] = field(default_factory=lambda: {"title": 1.0, "description": 0.5})
    fused_image_weight: float = 0.5  # "more like this": cosine = (1-w)·text + w·image
    ann: str = "auto"  # auto | on | off
    ann_threshold: int = 50_000
    hnsw_m: int = 20
    hnsw_ef_construction: int = 150
    ef: int = 100  # HNSW search breadth per query (recall vs speed)
    refine_factor: int = 2  # ANN: fetch this many times more candidates and re-rank them by exact distance
    csls: float = 0.0  # cross-modal hubness penalty (see tuwen.align); 0: attribute queries do better without
    nprobes: int = 4
    attribute_columns: tuple[str, ...] = ()
    table: str = ""
    version: int = 1


def _column_name(key: str) -> str:
    """A catalog attribute key as a SQL-friendly column name (lower case: LanceDB folds unquoted names)."""
    name = re.sub(r"[^0-9a-z_]+", "_", key.lower()).strip("_") or "attr"
    if name[0].isdigit() or name in CORE_COLUMNS or name in VECTOR_COLUMNS or name.startswith("_"):
        name = f"attr_{name}"
    return name


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _aligned(ids: Sequence[str], workspace: Any, encoder: str, field_: str) -> np.ndarray | None:
    """Vectors of ``encoder/field`` in the order of ``ids`` (zeros where a product has none), or None."""
    try:
        vec_ids, vectors = workspace.vectors(encoder, field_)
    except KeyError:
        return None
    row = {pid: i for i, pid in enumerate(vec_ids)}
    out = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
    where = [(r, row[pid]) for r, pid in enumerate(ids) if pid in row]
    if where:
        dst, src = map(list, zip(*where, strict=True))
        out[dst] = vectors[src]
    return out


def _joined_features(ids: Sequence[str], workspace: Any, image_encoder: str) -> np.ndarray | None:
    """Photo features the alignment was trained on (``a+b`` = side by side), in the order of ``ids``."""
    from tuwen.align import image_features

    try:
        have, vectors = image_features(workspace, image_encoder)
    except KeyError:
        return None
    row = {pid: i for i, pid in enumerate(have)}
    out = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
    where = [(r, row[pid]) for r, pid in enumerate(ids) if pid in row]
    if where:
        dst, src = map(list, zip(*where, strict=True))
        out[dst] = vectors[src]
    return out


def _docs_frame(workspace: Any, settings: IndexSettings, progress: bool) -> tuple[pa.Table, dict[str, Any]]:
    """Every product as one search document: words, filterable columns and unit-length vectors."""
    from tuwen.align import load_alignment
    from tuwen.embed import product_texts
    from tuwen.progress import progress_bar

    products = workspace.read("products")
    ids = list(products["id"])
    n = len(ids)
    fields = [f for f in settings.fields if f != "ocr" or workspace.has_table("ocr")]
    texts = {f: product_texts(workspace, products, f) if f in ("title", "description", "ocr") or f in products
             else pd.Series([""] * n) for f in fields}
    if "category" in settings.fields:
        texts["category"] = products["category"].fillna("").str.replace(">", " ")
    joined = [" ".join(str(t) for t in row if t) for row in zip(*(texts[f].tolist() for f in texts), strict=True)]
    tokens = []
    with progress_bar(n, "index · words (jieba)", progress and n > 2000) as advance:
        for lo in range(0, n, 1000):
            tokens.extend(segment(text) for text in joined[lo:lo + 1000])
            advance(len(joined[lo:lo + 1000]))

    report: dict[str, Any] = {"products": n}
    text = np.zeros((n, 0), dtype=np.float32)
    for field_, weight in settings.text_weights.items():
        part = _aligned(ids, workspace, settings.text_encoder, field_)
        if part is None:
            continue
        text = _l2(part) * weight if text.shape[1] == 0 else text + _l2(part) * weight
    image = _aligned(ids, workspace, settings.image_encoder, "image")
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
        "tokens": pa.array(tokens, pa.string()),
    }
    attrs = [json.loads(a) if a else {} for a in columns["attributes"].to_pylist()]
    keys = dict.fromkeys(k for a in attrs for k in a)
    names: dict[str, str] = {}
    for key in keys:
        name = _column_name(key)
        while name in names.values():
            name += "_"
        names[key] = name
    for key, name in names.items():
        columns[name] = pa.array([None if a.get(key) is None else str(a.get(key)) for a in attrs], pa.string())
    settings.attribute_columns = tuple(names.values())
    has_text = text.shape[1] > 0
    if has_text:
        text = _l2(text)
        columns["text_vec"] = _fixed(text)
    if image is not None:
        image = _l2(image)
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
    plain = [table.column(c).to_pylist() for c in table.column_names
             if not pa.types.is_fixed_size_list(table.column(c).type)]
    vectors = [table.column(c).combine_chunks().flatten().to_numpy().reshape(len(table), -1)
               for c in table.column_names if pa.types.is_fixed_size_list(table.column(c).type)]
    out = []
    for i in range(len(table)):
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


def read_meta(workspace: Any, key: str = "settings") -> dict[str, Any] | None:
    """One JSON document from the workspace's search meta table (settings, weights), or None."""
    if not workspace.has_table(META_TABLE):
        return None
    rows = workspace.table(META_TABLE).search().where(f"id = '{key}'").limit(1).to_list()
    return json.loads(rows[0]["json"]) if rows else None


def build_index(workspace: Any, settings: IndexSettings | None = None, progress: bool = True,
                learn: bool = True) -> dict[str, Any]:
    """Create or update the workspace's search index; only added, changed and deleted products are written.

    Everything lands in one workspace transaction: a crash leaves the previous index whole. Returns a report
    (rows added / updated / deleted, ANN or exact, seconds per step). With ``learn`` the hybrid fusion
    weights are then fitted on pseudo-queries made from the catalog's category names (:func:`learn_weights`).
    """
    from tuwen.progress import progress_bar

    settings = settings or IndexSettings()
    start = time.perf_counter()
    docs, report = _docs_frame(workspace, settings, progress)
    report["seconds_prepare"] = round(time.perf_counter() - start, 2)
    table_name = f"search__{_settings_key(settings, docs.schema)}"
    previous = read_meta(workspace)
    use_ann = settings.ann == "on" or (settings.ann == "auto" and len(docs) >= settings.ann_threshold)
    settings.table = table_name
    t0 = time.perf_counter()
    with workspace.transaction("search index") as writer:
        db = workspace.db
        fresh = not (previous and previous.get("table") == table_name and workspace.has_table(table_name))
        if fresh:
            from tuwen.workspace import table_names

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
        for lo in range(0, len(removed), 500):
            quoted = ", ".join("'" + pid.replace("'", "''") + "'" for pid in removed[lo:lo + 500])
            table.delete(f"id IN ({quoted})")
        report.update({"table": table_name, "rebuilt": fresh, "written": len(changed), "deleted": len(removed),
                       "rows": table.count_rows()})
        report["seconds_write"] = round(time.perf_counter() - t0, 2)
        t1 = time.perf_counter()
        create_indexes(table, settings, use_ann, fresh or not _has_index(table, "tokens"), progress)
        if not fresh and (len(changed) or removed):
            table.optimize()  # folds new/changed rows into the existing FTS and vector indexes, no rebuild
        report["seconds_indexes"] = round(time.perf_counter() - t1, 2)
        report["ann"] = use_ann
        meta = {**asdict(settings), "table": table_name, "ann_built": use_ann, "signals": report["signals"],
                "rows": report["rows"], "alignment_version": report["alignment_version"],
                "price_edges": _price_edges(docs), "built_at": time.time()}
        _write_meta(writer, {"settings": meta})
        writer.versions[table_name] = table.version
        if previous and previous.get("table") and previous["table"] != table_name:
            writer.drop(previous["table"])
    clear_engines()
    if learn and len(report["signals"]) > 1:
        try:
            queries, relevant = category_queries(workspace)
            if len(queries) >= 5:
                learnt = learn_weights(workspace, queries, relevant)
                report["weights"] = learnt["weights"]
                report["weights_ndcg@10"] = learnt["ndcg@10"]
        except SearchError as error:
            report["weights_error"] = str(error)
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def _write_meta(writer: Any, docs: dict[str, dict[str, Any]]) -> None:
    frame = pd.DataFrame({"id": list(docs), "json": [json.dumps(v, default=str) for v in docs.values()]})
    writer.upsert(META_TABLE, frame, schema=META_SCHEMA)


def _has_index(table: Any, column: str) -> bool:
    return any(column in idx.columns for idx in table.list_indices())


def create_indexes(table: Any, settings: IndexSettings, use_ann: bool, fts: bool = True,
                   progress: bool = True) -> dict[str, float]:
    """Full-text index on ``tokens``, a B-tree on ``id`` and, with ``use_ann``, one HNSW index per vector column.

    Returns seconds per index. LanceDB builds each index in one call without progress callbacks, so the
    bar advances once per index built.
    """
    from lancedb.index import FTS, BTree, HnswSq

    from tuwen.progress import progress_bar

    names = set(table.schema.names)
    vectors = [c for c in VECTOR_COLUMNS if c in names] if use_ann else []
    jobs: list[tuple[str, Callable[[], None]]] = []
    if fts:
        jobs.append(("tokens", lambda: table.create_index("tokens", config=FTS(base_tokenizer="simple"),
                                                          replace=True)))
        jobs.append(("id", lambda: table.create_index("id", config=BTree(), replace=True)))
    rows = table.count_rows()
    for column in vectors:
        if _has_index(table, column):
            continue
        partitions = max(1, rows // 250_000)  # HNSW wants few partitions; each is one graph
        metric = "dot" if column == "xmodal_vec" else "cosine"
        config = HnswSq(distance_type=metric, num_partitions=partitions, m=settings.hnsw_m,
                        ef_construction=settings.hnsw_ef_construction)
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


# ------------------------------------------------------------------------------------------------ results


@dataclass
class SearchHit:
    """One product in a result list; ``signals`` maps each signal that retrieved it to its rank and score."""

    id: str
    score: float
    title: str = ""
    category: str = ""
    price: float | None = None
    image: str = ""
    signals: dict[str, dict[str, Any]] = field(default_factory=dict)
    row: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)  # all index columns (facets)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "row"}
        out["score"] = round(float(self.score), 6)
        if out["price"] is not None and out["price"] != out["price"]:
            out["price"] = None
        return out


@dataclass
class SearchResult:
    """What a search returns: hits best first, facet counts over the candidates, and per-stage timings (ms)."""

    query: str
    mode: str
    fusion: str | None
    hits: list[SearchHit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    signals: list[str] = field(default_factory=list)
    where: str | None = None
    image: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "image": self.image, "mode": self.mode, "fusion": self.fusion,
                "where": self.where, "signals": self.signals, "hits": [h.to_dict() for h in self.hits],
                "facets": self.facets, "timings_ms": {k: round(v, 2) for k, v in self.timings.items()}}

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self.hits]


@dataclass
class _Ranked:
    """One signal's candidates: row keys best first with their scores."""

    keys: list[Any]
    scores: np.ndarray
    rows: dict[Any, dict[str, Any]] | None = None  # ANN mode: the candidates' columns, fetched with them

    def rank_of(self) -> dict[Any, int]:
        return {key: r for r, key in enumerate(self.keys)}


# ------------------------------------------------------------------------------------------------- engine


@functools.lru_cache(maxsize=8)
def _encoder(name: str) -> Any:
    from tuwen.encoders import get_encoder

    kwargs = {"threads": 1} if name == "use_multilingual" else {}
    try:
        return get_encoder(name, **kwargs)
    except TypeError:
        return get_encoder(name)


class SearchEngine:
    """A loaded search index: holds the LanceDB table, in-memory vectors (exact mode) and the query encoders.

    Build one per workspace and reuse it; :func:`engine_for` caches them and notices re-indexing.
    """

    def __init__(self, workspace: Any) -> None:
        meta = read_meta(workspace)
        if meta is None or not workspace.has_table(meta.get("table", "")):
            raise SearchError(f"{workspace.path}: no search index yet; run `tuwen index {workspace.path}` first")
        self.workspace = workspace
        self.meta = meta
        known = IndexSettings.__dataclass_fields__
        self.settings = IndexSettings(**{k: v for k, v in meta.items() if k in known})
        self.table = workspace.table(meta["table"])
        self.version = (meta["table"], self.table.version)
        self.signals = list(meta.get("signals", ["lexical"]))
        self.ann = bool(meta.get("ann_built"))
        self.weights = read_meta(workspace, "weights")
        self._alignment: Any = None
        self._filters: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._load()

    # ----------------------------------------------------------------------------------------- loading
    def _load(self) -> None:
        names = self.table.schema.names
        keep = [c for c in names if c not in VECTOR_COLUMNS and c not in ("hash", "attributes")]
        if self.ann:
            self.ids = None
            self.info = None
            self.matrices: dict[str, np.ndarray] = {}
            return
        data = self.table.to_arrow()
        self.ids = np.array(data.column("id").to_pylist(), dtype=object)
        self.row = {pid: i for i, pid in enumerate(self.ids)}
        self.info = {c: data.column(c).to_pylist() for c in keep}  # plain lists: a row is 30 list lookups
        self.matrices = {}
        for column in ("text_vec", "image_vec", "xmodal_vec"):
            if column in names:
                flat = data.column(column).combine_chunks()
                self.matrices[column] = flat.flatten().to_numpy().reshape(len(self.ids), -1).astype(np.float32)

    def alignment(self) -> Any:
        if self._alignment is None:
            from tuwen.align import load_alignment

            self._alignment = load_alignment(self.workspace)
            if self._alignment is None:
                raise SearchError(f"{self.workspace.path}: no text↔image alignment; run `tuwen align "
                                  f"{self.workspace.path}` (then `tuwen index`) for cross-modal search")
        return self._alignment

    # ----------------------------------------------------------------------------------------- encoding
    def _text_vector(self, encoder: str, text: str) -> np.ndarray:
        key = (encoder, text)
        cached = self._query_vectors.get(key)
        if cached is None:
            cached = np.asarray(_encoder(encoder).encode([text]), np.float32)[0]
            self._query_vectors[key] = cached
            if len(self._query_vectors) > 4096:
                self._query_vectors.popitem(last=False)
        return cached

    def clear_caches(self) -> None:
        """Forget cached query vectors and filter masks (benchmarks measure cold queries)."""
        self._query_vectors.clear()
        self._filters.clear()

    def _image_vector(self, path: str | Path) -> np.ndarray:
        path = Path(path)
        if not path.is_file():
            raise SearchError(f"{path}: image file not found")
        try:
            vector = np.asarray(_encoder(self.settings.image_encoder).encode([str(path)]), np.float32)[0]
        except (OSError, ValueError) as error:
            raise SearchError(f"{path}: cannot read this image ({error})") from error
        return _l2(vector)

    # ------------------------------------------------------------------------------------------ filters
    def _mask(self, where: str | None) -> np.ndarray | None:
        """Rows passing the SQL filter (exact mode), evaluated by LanceDB and cached per filter text."""
        if not where:
            return None
        cached = self._filters.get(where)
        if cached is None:
            try:
                rows = self.table.search().where(where).select(["id"]).limit(None).to_arrow()
            except Exception as error:  # LanceDB raises ValueError/RuntimeError with the parser's message
                raise SearchError(f"bad filter {where!r}: {_first_line(error)}") from error
            cached = np.zeros(len(self.ids), dtype=bool)
            cached[[self.row[pid] for pid in rows.column("id").to_pylist() if pid in self.row]] = True
            self._filters[where] = cached
            if len(self._filters) > 128:
                self._filters.popitem(last=False)
        return cached

    # ---------------------------------------------------------------------------------------- signals
    def _lexical(self, query: str, where: str | None, n: int) -> _Ranked:
        words = segment(query)
        if not words.strip():
            return _Ranked([], np.zeros(0, np.float32))
        builder = self.table.search(words, query_type="fts", fts_columns="tokens")
        if where:
            builder = builder.where(where, prefilter=True)
        try:
            rows = builder.select([*self._row_columns(), "_score"]).limit(n).to_arrow()
        except Exception as error:
            raise _query_error(where, error) from error
        ids = rows.column("id").to_pylist()
        keys = ids if self.ann else [self.row[pid] for pid in ids]
        return _Ranked(keys, np.asarray(rows.column("_score").to_numpy(), np.float32), self._rows_of(rows))

    def _row_columns(self) -> list[str]:
        """Columns a hit shows (ANN mode fetches them with the candidates; exact mode has them in memory)."""
        if not self.ann:
            return ["id"]
        return [c for c in self.table.schema.names if c not in VECTOR_COLUMNS and c not in ("hash", "attributes")]

    def _rows_of(self, rows: pa.Table) -> dict[Any, dict[str, Any]] | None:
        if not self.ann:
            return None
        data = rows.drop_columns([c for c in ("_score", "_distance") if c in rows.column_names]).to_pylist()
        return {row["id"]: row for row in data}

    def _vector(self, column: str, query: np.ndarray, where: str | None, n: int) -> _Ranked:
        if column not in self.table.schema.names:
            raise SearchError(f"this index has no {column}; re-run `tuwen embed` / `tuwen align` and `tuwen index`")
        if not self.ann:
            scores = self.matrices[column] @ query if column in self.matrices else self._fused_scores(query)
            mask = self._mask(where)
            if mask is not None:
                scores = np.where(mask, scores, -np.inf)
            top = _top(scores, n)
            top = top[np.isfinite(scores[top])]
            return _Ranked(list(top), scores[top].astype(np.float32))
        metric = "dot" if column == "xmodal_vec" else "cosine"  # xmodal carries the hubness penalty: dot product
        builder = (self.table.search(query, vector_column_name=column).distance_type(metric)
                   .ef(max(self.settings.ef, n * max(1, self.settings.refine_factor))).nprobes(self.settings.nprobes))
        if self.settings.refine_factor > 1:
            builder = builder.refine_factor(self.settings.refine_factor)
        if where:
            builder = builder.where(where, prefilter=True)
        try:
            rows = builder.select([*self._row_columns(), "_distance"]).limit(n).to_arrow()
        except Exception as error:
            raise _query_error(where, error) from error
        return _Ranked(rows.column("id").to_pylist(), 1.0 - np.asarray(rows.column("_distance").to_numpy(), np.float32),
                       self._rows_of(rows))

    def _fused_scores(self, query: np.ndarray) -> np.ndarray:
        w = self.settings.fused_image_weight
        d = self.matrices["text_vec"].shape[1]
        return self.matrices["text_vec"] @ query[:d] * math.sqrt(1 - w) + self.matrices["image_vec"] @ query[d:] * \
            math.sqrt(w)

    def _exact_scores(self, signal: str, queries: dict[str, np.ndarray], keys: list[Any]) -> np.ndarray | None:
        """Exact scores of ``keys`` for a vector signal (exact mode only): weighted fusion needs every value."""
        if self.ann or signal not in queries:
            return None
        column = {"semantic": "text_vec", "crossmodal": "xmodal_vec", "image": "image_vec"}[signal]
        rows = np.asarray(keys, dtype=np.int64)
        return self.matrices[column][rows] @ queries[signal]

    # ----------------------------------------------------------------------------------------- search
    def search(self, query: str | None = None, *, image: str | Path | None = None, mode: str = "hybrid",
               k: int = 10, where: str | None = None, fusion: str = "auto", facets: Sequence[str] | None = None,
               candidates: int | None = None, weights: dict[str, float] | None = None) -> SearchResult:
        """Rank products for a text query and/or a photo; see the module docstring for the modes.

        ``weights`` (weighted fusion only) is either ``{signal: weight}`` or a :func:`learn_weights` result;
        by default the weights learnt at index time are used.
        """
        start = time.perf_counter()
        query = (query or "").strip()
        self._validate(query, image, mode, k, fusion)
        timings: dict[str, float] = {}
        n = max(candidates or 0, 5 * k, 50)
        lists, queries = self._signals(query, image, mode, where, n, timings)
        t = time.perf_counter()
        fusion_used = None
        if mode == "hybrid" and len(lists) > 1:
            fusion_used = self._fusion_name(fusion)
            keys, scores = self._fuse(lists, queries, fusion_used, weights)
        else:
            name = next(iter(lists), None)
            keys = list(lists[name].keys) if name else []
            scores = lists[name].scores if name else np.zeros(0)
        timings["fuse"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        pool = max(k, 100)
        hits = self._hits(keys[:pool], scores[:pool], lists, query)
        facet_counts = self._facets(hits, facets)
        timings["fetch"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - start) * 1000  # wall time: BM25 overlaps the encoding
        return SearchResult(query, mode, fusion_used, hits[:k], facet_counts, timings, list(lists), where,
                            str(image) if image else None)

    def _validate(self, query: str, image: Any, mode: str, k: int, fusion: str) -> None:
        if mode not in MODES:
            raise SearchError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if fusion not in FUSIONS:
            raise SearchError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
        if not query and image is None:
            raise SearchError("empty query: give words to search for, or a photo (--image PATH)")
        if len(query) > MAX_QUERY_CHARS:
            raise SearchError(f"query too long ({len(query):,} characters; the limit is {MAX_QUERY_CHARS:,})")
        if not 1 <= k <= MAX_K:
            raise SearchError(f"k must be between 1 and {MAX_K}, got {k}")
        if mode == "image" and image is None:
            raise SearchError("mode 'image' needs a photo: --image PATH")
        if mode in ("lexical", "semantic", "crossmodal") and not query:
            raise SearchError(f"mode {mode!r} needs words to search for")
        needs = {"semantic": "semantic", "crossmodal": "crossmodal", "image": "image"}.get(mode)
        if needs and needs not in self.signals:
            hint = "run `tuwen align WS` then `tuwen index WS`" if needs == "crossmodal" else "run `tuwen embed WS` " \
                "then `tuwen index WS`"
            raise SearchError(f"this index has no {needs} signal; {hint}")

    def _signals(self, query: str, image: Any, mode: str, where: str | None, n: int,
                 timings: dict[str, float]) -> tuple[dict[str, _Ranked], dict[str, np.ndarray]]:
        wanted = [s for s in SIGNALS if s in self.signals and (mode == s or mode == "hybrid")]
        if not query:
            wanted = [s for s in wanted if s == "image"]
        if image is None:
            wanted = [s for s in wanted if s != "image"]
        lists: dict[str, _Ranked] = {}
        queries: dict[str, np.ndarray] = {}
        lexical = None
        if "lexical" in wanted and len(wanted) > 1:
            # BM25 runs in LanceDB's native code (no GIL) while this thread encodes the query: overlap them.
            start = time.perf_counter()
            lexical = _pool().submit(lambda: (self._lexical(query, where, n), time.perf_counter() - start))
        with _BLAS.limit(limits=1, user_api="blas"):  # one vector per query: extra BLAS threads only stall
            self._vector_signals(query, image, wanted, where, n, lists, queries, timings)
        if lexical is not None:
            lists["lexical"], seconds = lexical.result()
            timings["lexical"] = seconds * 1000
        return {s: lists[s] for s in wanted if s in lists}, queries

    def _vector_signals(self, query: str, image: Any, wanted: list[str], where: str | None, n: int,
                        lists: dict[str, _Ranked], queries: dict[str, np.ndarray], timings: dict[str, float]) -> None:
        if "semantic" in wanted or "crossmodal" in wanted:
            t = time.perf_counter()
            if "semantic" in wanted:
                queries["semantic"] = _l2(self._text_vector(self.settings.text_encoder, query))
            if "crossmodal" in wanted:
                alignment = self.alignment()
                raw = self._text_vector(alignment.text_encoder, query)
                queries["crossmodal"] = alignment.text_space(raw[None, :], self.settings.csls)[0]
            timings["encode_text"] = (time.perf_counter() - t) * 1000
        if "image" in wanted:
            t = time.perf_counter()
            queries["image"] = self._image_vector(image)
            timings["encode_image"] = (time.perf_counter() - t) * 1000
        for signal in wanted:
            if signal == "lexical" and len(wanted) > 1:
                continue  # running in the pool
            t = time.perf_counter()
            if signal == "lexical":
                lists[signal] = self._lexical(query, where, n)
            elif signal == "semantic":
                lists[signal] = self._vector("text_vec", queries[signal], where, n)
            elif signal == "crossmodal":
                lists[signal] = self._vector("xmodal_vec", queries[signal], where, n)
            else:
                lists[signal] = self._vector("image_vec", queries[signal], where, n)
            timings[signal] = (time.perf_counter() - t) * 1000

    def _fusion_name(self, fusion: str) -> str:
        if fusion != "auto":
            return fusion
        return "weighted" if self.weights else "rrf"

    def _fuse(self, lists: dict[str, _Ranked], queries: dict[str, np.ndarray], fusion: str,
              weights: dict[str, float] | None) -> tuple[list[Any], np.ndarray]:
        keys = list(dict.fromkeys(key for ranked in lists.values() for key in ranked.keys))
        if not keys:
            return [], np.zeros(0)
        if fusion == "rrf":
            total = np.zeros(len(keys))
            position = {key: i for i, key in enumerate(keys)}
            for ranked in lists.values():
                for r, key in enumerate(ranked.keys):
                    total[position[key]] += 1.0 / (RRF_K + r + 1)
        else:
            features = self.features(lists, queries, keys)
            learnt = weights if weights and "weights" in weights else (self.weights or {})
            explicit = weights if weights and "weights" not in weights else None
            no_words = "lexical" in lists and not lists["lexical"].keys
            w = explicit or (no_words and learnt.get("weights_without_lexical")) or learnt.get("weights") or \
                DEFAULT_WEIGHTS
            total = sum(w.get(s, 0.0) * features[s] for s in features)
        order = np.argsort(-total, kind="stable")
        return [keys[i] for i in order], np.asarray(total)[order]

    def features(self, lists: dict[str, _Ranked], queries: dict[str, np.ndarray], keys: list[Any]) -> dict[str, Any]:
        """Per-signal scores of every candidate, comparable across queries (the inputs of weighted fusion).

        lexical: BM25 divided by the query's best BM25 (0 when the words do not occur); vector signals: the
        exact cosine (exact mode) or, for candidates an ANN list did not return, that list's lowest score.
        """
        out: dict[str, np.ndarray] = {}
        for signal, ranked in lists.items():
            if signal == "lexical":
                best = float(ranked.scores.max()) if len(ranked.scores) else 1.0
                value = dict(zip(ranked.keys, ranked.scores / max(best, 1e-9), strict=True))
                out[signal] = np.array([value.get(key, 0.0) for key in keys], np.float32)
                continue
            exact = self._exact_scores(signal, queries, keys)
            if exact is not None:
                out[signal] = exact
                continue
            floor = float(ranked.scores.min()) if len(ranked.scores) else 0.0
            value = dict(zip(ranked.keys, ranked.scores, strict=True))
            out[signal] = np.array([value.get(key, floor) for key in keys], np.float32)
        return out

    # --------------------------------------------------------------------------------------- hits
    def _hits(self, keys: list[Any], scores: np.ndarray, lists: dict[str, _Ranked], query: str) -> list[SearchHit]:
        if not keys:
            return []
        ranks = {signal: ranked.rank_of() for signal, ranked in lists.items()}
        known: dict[Any, dict[str, Any]] = {}
        for ranked in lists.values():
            known.update(ranked.rows or {})
        info = self._info(keys, known)
        terms = query_terms(query) if "lexical" in lists else []
        hits = []
        for key, score, row in zip(keys, scores, info, strict=True):
            signals: dict[str, dict[str, Any]] = {}
            for signal, rank_of in ranks.items():
                r = rank_of.get(key)
                if r is None:
                    continue
                entry: dict[str, Any] = {"rank": r + 1, "score": round(float(lists[signal].scores[r]), 5)}
                if signal == "lexical":
                    text = str(row.get("tokens", "")).lower()
                    entry["terms"] = [w for w in terms if w in text]
                signals[signal] = entry
            price = row.get("price")
            hits.append(SearchHit(str(row["id"]), float(score), str(row.get("title", "")), str(row.get("category", "")),
                                  None if price is None or price != price else float(price), str(row.get("image", "")),
                                  signals, row))
        return hits

    def _info(self, keys: list[Any], known: dict[Any, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        if not self.ann:
            columns = list(self.info.items())
            return [{c: values[key] for c, values in columns} for key in keys]
        by_id = dict(known or {})
        missing = [k for k in keys if k not in by_id]
        if missing:
            quoted = ", ".join("'" + str(k).replace("'", "''") + "'" for k in missing)
            rows = self.table.search().where(f"id IN ({quoted})").select(self._row_columns()).limit(len(missing))
            by_id.update({r["id"]: r for r in rows.to_list()})
        return [by_id.get(k, {"id": k}) for k in keys]

    def _facets(self, hits: list[SearchHit], facets: Sequence[str] | None) -> dict[str, dict[str, int]]:
        """Counts over the top candidates (up to 100): category paths, price bands, any attribute column."""
        names = list(facets) if facets is not None else ["category", "price"]
        out: dict[str, dict[str, int]] = {}
        allowed = {"category", "price", *self.settings.attribute_columns}
        for name in names:
            column = _column_name(name) if name not in ("category", "price") else name
            if column not in allowed:
                raise SearchError(f"unknown facet {name!r}; use category, price or one of: "
                                  f"{', '.join(self.settings.attribute_columns) or '(no attributes)'}")
            counts: dict[str, int] = {}
            for hit in hits:
                row = hit.row
                value = self._price_band(row.get("price")) if column == "price" else row.get(column)
                if value is None or value == "":
                    continue
                counts[str(value)] = counts.get(str(value), 0) + 1
            out[name] = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        return out

    def _price_band(self, price: Any) -> str | None:
        if price is None or price != price:
            return None
        edges = self.meta.get("price_edges") or []
        if not edges:
            return None
        lo = None
        for edge in edges:
            if price < edge:
                return f"< {edge:g}" if lo is None else f"{lo:g}-{edge:g}"
            lo = edge
        return f">= {lo:g}"

    # ------------------------------------------------------------------------------------- similar
    def similar(self, product_id: str, *, k: int = 10, where: str | None = None,
                facets: Sequence[str] | None = None) -> SearchResult:
        """Products like this one by its fused (text + photo) embedding; the product itself is left out."""
        if not 1 <= k <= MAX_K:
            raise SearchError(f"k must be between 1 and {MAX_K}, got {k}")
        t = time.perf_counter()
        vectors = self._product_vectors(product_id)
        column = "fused_vec" if "text_vec" in vectors and "image_vec" in vectors else \
            ("text_vec" if "text_vec" in vectors else "image_vec")
        if column == "fused_vec":
            w = self.settings.fused_image_weight
            query = np.concatenate([math.sqrt(1 - w) * vectors["text_vec"], math.sqrt(w) * vectors["image_vec"]])
        else:
            query = vectors[column]
        ranked = self._vector(column, query, where, k + 1 + 50)
        keep = [i for i, key in enumerate(ranked.keys) if (self.ids[key] if not self.ann else key) != product_id]
        ranked = _Ranked([ranked.keys[i] for i in keep], ranked.scores[keep], ranked.rows)
        timings = {"similar": (time.perf_counter() - t) * 1000}
        timings["total"] = timings["similar"]
        hits = self._hits(ranked.keys[:max(k, 100)], ranked.scores[:max(k, 100)], {"fused": ranked}, "")
        signal_vectors = {"semantic": vectors.get("text_vec"), "image": vectors.get("image_vec")}
        for hit in hits[:k]:
            row = hit.row
            for name, column_ in (("semantic", "text_vec"), ("image", "image_vec")):
                if signal_vectors[name] is not None and not self.ann:
                    score = float(self.matrices[column_][self.row[row["id"]]] @ signal_vectors[name])
                    hit.signals[name] = {"score": round(score, 5)}
        facet_counts = self._facets(hits, facets)
        return SearchResult(f"similar:{product_id}", "similar", None, hits[:k], facet_counts, timings,
                            ["fused" if column == "fused_vec" else column], where)

    def _product_vectors(self, product_id: str) -> dict[str, np.ndarray]:
        if not isinstance(product_id, str) or not product_id:
            raise SearchError("similar needs a product id")
        if not self.ann:
            if product_id not in self.row:
                raise SearchError(f"no product with id {product_id!r} in the search index")
            r = self.row[product_id]
            return {c: self.matrices[c][r] for c in ("text_vec", "image_vec") if c in self.matrices
                    and np.abs(self.matrices[c][r]).sum() > 0}
        quoted = product_id.replace("'", "''")
        columns = [c for c in ("text_vec", "image_vec") if c in self.table.schema.names]
        rows = self.table.search().where(f"id = '{quoted}'").select(["id", *columns]).limit(1).to_list()
        if not rows:
            raise SearchError(f"no product with id {product_id!r} in the search index")
        return {c: np.asarray(rows[0][c], np.float32) for c in columns if np.abs(np.asarray(rows[0][c])).sum() > 0}


class _LazyBlas:
    """threadpoolctl's controller, built on first use (it scans the loaded libraries once, ~50 ms)."""

    def __init__(self) -> None:
        self._controller: Any = None

    def limit(self, **kwargs: Any) -> Any:
        if self._controller is None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        return self._controller.limit(**kwargs)


_BLAS = _LazyBlas()


@functools.cache
def _pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="tuwen-search")


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return part[np.argsort(-scores[part], kind="stable")]


def _query_error(where: str | None, error: BaseException) -> SearchError:
    """LanceDB's complaint as a SearchError: a filter problem names the filter, anything else says so."""
    if where:
        return SearchError(f"bad filter {where!r}: {_first_line(error)}")
    return SearchError(f"search failed: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


# ------------------------------------------------------------------------------------- engine cache

_ENGINES: dict[str, SearchEngine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(workspace: Any) -> SearchEngine:
    """The cached engine of a workspace, reloaded when the index or the alignment changed since."""
    key = str(Path(workspace.path).resolve())
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None:
            meta = read_meta(workspace)
            fresh = meta is not None and meta.get("table") == engine.version[0] and \
                workspace.committed_tables().get(engine.version[0]) == engine.version[1] and \
                read_meta(workspace, "weights") == engine.weights
            if fresh:
                return engine
        engine = SearchEngine(workspace)
        _ENGINES[key] = engine
        return engine


def clear_engines() -> None:
    with _ENGINES_LOCK:
        _ENGINES.clear()


def _workspace(workspace: Any) -> Any:
    if isinstance(workspace, str | Path):
        from tuwen.workspace import Workspace

        return Workspace(workspace, create=False)
    return workspace


def search(workspace: Any, query: str | None = None, *, image: str | Path | None = None, mode: str = "hybrid",
           k: int = 10, where: str | None = None, fusion: str = "auto",
           facets: Sequence[str] | None = None) -> SearchResult:
    """Search a workspace's products (run :func:`build_index` first). See :class:`SearchEngine.search`.

    >>> search("shop", "红色连衣裙", k=5, where="price < 500").ids   # doctest: +SKIP
    """
    return engine_for(_workspace(workspace)).search(query, image=image, mode=mode, k=k, where=where, fusion=fusion,
                                                    facets=facets)


def similar(workspace: Any, product_id: str, *, k: int = 10, where: str | None = None,
            facets: Sequence[str] | None = None) -> SearchResult:
    """"More like this": the products nearest to one product's fused text + photo embedding."""
    return engine_for(_workspace(workspace)).similar(product_id, k=k, where=where, facets=facets)


# ------------------------------------------------------------------------------- evaluation and learning


def ndcg_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    """Binary-relevance nDCG@k."""
    gains = [1.0 / math.log2(i + 2) for i, pid in enumerate(ranked[:k]) if pid in relevant]
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return sum(gains) / ideal if ideal else 0.0


def recall_at(ranked: Sequence[str], relevant: set[str], k: int = 10) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def mrr(ranked: Sequence[str], relevant: set[str]) -> float:
    for i, pid in enumerate(ranked):
        if pid in relevant:
            return 1.0 / (i + 1)
    return 0.0


def category_queries(workspace: Any, min_products: int = 5, max_queries: int = 300,
                     seed: int = 0) -> tuple[list[str], list[set[str]]]:
    """Pseudo-queries any catalog has: each category's last path element, relevant = products in it.

    They teach the fusion how much each signal is worth on *this* catalog without hand labels.
    """
    products = workspace.read("products", ["id", "category"])
    leaf = products["category"].fillna("").map(lambda c: c.split(">")[-1].strip())
    groups = products.groupby(leaf)["id"].apply(set)
    groups = groups[(groups.index != "") & (groups.map(len) >= min_products)]
    names = sorted(groups.index)
    rng = np.random.default_rng(seed)
    if len(names) > max_queries:
        names = sorted(rng.choice(names, max_queries, replace=False).tolist())
    return names, [groups[name] for name in names]


def learn_weights(workspace: Any, queries: Sequence[str], relevant: Sequence[set[str]], *, k: int = 10,
                  step: float = 0.1, save: bool = True, candidates: int = 100) -> dict[str, Any]:
    """Fit the hybrid weights: grid search over the simplex of signal weights for the best mean nDCG@k.

    Two sets are learnt, because how much the vectors are worth depends on whether the words matched at
    all: ``weights`` for queries with BM25 hits, and ``weights_without_lexical`` for queries without (a
    Chinese query on an English catalog, a misspelling) — learnt on such queries when at least 5 are given,
    otherwise on all queries with the lexical signal left out. The per-query candidate features are
    computed once, so each grid point costs a few vector sums. A few weights from a few hundred queries do
    not overfit much; the benchmark still learns them on one half of its queries and reports the other.
    """
    engine = engine_for(_workspace(workspace))
    signals = [s for s in ("lexical", "semantic", "crossmodal") if s in engine.signals]
    if len(signals) < 2:
        raise SearchError("learning fusion weights needs at least two text signals in the index")
    prepared = []
    for query, rel in zip(queries, relevant, strict=True):
        lists, vectors = engine._signals(query, None, "hybrid", None, candidates, {})
        keys = list(dict.fromkeys(key for ranked in lists.values() for key in ranked.keys))
        if not keys:
            continue
        feats = engine.features(lists, vectors, keys)
        ids = [engine.ids[key] if not engine.ann else key for key in keys]
        has_words = bool("lexical" in lists and lists["lexical"].keys)
        prepared.append((np.stack([feats.get(s, np.zeros(len(keys))) for s in signals]), ids, set(rel), has_words))
    if not prepared:
        raise SearchError("no query retrieved anything; cannot learn fusion weights")
    with_words = [p for p in prepared if p[3]] or prepared
    weights, score = _grid_search(with_words, signals, signals, k, step)
    result: dict[str, Any] = {"weights": {**weights, "image": DEFAULT_WEIGHTS["image"]}, "ndcg@10": round(score, 4),
                              "queries": len(with_words)}
    vector_signals = [s for s in signals if s != "lexical"]
    if "lexical" in signals and len(vector_signals) >= 2:
        without = [p for p in prepared if not p[3]]
        pool = without if len(without) >= 5 else prepared
        weights, score = _grid_search(pool, signals, vector_signals, k, step)
        result["weights_without_lexical"] = {**weights, "image": DEFAULT_WEIGHTS["image"]}
        result["ndcg@10_without_lexical"] = round(score, 4)
        result["queries_without_lexical"] = len(without)
    if save:
        ws = _workspace(workspace)
        with ws.transaction("search weights") as writer:
            _write_meta(writer, {"weights": result})
        clear_engines()
    return result


def _grid_search(prepared: list[tuple[np.ndarray, list[str], set[str], bool]], signals: list[str], use: list[str],
                 k: int, step: float) -> tuple[dict[str, float], float]:
    """Best simplex point over the ``use`` signals (others weigh 0) by mean nDCG@k."""
    rows = [signals.index(s) for s in use]
    best, best_score = None, -1.0
    for point in _simplex(len(use), step):
        w = np.zeros(len(signals))
        w[rows] = point
        score = float(np.mean([ndcg_at([ids[i] for i in _top(w @ f, k)], rel, k) for f, ids, rel, _ in prepared]))
        if score > best_score + 1e-9:
            best, best_score = w, score
    assert best is not None
    return {s: round(float(x), 4) for s, x in zip(signals, best, strict=True)}, best_score


def _simplex(n: int, step: float) -> list[np.ndarray]:
    units = int(round(1 / step))
    out = []

    def rec(prefix: list[int], left: int, slots: int) -> None:
        if slots == 1:
            out.append(np.array([*prefix, left], dtype=float) / units)
            return
        for x in range(left + 1):
            rec([*prefix, x], left - x, slots - 1)

    rec([], units, n)
    return out


def iter_query_file(path: str | Path) -> Iterable[dict[str, Any]]:
    """Queries from a file: one per line, plain text or a JSON object with ``query`` (and optionally
    ``image``, ``where``, ``k``, ``mode``). Blank lines are skipped; a malformed JSON line is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SearchError(f"{path}: cannot read the queries file ({error.strerror or error})") from error
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise SearchError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(item, dict) or not (item.get("query") or item.get("image")):
                raise SearchError(f"{path}:{number}: a JSON line needs a \"query\" (or \"image\") field")
            yield item
        else:
            yield {"query": line}
