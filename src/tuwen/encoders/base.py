"""The one small interface every feature extractor implements, and the table encoders register into by name.

Keeping the contract tiny (a name, a modality, a dimension and a batch ``encode``)
is what lets the workspace cache, the fusion models and search treat a
MobileNet, a colour histogram and a sentence encoder the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

Modality = Literal["image", "text"]


@runtime_checkable
class Encoder(Protocol):
    """A frozen feature extractor.

    ``encode`` takes a batch of inputs (image file paths for image encoders,
    strings for text encoders) and returns a ``(len(batch), dim)`` float32 array.
    ``version`` changes whenever the same input would give a different vector,
    so cached vectors from an older version are recomputed.
    """

    name: str
    modality: Modality
    dim: int
    version: str

    def encode(self, batch: Sequence[Any]) -> np.ndarray: ...


class FittableEncoder(Encoder, Protocol):
    """An encoder that must first see the catalog (e.g. TF-IDF), and saves what it learnt."""

    def fit(self, corpus: Sequence[str]) -> None: ...

    def save(self, folder: Path) -> None: ...

    def load(self, folder: Path) -> None: ...


REGISTERED: dict[str, Callable[..., Encoder]] = {}


def register(name: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Class decorator: make an encoder constructible by name from the CLI and the API."""

    def wrap(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        REGISTERED[name] = factory
        return factory

    return wrap


def as_texts(batch: Sequence[Any]) -> list[str]:
    """Texts as plain strings, with ``None`` and NaN (pandas' missing value) as ``""``."""
    return ["" if item is None or (isinstance(item, float) and item != item) else str(item) for item in batch]


def encode_distinct_texts(batch: Sequence[Any], dim: int, encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Run a text model once per distinct non-blank string; blank or missing text gives a zero vector.

    Catalog titles repeat a lot (10,106 fashion titles hold 7,877 distinct ones), so
    encoding each distinct string once is a free speed-up. ``None``/NaN count as blank.
    Zeros (rather than the model's vector for "") let fusion and search tell "no text"
    apart from real text: a zero vector has cosine 0 with everything.
    """
    texts = as_texts(batch)
    out = np.zeros((len(texts), dim), dtype=np.float32)
    distinct: dict[str, int] = {}
    which = np.full(len(texts), -1, dtype=np.int64)  # row -> index into the distinct texts, -1 for blank
    for row, text in enumerate(texts):
        if text.strip():
            which[row] = distinct.setdefault(text, len(distinct))
    if distinct:
        vectors = np.asarray(encode(list(distinct)), dtype=np.float32).reshape(len(distinct), dim)
        out[which >= 0] = vectors[which[which >= 0]]
    return out
