"""The search engine: one loaded index answering text, photo and hybrid queries, and "more like this".

Below the ANN threshold the engine keeps unit-length matrices in memory and scores exactly (one matrix-vector
product, where LanceDB's flat scan of the same table re-reads the column per query and costs far more); above
it, it searches LanceDB's ANN indexes (IVF-flat by default) for ids and scores alone and reads the shown rows
after fusion (:mod:`tuwen.search.rows`). Filters (``where``) are parsed by
:mod:`tuwen.search.filters` (a small grammar of our own) and the re-serialised SQL is evaluated by LanceDB either way.

The engine decides which signals a query asks for, fuses their lists and turns the best into hits and facets; it
delegates the reading of each list to :mod:`tuwen.search.retrieval`, the embedding of queries to
:mod:`tuwen.search.encoding` and word coverage to :mod:`tuwen.search.coverage`, keeping their public methods here.
"""

from __future__ import annotations

import functools
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.search import fusion as fusion_
from tuwen.search.align import load_alignment
from tuwen.search.common import (
    SIGNAL_COLUMNS,
    SIGNALS,
    VECTOR_COLUMNS,
    IndexSettings,
    SearchError,
    candidate_count,
    read_meta,
)
from tuwen.search.coverage import WordCoverage
from tuwen.search.encoding import QueryEncoder, query_encoder
from tuwen.search.filters import column_kinds, parse_filter
from tuwen.search.querywords import QueryWords
from tuwen.search.request import check_k, check_request
from tuwen.search.results import Ranked, SearchHit, SearchResult, facet_columns, facet_counts, make_hits
from tuwen.search.retrieval import Retriever
from tuwen.search.rows import RowReader
from tuwen.search.threads import BLAS, query_pool
from tuwen.search.tokens import query_terms, segment
from tuwen.search.vocab import SoftMatcher
from tuwen.store.workspace import Workspace
from tuwen.util.chinese import CJK_RUN

__all__ = ["SearchEngine", "query_encoder"]  # query_encoder: from tuwen.search.encoding, kept importable here


class SearchEngine:
    """A loaded search index: holds the LanceDB table, in-memory vectors (exact mode) and the query encoders.

    Build one per workspace and reuse it; :func:`tuwen.search.engine_for` caches them and notices re-indexing.
    """

    def __init__(self, workspace: Workspace) -> None:
        meta = read_meta(workspace)
        if meta is None or not workspace.has_table(meta.get("table", "")):
            raise SearchError(f"{workspace.path}: no search index yet; run `tuwen index {workspace.path}` first")
        self.workspace = workspace
        self.meta = meta
        self.settings = IndexSettings.from_meta(meta)
        self.table = workspace.table(meta["table"])
        self.version = (meta["table"], self.table.version)
        self.signals = list(meta.get("signals", ["lexical"]))
        self.ann = bool(meta.get("ann_built"))
        self.weights = read_meta(workspace, "weights")
        self._alignment: Any = None
        self._stale_alignment: str | None = None
        self.ids: np.ndarray | None = None
        self.row: dict[str, int] = {}
        self.info: dict[str, list[Any]] | None = None
        self.matrices: dict[str, np.ndarray] = {}
        # ANN mode's rows: every display column but the BM25 words in memory once read (on first need)
        self.row_reader = RowReader(self.table, [c for c in self._display_columns() if c != "tokens"]) \
            if self.ann else None
        if not self.ann:
            self._load_exact()
        self.retriever = Retriever(self.table, self.settings, self.ann, self.row, self.matrices)  # signals' lists
        self.encoding = QueryEncoder(workspace, self.settings)  # query encoders and the query vector cache
        self.word_coverage = WordCoverage(workspace, meta, self.ann, self.info, self._rows, self.encoding.word_vectors)

    def _load_exact(self) -> None:
        """Exact mode: ids, display columns and vectors in memory."""
        names = self.table.schema.names
        data = self.table.to_arrow()
        self.ids = np.array(data.column("id").to_pylist(), dtype=object)
        self.row = {pid: i for i, pid in enumerate(self.ids)}
        self.info = {c: data.column(c).to_pylist() for c in self._display_columns()}  # a row is ~30 list lookups
        for column in ("text_vec", "image_vec", "xmodal_vec"):
            if column in names:
                flat = data.column(column).combine_chunks()
                self.matrices[column] = flat.flatten().to_numpy().reshape(len(self.ids), -1).astype(np.float32)

    def _display_columns(self) -> list[str]:
        """Columns a hit carries: all but the vectors and the bookkeeping (content hashes, raw attribute JSON)."""
        return [c for c in self.table.schema.names
                if c not in VECTOR_COLUMNS and c not in ("hash", "text_hash", "attributes")]

    def alignment(self) -> Any:
        """The text↔image alignment, loaded once; refused (every time, without reloading) when it changed after
        the index was built: photos projected by the old one and queries by the new one would rank at random."""
        if self._alignment is None:
            self._alignment = load_alignment(self.workspace)
            if self._alignment is None:
                raise SearchError(f"{self.workspace.path}: no text↔image alignment; run `tuwen align "
                                  f"{self.workspace.path}` (then `tuwen index`) for cross-modal search")
            indexed = self.meta.get("alignment_version")
            if indexed is not None and indexed != self._alignment.version:
                self._stale_alignment = (f"{self.workspace.path}: the text↔image alignment changed after the "
                                         f"search index was built (index: {indexed}, now: "
                                         f"{self._alignment.version}); run `tuwen index {self.workspace.path}` "
                                         f"to re-project the photos")
        if self._stale_alignment:
            raise SearchError(self._stale_alignment)
        return self._alignment

    def product_id(self, key: Any) -> str:
        """The product id of a candidate key (a row number in exact mode, the id itself with ANN)."""
        return key if self.ann else self.ids[key]

    # ----------------------------------------------------------------------------------------- encoding
    def encoder(self, name: str) -> Any:
        """The query encoder ``name``; one that learnt from this catalog (TF-IDF) is this workspace's own."""
        return self.encoding.encoder(name)

    def text_vector(self, encoder: str, text: str) -> np.ndarray:
        """The raw ``encoder`` vector of a query text (cached: the same words are asked again and again)."""
        return self.encoding.text_vector(encoder, text)

    def warm_query_vectors(self, queries: Sequence[str]) -> None:
        """Encode many queries (and their dictionary English) in one batch per text encoder into the query-vector
        cache, for callers about to search them one by one (learning the fusion weights)."""
        texts = list(dict.fromkeys(queries))
        texts += [e for e in (self.query_words(q).english for q in texts if CJK_RUN.search(q)) if e]
        encoders = [self.settings.text_encoder] if "semantic" in self.signals else []
        if "crossmodal" in self.signals:
            encoders.append(self.alignment().text_encoder)
        self.encoding.warm(encoders, texts)

    def query_vectors(self, query: str, signals: Sequence[str]) -> dict[str, np.ndarray]:
        """The query vector of each text signal asked for, in that signal's index space.

        A query with Chinese words translated for this catalog (:meth:`query_words`) is embedded twice, as typed
        and as its dictionary English, and the two unit vectors are averaged: the alignment learnt its text side
        from the catalog's own (English) texts, and the English words land where those texts are, while the typed
        query keeps what the dictionary got wrong or left out.
        """
        english = ""
        if ("semantic" in signals or "crossmodal" in signals) and CJK_RUN.search(query):
            english = self.query_words(query).english
        return self.encoding.query_vectors(query, english, signals, self.alignment)

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """Text-encoder vectors of single query words, cached like whole queries (safe to call from request
        threads that evict the cache meanwhile)."""
        return self.encoding.word_vectors(words)

    @property
    def _query_vectors(self) -> OrderedDict[tuple[str, str], np.ndarray]:
        """The query (and query word) vector cache, keyed by encoder and text."""
        return self.encoding.vectors

    @_query_vectors.setter
    def _query_vectors(self, cache: OrderedDict[tuple[str, str], np.ndarray]) -> None:
        self.encoding.vectors = cache

    def prewarm(self) -> dict[str, float]:
        """Load now what the first queries would otherwise load one by one (a server calls this as it starts):
        the query encoders, and with ANN the full-text and vector indexes of the search signals (LanceDB reads an
        IVF partition into its cache the first time a query probes it, so a fresh process answers its first few
        hundred queries several times slower) and the in-memory display columns (:mod:`tuwen.search.rows`).
        "More like this" (``fused_vec``) is left cold: its index is the largest. Returns seconds per part."""
        seconds: dict[str, float] = {}
        t = time.perf_counter()
        if "semantic" in self.signals:
            self.encoder(self.settings.text_encoder)
        if "crossmodal" in self.signals:
            try:
                self.encoder(self.alignment().text_encoder)
            except SearchError:
                pass  # a stale or missing alignment: the queries say so themselves
        seconds["encoders"] = time.perf_counter() - t
        if not self.ann:
            return seconds
        names = {idx.columns[0]: idx.name for idx in self.table.list_indices() if len(idx.columns) == 1}
        for column in ["tokens", *(SIGNAL_COLUMNS[s] for s in self.signals if s in SIGNAL_COLUMNS)]:
            if column in names:
                t = time.perf_counter()
                self.table.prewarm_index(names[column])
                seconds[column] = time.perf_counter() - t
        t = time.perf_counter()
        assert self.row_reader is not None
        self.row_reader.block()
        seconds["rows"] = time.perf_counter() - t
        return seconds

    def clear_caches(self) -> None:
        """Forget what earlier queries left behind: query and query-word vectors, filter masks and the per-row
        word caches (benchmarks measure cold queries: a query must not find the rows another mode of the same
        query read). The index's own data (vectors, vocabulary) stays loaded, as in a running server."""
        self._query_vectors.clear()
        self.retriever.clear()
        self.word_coverage.clear()

    # ------------------------------------------------------------------------------------------ filters
    @functools.cached_property
    def filter_columns(self) -> dict[str, str]:
        """The columns a filter may name and their kinds: the index's scalar columns, less its BM25 words, its
        content hash and the photo's file path (a filter must not probe server paths)."""
        return column_kinds(self.table.schema, {"tokens", "hash", "image"})

    def filter_sql(self, where: str | None) -> str | None:
        """A user's filter checked against the grammar and rewritten as safe SQL (a :class:`FilterError` names
        what is wrong and what is allowed); every entry point (Python, CLI, HTTP) goes through here."""
        return parse_filter(where, self.filter_columns)

    # ---------------------------------------------------------------------------------------- signals
    def lexical(self, query: str, where: str | None, n: int) -> Ranked:
        """BM25 over the segmented words (LanceDB full-text index), plus the English of Chinese words the catalog
        never uses (:meth:`query_words`)."""
        return self.retriever.lexical(f"{segment(query)} {self.query_words(query).english}".strip(), where, n)

    def vector(self, column: str, query: np.ndarray, where: str | None, n: int) -> Ranked:
        """The ``n`` nearest products of one vector column: exact in memory, or through the ANN index."""
        return self.retriever.vector(column, query, where, n)

    def exact_scores(self, signal: str, queries: dict[str, np.ndarray], keys: list[Any]) -> np.ndarray | None:
        """Exact scores of ``keys`` for a vector signal (exact mode only): weighted fusion needs every value."""
        return self.retriever.exact_scores(signal, queries, keys)

    def _rows(self, keys: Sequence[Any], lists: dict[str, Ranked], columns: Sequence[str]) -> dict[Any, dict[str, Any]]:
        """ANN mode: ``columns`` (and ``id``) of candidates, by the row ids their lists returned
        (:mod:`tuwen.search.rows`)."""
        row_ids: dict[Any, int] = {}
        for ranked in lists.values():
            row_ids.update(ranked.row_ids or {})
        assert self.row_reader is not None
        return self.row_reader.rows(keys, row_ids, columns)

    def features(self, query: str, lists: dict[str, Ranked], queries: dict[str, np.ndarray],
                 keys: list[Any], soft: bool = False) -> dict[str, Any]:
        """Per-signal scores and word coverage (soft or exact) of every candidate (see
        :func:`tuwen.search.fusion.features`)."""
        return fusion_.features(lists, keys, lambda signal, ks: self.exact_scores(signal, queries, ks),
                                lambda ks, soft_: self.coverage(query, ks, lists, soft_), soft)

    # --------------------------------------------------------------------------------------- words
    def coverage(self, query: str, keys: list[Any], lists: dict[str, Ranked], soft: bool = False) -> np.ndarray | None:
        """Share of the query's words each candidate's indexed text contains; None when the query has none.

        Exact (:func:`tuwen.search.tokens.word_hits`) unless ``soft``, which the caller asks only for weights
        learnt on soft coverage (:func:`tuwen.search.fusion.choose_weights`: queries BM25 found nothing for, a
        Chinese query on an English catalog). Then, when the index stored its vocabulary, a word the catalog
        never uses counts by the candidate's closest word in meaning (:mod:`tuwen.search.vocab`). Queries whose
        words matched keep exact coverage: the benchmark's English queries lost with soft matches for their rare
        unknown words ("blue" on H&M matched "blueberry"). A Chinese word the catalog lacks but the dictionary
        knows counts by its English senses (:mod:`tuwen.search.querywords`), softly only when none of their words
        occurs in the catalog either.
        """
        return self.word_coverage.coverage(query, keys, lists, soft)

    def query_words(self, query: str) -> QueryWords:
        """The query's coverage terms and extra BM25 words, Chinese words the catalog lacks translated
        (:mod:`tuwen.search.querywords`); cached per query text."""
        return self.word_coverage.query_words(query)

    def matcher(self) -> SoftMatcher | None:
        """The index's vocabulary for soft coverage, loaded once on first need; None for indexes built without
        one."""
        return self.word_coverage.matcher()

    @property
    def _words(self) -> dict[Any, frozenset[str]]:
        """Exact mode: each row's words read so far."""
        return self.word_coverage.words

    @property
    def _word_ids(self) -> dict[Any, np.ndarray]:
        """Exact mode: each row's vocabulary rows read so far (soft coverage)."""
        return self.word_coverage.word_ids

    # ----------------------------------------------------------------------------------------- search
    def search(self, query: str | None = None, *, image: str | Path | None = None, mode: str = "hybrid",
               k: int = 10, where: str | None = None, fusion: str = "auto", facets: Sequence[str] | None = None,
               candidates: int | None = None, weights: dict[str, float] | None = None) -> SearchResult:
        """Rank products for a text query and/or a photo; see :mod:`tuwen.search` for the modes.

        ``weights`` (weighted fusion only) is either ``{signal: weight}`` or a :func:`learn_weights` result;
        by default the weights learnt at index time are used.
        """
        start = time.perf_counter()
        query = (query or "").strip()
        check_request(query, image, mode, k, fusion, self.signals)
        sql = self.filter_sql(where)
        timings: dict[str, float] = {}
        n = candidate_count(k, candidates)
        lists, queries = self.signal_lists(query, image, mode, sql, n, timings)
        t = time.perf_counter()
        fusion_used = None
        if mode == "hybrid" and len(lists) > 1:
            fusion_used = fusion if fusion != "auto" else ("weighted" if self.weights else "rrf")
            keys, scores = fusion_.fuse(lists, fusion_used,
                                        lambda signal, ks: self.exact_scores(signal, queries, ks),
                                        weights, self.weights, lambda ks, soft: self.coverage(query, ks, lists, soft),
                                        translated=bool(query) and self.query_words(query).translated)
        else:
            name = next(iter(lists), None)
            keys = list(lists[name].keys) if name else []
            scores = lists[name].scores if name else np.zeros(0)
        timings["fuse"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        pool = max(k, 100)
        hits = self._hits(keys[:pool], scores[:pool], lists, query, k, facets)
        facet_counts_ = self._facets(hits, facets)
        timings["fetch"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - start) * 1000  # wall time: BM25 overlaps the encoding
        return SearchResult(query, mode, fusion_used, hits[:k], facet_counts_, timings, list(lists), where,
                            str(image) if image else None)

    def signal_lists(self, query: str, image: Any, mode: str, where: str | None, n: int,
                     timings: dict[str, float] | None = None) -> tuple[dict[str, Ranked], dict[str, np.ndarray]]:
        """Each wanted signal's top ``n`` candidates, and the query vectors they were found with (``where``: SQL that
        :meth:`filter_sql` produced, never a user's raw text)."""
        timings = {} if timings is None else timings
        wanted = [s for s in SIGNALS if s in self.signals and (mode == s or mode == "hybrid")]
        if not query:
            wanted = [s for s in wanted if s == "image"]
        if image is None:
            wanted = [s for s in wanted if s != "image"]
        lists: dict[str, Ranked] = {}
        lexical = None
        if "lexical" in wanted and len(wanted) > 1:
            # BM25 runs in LanceDB's native code (no GIL) while this thread encodes the query: overlap them.
            start = time.perf_counter()
            lexical = query_pool().submit(lambda: (self.lexical(query, where, n), time.perf_counter() - start))
        with BLAS.limit(limits=1, user_api="blas"):  # one vector per query: extra BLAS threads only stall
            queries = self._vector_signals(query, image, wanted, where, n, lists, timings)
        if lexical is not None:
            lists["lexical"], seconds = lexical.result()
            timings["lexical"] = seconds * 1000
        return {s: lists[s] for s in wanted if s in lists}, queries

    def _vector_signals(self, query: str, image: Any, wanted: list[str], where: str | None, n: int,
                        lists: dict[str, Ranked], timings: dict[str, float]) -> dict[str, np.ndarray]:
        t = time.perf_counter()
        queries = self.query_vectors(query, wanted)
        if queries:
            timings["encode_text"] = (time.perf_counter() - t) * 1000
        if "image" in wanted:
            t = time.perf_counter()
            queries["image"] = self.encoding.image_vector(image)
            timings["encode_image"] = (time.perf_counter() - t) * 1000
        for signal in wanted:
            if signal == "lexical" and len(wanted) > 1:
                continue  # running in the pool
            t = time.perf_counter()
            if signal == "lexical":
                lists[signal] = self.lexical(query, where, n)
            else:
                lists[signal] = self.vector(SIGNAL_COLUMNS[signal], queries[signal], where, n)
            timings[signal] = (time.perf_counter() - t) * 1000
        return queries

    # --------------------------------------------------------------------------------------- hits
    def _hits(self, keys: list[Any], scores: np.ndarray, lists: dict[str, Ranked], query: str, k: int,
              facets: Sequence[str] | None) -> list[SearchHit]:
        """Hits for the ranked pool: the first ``k`` (those returned) with every display column, the rest (only
        counted in the facets) with the facet columns alone, which is all that is read of them with ANN."""
        if not keys:
            return []
        terms = [*query_terms(query), *self.query_words(query).english.split()] if "lexical" in lists else []
        return make_hits(keys, scores, self._info(keys, lists, k, facets), lists, terms)

    def _info(self, keys: list[Any], lists: dict[str, Ranked], k: int,
              facets: Sequence[str] | None) -> list[dict[str, Any]]:
        if not self.ann:
            assert self.info is not None
            columns = list(self.info.items())
            return [{c: values[key] for c, values in columns} for key in keys]
        rows = self._rows(keys[:k], lists, self._display_columns())
        if len(keys) > k:
            rows.update(self._rows(keys[k:], lists, facet_columns(facets, self.settings.attribute_columns).values()))
        return [rows.get(key, {"id": key}) for key in keys]

    def _facets(self, hits: list[SearchHit], facets: Sequence[str] | None) -> dict[str, dict[str, int]]:
        return facet_counts(hits, facets, self.settings.attribute_columns, self.meta.get("price_edges") or [])

    # ------------------------------------------------------------------------------------- similar
    def similar(self, product_id: str, *, k: int = 10, where: str | None = None,
                facets: Sequence[str] | None = None) -> SearchResult:
        """Products like this one by its fused (text + photo) embedding; the product itself is left out."""
        check_k(k)
        sql = self.filter_sql(where)
        t = time.perf_counter()
        vectors = self.retriever.product_vectors(product_id)
        column = "fused_vec" if "text_vec" in vectors and "image_vec" in vectors else \
            ("text_vec" if "text_vec" in vectors else "image_vec")
        if column == "fused_vec":
            w = self.settings.fused_image_weight
            query = np.concatenate([math.sqrt(1 - w) * vectors["text_vec"], math.sqrt(w) * vectors["image_vec"]])
        else:
            query = vectors[column]
        ranked = self.vector(column, query, sql, k + 1 + 50)
        keep = [i for i, key in enumerate(ranked.keys) if self.product_id(key) != product_id]
        ranked = Ranked([ranked.keys[i] for i in keep], ranked.scores[keep], ranked.row_ids)
        timings = {"similar": (time.perf_counter() - t) * 1000}
        timings["total"] = timings["similar"]
        hits = self._hits(ranked.keys[:max(k, 100)], ranked.scores[:max(k, 100)], {"fused": ranked}, "", k, facets)
        if not self.ann:
            for hit in hits[:k]:
                for name, column_ in (("semantic", "text_vec"), ("image", "image_vec")):
                    if column_ in vectors:
                        score = float(self.matrices[column_][self.row[hit.id]] @ vectors[column_])
                        hit.signals[name] = {"score": round(score, 5)}
        return SearchResult(f"similar:{product_id}", "similar", None, hits[:k], self._facets(hits, facets), timings,
                            ["fused" if column == "fused_vec" else column], where)

