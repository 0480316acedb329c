"""TF-IDF + truncated SVD ("LSA") text vectors fitted on the catalog itself: no model, any language.

Character n-grams within words (``char_wb``) need no word segmentation, so Chinese
titles work as well as English ones, and they tolerate typos and inflections; word
unigrams and bigrams add exact-term matches. Sublinear term frequency stops a word
repeated in a description from dominating. SVD then folds synonyms that co-occur in
the catalog into shared dense dimensions and gives a fixed-size vector the fusion
models can take. It is the one encoder that has to ``fit`` first.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.encoders.base import as_texts, encode_distinct_texts, register

_FILE = "tfidf.joblib"
_FORMAT = 1


class NotFittedError(RuntimeError):
    """``encode`` was called before ``fit`` or ``load``."""


def _single_threaded_blas() -> Any:
    """One BLAS thread for the SVD: its QR/SVD steps are small, and multi-threaded OpenBLAS stalls at
    every barrier when another process holds a core (measured here: a 4k x 266 QR took 0.04 s on one
    thread and 2-5 s on two under load)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


@register("tfidf")
class TfidfEncoder:
    """Character (1-3) + word (1-2) TF-IDF, reduced by SVD to ``dim`` and L2-normalised.

    Keyword arguments: ``dim`` (256; after ``fit`` it is capped by the vocabulary size
    and the number of distinct texts, and ``self.dim`` reports the real width),
    ``max_features`` (per analyzer, 32,768: the SVD basis is ``dim x features`` floats,
    so this bounds memory), ``seed`` (SVD's random start, for reproducible vectors).
    """

    name = "tfidf"
    modality = "text"

    def __init__(self, dim: int = 256, max_features: int = 2**15, seed: int = 0) -> None:
        self.requested_dim = dim
        self.dim = dim
        self.max_features = max_features
        self.seed = seed
        self.version = "tfidf-unfitted"
        self._features: Any = None
        self._svd: Any = None

    @property
    def fitted(self) -> bool:
        return self._svd is not None

    def fit(self, corpus: Sequence[str]) -> None:
        """Learn the vocabulary, IDF weights and SVD basis from the catalog's texts (blank ones skipped)."""
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        texts = [text for text in as_texts(corpus) if text.strip()]
        if not texts:
            raise ValueError("tfidf: cannot fit on an empty corpus (no non-blank texts)")
        common = {"sublinear_tf": True, "dtype": np.float32, "max_features": self.max_features}
        features = FeatureUnion(
            [
                ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), **common)),
                ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", **common)),
            ]
        )
        matrix = features.fit_transform(texts)
        n_distinct = len(set(texts))
        components = max(1, min(self.requested_dim, matrix.shape[1] - 1, n_distinct))
        svd = TruncatedSVD(n_components=components, algorithm="randomized", n_iter=5, random_state=self.seed)
        with _single_threaded_blas():
            svd.fit(matrix)
        svd.components_ = svd.components_.astype(np.float32)
        self._features, self._svd, self.dim = features, svd, components
        self.version = f"tfidf-{_FORMAT}-{self._fingerprint()}"

    def _fingerprint(self) -> str:
        """Changes whenever refitting would change the vectors (vocabulary, IDF, basis)."""
        digest = hashlib.sha256()
        for _, vectorizer in self._features.transformer_list:
            digest.update("\x00".join(sorted(vectorizer.vocabulary_)).encode())
            digest.update(np.ascontiguousarray(vectorizer.idf_).tobytes())
        digest.update(np.ascontiguousarray(self._svd.components_).tobytes())
        return digest.hexdigest()[:16]

    def _encode(self, texts: list[str]) -> np.ndarray:
        with _single_threaded_blas():
            vectors = self._svd.transform(self._features.transform(texts)).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)  # a text with no known n-gram stays all zeros

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        """Vectors for texts, ``(len(batch), dim)`` float32; blank texts (and unseen-only ones) are zeros."""
        if not self.fitted:
            raise NotFittedError("tfidf encoder is not fitted: call fit(corpus) on the catalog texts, or load(folder)")
        return encode_distinct_texts(batch, self.dim, self._encode)

    def save(self, folder: Path) -> None:
        """Write the fitted state to ``folder/tfidf.joblib`` atomically (temp file, then rename)."""
        import joblib

        if not self.fitted:
            raise NotFittedError("tfidf encoder is not fitted: nothing to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "format": _FORMAT,
            "features": self._features,
            "svd": self._svd,
            "dim": self.dim,
            "requested_dim": self.requested_dim,
            "max_features": self.max_features,
            "seed": self.seed,
            "version": self.version,
        }
        handle, temp = tempfile.mkstemp(prefix=".tfidf-", dir=folder)
        os.close(handle)
        try:
            joblib.dump(state, temp)
            os.replace(temp, folder / _FILE)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    def load(self, folder: Path) -> None:
        """Restore what :meth:`save` wrote; the loaded encoder gives the same vectors as the saved one."""
        import joblib

        path = Path(folder) / _FILE
        if not path.is_file():
            raise FileNotFoundError(f"no fitted tfidf encoder at {path}")
        state = joblib.load(path)
        if state.get("format") != _FORMAT:
            raise ValueError(f"{path}: tfidf format {state.get('format')!r}, this version reads {_FORMAT}")
        self._features, self._svd = state["features"], state["svd"]
        self.dim, self.requested_dim = state["dim"], state["requested_dim"]
        self.max_features, self.seed, self.version = state["max_features"], state["seed"], state["version"]
