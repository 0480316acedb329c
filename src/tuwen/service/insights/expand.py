"""Aspect words the reviews themselves use: neighbours of the seed words in word vectors learnt from the reviews.

Why learnt here: which words a shop's reviewers use for an aspect ("inseam", "torso", "pilled"; 色差, 线头) depends
on its products, and a general-purpose word list misses them. The vectors are the classic count-based ones
(positive PMI of words within a few tokens of each other in a clause, reduced by truncated SVD): built in seconds on
tens of thousands of reviews, deterministic for a seed, no model to download.

A word joins an aspect when its cosine to the aspect's seed centroid is at least ``min_cosine``, it is closer to
that aspect than to any other, it is frequent enough to have a reliable vector, and it is not a stop word. The
benchmark measures whether the expanded lexicon predicts held-out ratings better than the seeds alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

from tuwen.service.insights.aspects import Lexicon

STOP_ZH = frozenset("的 了 是 我 也 很 都 就 还 在 有 和 买 不 这 个 没 说 到 给 又 一个 没有 这个 "
                    "就是 但是 不过 可以 比较 非常 东西 感觉 觉得 还是 真的 一下 一点 什么 "
                    "这么 那么 而且 因为 所以 已经 自己 我们".split())


def word_vectors(sentences: Iterable[list[str]], min_count: int = 15, window: int = 4, dim: int = 100,
                 seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(vocabulary, unit-length PPMI-SVD vectors) from tokenised clauses; words seen under ``min_count`` times are
    left out."""
    from sklearn.utils.extmath import randomized_svd

    sentences = list(sentences)
    counts = Counter(token for sentence in sentences for token in sentence)
    vocab = sorted(w for w, n in counts.items() if n >= min_count)
    index = {w: i for i, w in enumerate(vocab)}
    rows: list[int] = []
    cols: list[int] = []
    for sentence in sentences:
        ids = [index[t] for t in sentence if t in index]
        for i, a in enumerate(ids):
            for b in ids[i + 1:i + 1 + window]:
                if a != b:
                    rows += [a, b]
                    cols += [b, a]
    n = len(vocab)
    if n < 3 or not rows:
        return vocab, np.zeros((n, 0), np.float32)
    pairs = sp.coo_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(n, n)).tocsr()
    total = pairs.sum()
    row_sum = np.asarray(pairs.sum(1)).ravel()
    col_sum = np.asarray(pairs.sum(0)).ravel() ** 0.75  # context smoothing: rare contexts do not dominate PMI
    col_sum = col_sum / col_sum.sum() * total
    coo = pairs.tocoo()
    pmi = np.log(coo.data * total / (row_sum[coo.row] * col_sum[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n))
    k = min(dim, n - 1)
    u, s, _ = randomized_svd(ppmi, k, random_state=seed)
    vectors = u * np.sqrt(s)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)
    return vocab, vectors.astype(np.float32)


def _stop(word: str, language: str) -> bool:
    if language == "zh":
        return word in STOP_ZH or len(word) < 2 or not all("\u4e00" <= c <= "\u9fff" for c in word)
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return word in ENGLISH_STOP_WORDS or len(word) < 3 or not word.isalpha()


def expand(lexicon: Lexicon, sentences: Iterable[list[str]], per_aspect: int = 8, min_cosine: float = 0.45,
           min_count: int = 15, seed: int = 0) -> dict[str, list[str]]:
    """Up to ``per_aspect`` new words per aspect (see the module docstring); {} when the reviews are too few."""
    vocab, vectors = word_vectors(sentences, min_count=min_count, seed=seed)
    if vectors.shape[1] == 0:
        return {}
    index = {w: i for i, w in enumerate(vocab)}
    seeds = {w for words in lexicon.aspects.values() for w in words}
    names, centroids = [], []
    for aspect, words in lexicon.aspects.items():
        present = [index[w] for w in words if w in index]
        if present:
            centre = vectors[present].mean(0)
            names.append(aspect)
            centroids.append(centre / max(float(np.linalg.norm(centre)), 1e-9))
    if not names:
        return {}
    sims = vectors @ np.stack(centroids).T  # words x aspects
    best = sims.argmax(1)
    found: dict[str, list[str]] = {}
    for j, aspect in enumerate(names):
        rows = np.flatnonzero((best == j) & (sims[:, j] >= min_cosine))
        rows = rows[np.argsort(-sims[rows, j], kind="stable")]
        picked = [vocab[r] for r in rows if vocab[r] not in seeds and not _stop(vocab[r], lexicon.language)]
        if picked[:per_aspect]:
            found[aspect] = picked[:per_aspect]
    return found
