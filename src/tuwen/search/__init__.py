"""Multimodal product search over a workspace: words, meaning, photos, and all three fused.

Signals (each one a ranked list of products):

* **lexical** — BM25 from LanceDB's native full-text index over title, description and OCR text, with
  Chinese pre-segmented by jieba (:mod:`tuwen.search.tokens`).
* **semantic** — cosine between the query's multilingual sentence vector and each product's text vector
  (title + ½ description), so 红色连衣裙 finds "Red Dress".
* **crossmodal** — the query's vector mapped by the learnt text↔image alignment (:mod:`tuwen.search.align`)
  against every product *photo*: finds the black dress whose title only says "Zoe".
* **image** — an uploaded photo against product photos (MobileNetV2 features).

``hybrid`` fuses the text signals (plus the photo, if one is given) by reciprocal rank fusion (RRF) or
by a weighted sum of per-signal scores and word coverage (the share of the query's words a candidate's text
contains) whose weights are *learnt* from labelled queries (:func:`learn_weights`); both are measured in
``benchmarks/search_quality.py``. Every hit says which signals found it, at what rank and score, and which
query words it matched.

The parts, one job each:

* :mod:`~tuwen.search.common` — constants, :class:`SearchError`, :class:`IndexSettings`, the meta table
* :mod:`~tuwen.search.tokens` — word segmentation for BM25
* :mod:`~tuwen.search.dictionary` — CC-CEDICT, offline: Chinese query words in English (and category names in Chinese)
* :mod:`~tuwen.search.querywords` — a query's words for BM25 and coverage, Chinese words the catalog lacks translated
* :mod:`~tuwen.search.build` — building and incrementally updating the index (:func:`build_index`)
* :mod:`~tuwen.search.engine` — :class:`SearchEngine`: signals, filters, hits, facets, similar
* :mod:`~tuwen.search.request` — a search request checked before any work
* :mod:`~tuwen.search.retrieval` — each signal's ranked list: BM25, exact in-memory or ANN vector search
* :mod:`~tuwen.search.encoding` — query encoders and the cache of query vectors
* :mod:`~tuwen.search.coverage` — word coverage: the vocabulary, each query's and each candidate's words
* :mod:`~tuwen.search.threads` — the BLAS thread limit and the pool BM25 runs in
* :mod:`~tuwen.search.fusion` — RRF and weighted fusion of the signals' lists
* :mod:`~tuwen.search.results` — :class:`SearchHit`, :class:`SearchResult`, facet counts
* :mod:`~tuwen.search.engines` — one cached engine per workspace; :func:`search`, :func:`similar`
* :mod:`~tuwen.search.learn` — fusion weights from labelled queries; :mod:`tuwen.metrics.ranking` — nDCG, MRR
* :mod:`~tuwen.search.queries` — batch query files
"""

from tuwen.search.build import build_index, create_indexes
from tuwen.search.common import (
    DEFAULT_WEIGHTS,
    FUSIONS,
    MAX_K,
    MAX_QUERY_CHARS,
    META_TABLE,
    MODES,
    RRF_K,
    SIGNALS,
    IndexSettings,
    SearchError,
    read_meta,
)
from tuwen.search.engine import SearchEngine
from tuwen.search.engines import clear_engines, engine_for, search, similar
from tuwen.search.learn import category_queries, learn_weights
from tuwen.search.queries import iter_query_file
from tuwen.search.results import SearchHit, SearchResult
from tuwen.search.tokens import query_terms, segment

__all__ = [
    "DEFAULT_WEIGHTS", "FUSIONS", "MAX_K", "MAX_QUERY_CHARS", "META_TABLE", "MODES", "RRF_K", "SIGNALS",
    "IndexSettings", "SearchEngine", "SearchError", "SearchHit", "SearchResult", "build_index",
    "category_queries", "clear_engines", "create_indexes", "engine_for", "iter_query_file", "learn_weights",
    "query_terms", "read_meta", "search", "segment", "similar",
]
