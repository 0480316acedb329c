"""What the shop knows about its products, as evidence: earlier Q&A, reviews and descriptions, by product.

Read once from a workspace's ``questions``, ``reviews`` and ``products`` tables. Sentence vectors of the Q&A are
kept by the answerer's folder (computed once, when it is trained); any text without one (a review, a description,
Q&A added since) is encoded when a question first needs it and kept in memory.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tuwen.store.workspace import Workspace
from tuwen.util.vectors import l2

SOURCES = ("qa", "review", "product")
MAX_EVIDENCE_CHARS = 600  # evidence quoted in an answer is cut here (the id links to the whole text)


@dataclass
class Item:
    """One piece of evidence: where it comes from, its id there, and its text."""
    source: str  # "qa" | "review" | "product"
    id: str
    product_id: str
    text: str  # what is matched: an answer, a review, a description
    question: str = ""  # Q&A: the question that was answered
    question_type: str = ""
    answer_type: str = ""


@functools.lru_cache(maxsize=4)
def text_encoder(name: str) -> Any:
    """The sentence encoder of the answerer, loaded once per process."""
    from tuwen.encoders import encoder_for

    return encoder_for(name)


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


class Vectors:
    """Sentence vectors by text, encoded at most once per process (thread-safe: the web server asks from several
    threads)."""

    def __init__(self, encoder: str) -> None:
        self.encoder = encoder
        self._known: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def add(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._known[digest(text)] = np.asarray(vector, np.float32)

    def preload(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Vectors saved earlier, by :func:`digest` of their text."""
        with self._lock:
            self._known.update(zip(keys, np.asarray(vectors, np.float32), strict=True))

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of ``texts`` (blank text: zeros), ``(len(texts), dim)``."""
        keys = [digest(t) for t in texts]
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in self._known))
        if missing:
            self.add(missing, l2(np.asarray(text_encoder(self.encoder).encode(missing), np.float32)))
        if not texts:
            return np.zeros((0, 512), np.float32)
        return np.stack([self._known[k] for k in keys])


class Knowledge:
    """The shop's evidence by product, and its Q&A as arrays for the models."""

    def __init__(self, workspace: Workspace) -> None:
        questions = workspace.read("questions") if workspace.has_table("questions") else pd.DataFrame(
            columns=["id", "product_id", "question", "answer", "question_type", "answer_type"])
        self.questions = questions.fillna({"answer": "", "question_type": "", "answer_type": ""}).reset_index(drop=True)
        self.by_product: dict[str, list[Item]] = {}
        for row in self.questions.itertuples(index=False):
            self.by_product.setdefault(str(row.product_id), []).append(
                Item("qa", str(row.id), str(row.product_id), str(row.answer or ""), str(row.question or ""),
                     str(row.question_type or ""), str(row.answer_type or "")))
        reviews = workspace.read("reviews", ["id", "product_id", "title", "text"]) if workspace.has_table("reviews") \
            else pd.DataFrame(columns=["id", "product_id", "title", "text"])
        for row in reviews.itertuples(index=False):
            text = " ".join(str(t) for t in (row.title, row.text) if isinstance(t, str) and t.strip())
            if text and row.product_id:
                self.by_product.setdefault(str(row.product_id), []).append(
                    Item("review", str(row.id), str(row.product_id), text))
        products = workspace.read("products", ["id", "title", "description"])
        self.product_ids = set(products["id"].astype(str))
        self.titles = dict(zip(products["id"].astype(str), products["title"].fillna("").astype(str), strict=True))
        for row in products.itertuples(index=False):
            text = " ".join(str(t) for t in (row.title, row.description) if isinstance(t, str) and t.strip())
            if text:
                self.by_product.setdefault(str(row.id), []).append(Item("product", str(row.id), str(row.id), text))

    def items(self, product: str) -> list[Item]:
        return self.by_product.get(product, [])

    def column(self, name: str) -> list[str]:
        return [str(v) for v in self.questions[name].tolist()]


def quoted(item: Item, score: float) -> dict[str, Any]:
    """An evidence item as the answer shows it: ``{source, id, text}`` plus its product, question and score."""
    text = item.text if len(item.text) <= MAX_EVIDENCE_CHARS else item.text[:MAX_EVIDENCE_CHARS].rstrip() + "…"
    out: dict[str, Any] = {"source": item.source, "id": item.id, "text": text, "product_id": item.product_id,
                           "score": round(float(score), 4)}
    if item.source == "qa":
        out["question"] = item.question
    return out
