"""Soft (cross-lingual) word coverage: a query word counts as found when the text has a word that means the same.

Exact coverage (:func:`tuwen.search.tokens.word_hits`) is 0 for every word of a Chinese query on an English
catalog (黑色 never occurs in "Black dress"), so weighted fusion loses its strongest English feature exactly
where shoppers type Chinese. At index time the catalog's vocabulary (the distinct words of the indexed texts,
in :func:`~tuwen.search.tokens.match_form`) is embedded once with the index's multilingual text encoder and
stored in a small LanceDB table. At query time a word the catalog never uses (Chinese, or a misspelling) is
embedded too, and a candidate covers it by its closest word's cosine, ramped from 0 at :data:`RAMP_FLOOR` to
1 at cosine 1. Only queries BM25 found nothing for are matched softly, and only with weights learnt on soft
coverage (:func:`tuwen.search.fusion.choose_weights` says which); even there words the catalog does use keep
exact matching, so queries whose words occur score as before.

Why a ramp from 0.4 (chosen on the search benchmark's dev queries, halves A + C, nested cross-validation):
unrelated words sit below it (黑色 vs "umbrella"), translations well above (黑色 vs "black" 0.94); a hard
threshold lost to it on fashion's Chinese queries (0.39 vs 0.45 nDCG@10); soft matches for any query's
unknown words ("blue" on H&M, whose texts rarely name colours, found "blueberry") cost H&M English.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tuwen.search.tokens import STOP_WORDS, match_form, word_tokens
from tuwen.store.workspace import Workspace
from tuwen.util.vectors import l2

RAMP_FLOOR = 0.4  # cosine at and below which a word is unrelated (soft coverage 0)
VOCAB_SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string()), ("vec", pa.list_(pa.float32()))])
Encode = Callable[[list[str]], np.ndarray]


def vocabulary_table(encoder: str) -> str:
    """The workspace table of the vocabulary's word vectors for one text encoder."""
    return "search_words__" + re.sub(r"[^0-9a-z_]+", "_", encoder.lower())


def vocabulary(tokens: Iterable[str | None], limit: int) -> dict[str, str]:
    """The catalog's words for soft matching: match form → its most frequent surface form (the one embedded:
    "grei" is not a word, "grey" is). Stop words and numbers are left out (no query word is meant by them);
    above ``limit`` words the most frequent are kept."""
    counts: Counter[tuple[str, str]] = Counter()
    for text in tokens:
        for surface in set(w.lower() for w in word_tokens(text)):
            if surface not in STOP_WORDS and not surface.isdigit():
                counts[(match_form(surface), surface)] += 1
    best: dict[str, tuple[int, str]] = {}
    for (form, surface), n in counts.items():
        if form not in best or n > best[form][0]:
            best[form] = (n, surface)
    kept = sorted(best.items(), key=lambda item: -item[1][0])[:limit]
    return {form: surface for form, (_, surface) in kept}


def update_vocabulary(workspace: Workspace, writer: Any, tokens: Sequence[str | None], encoder: str, encode: Encode,
                      limit: int) -> dict[str, Any]:
    """Embed the vocabulary's words not stored yet and upsert them (re-indexing embeds only new words); words
    no longer in the catalog (its products deleted or changed) are deleted, or they would stay "known" and never
    be matched softly, and the table would only grow."""
    return write_vocabulary(writer, plan_vocabulary(workspace, tokens, encoder, encode, limit))


def plan_vocabulary(workspace: Workspace, tokens: Sequence[str | None], encoder: str, encode: Encode,
                    limit: int) -> dict[str, Any]:
    """The vocabulary change (new words with their vectors, stale words), computed before any lock is taken:
    embedding 100k words takes minutes, and the index's write transaction used to hold the workspace for them."""
    words = vocabulary(tokens, limit)
    name = vocabulary_table(encoder)
    have: set[str] = set()
    if workspace.has_table(name):  # only the ids: the vectors are most of the table
        rows = workspace.table(name).search().select(["id"]).limit(None).to_arrow()
        have = set(rows.column("id").to_pylist())
    new = [form for form in words if form not in have]
    frame = None
    if new:
        vectors = np.concatenate([np.asarray(encode([words[f] for f in new[lo:lo + 512]]), np.float32)
                                  for lo in range(0, len(new), 512)])
        frame = pd.DataFrame({"id": new, "text": [words[f] for f in new],
                              "vec": pd.Series(pd.arrays.ArrowExtensionArray(_lists(vectors)))})
    return {"table": name, "words": len(words), "frame": frame, "stale": sorted(have - set(words))}


def write_vocabulary(writer: Any, plan: dict[str, Any]) -> dict[str, Any]:
    """Write a :func:`plan_vocabulary` inside the index's transaction."""
    name = plan["table"]
    if plan["frame"] is not None:
        writer.upsert(name, plan["frame"], schema=VOCAB_SCHEMA)
    if plan["stale"]:
        writer.delete(name, plan["stale"])
    embedded = 0 if plan["frame"] is None else len(plan["frame"])
    return {"table": name, "words": plan["words"], "embedded": embedded, "deleted": len(plan["stale"])}


class SoftMatcher:
    """The stored vocabulary in memory: unit word vectors and each word's row, for query-time soft coverage."""

    def __init__(self, words: list[str], vectors: np.ndarray) -> None:
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}
        self.vectors = l2(vectors)

    @classmethod
    def load(cls, workspace: Workspace, table: str) -> SoftMatcher | None:
        if not workspace.has_table(table):
            return None
        data = workspace.table(table).to_arrow()
        if not len(data):
            return None
        vectors = data.column("vec").combine_chunks().flatten().to_numpy().reshape(len(data), -1)
        return cls(data.column("id").to_pylist(), vectors.astype(np.float32))

    def ids(self, words: Iterable[str]) -> np.ndarray:
        """Vocabulary rows of a text's words (words outside the vocabulary have none)."""
        return np.array([self.index[w] for w in words if w in self.index], np.int64)

    def unknown(self, terms: Sequence[str]) -> list[int]:
        """Positions of the query terms the catalog never uses: the only ones matched softly."""
        return [j for j, t in enumerate(terms) if t not in self.index]

    def similarity(self, term_vectors: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Ramped cosine of each query word (rows) to every vocabulary word, or to the vocabulary ``rows`` given
        (columns in that order): 0 up to :data:`RAMP_FLOOR`, 1 at 1."""
        vectors = self.vectors if rows is None else self.vectors[rows]
        return np.clip((l2(term_vectors) @ vectors.T - RAMP_FLOOR) / (1.0 - RAMP_FLOOR), 0.0, 1.0)

    def soft_hits(self, term_vectors: np.ndarray, word_ids: Sequence[np.ndarray]) -> np.ndarray:
        """:func:`soft_hits` of the query words over the candidates' words, comparing the query words with the
        candidates' words only (a few thousand rows) instead of the whole vocabulary (100k words: ~29 ms)."""
        used = [ids for ids in word_ids if len(ids)]
        rows = np.unique(np.concatenate(used)) if used else np.zeros(0, np.int64)
        local = [np.searchsorted(rows, ids) for ids in word_ids]
        return soft_hits(self.similarity(term_vectors, rows), local)


def _lists(matrix: np.ndarray) -> pa.ListArray:
    """The rows of a matrix as an Arrow list column, built from its buffer (a Python list per row: 100× slower).

    Like the index's fixed-size vector columns (``build._fixed``), but variable-size: the tables stored so far have
    that type, and an upsert into them must match it."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    offsets = np.arange(len(matrix) + 1, dtype=np.int32) * matrix.shape[1]
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.ravel()))


def soft_hits(similarity: np.ndarray, word_ids: Sequence[np.ndarray]) -> np.ndarray:
    """Each candidate's (columns) best ramped similarity to each query word (rows), over the candidate's words.

    One gather and one ``maximum.reduceat`` for all candidates: ~150 candidates cost well under a millisecond.
    """
    out = np.zeros((len(similarity), len(word_ids)), np.float32)
    lengths = np.array([len(ids) for ids in word_ids])
    have = lengths > 0
    if not have.any() or not len(similarity):
        return out
    flat = np.concatenate([ids for ids in word_ids if len(ids)])
    starts = np.concatenate([[0], np.cumsum(lengths[have])[:-1]])
    out[:, have] = np.maximum.reduceat(similarity[:, flat], starts, axis=1)
    return out
