"""Why was this recommended? The closest product in the shopper's history, and which signal carried it.

For each recommended product we compare it with every product the shopper bought by three
signals: photo similarity (image vectors), text similarity (title + description vectors) and
co-purchase similarity (ItemKNN cosine). The history product with the strongest match is named,
and the signal that matched best *relative to what is usual for that signal* carries the
explanation (raw cosines of different encoders are not on one scale, so each is compared with
its own typical value: how many standard deviations above the catalog's mean similarity).

Special cases are said plainly: "bought before" (a repurchase), "popular" (no link to the
history: a best seller, e.g. for a shopper without history).

The sentence names the history product by its title ("photo closest to “Blue Glass Vase”, from
your history"): a shopper or a merchandiser reading it knows titles, not catalog ids. The id stays
in ``closest`` for scripts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tuwen.recommend.base import ItemContent, Recommender

History = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Reason:
    item: str
    carried_by: str  # "bought before" | "image" | "text" | "co-purchase" | "popular"
    closest: str | None
    image_similarity: float | None
    text_similarity: float | None
    copurchase: float | None
    closest_title: str | None = None  # the title of ``closest``, when the catalog has one

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def sentence(self) -> str:
        if self.carried_by == "bought before":
            return "bought before"
        if self.carried_by == "popular" or self.closest is None:
            return "popular right now"
        name = f"“{_short(self.closest_title)}”" if self.closest_title else f"product {self.closest}"
        signal = SIGNAL_WORDS.get(self.carried_by, f"{self.carried_by} closest to")
        return f"{signal} {name}, from your history"


def _short(title: str, limit: int = 60) -> str:
    """A title cut to ``limit`` characters: marketplace titles can run to hundreds."""
    return title if len(title) <= limit else title[:limit - 1].rstrip() + "…"


# How each signal reads in a sentence ("photo closest to “Blue Glass Vase”, from your history").
SIGNAL_WORDS = {"image": "photo closest to", "text": "title and description closest to",
                "co-purchase": "often bought with"}


class Explainer:
    """Holds the vectors and co-purchase neighbours of one fitted model's universe."""

    def __init__(self, model: Recommender, content: ItemContent | None = None,
                 titles: Mapping[str, str] | None = None):
        """``content`` (the workspace's vectors) is used when the model itself keeps none (e.g. ALS, VBPR);
        ``titles`` (product id → title) lets the sentences name history products by title."""
        self.model = model
        self.titles = titles or {}
        self.image, self.text, self.similarity = _find_signals(model)
        if self.image is None and self.text is None and content is not None:
            aligned = content.align(model.item_ids)
            self.image, self.text = aligned.image, aligned.text
        self.stats = {name: _typical(matrix) for name, matrix in (("image", self.image), ("text", self.text))}
        if self.similarity is not None and self.similarity.nnz:
            self.stats["co-purchase"] = (0.0, float(np.std(self.similarity.data)) or 1.0)

    def explain(self, user: str, items: list[str], history: History | None = None) -> list[Reason]:
        model = self.model
        if history is None:
            history = model.histories.get(user) if model.histories is not None else None
        bought = np.unique(history[0]) if history is not None and len(history[0]) else np.zeros(0, np.int64)
        reasons = []
        for item in items:
            i = model.item_index.get(item)
            if i is None or not len(bought):
                reasons.append(Reason(item, "popular", None, None, None, None))
                continue
            if i in set(bought.tolist()):
                reasons.append(Reason(item, "bought before", item, None, None, None))
                continue
            signals: dict[str, np.ndarray] = {}
            for name, matrix in (("image", self.image), ("text", self.text)):
                if matrix is not None and matrix.shape[1] and np.any(matrix[i]):
                    has = np.linalg.norm(matrix[bought], axis=1) > 0
                    signals[name] = np.where(has, matrix[bought] @ matrix[i], np.nan)
            if self.similarity is not None:
                signals["co-purchase"] = np.asarray(self.similarity[bought, i].todense()).ravel()
            best_name, best_z, best_row = "popular", -np.inf, None
            for name, values in signals.items():
                if not np.isfinite(values).any() or np.nanmax(values) <= 0:
                    continue
                row = int(np.nanargmax(values))
                mean, std = self.stats.get(name, (0.0, 1.0))
                z = (float(values[row]) - mean) / std
                if z > best_z:
                    best_name, best_z, best_row = name, z, row
            closest = model.item_ids[int(bought[best_row])] if best_row is not None else None
            reasons.append(Reason(item, best_name, closest, _at(signals, "image", best_row),
                                  _at(signals, "text", best_row), _at(signals, "co-purchase", best_row),
                                  self.titles.get(closest) if closest is not None else None))
        return reasons


def _at(signals: dict[str, np.ndarray], name: str, row: int | None) -> float | None:
    values = signals.get(name)
    return None if values is None or row is None or not np.isfinite(values[row]) else float(values[row])


def _typical(matrix: np.ndarray | None, sample: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Mean and spread of the cosine between random pairs of products that have this vector."""
    if matrix is None or not matrix.shape[1]:
        return 0.0, 1.0
    rows = np.flatnonzero(np.linalg.norm(matrix, axis=1) > 0)
    if len(rows) < 3:
        return 0.0, 1.0
    rng = np.random.default_rng(seed)
    a, b = rng.choice(rows, sample), rng.choice(rows, sample)
    sims = np.einsum("ij,ij->i", matrix[a], matrix[b])
    return float(sims.mean()), float(sims.std()) or 1.0


def _find_signals(model: Recommender) -> tuple[np.ndarray | None, np.ndarray | None, Any]:
    """Image / text vectors and co-purchase similarity from the model or its parts (ranker)."""
    parts = getattr(model, "parts", {}) or {}
    content = parts.get("content", model)
    knn = parts.get("itemknn", model)
    image = getattr(content, "image", None)
    text = getattr(content, "text", None)
    similarity = getattr(knn, "similarity", None)
    if image is not None and len(image) != len(model.item_ids):
        image = text = None
    return image, text, similarity


def explain(model: Recommender, user: str, items: list[str], history: History | None = None,
            content: ItemContent | None = None, titles: Mapping[str, str] | None = None) -> list[Reason]:
    """One :class:`Reason` per recommended product (see the module docstring)."""
    return Explainer(model, content, titles).explain(user, items, history)
