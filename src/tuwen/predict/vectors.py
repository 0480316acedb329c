"""Where a model's input vectors come from: the workspace's cached vectors by item id, or the same encoders run
live on items the workspace does not hold (a new product to predict for)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from tuwen.encoders import encoder_for
from tuwen.encoders.cache import embed_items, file_digest, load_vectors
from tuwen.predict.features import IMAGE_FIELDS, FeatureBuilder, FeatureSet, InputSpec, first_image, text_of
from tuwen.store.workspace import Workspace


def live_vectors(workspace: Workspace | None = None, encoders: dict[str, Any] | None = None,
                 dims: dict[str, int] | None = None) -> Any:
    """A vector source that runs the encoders on the items themselves (prediction on new products).

    ``dims`` (encoder name → width, known from the trained model) lets items with nothing to encode
    skip loading the encoder at all.
    """
    cache = encoders if encoders is not None else {}
    dims = dict(dims or {})

    def source(spec: InputSpec, ids: list[str], frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        inputs = first_image(frame) if spec.field in IMAGE_FIELDS else list(text_of(frame, spec.field))
        present = np.array([bool(x) for x in inputs], dtype=bool)
        if spec.encoder not in cache and (present.any() or dims.get(spec.encoder) is None):
            cache[spec.encoder] = encoder_for(spec.encoder, workspace)
            dims[spec.encoder] = cache[spec.encoder].dim
        matrix = np.zeros((len(frame), dims[spec.encoder]), dtype=np.float32)
        if present.any():
            matrix[present] = np.asarray(cache[spec.encoder].encode([x for x in inputs if x]), dtype=np.float32)
        return matrix, present

    return source


def cache_key(items: str) -> Callable[[str], str]:
    """How an item's id is spelt in the vector cache: products by their id, every other item table (reviews,
    messages) under its own prefix, because the cache tables (one per encoder and field) are shared and a review's
    id may equal a product's (the women's reviews number 0..23485, their products 0..1205)."""
    prefix = "" if items == "products" else f"{items}:"
    return lambda item: prefix + str(item)


def workspace_vectors(workspace: Workspace, compute_missing: bool = False, items: str = "products") -> Any:
    """A vector source reading the workspace's cached vectors of the ``items`` table by item id.

    With ``compute_missing`` (review texts, which ``tuwen embed`` does not cover) the missing ones
    are embedded into the workspace cache first, through :func:`tuwen.encoders.cache.embed_items`, so a second
    run reuses them.
    """
    key = cache_key(items)

    def source(spec: InputSpec, ids: list[str], frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if compute_missing:
            _embed_field(workspace, spec, frame, key)
        keys = [key(i) for i in ids]
        known_ids, vectors = load_vectors(workspace, spec.encoder, spec.field, keys)
        where = {item: row for row, item in enumerate(known_ids)}
        rows = np.array([where.get(k, -1) for k in keys])
        present = rows >= 0
        matrix = np.zeros((len(ids), vectors.shape[1]), dtype=np.float32)
        matrix[present] = vectors[rows[present]]
        return matrix, present

    return source


def _embed_field(workspace: Workspace, spec: InputSpec, frame: pd.DataFrame, key: Callable[[str], str]) -> None:
    if spec.field in IMAGE_FIELDS:  # a review's photo: embedded like a product photo, cached by the file's content
        paths = first_image(frame)
        keep = [i for i, path in enumerate(paths) if path]
        if keep:
            embed_items(workspace, encoder_for(spec.encoder, workspace), spec.field,
                        [key(frame["id"].iat[i]) for i in keep], [paths[i] for i in keep],
                        [file_digest(paths[i]) for i in keep], 64, progress=False)
        return
    texts = text_of(frame, spec.field)
    keep = (texts != "").to_numpy()
    if keep.any():
        encoder = encoder_for(spec.encoder, workspace)
        chosen = list(texts[keep])
        embed_items(workspace, encoder, spec.field, [key(i) for i in frame["id"][keep]], chosen,
                    [hashlib.sha1(t.encode("utf-8", "surrogatepass")).hexdigest() for t in chosen], 512,
                    progress=False)


def model_features(builder: FeatureBuilder, network_config: dict[str, Any], frame: pd.DataFrame, workspace: Workspace,
                   encoders: dict[str, Any], items: str = "products") -> FeatureSet:
    """A trained model's inputs for items: cached workspace vectors by id, the same encoders live for the rest."""
    dims = {i["name"].partition("@")[2]: i["dim"] for i in network_config["inputs"] if i["kind"] == "dense"}
    live = live_vectors(workspace, encoders, dims)
    return builder.build(frame, live if workspace is None else _cached_or_live(workspace, live, items))


def _cached_or_live(workspace: Workspace, live: Any, items: str) -> Any:
    """Workspace vectors for the items it has, the live encoder for the rest (same encoder, same features)."""
    cached = workspace_vectors(workspace, items=items)

    def source(spec: InputSpec, ids: list[str], frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        try:
            matrix, present = cached(spec, ids, frame)
        except KeyError:
            return live(spec, ids, frame)
        missing = ~present
        if missing.any():
            sub = frame.iloc[np.flatnonzero(missing)]
            extra, extra_present = live(spec, [ids[i] for i in np.flatnonzero(missing)], sub)
            matrix[missing], present[missing] = extra, extra_present
        return matrix, present

    return source
