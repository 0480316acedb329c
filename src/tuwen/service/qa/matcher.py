"""Question → answer matching learnt from the shop's own Q&A: which earlier answer answers a new question.

Frozen multilingual sentence vectors place a question near questions like it, not near its answer ("does it run
small?" vs "order one size up"). Two linear maps, started at the identity and trained contrastively (InfoNCE, the
other answers in a batch as negatives) on the training products' (question, answer) pairs, move questions and
answers into one space; a small weight keeps the maps near the identity, and training stops at the epoch that
ranks held-out listings' answers best (the listings are grouped as in :mod:`tuwen.service.qa.splits`). The learnt
score is then fused with BM25 (:mod:`tuwen.service.qa.lexical`) and the plain cosine, with weights picked on the
same held-out listings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.service.qa.lexical import BM25
from tuwen.util.vectors import l2

VALIDATION_ROWS = 2000  # held-out rows ranked against each other when stopping and picking weights
WEIGHT_GRID = {"cosine": (0.0, 0.25, 0.5), "bm25": (0.0, 0.05, 0.1, 0.2)}


class AnswerMatcher:
    """Scores (question, answer) pairs: ``learnt`` cosine of the mapped vectors + ``cosine`` × raw cosine + ``bm25`` ×
    BM25 scaled by the best candidate's."""

    def __init__(self, dim: int = 512) -> None:
        self.question_map = np.eye(dim, dtype=np.float32)
        self.answer_map = np.eye(dim, dtype=np.float32)
        self.weights = {"learnt": 1.0, "cosine": 0.0, "bm25": 0.1}
        self.bm25 = BM25()
        self.log: list[dict[str, float]] = []

    # ---------------------------------------------------------------------------------------------- scoring
    def questions(self, vectors: np.ndarray) -> np.ndarray:
        return l2(np.asarray(vectors, np.float32) @ self.question_map.T)

    def answers(self, vectors: np.ndarray) -> np.ndarray:
        return l2(np.asarray(vectors, np.float32) @ self.answer_map.T)

    def components(self, question_vectors: np.ndarray, questions: Sequence[str], answer_vectors: np.ndarray,
                   answers: Sequence[str], which: Sequence[str] = ("learnt", "cosine", "bm25"),
                   ) -> dict[str, np.ndarray]:
        """Each signal's scores of questions (rows) against candidate answers (columns), BM25 scaled by each row's
        best; vectors are the encoder's own."""
        qv, av = np.asarray(question_vectors, np.float32), np.asarray(answer_vectors, np.float32)
        out: dict[str, np.ndarray] = {}
        if "learnt" in which:
            out["learnt"] = self.questions(qv) @ self.answers(av).T
        if "cosine" in which:
            out["cosine"] = l2(qv) @ l2(av).T
        if "bm25" in which:
            lexical = self.bm25.matrix(questions, answers)
            out["bm25"] = lexical / np.maximum(lexical.max(axis=1, keepdims=True), 1e-6)
        return out

    def matrix(self, question_vectors: np.ndarray, questions: Sequence[str], answer_vectors: np.ndarray,
               answers: Sequence[str], weights: dict[str, float] | None = None) -> np.ndarray:
        """Fused scores of questions (rows) against candidate answers (columns)."""
        w = weights or self.weights
        if not len(answers) or not len(questions):
            return np.zeros((len(questions), len(answers)), np.float32)
        parts = self.components(question_vectors, questions, answer_vectors, answers, [k for k, v in w.items() if v])
        return combine(parts, w)

    def scores(self, question_vector: np.ndarray, question: str, answer_vectors: np.ndarray,
               answers: Sequence[str], weights: dict[str, float] | None = None) -> np.ndarray:
        """Fused scores of one question against candidate answers."""
        return self.matrix(np.asarray(question_vector)[None, :], [question], answer_vectors, answers, weights)[0]

    # --------------------------------------------------------------------------------------------- training
    def fit(self, question_vectors: np.ndarray, answer_vectors: np.ndarray, questions: Sequence[str],
            answers: Sequence[str], products: Sequence[str], valid: np.ndarray, epochs: int = 6, seed: int = 0,
            advance: Callable[[int], None] | None = None) -> AnswerMatcher:
        """Learn the maps on the rows not in ``valid``, keep the epoch best on ``valid`` and pick the fusion weights
        there; ``products`` groups the validation answers for the within-product ranking."""
        import torch

        torch.manual_seed(seed)
        train = _distinct_pairs(np.where(~valid)[0], questions, answers)
        held = np.where(valid)[0]
        self.bm25 = BM25().fit([*(questions[i] for i in train), *(answers[i] for i in train)])
        q = torch.tensor(np.asarray(question_vectors[train], np.float32))
        a = torch.tensor(np.asarray(answer_vectors[train], np.float32))
        dim = q.shape[1]
        maps = [torch.nn.Parameter(torch.eye(dim)), torch.nn.Parameter(torch.eye(dim))]
        optimiser = torch.optim.AdamW(maps, lr=3e-4, weight_decay=0.0)
        eye = torch.eye(dim)
        best = (self._validation(question_vectors, answer_vectors, questions, answers, products, held,
                                 {"learnt": 1.0}), self.question_map.copy(), self.answer_map.copy(), -1)
        generator = torch.Generator().manual_seed(seed)
        for epoch in range(epochs):
            order = torch.randperm(len(q), generator=generator)
            total = 0.0
            for lo in range(0, len(q), 512):
                batch = order[lo:lo + 512]
                x = torch.nn.functional.normalize(q[batch] @ maps[0].T, dim=1)
                y = torch.nn.functional.normalize(a[batch] @ maps[1].T, dim=1)
                logits = x @ y.T * 20.0
                target = torch.arange(len(batch))
                loss = (torch.nn.functional.cross_entropy(logits, target)
                        + torch.nn.functional.cross_entropy(logits.T, target)) / 2
                loss = loss + 0.01 * (((maps[0] - eye) ** 2).sum() + ((maps[1] - eye) ** 2).sum())
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            self.question_map = maps[0].detach().numpy().astype(np.float32).copy()
            self.answer_map = maps[1].detach().numpy().astype(np.float32).copy()
            score = self._validation(question_vectors, answer_vectors, questions, answers, products, held,
                                     {"learnt": 1.0})
            self.log.append({"epoch": epoch, "loss": total / max(len(q), 1), "valid_mrr": score})
            if score > best[0]:
                best = (score, self.question_map.copy(), self.answer_map.copy(), epoch)
            if advance:
                advance(1)
        _, self.question_map, self.answer_map, _ = best
        self.weights = self._pick_weights(question_vectors, answer_vectors, questions, answers, products, held)
        return self

    def _validation(self, qv: np.ndarray, av: np.ndarray, questions: Sequence[str], answers: Sequence[str],
                    products: Sequence[str], rows: np.ndarray, weights: dict[str, float]) -> float:
        """Mean of the across-listings and within-product MRR of the held-out rows' true answers."""
        if len(rows) < 2:
            return 0.0
        return float(np.mean(ranking_mrr(self, qv, av, questions, answers, products, rows, weights)))

    def _pick_weights(self, qv: np.ndarray, av: np.ndarray, questions: Sequence[str], answers: Sequence[str],
                      products: Sequence[str], rows: np.ndarray) -> dict[str, float]:
        if len(rows) < 2:
            return dict(self.weights)
        rows = rows[:VALIDATION_ROWS]
        parts = self.components(qv[rows], [questions[i] for i in rows], av[rows], [answers[i] for i in rows])
        group = [str(products[i]) for i in rows]
        best: tuple[float, dict[str, float]] = (-1.0, dict(self.weights))
        for cosine in WEIGHT_GRID["cosine"]:
            for bm25 in WEIGHT_GRID["bm25"]:
                weights = {"learnt": 1.0, "cosine": cosine, "bm25": bm25}
                score = float(np.mean(mrr_of(combine(parts, weights), group)))
                if score > best[0] + 1e-9:
                    best = (score, weights)
        return best[1]

    # ------------------------------------------------------------------------------------------ persistence
    def save(self, folder: Path) -> None:
        np.savez(folder / "matcher.npz", question_map=self.question_map, answer_map=self.answer_map)

    def state(self) -> dict[str, Any]:
        return {"weights": self.weights, "bm25": self.bm25.to_dict(), "log": self.log}

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> AnswerMatcher:
        data = np.load(folder / "matcher.npz")
        model = cls(int(data["question_map"].shape[0]))
        model.question_map, model.answer_map = data["question_map"], data["answer_map"]
        model.weights = {k: float(v) for k, v in state["weights"].items()}
        model.bm25 = BM25.from_dict(state["bm25"])
        model.log = list(state.get("log", []))
        return model


def _distinct_pairs(rows: np.ndarray, questions: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """Rows with a (question, answer) pair not seen before: a listing's variants repeat their page many times."""
    seen: set[tuple[str, str]] = set()
    keep = []
    for i in rows:
        key = (" ".join(str(questions[i]).lower().split()), " ".join(str(answers[i]).lower().split()))
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return np.array(keep, dtype=np.int64)


def combine(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted sum of the signals' score matrices."""
    out = sum(weights[name] * parts[name] for name in parts if weights.get(name))
    return np.asarray(out, np.float32)


def mrr_of(matrix: np.ndarray, products: Sequence[str]) -> tuple[float, float]:
    """(MRR across all candidates, MRR among the same product's) for a square matrix whose diagonal holds each
    question's true answer; ties count against it (many answers are just "Yes")."""
    by_product: dict[str, list[int]] = {}
    for position, product in enumerate(products):
        by_product.setdefault(product, []).append(position)
    across, within = [], []
    for position in range(len(products)):
        scores = matrix[position]
        beaten = scores >= scores[position]
        across.append(1.0 / int(beaten.sum()))
        within.append(1.0 / int(beaten[by_product[products[position]]].sum()))
    return float(np.mean(across)), float(np.mean(within))


def ranking_mrr(matcher: Any, qv: np.ndarray, av: np.ndarray, questions: Sequence[str], answers: Sequence[str],
                products: Sequence[str], rows: np.ndarray, weights: dict[str, float] | None = None,
                limit: int = 2000) -> tuple[float, float]:
    """:func:`mrr_of` for a matcher's fused scores of the first ``limit`` held-out rows."""
    rows = np.asarray(rows)[:limit]
    matrix = matcher.matrix(qv[rows], [questions[i] for i in rows], av[rows], [answers[i] for i in rows], weights)
    return mrr_of(matrix, [str(products[i]) for i in rows])
