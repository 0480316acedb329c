"""What every part of search shares: constants, the error type, the index settings and the meta table."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tuwen.encoders.defaults import SEARCH_IMAGE_ENCODER, TEXT_ENCODER
from tuwen.store.workspace import Workspace

MODES = ("hybrid", "lexical", "semantic", "crossmodal", "image")
SIGNALS = ("lexical", "semantic", "crossmodal", "image")
FUSIONS = ("auto", "rrf", "weighted")
COVERAGE = "coverage"  # weighted fusion's word-coverage feature (see tuwen.search.fusion); not a mode of its own
META_TABLE = "search_meta"
MAX_QUERY_CHARS = 1000
MAX_K = 1000
RRF_K = 60
DEFAULT_WEIGHTS = {"lexical": 0.4, "semantic": 0.3, "crossmodal": 0.3, "image": 0.5}
CORE_COLUMNS = ("id", "title", "category", "price", "currency", "image", "has_image", "attributes", "tokens", "hash",
                "rating", "reviews", "positive_share")  # the last three: review scores (catalogs with reviews)
VECTOR_COLUMNS = ("text_vec", "image_vec", "xmodal_vec", "fused_vec")
SIGNAL_COLUMNS = {"semantic": "text_vec", "crossmodal": "xmodal_vec", "image": "image_vec"}
META_SCHEMA = pa.schema([("id", pa.string()), ("json", pa.string())])


class SearchError(ValueError):
    """A search request that cannot be answered as asked (empty query, bad filter, no index, ...)."""


@dataclass
class IndexSettings:
    """How the search index is built; stored with it so queries use the same encoders."""

    text_encoder: str = TEXT_ENCODER
    image_encoder: str = SEARCH_IMAGE_ENCODER
    fields: tuple[str, ...] = ("title", "description", "ocr")  # words for BM25
    text_weights: dict[str, float] = field(default_factory=lambda: {"title": 1.0, "description": 0.5})
    fused_image_weight: float = 0.5  # "more like this": cosine = (1-w)·text + w·image
    ann: str = "auto"  # auto | on | off
    ann_threshold: int = 50_000
    # ANN index per vector column (see tuwen.search.build.ann_config): "ivf_flat" (k-means partitions of the
    # full vectors: exact distances, builds in seconds per 100k vectors), "ivf_sq" (same, 8-bit scalar-
    # quantised: a quarter of the disk, but slower on the 513-d cross-modal column), "ivf_pq" (product-
    # quantised: slow to train, needs heavy re-ranking) or "ivf_hnsw_sq" (an HNSW graph per partition:
    # ~20 min per column per 1M vectors on 2 cores)
    ann_index: str = "ivf_flat"
    ann_partitions: int = 0  # 0: √rows for the IVF types, one per 250k rows for ivf_hnsw_sq
    ann_max_iterations: int = 50  # k-means iterations when partitioning
    ann_sample_rate: int = 256  # k-means trains on sample_rate × partitions vectors
    hnsw_m: int = 20
    hnsw_ef_construction: int = 150
    ef: int = 400  # ivf_hnsw_sq search breadth per query: 1M vectors, refine 2 → Recall@10 0.96-0.98
    refine_factor: int = 0  # ANN: fetch this many times more candidates, re-rank by exact distance; 0: by type
    csls: float = 0.0  # cross-modal hubness penalty (see tuwen.search.align); 0: attribute queries do better without
    nprobes: int = 75  # IVF partitions searched per query: 1M vectors (1,000 partitions) → Recall@10 0.96-0.98
    soft_vocabulary: int = 100_000  # words embedded for soft (cross-lingual) coverage, most frequent first; 0: off
    attribute_columns: tuple[str, ...] = ()
    table: str = ""
    version: int = 1

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> IndexSettings:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in meta.items() if k in known})


def column_name(key: str) -> str:
    """A catalog attribute key as a SQL-friendly column name (lower case: LanceDB folds unquoted names)."""
    name = re.sub(r"[^0-9a-z_]+", "_", key.lower()).strip("_") or "attr"
    if name[0].isdigit() or name in CORE_COLUMNS or name in VECTOR_COLUMNS or name.startswith("_"):
        name = f"attr_{name}"
    return name


def top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` highest scores, best first (ties keep their order)."""
    n = min(n, len(scores))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    return part[np.argsort(-scores[part], kind="stable")]


def candidate_count(k: int, candidates: int | None = None) -> int:
    """How many candidates each signal contributes to a hybrid ranking of ``k`` hits.

    One rule for searching and for learning the fusion weights: standardised scores are z-scores over
    these candidates, so weights learnt on one pool size only mean the same on that pool size.
    """
    return max(candidates or 0, 5 * k, 50)


def read_meta(workspace: Workspace, key: str = "settings") -> dict[str, Any] | None:
    """One JSON document from the workspace's search meta table (settings, weights), or None."""
    if not workspace.has_table(META_TABLE):
        return None
    rows = workspace.table(META_TABLE).search().where(f"id = '{key}'").limit(1).to_list()
    return json.loads(rows[0]["json"]) if rows else None


def write_meta(writer: Any, docs: dict[str, dict[str, Any]]) -> None:
    """Upsert JSON documents into the meta table inside a workspace transaction."""
    frame = pd.DataFrame({"id": list(docs), "json": [json.dumps(v, default=str) for v in docs.values()]})
    writer.upsert(META_TABLE, frame, schema=META_SCHEMA)


def query_error(where: str | None, error: BaseException) -> SearchError:
    """LanceDB's complaint as a SearchError: a filter problem names the filter, anything else says so."""
    if where:
        return SearchError(f"bad filter {where!r}: {first_line(error)}")
    return SearchError(f"search failed: {first_line(error)}")


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
