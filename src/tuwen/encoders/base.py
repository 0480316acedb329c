"""The one small interface every feature extractor implements, and a registry by name.

Keeping the contract tiny (a name, a modality, a dimension and a batch ``encode``)
is what lets the workspace cache, the fusion models and search treat a
MobileNet, a colour histogram and a sentence encoder the same way.
"""

from __future__ import annotations

import importlib
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


_REGISTRY: dict[str, Callable[..., Encoder]] = {}


def register(name: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Class decorator: make an encoder constructible by name from the CLI and the API."""

    def wrap(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        _REGISTRY[name] = factory
        return factory

    return wrap


# Built-in encoder name → the module that registers it. Only the module of the encoder asked
# for is imported, so a text-only run never pays for torch or ONNX Runtime.
BUILTIN_MODULES = {
    "mobilenet_v2": "image_mobilenet",
    "efficientnet_lite0": "image_efficientnet",
    "color_histogram": "image_color",
    "use_multilingual": "text_use",
    "minilm": "text_minilm",
    "tfidf": "text_tfidf",
}


def available() -> list[str]:
    """Names of every built-in or registered encoder."""
    return sorted(set(_REGISTRY) | set(BUILTIN_MODULES))


def encoder_names(spec: str | None) -> list[str]:
    """The encoder names in ``"mobilenet_v2+color_histogram"`` (several photo encoders, each its own vectors)."""
    return [name.strip() for name in (spec or "").split("+") if name.strip()]


def get_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build an encoder by registry name, or from a local CLIP-style checkpoint folder.

    A name that is an existing folder is treated as a CLIP checkpoint; its
    ``:image`` / ``:text`` suffix picks the tower (``/models/clip:text``).
    """
    if name not in _REGISTRY and name in BUILTIN_MODULES:
        importlib.import_module(f"tuwen.encoders.{BUILTIN_MODULES[name]}")
    if name in _REGISTRY:
        return _REGISTRY[name](**kwargs)
    folder, _, tower = name.rpartition(":") if name.endswith((":image", ":text")) else (name, "", "image")
    if Path(folder).is_dir():
        from tuwen.encoders.local_clip import load_local_clip

        return load_local_clip(Path(folder), tower=tower, **kwargs)  # type: ignore[arg-type]
    raise KeyError(
        f"unknown encoder {name!r}; choose one of {', '.join(available())} or a CLIP checkpoint folder"
    )


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
