"""Products' image and text vectors, made ready for the recommenders that read content.

Why a module of its own: every content-aware model (content profile, VBPR, two-tower, the candidate ranker's
similarity features, the explanations) needs the same per-product vectors, read from the workspace's vector cache,
L2-normalised, centred and PCA-reduced, and aligned to the model's item index. Products without a photo or text keep
a zero row and a ``False`` mask: models must work without content for them. Nothing here knows about shoppers or
events (:mod:`tuwen.recommend.train_data`) or the model contract (:mod:`tuwen.recommend.base`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuwen.encoders.cache import load_vectors
from tuwen.encoders.defaults import TEXT_FALLBACKS
from tuwen.store.workspace import Workspace
from tuwen.util.vectors import l2

ROW_BLOCK = 65_536  # rows normalised at a time: a whole-matrix temporary is gigabytes at a million products


def _row_norms(matrix: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(matrix, axis=1)``, a block of rows at a time (each row's norm is the same number)."""
    return np.concatenate([np.linalg.norm(matrix[lo:lo + ROW_BLOCK], axis=1)
                           for lo in range(0, len(matrix), ROW_BLOCK)] or [np.zeros(0, matrix.dtype)])


def _l2_in_place(matrix: np.ndarray) -> np.ndarray:
    """:func:`tuwen.util.vectors.l2` of a float32 matrix written over it, a block of rows at a time (same values)."""
    for lo in range(0, len(matrix), ROW_BLOCK):
        matrix[lo:lo + ROW_BLOCK] = l2(matrix[lo:lo + ROW_BLOCK])
    return matrix


def _reduce(matrix: np.ndarray, mask: np.ndarray, dim: int | None, seed: int = 0) -> np.ndarray:
    """Normalise, centre (MobileNet features are all positive; centring makes cosine discriminate)
    and PCA-reduce the rows that have content; rows without content stay zero.

    ``matrix`` (float32) is the caller's to lose: it is normalised and centred in place rather than copied, the
    copies being what made loading a million products' vectors the peak of a recommender's training."""
    out = np.zeros((len(matrix), 0), dtype=np.float32)
    if not mask.any():
        return out
    rows = _l2_in_place(matrix if mask.all() else matrix[mask])
    rows -= rows.mean(axis=0, keepdims=True)
    if dim is not None and dim < rows.shape[1] and len(rows) > dim:
        from sklearn.decomposition import PCA

        rows = PCA(n_components=dim, random_state=seed, svd_solver="randomized", copy=False).fit_transform(rows)
    out = np.zeros((len(matrix), rows.shape[1]), dtype=np.float32)
    out[mask] = l2(rows)
    return out


@dataclass
class ItemContent:
    """Image and text vectors of products, row-aligned with ``ids``; zero rows where absent."""

    ids: list[str]
    image: np.ndarray
    text: np.ndarray
    has_image: np.ndarray
    has_text: np.ndarray
    sources: dict[str, Any] = field(default_factory=dict)

    @property
    def has_any(self) -> np.ndarray:
        return self.has_image | self.has_text

    def align(self, item_ids: Sequence[str]) -> ItemContent:
        """The same content re-indexed to another item list (items unknown here get zero rows)."""
        index = {item: k for k, item in enumerate(self.ids)}
        rows = np.array([index.get(item, -1) for item in item_ids], dtype=np.int64)
        found = rows >= 0

        def take(matrix: np.ndarray) -> np.ndarray:
            out = np.zeros((len(item_ids), matrix.shape[1]), dtype=matrix.dtype)
            out[found] = matrix[rows[found]]
            return out

        def take_mask(mask: np.ndarray) -> np.ndarray:
            out = np.zeros(len(item_ids), dtype=bool)
            out[found] = mask[rows[found]]
            return out

        return ItemContent(list(item_ids), take(self.image), take(self.text), take_mask(self.has_image),
                           take_mask(self.has_text), dict(self.sources))

    def joint(self, image_weight: float = 1.0, text_weight: float = 1.0) -> np.ndarray:
        """[image | text] with modality weights; each half is unit length, so the weights set the mix."""
        return np.hstack([self.image * image_weight, self.text * text_weight]).astype(np.float32)

    @classmethod
    def from_arrays(cls, ids: Sequence[str], image: np.ndarray | None, text: np.ndarray | None,
                    dim: int | None = 128, seed: int = 0) -> ItemContent:
        """Build from raw vectors (rows of all-zero or NaN mean 'absent')."""
        copies = [None if m is None else np.array(m, dtype=np.float32, order="C") for m in (image, text)]  # ours
        return cls._from_own(ids, copies[0], copies[1], dim, seed)

    @classmethod
    def _from_own(cls, ids: Sequence[str], image: np.ndarray | None, text: np.ndarray | None, dim: int | None,
                  seed: int) -> ItemContent:
        """:meth:`from_arrays` of float32 matrices it may overwrite (no copy of every vector on the way)."""
        n = len(ids)
        parts = []
        for matrix in (image, text):
            if matrix is None:
                parts.append((np.zeros((n, 0), np.float32), np.zeros(n, bool)))
                continue
            matrix = np.nan_to_num(matrix, copy=False)
            mask = _row_norms(matrix) > 0
            parts.append((_reduce(matrix, mask, dim, seed), mask))
        (img, img_mask), (txt, txt_mask) = parts
        return cls(list(ids), img, txt, img_mask, txt_mask, {"dim": dim})

    @classmethod
    def from_workspace(cls, workspace: Workspace, image: str | None = "auto", text: Sequence[str] | str | None = "auto",
                       dim: int | None = 128, seed: int = 0) -> ItemContent:
        """Read cached vectors: ``image`` is ``"encoder/field"``, ``text`` one or more of those (averaged).

        ``"auto"`` takes MobileNetV2 (or any image encoder) and the multilingual USE title +
        description vectors (or any text encoder) that ``tuwen embed`` left in the workspace.
        """
        available = content_sources(workspace)
        image_source = _pick_image(available) if image == "auto" else image
        text_sources = _pick_text(available) if text == "auto" else ([text] if isinstance(text, str) else text)
        products = workspace.read("products", ["id"])
        ids = list(products["id"])
        index = {item: k for k, item in enumerate(ids)}
        image_matrix = None
        if image_source:
            image_matrix = _vectors_for(workspace, image_source, index)
        text_matrix = None
        for source in text_sources or []:
            part = _l2_in_place(_vectors_for(workspace, source, index))  # zero rows (no vector) stay zero
            if text_matrix is None:
                text_matrix = part
            else:
                text_matrix += part
            del part
        content = cls._from_own(ids, image_matrix, text_matrix, dim, seed)
        content.sources = {"image": image_source, "text": list(text_sources or []), "dim": dim}
        return content


def content_sources(workspace: Workspace) -> dict[str, str]:
    """``{"encoder/field": modality}`` for every vector table the workspace holds."""
    meta = workspace.manifest.get("meta", {})
    found = {}
    for name, info in meta.items():
        if name.startswith("vec__") and workspace.has_table(name):
            found[f"{info['encoder']}/{info['field']}"] = info.get("modality", "text")
    return found


def _pick_image(available: dict[str, str]) -> str | None:
    images = [k for k, m in available.items() if m == "image"]
    preferred = [k for k in images if k.startswith("mobilenet_v2/")]
    return (preferred or sorted(images) or [None])[0]


def _pick_text(available: dict[str, str]) -> list[str]:
    texts = [k for k, m in available.items() if m == "text" and not k.endswith("/ocr")]
    for encoder in TEXT_FALLBACKS:
        chosen = [k for k in texts if k.startswith(encoder + "/") and k.split("/")[1] in ("title", "description")]
        if chosen:
            return sorted(chosen, key=lambda k: k.split("/")[1] != "title")
    return sorted(texts)[:2]


def _vectors_for(workspace: Workspace, source: str, index: dict[str, int]) -> np.ndarray:
    encoder, field_name = source.split("/", 1)
    ids, matrix = load_vectors(workspace, encoder, field_name)
    out = np.zeros((len(index), matrix.shape[1]), dtype=np.float32)
    target = np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    origin = np.flatnonzero(target >= 0)
    for lo in range(0, len(origin), ROW_BLOCK):  # a block at a time: no temporary copy of every vector
        out[target[origin[lo:lo + ROW_BLOCK]]] = matrix[origin[lo:lo + ROW_BLOCK]]
    return out


def content_ids(content: ItemContent | None) -> list[str]:
    """The products with a photo or text vector: they join the universe even when nobody bought them."""
    if content is None:
        return []
    return list(np.asarray(content.ids, dtype=object)[np.asarray(content.has_any, dtype=bool)])
