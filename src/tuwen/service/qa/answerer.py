"""Answering a product question from what the shop knows: rank the evidence, say yes / no / unsure.

The answerer is trained on the workspace's own Q&A (``tuwen ask`` trains it the first time it is needed, or when
asked to retrain) and saved like every artefact, in ``WS/artifacts/service/answerer`` (one atomic folder, a format
version): the question→answer matcher (:mod:`~tuwen.service.qa.matcher`), the yes/no models
(:mod:`~tuwen.service.qa.yesno`) and the Q&A's sentence vectors. A shop without Q&A still answers: its evidence
(reviews, descriptions) is ranked by BM25 and the plain sentence cosine, and a yes/no question is "unsure".

Evidence for a question about product P, ranked together:

* P's earlier Q&A: the matcher's score of each answer, plus how alike its question is to this one;
* P's reviews and its description: the matcher's score (they are answer-like texts);
* Q&A of *other* products whose question is nearly the same (variants of one listing share their questions), a
  little below P's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.encoders.defaults import TEXT_ENCODER
from tuwen.service.qa.knowledge import Item, Knowledge, Vectors, digest, quoted
from tuwen.service.qa.matcher import AnswerMatcher
from tuwen.service.qa.splits import held_out, listing_groups
from tuwen.service.qa.yesno import Evidence, YesNoModel, looks_yes_no, nearest
from tuwen.store.workspace import Workspace
from tuwen.util.folders import atomic_folder, read_info, write_info
from tuwen.util.progress import progress_bar

FORMAT_VERSION = 1
FOLDER = ("service", "answerer")  # under WS/artifacts
MIN_QA = 50  # fewer Q&A rows than this: nothing to learn from; the untrained answerer answers
QUESTION_WEIGHT = 1.0  # an earlier Q&A's score adds this times the similarity of its question to the asked one
OTHER_PRODUCT_SIMILARITY = 0.85  # another product's Q&A is evidence when its question is at least this alike
OTHER_PRODUCT_PENALTY = 0.25  # … and ranks this much below the product's own evidence of the same score
MAX_QUESTION_CHARS = 2_000
DEFAULT_EVIDENCE = 5


def answerer_folder(workspace: Workspace) -> Path:
    return Path(workspace.artifacts).joinpath(*FOLDER)


class Answerer:
    """Answers questions about a workspace's products; build with :func:`load_answerer` or :func:`train_answerer`."""

    def __init__(self, knowledge: Knowledge, matcher: AnswerMatcher, yesno: YesNoModel | None, vectors: Vectors,
                 info: dict[str, Any]) -> None:
        self.knowledge, self.matcher, self.yesno, self.vectors, self.info = knowledge, matcher, yesno, vectors, info
        questions, answers = knowledge.column("question"), knowledge.column("answer")
        self.question_vectors = vectors(questions)
        self.answer_vectors = vectors(answers)
        self.qa_items = self._qa_items()  # in the order of the Q&A arrays
        self.row = {item.id: i for i, item in enumerate(self.qa_items)}
        self.products = np.array(knowledge.column("product_id"))
        self.yes_no = np.array([t == "yes/no" for t in knowledge.column("question_type")], dtype=bool)
        self.polarity = yesno.answer_polarity(answers) if yesno is not None else np.full(len(answers), 0.5)
        if not len(self.matcher.bm25.df):
            self.matcher.bm25.fit([item.text for items in knowledge.by_product.values() for item in items])

    def _qa_items(self) -> list[Item]:
        order = {str(r): i for i, r in enumerate(self.knowledge.column("id"))}
        items = [item for items in self.knowledge.by_product.values() for item in items if item.source == "qa"]
        return sorted(items, key=lambda item: order[item.id])

    @property
    def trained(self) -> bool:
        return bool(self.info.get("trained"))

    # ------------------------------------------------------------------------------------------- answering
    def answer(self, question: str, product: str, question_type: str | None = None, k: int = DEFAULT_EVIDENCE,
               question_vector: np.ndarray | None = None, strict: bool = True) -> dict[str, Any]:
        """The answer to ``question`` about ``product``: yes / no / unsure (``None`` for an open question), P(yes),
        and the ranked evidence ``[{source, id, text, …}]``. ``strict``: an unknown product is an error (else it is
        answered from other products' Q&A and the question alone)."""
        question = check_question(question)
        if strict and product not in self.knowledge.product_ids:
            raise KeyError(f"no product {product!r} in this workspace")
        start = time.perf_counter()
        vector = self.vectors([question])[0] if question_vector is None else question_vector
        if question_type not in ("yes/no", "open-ended"):
            asks = self.yesno.is_yes_no(question, vector) if self.yesno is not None else looks_yes_no(question)
            question_type = "yes/no" if asks else "open-ended"
        kind = question_type
        ranked = self.evidence(question, vector, product, k)
        answer: str | None = None
        p_yes: float | None = None
        if kind == "yes/no":
            answer = "unsure"
            if self.yesno is not None:
                p_yes = self.yesno.probability(vector, self._yes_no_evidence(vector, product))
                answer = self.yesno.verdict(p_yes)
        return {"question": question, "product": product, "question_type": kind, "answer": answer,
                "p_yes": None if p_yes is None else round(p_yes, 4),
                "evidence": [quoted(item, score) for item, score in ranked],
                "milliseconds": round((time.perf_counter() - start) * 1000, 1)}

    def evidence(self, question: str, vector: np.ndarray, product: str, k: int) -> list[tuple[Item, float]]:
        """The ``k`` best pieces of evidence for a question about ``product``, best first, with their scores."""
        own = self.knowledge.items(product)
        scored: list[tuple[Item, float]] = []
        if own:
            texts = [item.text for item in own]
            scores = self.matcher.scores(vector, question, self.vectors(texts), texts)
            for item, score in zip(own, scores, strict=True):
                if item.source == "qa":
                    score += QUESTION_WEIGHT * float(self.question_vectors[self.row[item.id]] @ vector)
                scored.append((item, float(score)))
        scored += self._other_products(question, vector, product)
        scored.sort(key=lambda pair: -pair[1])
        seen: set[str] = set()
        distinct = []
        for item, score in scored:  # variants of a listing repeat one answer word for word: quote it once
            key = " ".join(item.text.lower().split())
            if key not in seen:
                seen.add(key)
                distinct.append((item, score))
        return distinct[:k]

    def _other_products(self, question: str, vector: np.ndarray, product: str) -> list[tuple[Item, float]]:
        if not len(self.question_vectors):
            return []
        similarity = self.question_vectors @ vector
        similarity[self.products == product] = -np.inf
        top = [i for i in nearest(similarity, 3) if similarity[i] >= OTHER_PRODUCT_SIMILARITY]
        if not top:
            return []
        items = [self.qa_items[i] for i in top]
        scores = self.matcher.scores(vector, question, self.answer_vectors[top], [item.text for item in items])
        return [(item, float(s + QUESTION_WEIGHT * similarity[i] - OTHER_PRODUCT_PENALTY))
                for item, s, i in zip(items, scores, top, strict=True)]

    def _yes_no_evidence(self, vector: np.ndarray, product: str) -> Evidence:
        """As :class:`~tuwen.service.qa.yesno.TrainingEvidence` builds it for training: the product's yes/no Q&A."""
        same = np.where((self.products == product) & self.yes_no)[0]
        return Evidence(self.question_vectors[same], self.polarity[same])

    def answer_many(self, rows: Sequence[dict[str, Any]], k: int = DEFAULT_EVIDENCE,
                    advance: Callable[[int], None] | None = None, strict: bool = True) -> list[dict[str, Any]]:
        """Answers for ``rows`` (``question``, ``product``, optional ``question_type``), in order; the questions are
        encoded in one batch."""
        vectors = self.vectors([check_question(str(r.get("question", ""))) for r in rows])
        out = []
        for row, vector in zip(rows, vectors, strict=True):
            out.append(self.answer(str(row["question"]), str(row["product"]), row.get("question_type"), k, vector,
                                   strict))
            if advance:
                advance(1)
        return out


def check_question(question: str) -> str:
    """A question's words, refused in words when empty or too long."""
    text = (question or "").strip()
    if not text:
        raise ValueError("empty question: ask something about the product")
    if len(text) > MAX_QUESTION_CHARS:
        raise ValueError(f"question too long ({len(text):,} characters; the limit is {MAX_QUESTION_CHARS:,})")
    return text


# ---------------------------------------------------------------------------------------------------- training
def train_answerer(workspace: Workspace, *, epochs: int = 6, seed: int = 0, encoder: str = TEXT_ENCODER,
                   progress: bool = True) -> Answerer:
    """Train the matcher and the yes/no models on the workspace's Q&A and save them (an atomic folder)."""
    knowledge = Knowledge(workspace)
    questions, answers = knowledge.column("question"), knowledge.column("answer")
    if len(questions) < MIN_QA:
        raise ValueError(f"{workspace.path}: {len(questions)} Q&A rows; answering learns from at least {MIN_QA} "
                         "(ingest some with --preset amazon-qa)")
    vectors = Vectors(encoder)
    texts = list(dict.fromkeys([*questions, *answers]))
    with progress_bar(len(texts), "ask · encoding the shop's Q&A", progress) as advance:
        for lo in range(0, len(texts), 2048):
            vectors(texts[lo:lo + 2048])
            advance(len(texts[lo:lo + 2048]))
    products = knowledge.column("product_id")
    groups = listing_groups(products, questions, answers)
    valid = held_out(products, groups, 0.12, seed + 1)
    matcher = AnswerMatcher()
    with progress_bar(epochs, "ask · learning question → answer", progress) as advance:
        matcher.fit(vectors(questions), vectors(answers), questions, answers, products, valid, epochs, seed, advance)
    try:
        yesno: YesNoModel | None = YesNoModel().fit(vectors(questions), answers, knowledge.column("question_type"),
                                                    knowledge.column("answer_type"), products,
                                                    [groups[p] for p in products], seed, questions)
    except ValueError:  # too few yes/no answers: yes/no questions are answered "unsure"
        yesno = None
    info = {"trained": True, "encoder": encoder, "qa_rows": len(questions), "seed": seed, "epochs": epochs,
            "questions_version": workspace.committed_tables().get("questions"), "trained_at": time.time(),
            "matcher": matcher.state(), "yesno": yesno.state() if yesno is not None else None}
    with atomic_folder(answerer_folder(workspace)) as folder:
        matcher.save(folder)
        if yesno is not None:
            yesno.save(folder)
        keys = np.array([digest(t) for t in texts])
        np.savez(folder / "vectors.npz", keys=keys, vectors=vectors(texts))
        write_info(folder / "answerer.json", "answerer", FORMAT_VERSION, info)
    return Answerer(knowledge, matcher, yesno, vectors, info)


def load_answerer(workspace: Workspace, *, train: bool = True, retrain: bool = False,
                  progress: bool = True) -> Answerer:
    """The workspace's saved answerer; trained now when there is none and the shop has Q&A to learn from (``train``),
    or when ``retrain``. A shop without enough Q&A gets the untrained one (BM25 + plain cosine, no yes/no)."""
    folder = answerer_folder(workspace)
    has_qa = workspace.count("questions") >= MIN_QA if workspace.has_table("questions") else False
    if has_qa and (retrain or (train and not (folder / "answerer.json").is_file())):
        return train_answerer(workspace, progress=progress)
    if not (folder / "answerer.json").is_file():
        return Answerer(Knowledge(workspace), AnswerMatcher(), None, Vectors(TEXT_ENCODER),
                        {"trained": False, "encoder": TEXT_ENCODER})
    info = read_info(folder / "answerer.json", "answerer", FORMAT_VERSION, "run `tuwen ask WS --retrain`")
    vectors = Vectors(info.get("encoder", TEXT_ENCODER))
    stored = np.load(folder / "vectors.npz")
    vectors.preload(stored["keys"].tolist(), stored["vectors"])
    matcher = AnswerMatcher.load(folder, info["matcher"])
    yesno = YesNoModel.load(folder, info["yesno"]) if info.get("yesno") else None
    return Answerer(Knowledge(workspace), matcher, yesno, vectors, info)
