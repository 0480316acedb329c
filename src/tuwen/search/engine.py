"""The search engine: one loaded index answering text, photo and hybrid queries, and "more like this".

Below the ANN threshold the engine keeps unit-length matrices in memory and scores exactly (a 10k × 512
matrix-vector product is ~1 ms; LanceDB's flat scan of the same table is 15-250 ms because it re-reads the
column per query); above it, it searches LanceDB's ANN indexes (IVF-flat by default) for ids and scores alone and reads
the shown rows after fusion (:mod:`tuwen.search.rows`). Filters (``where``) are parsed by
:mod:`tuwen.search.filters` (a small grammar of our own) and the re-serialised SQL is evaluated by LanceDB either way.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tuwen.encoders import encoder_for
from tuwen.encoders.defaults import TEXT_ENCODER
from tuwen.search import fusion as fusion_
from tuwen.search.align import load_alignment
from tuwen.search.common import (
    FUSIONS,
    MAX_K,
    MAX_QUERY_CHARS,
    MODES,
    SIGNAL_COLUMNS,
    SIGNALS,
    VECTOR_COLUMNS,
    IndexSettings,
    SearchError,
    candidate_count,
    query_error,
    read_meta,
    top,
)
from tuwen.search.filters import column_kinds, parse_filter
from tuwen.search.querywords import QueryWords, needs_soft, query_words, term_hits
from tuwen.search.results import Ranked, SearchHit, SearchResult, facet_columns, facet_counts, make_hits
from tuwen.search.rows import RowReader
from tuwen.search.tokens import query_terms, segment, word_set
from tuwen.search.vocab import SoftMatcher
from tuwen.store.workspace import Workspace, sql_list
from tuwen.util.chinese import CJK_RUN
from tuwen.util.vectors import l2


@functools.lru_cache(maxsize=8)
def _shared_encoder(name: str) -> Any:
    """A query encoder shared by every engine of the process (loading multilingual USE takes seconds)."""
    kwargs = {"threads": 1} if name == TEXT_ENCODER else {}  # one thread per query: queries run side by side
    try:
        return encoder_for(name, **kwargs)
    except TypeError:  # an encoder registered in its place that takes no thread count
        return encoder_for(name)


def query_encoder(name: str, workspace: Workspace) -> Any:
    """The encoder ``name`` for queries on ``workspace``: the process-wide one, or, for an encoder that learnt from
    the catalog (TF-IDF), the workspace's own."""
    found = _shared_encoder(name)
    return encoder_for(name, workspace) if hasattr(found, "fit") else found


class SearchEngine:
    """A loaded search index: holds the LanceDB table, in-memory vectors (exact mode) and the query encoders.

    Build one per workspace and reuse it; :func:`tuwen.search.engine_for` caches them and notices re-indexing.
    """

    def __init__(self, workspace: Workspace) -> None:
        meta = read_meta(workspace)
        if meta is None or not workspace.has_table(meta.get("table", "")):
            raise SearchError(f"{workspace.path}: no search index yet; run `tuwen index {workspace.path}` first")
        self.workspace = workspace
        self._encoders: dict[str, Any] = {}
        self.meta = meta
        self.settings = IndexSettings.from_meta(meta)
        self.table = workspace.table(meta["table"])
        self.version = (meta["table"], self.table.version)
        self.signals = list(meta.get("signals", ["lexical"]))
        self.ann = bool(meta.get("ann_built"))
        self.weights = read_meta(workspace, "weights")
        self._alignment: Any = None
        self._stale_alignment: str | None = None
        self._filters: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.ids: np.ndarray | None = None
        self.row: dict[str, int] = {}
        self.info: dict[str, list[Any]] | None = None
        self.matrices: dict[str, np.ndarray] = {}
        self._words: dict[Any, frozenset[str]] = {}  # exact mode: each row's words, read on first need
        self._word_ids: dict[Any, np.ndarray] = {}  # exact mode: each row's vocabulary rows (soft coverage)
        self._matcher: SoftMatcher | None | bool = False  # False: not loaded yet
        self._matcher_lock = threading.Lock()  # the web server asks from several threads: load it once
        self._plans: OrderedDict[str, QueryWords] = OrderedDict()  # query text -> its words (translations)
        # ANN mode's rows: every display column but the BM25 words in memory once read (on first need)
        self.row_reader = RowReader(self.table, [c for c in self._display_columns() if c != "tokens"]) \
            if self.ann else None
        if not self.ann:
            self._load_exact()

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
        found = self._encoders.get(name)
        if found is None:
            found = self._encoders[name] = query_encoder(name, self.workspace)
        return found

    def text_vector(self, encoder: str, text: str) -> np.ndarray:
        """The raw ``encoder`` vector of a query text (cached: the same words are asked again and again)."""
        key = (encoder, text)
        cached = self._query_vectors.get(key)
        if cached is None:
            cached = np.asarray(self.encoder(encoder).encode([text]), np.float32)[0]
            self._query_vectors[key] = cached
            if len(self._query_vectors) > 4096:
                self._query_vectors.popitem(last=False)
        return cached

    def warm_query_vectors(self, queries: Sequence[str]) -> None:
        """Encode many queries (and their dictionary English) in one batch per text encoder into the query-vector
        cache, for callers about to search them one by one (learning the fusion weights)."""
        texts = list(dict.fromkeys(queries))
        texts += [e for e in (self.query_words(q).english for q in texts if CJK_RUN.search(q)) if e]
        encoders = [self.settings.text_encoder] if "semantic" in self.signals else []
        if "crossmodal" in self.signals:
            encoders.append(self.alignment().text_encoder)
        for name in dict.fromkeys(encoders):
            missing = list(dict.fromkeys(t for t in texts if (name, t) not in self._query_vectors))
            if missing:
                vectors = np.asarray(self.encoder(name).encode(missing), np.float32)
                self._query_vectors.update(((name, t), v) for t, v in zip(missing, vectors, strict=True))
        while len(self._query_vectors) > 4096:
            self._query_vectors.popitem(last=False)

    def query_vectors(self, query: str, signals: Sequence[str]) -> dict[str, np.ndarray]:
        """The query vector of each text signal asked for, in that signal's index space.

        A query with Chinese words translated for this catalog (:meth:`query_words`) is embedded twice, as typed
        and as its dictionary English, and the two unit vectors are averaged: the alignment learnt its text side
        from the catalog's own (English) texts, and the English words land where those texts are, while the typed
        query keeps what the dictionary got wrong or left out.
        """
        texts = [query]
        if "semantic" in signals or "crossmodal" in signals:
            english = self.query_words(query).english if CJK_RUN.search(query) else ""
            if english:
                texts.append(english)
        out = {}
        if "semantic" in signals:
            out["semantic"] = l2(sum(l2(self.text_vector(self.settings.text_encoder, t)) for t in texts))
        if "crossmodal" in signals:
            alignment = self.alignment()
            raw = np.stack([self.text_vector(alignment.text_encoder, t) for t in texts])
            mapped = alignment.text_space(raw, self.settings.csls)
            if len(texts) > 1:  # a trained alignment appends the hubness weight β to its unit vectors: keep it as is
                width = mapped.shape[1] - 1 if getattr(alignment, "aligner", None) is not None else mapped.shape[1]
                mapped[0, :width] = l2(mapped[:, :width].sum(axis=0))
            out["crossmodal"] = mapped[0]
        return out

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
        self._filters.clear()
        self._words.clear()
        self._word_ids.clear()
        self._plans.clear()

    def _image_vector(self, path: str | Path) -> np.ndarray:
        path = Path(path)
        if not path.is_file():
            raise SearchError(f"{path}: image file not found")
        try:
            vector = np.asarray(self.encoder(self.settings.image_encoder).encode([str(path)]), np.float32)[0]
        except (OSError, ValueError) as error:
            raise SearchError(f"{path}: cannot read this image ({error})") from error
        return l2(vector)

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

    def _mask(self, where: str | None) -> np.ndarray | None:
        """Rows passing the SQL filter (exact mode), evaluated by LanceDB and cached per filter text."""
        if not where:
            return None
        cached = self._filters.get(where)
        if cached is None:
            try:
                rows = self.table.search().where(where).select(["id"]).limit(None).to_arrow()
            except Exception as error:  # LanceDB raises ValueError/RuntimeError with the parser's message
                raise query_error(where, error) from error
            cached = np.zeros(len(self.row), dtype=bool)
            cached[[self.row[pid] for pid in rows.column("id").to_pylist() if pid in self.row]] = True
            self._filters[where] = cached
            if len(self._filters) > 128:
                self._filters.popitem(last=False)
        return cached

    # ---------------------------------------------------------------------------------------- signals
    def lexical(self, query: str, where: str | None, n: int) -> Ranked:
        """BM25 over the segmented words (LanceDB full-text index), plus the English of Chinese words the catalog
        never uses (:meth:`query_words`)."""
        words = f"{segment(query)} {self.query_words(query).english}".strip()
        if not words.strip():
            return Ranked([], np.zeros(0, np.float32))
        rows = self._run(self.table.search(words, query_type="fts", fts_columns="tokens"), "_score", where, n)
        ids = rows.column("id").to_pylist()
        keys = ids if self.ann else [self.row[pid] for pid in ids]
        return Ranked(keys, np.asarray(rows.column("_score").to_numpy(), np.float32), row_ids=self._row_ids(rows))

    def _run(self, builder: Any, score: str, where: str | None, n: int) -> pa.Table:
        """Run a LanceDB query with the filter applied first; its errors become a :class:`SearchError`.

        Only ids, scores and (ANN mode) LanceDB row ids: every column a query returns is read row by row for
        each of its ``n`` candidates, and at a million rows those reads cost more than the search itself. The
        columns are read once, after fusion, for the few candidates that are shown (:meth:`_rows`).
        """
        if where:
            builder = builder.where(where, prefilter=True)
        if self.ann:
            builder = builder.with_row_id(True)
        try:
            return builder.select(["id", score]).limit(n).to_arrow()
        except Exception as error:
            raise query_error(where, error) from error

    def _row_ids(self, rows: pa.Table) -> dict[Any, int] | None:
        if not self.ann:
            return None
        return dict(zip(rows.column("id").to_pylist(), rows.column("_rowid").to_pylist(), strict=True))

    def _rows(self, keys: Sequence[Any], lists: dict[str, Ranked], columns: Sequence[str]) -> dict[Any, dict[str, Any]]:
        """ANN mode: ``columns`` (and ``id``) of candidates, by the row ids their lists returned
        (:mod:`tuwen.search.rows`)."""
        row_ids: dict[Any, int] = {}
        for ranked in lists.values():
            row_ids.update(ranked.row_ids or {})
        assert self.row_reader is not None
        return self.row_reader.rows(keys, row_ids, columns)

    def vector(self, column: str, query: np.ndarray, where: str | None, n: int) -> Ranked:
        """The ``n`` nearest products of one vector column: exact in memory, or through the ANN index."""
        if column not in self.table.schema.names:
            raise SearchError(f"this index has no {column}; re-run `tuwen embed` / `tuwen align` and `tuwen index`")
        if not self.ann:
            scores = self.matrices[column] @ query if column in self.matrices else self._fused_scores(query)
            mask = self._mask(where)
            if mask is not None:
                scores = np.where(mask, scores, -np.inf)
            best = top(scores, n)
            best = best[np.isfinite(scores[best])]
            return Ranked(list(best), scores[best].astype(np.float32))
        metric = "dot" if column == "xmodal_vec" else "cosine"  # xmodal carries the hubness penalty: dot product
        builder = (self.table.search(query, vector_column_name=column).distance_type(metric)
                   .ef(max(self.settings.ef, n * max(1, self.settings.refine_factor))).nprobes(self.settings.nprobes))
        if self.settings.refine_factor > 1:
            builder = builder.refine_factor(self.settings.refine_factor)
        rows = self._run(builder, "_distance", where, n)
        return Ranked(rows.column("id").to_pylist(), 1.0 - np.asarray(rows.column("_distance").to_numpy(), np.float32),
                      row_ids=self._row_ids(rows))

    def _fused_scores(self, query: np.ndarray) -> np.ndarray:
        w = self.settings.fused_image_weight
        d = self.matrices["text_vec"].shape[1]
        return self.matrices["text_vec"] @ query[:d] * math.sqrt(1 - w) + self.matrices["image_vec"] @ query[d:] * \
            math.sqrt(w)

    def exact_scores(self, signal: str, queries: dict[str, np.ndarray], keys: list[Any]) -> np.ndarray | None:
        """Exact scores of ``keys`` for a vector signal (exact mode only): weighted fusion needs every value."""
        if self.ann or signal not in queries:
            return None
        return self.matrices[SIGNAL_COLUMNS[signal]][np.asarray(keys, dtype=np.int64)] @ queries[signal]

    def features(self, query: str, lists: dict[str, Ranked], queries: dict[str, np.ndarray],
                 keys: list[Any], soft: bool = False) -> dict[str, Any]:
        """Per-signal scores and word coverage (soft or exact) of every candidate (see
        :func:`tuwen.search.fusion.features`)."""
        return fusion_.features(lists, keys, lambda signal, ks: self.exact_scores(signal, queries, ks),
                                lambda ks, soft_: self.coverage(query, ks, lists, soft_), soft)

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
        terms = self.query_words(query).terms
        if not terms:
            return None
        sets = self._word_sets(keys, lists)
        hits = term_hits(terms, sets)
        matcher = self.matcher() if soft else None
        if matcher is not None:
            unknown = [j for j, t in enumerate(terms) if needs_soft(t, matcher.index.__contains__)]
            if unknown:
                vectors = self.word_vectors([terms[j].typed for j in unknown])
                found = matcher.soft_hits(vectors, [self._ids_of(key, ws, matcher)
                                                    for key, ws in zip(keys, sets, strict=True)])
                hits[unknown] = np.maximum(hits[unknown], found)
        return hits.mean(axis=0)

    def query_words(self, query: str) -> QueryWords:
        """The query's coverage terms and extra BM25 words, Chinese words the catalog lacks translated
        (:mod:`tuwen.search.querywords`); cached per query text."""
        found = self._plans.get(query)
        if found is None:
            matcher = self.matcher() if CJK_RUN.search(query) else None
            found = query_words(query, matcher.index.__contains__ if matcher is not None else None)
            self._plans[query] = found
            while len(self._plans) > 4096:
                try:
                    self._plans.popitem(last=False)
                except KeyError:
                    break
        return found

    def matcher(self) -> SoftMatcher | None:
        """The index's vocabulary for soft coverage, loaded once on first need; None for indexes built without
        one."""
        if self._matcher is False:
            with self._matcher_lock:
                if self._matcher is False:
                    table = self.meta.get("vocabulary")
                    self._matcher = SoftMatcher.load(self.workspace, table) if table else None
        return self._matcher or None

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """Text-encoder vectors of single query words: cached ones reused, the rest encoded in one batch.

        The cache is shared by the request threads, which may evict entries at any time: the vectors are read
        once into a local dict and the answer is built from that alone.
        """
        encoder = self.settings.text_encoder
        found: dict[str, np.ndarray] = {}
        for w in dict.fromkeys(words):
            cached = self._query_vectors.get((encoder, w))
            if cached is not None:
                found[w] = cached
        missing = [w for w in dict.fromkeys(words) if w not in found]
        if missing:
            with _BLAS.limit(limits=1, user_api="blas"):
                fresh = np.asarray(self.encoder(encoder).encode(missing), np.float32)
            for w, v in zip(missing, fresh, strict=True):
                found[w] = v
                self._query_vectors[(encoder, w)] = v
        while len(self._query_vectors) > 4096:
            try:
                self._query_vectors.popitem(last=False)
            except KeyError:  # another thread emptied it meanwhile
                break
        return np.stack([found[w] for w in words])

    def _ids_of(self, key: Any, words: frozenset[str], matcher: SoftMatcher) -> np.ndarray:
        """A candidate's vocabulary rows: cached per row in exact mode."""
        if self.ann:
            return matcher.ids(words)
        ids = self._word_ids.get(key)
        if ids is None:
            ids = self._word_ids[key] = matcher.ids(words)
        return ids

    def _word_sets(self, keys: list[Any], lists: dict[str, Ranked]) -> list[frozenset[str]]:
        """Each candidate's words: cached per row in exact mode, read for all candidates at once with ANN."""
        if self.ann:
            rows = self._rows(keys, lists, ["tokens"])
            return [word_set(rows[key].get("tokens")) if key in rows else frozenset() for key in keys]
        assert self.info is not None
        out = []
        for key in keys:
            words = self._words.get(key)
            if words is None:
                words = self._words[key] = word_set(self.info["tokens"][key])
            out.append(words)
        return out

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
        self._validate(query, image, mode, k, fusion)
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

    def _validate(self, query: str, image: Any, mode: str, k: int, fusion: str) -> None:
        if mode not in MODES:
            raise SearchError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if fusion not in FUSIONS:
            raise SearchError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
        if not query and image is None:
            raise SearchError("empty query: give words to search for, or a photo (--image PATH)")
        if len(query) > MAX_QUERY_CHARS:
            raise SearchError(f"query too long ({len(query):,} characters; the limit is {MAX_QUERY_CHARS:,})")
        _check_k(k)
        if mode == "image" and image is None:
            raise SearchError("mode 'image' needs a photo: --image PATH")
        if mode in ("lexical", "semantic", "crossmodal") and not query:
            raise SearchError(f"mode {mode!r} needs words to search for")
        needs = {"semantic": "semantic", "crossmodal": "crossmodal", "image": "image"}.get(mode)
        if needs and needs not in self.signals:
            hint = "run `tuwen align WS` then `tuwen index WS`" if needs == "crossmodal" else "run `tuwen embed WS` " \
                "then `tuwen index WS`"
            raise SearchError(f"this index has no {needs} signal; {hint}")

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
            lexical = _pool().submit(lambda: (self.lexical(query, where, n), time.perf_counter() - start))
        with _BLAS.limit(limits=1, user_api="blas"):  # one vector per query: extra BLAS threads only stall
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
            queries["image"] = self._image_vector(image)
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
        _check_k(k)
        sql = self.filter_sql(where)
        t = time.perf_counter()
        vectors = self._product_vectors(product_id)
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

    def _product_vectors(self, product_id: str) -> dict[str, np.ndarray]:
        if not isinstance(product_id, str) or not product_id:
            raise SearchError("similar needs a product id")
        if not self.ann:
            if product_id not in self.row:
                raise SearchError(f"no product with id {product_id!r} in the search index")
            r = self.row[product_id]
            return {c: self.matrices[c][r] for c in ("text_vec", "image_vec") if c in self.matrices
                    and np.abs(self.matrices[c][r]).sum() > 0}
        columns = [c for c in ("text_vec", "image_vec") if c in self.table.schema.names]
        rows = self.table.search().where(f"id IN ({sql_list([product_id])})").select(["id", *columns]).limit(1)
        found = rows.to_list()
        if not found:
            raise SearchError(f"no product with id {product_id!r} in the search index")
        return {c: np.asarray(found[0][c], np.float32) for c in columns if np.abs(np.asarray(found[0][c])).sum() > 0}


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise SearchError(f"k must be between 1 and {MAX_K}, got {k}")


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
