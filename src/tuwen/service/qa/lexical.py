"""Words and BM25 for evidence ranking, with the search engine's own word rules.

The product index's BM25 lives inside LanceDB's full-text index over one row per product; evidence is a handful of
texts per product (earlier answers, reviews, a description), ranked per question, so it is scored here, as sparse
matrices. The words are the search engine's: Chinese cut by jieba (:func:`tuwen.search.tokens.segment`), plurals
folded (:func:`tuwen.search.tokens.match_form`) and the full-text index's stop words dropped, so "does it run small"
and "runs smaller?" meet on the same words in both places.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from tuwen.search.tokens import STOP_WORDS, match_form, segment, word_tokens


def words(text: str | None) -> list[str]:
    """The words BM25 counts in ``text``: segmented, lower case, plural-folded, stop words dropped."""
    return [match_form(w) for w in word_tokens(segment(text or "")) if w.lower() not in STOP_WORDS]


class BM25:
    """Okapi BM25 whose document frequencies come from a fitted corpus (all the shop's evidence texts), so a word
    common across the shop ("size") weighs little even among a product's three answers. Words the corpus never had
    get the highest idf: a rare word shared by a question and an answer is the best lexical clue there is."""

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.df: dict[str, int] = {}
        self.n = 0
        self.mean_length = 1.0

    def fit(self, texts: Sequence[str]) -> BM25:
        counts: Counter[str] = Counter()
        lengths = []
        for text in texts:
            found = words(text)
            lengths.append(len(found))
            counts.update(set(found))
        self.df = dict(counts)
        self.n = len(lengths)
        self.mean_length = max(float(np.mean(lengths)), 1.0) if lengths else 1.0
        return self

    def idf(self, word: str) -> float:
        df = self.df.get(word, 0)
        return math.log(1.0 + (self.n - df + 0.5) / (df + 0.5))

    def matrix(self, queries: Sequence[str], documents: Sequence[str]) -> np.ndarray:
        """BM25 of every query against every document, ``(len(queries), len(documents))`` float32."""
        vocabulary: dict[str, int] = {}
        rows, cols, values = [], [], []
        for r, document in enumerate(documents):
            counts = Counter(words(document))
            norm = self.k1 * (1 - self.b + self.b * sum(counts.values()) / self.mean_length)
            for word, tf in counts.items():
                rows.append(r)
                cols.append(vocabulary.setdefault(word, len(vocabulary)))
                values.append(tf * (self.k1 + 1) / (tf + norm))
        q_rows, q_cols, q_values = [], [], []
        for r, query in enumerate(queries):
            for word in dict.fromkeys(words(query)):
                if word in vocabulary:
                    q_rows.append(r)
                    q_cols.append(vocabulary[word])
                    q_values.append(self.idf(word))
        shape = max(len(vocabulary), 1)
        docs = sparse.csr_matrix((values, (rows, cols)), shape=(len(documents), shape), dtype=np.float32)
        asked = sparse.csr_matrix((q_values, (q_rows, q_cols)), shape=(len(queries), shape), dtype=np.float32)
        return np.asarray((asked @ docs.T).todense(), np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"k1": self.k1, "b": self.b, "n": self.n, "mean_length": self.mean_length, "df": self.df}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BM25:
        model = cls(float(data["k1"]), float(data["b"]))
        model.n = int(data["n"])
        model.mean_length = float(data["mean_length"])
        model.df = {str(k): int(v) for k, v in data["df"].items()}
        return model
