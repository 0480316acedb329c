"""Word coverage: the share of a query's words each candidate's indexed text contains, exact or soft.

Kept apart from the engine because it is a second, word-level view of the index with its own state: the index's
vocabulary (loaded once, on first need, from any of a server's threads), each query's words with Chinese words
the catalog lacks translated, and each row's words and vocabulary rows (exact mode), all cached per engine.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tuwen.search.querywords import QueryWords, needs_soft, query_words, term_hits
from tuwen.search.results import Ranked
from tuwen.search.tokens import word_set
from tuwen.search.vocab import SoftMatcher
from tuwen.store.workspace import Workspace
from tuwen.util.chinese import CJK_RUN

RowReader = Callable[[Sequence[Any], dict[str, Ranked], Sequence[str]], dict[Any, dict[str, Any]]]


class WordCoverage:
    """One engine's word-level state, given the engine's own: its index ``meta`` (naming the vocabulary table),
    ``ann`` mode, ``info`` (exact mode: the display columns in memory, by row number; the BM25 words among them),
    ``rows`` (ANN mode: reads columns of candidates by the row ids their lists returned) and ``word_vectors``
    (embeds query words for soft matches)."""

    def __init__(self, workspace: Workspace, meta: dict[str, Any], ann: bool, info: dict[str, list[Any]] | None,
                 rows: RowReader, word_vectors: Callable[[list[str]], np.ndarray]) -> None:
        self.workspace = workspace
        self.meta = meta
        self.ann = ann
        self.info = info
        self.rows = rows
        self.word_vectors = word_vectors
        self.words: dict[Any, frozenset[str]] = {}  # exact mode: each row's words, read on first need
        self.word_ids: dict[Any, np.ndarray] = {}  # exact mode: each row's vocabulary rows (soft coverage)
        self._matcher: SoftMatcher | None | bool = False  # False: not loaded yet
        self._matcher_lock = threading.Lock()  # the web server asks from several threads: load it once
        self.plans: OrderedDict[str, QueryWords] = OrderedDict()  # query text -> its words (translations)

    def clear(self) -> None:
        """Forget the queries' and rows' words; the vocabulary stays loaded."""
        self.words.clear()
        self.word_ids.clear()
        self.plans.clear()

    def coverage(self, query: str, keys: list[Any], lists: dict[str, Ranked], soft: bool = False) -> np.ndarray | None:
        """See :meth:`tuwen.search.engine.SearchEngine.coverage`."""
        terms = self.query_words(query).terms
        if not terms:
            return None
        sets = self.word_sets(keys, lists)
        hits = term_hits(terms, sets)
        matcher = self.matcher() if soft else None
        if matcher is not None:
            unknown = [j for j, t in enumerate(terms) if needs_soft(t, matcher.index.__contains__)]
            if unknown:
                vectors = self.word_vectors([terms[j].typed for j in unknown])
                found = matcher.soft_hits(vectors, [self.ids_of(key, ws, matcher)
                                                    for key, ws in zip(keys, sets, strict=True)])
                hits[unknown] = np.maximum(hits[unknown], found)
        return hits.mean(axis=0)

    def query_words(self, query: str) -> QueryWords:
        """The query's coverage terms and extra BM25 words, Chinese words the catalog lacks translated
        (:mod:`tuwen.search.querywords`); cached per query text."""
        found = self.plans.get(query)
        if found is None:
            matcher = self.matcher() if CJK_RUN.search(query) else None
            found = query_words(query, matcher.index.__contains__ if matcher is not None else None)
            self.plans[query] = found
            while len(self.plans) > 4096:
                try:
                    self.plans.popitem(last=False)
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

    def ids_of(self, key: Any, words: frozenset[str], matcher: SoftMatcher) -> np.ndarray:
        """A candidate's vocabulary rows: cached per row in exact mode."""
        if self.ann:
            return matcher.ids(words)
        ids = self.word_ids.get(key)
        if ids is None:
            ids = self.word_ids[key] = matcher.ids(words)
        return ids

    def word_sets(self, keys: list[Any], lists: dict[str, Ranked]) -> list[frozenset[str]]:
        """Each candidate's words: cached per row in exact mode, read for all candidates at once with ANN."""
        if self.ann:
            rows = self.rows(keys, lists, ["tokens"])
            return [word_set(rows[key].get("tokens")) if key in rows else frozenset() for key in keys]
        assert self.info is not None
        out = []
        for key in keys:
            words = self.words.get(key)
            if words is None:
                words = self.words[key] = word_set(self.info["tokens"][key])
            out.append(words)
        return out
