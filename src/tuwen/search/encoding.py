"""Query encoding: the encoders a search index's queries are embedded with, and the cache of their vectors.

Kept apart from the engine because it is the one part of a query that runs a model: encoders are loaded once per
process (or per workspace, for one that learnt from its catalog), and the same words come back again and again
(every query, every query word for soft coverage, every labelled query while learning fusion weights), so their
vectors are cached. The cache is shared by a server's request threads, which may evict entries at any time.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.encoders import encoder_for
from tuwen.encoders.defaults import TEXT_ENCODER
from tuwen.search.common import IndexSettings, SearchError
from tuwen.search.threads import BLAS
from tuwen.store.workspace import Workspace
from tuwen.util.vectors import l2

MAX_CACHED = 4096  # query and word vectors kept per engine


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


class QueryEncoder:
    """One engine's query encoders and its cache of raw query (and query word) vectors, keyed by encoder and text."""

    def __init__(self, workspace: Workspace, settings: IndexSettings) -> None:
        self.workspace = workspace
        self.settings = settings
        self._encoders: dict[str, Any] = {}
        self.vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()

    def encoder(self, name: str) -> Any:
        """The query encoder ``name``; one that learnt from this catalog (TF-IDF) is this workspace's own."""
        found = self._encoders.get(name)
        if found is None:
            found = self._encoders[name] = query_encoder(name, self.workspace)
        return found

    def text_vector(self, encoder: str, text: str) -> np.ndarray:
        """The raw ``encoder`` vector of a query text (cached: the same words are asked again and again)."""
        key = (encoder, text)
        cached = self.vectors.get(key)
        if cached is None:
            cached = np.asarray(self.encoder(encoder).encode([text]), np.float32)[0]
            self.vectors[key] = cached
            if len(self.vectors) > MAX_CACHED:
                self.vectors.popitem(last=False)
        return cached

    def warm(self, encoders: Sequence[str], texts: Sequence[str]) -> None:
        """Encode the ``texts`` not cached yet in one batch per encoder into the cache."""
        for name in dict.fromkeys(encoders):
            missing = list(dict.fromkeys(t for t in texts if (name, t) not in self.vectors))
            if missing:
                vectors = np.asarray(self.encoder(name).encode(missing), np.float32)
                self.vectors.update(((name, t), v) for t, v in zip(missing, vectors, strict=True))
        while len(self.vectors) > MAX_CACHED:
            self.vectors.popitem(last=False)

    def query_vectors(self, query: str, english: str, signals: Sequence[str],
                      alignment: Callable[[], Any]) -> dict[str, np.ndarray]:
        """The query vector of each text signal asked for, in that signal's index space; a query with dictionary
        ``english`` is embedded both ways and the unit vectors averaged (see
        :meth:`tuwen.search.engine.SearchEngine.query_vectors`). ``alignment`` is asked only for crossmodal."""
        texts = [query, english] if english else [query]
        out = {}
        if "semantic" in signals:
            out["semantic"] = l2(sum(l2(self.text_vector(self.settings.text_encoder, t)) for t in texts))
        if "crossmodal" in signals:
            aligned = alignment()
            raw = np.stack([self.text_vector(aligned.text_encoder, t) for t in texts])
            mapped = aligned.text_space(raw, self.settings.csls)
            if len(texts) > 1:  # a trained alignment appends the hubness weight β to its unit vectors: keep it as is
                width = mapped.shape[1] - 1 if getattr(aligned, "aligner", None) is not None else mapped.shape[1]
                mapped[0, :width] = l2(mapped[:, :width].sum(axis=0))
            out["crossmodal"] = mapped[0]
        return out

    def word_vectors(self, words: list[str]) -> np.ndarray:
        """Text-encoder vectors of single query words: cached ones reused, the rest encoded in one batch.

        The cache is shared by the request threads, which may evict entries at any time: the vectors are read
        once into a local dict and the answer is built from that alone.
        """
        encoder = self.settings.text_encoder
        found: dict[str, np.ndarray] = {}
        for w in dict.fromkeys(words):
            cached = self.vectors.get((encoder, w))
            if cached is not None:
                found[w] = cached
        missing = [w for w in dict.fromkeys(words) if w not in found]
        if missing:
            with BLAS.limit(limits=1, user_api="blas"):
                fresh = np.asarray(self.encoder(encoder).encode(missing), np.float32)
            for w, v in zip(missing, fresh, strict=True):
                found[w] = v
                self.vectors[(encoder, w)] = v
        while len(self.vectors) > MAX_CACHED:
            try:
                self.vectors.popitem(last=False)
            except KeyError:  # another thread emptied it meanwhile
                break
        return np.stack([found[w] for w in words])

    def image_vector(self, path: str | Path) -> np.ndarray:
        """The unit vector of a query photo; a missing or unreadable file is a :class:`SearchError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise SearchError(f"{path}: image file not found")
        try:
            vector = np.asarray(self.encoder(self.settings.image_encoder).encode([str(path)]), np.float32)[0]
        except (OSError, ValueError) as error:
            raise SearchError(f"{path}: cannot read this image ({error})") from error
        return l2(vector)
