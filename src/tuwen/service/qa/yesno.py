"""Yes, no or unsure: a yes/no question answered from what the shop's earlier answers say.

Four small models fitted on the shop's own Q&A. Which questions are yes/no ones (**kind**: logistic regression on
the question's sentence vector and :func:`looks_yes_no`, learnt from every question's type), and, on the yes/no
questions whose answers were judged Y or N:

* **prior** — P(yes | the question alone), logistic regression on its sentence vector;
* **polarity** — P(the answer says yes | the answer's words), logistic regression on word uni- and bigrams
  (stop words kept: "no", "not" and "doesn't" carry the answer);
* **combiner** — the prior's logit and what the evidence says: the polarity of the same product's earlier answers
  to yes/no questions, weighted by how alike their questions are to this one (best match, similarity-weighted
  mean, product-wide mean, how many). Votes of similar questions about *other* products were tried too and lowered
  held-out accuracy (their answers carry the training products' share of yeses, not this product's): left out.

The combiner learns on features built exactly as at answering time: each training question's evidence leaves it
out, and the prior and polarity it sees are out-of-fold (grouped by listing), so it learns how far to trust them on
questions they never saw. "unsure" is the band of P(yes) around ½ where the out-of-fold answers were right less
than :data:`TARGET_ACCURACY` of the time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.search.tokens import segment, word_tokens
from tuwen.service.qa.splits import hash_share
from tuwen.util.vectors import l2

TARGET_ACCURACY = 0.8  # answers outside the "unsure" band were right this often on out-of-fold questions
FOLDS = 5
FEATURES = ("prior", "top", "top_similarity", "weighted", "mean", "count")

# A yes/no question starts with an auxiliary verb (English) or asks with 吗 / A不A (Chinese).
_YES_NO = re.compile(
    r"^\s*(?:(?:and|but|so|also|ok|okay|hi|hello|please)[\s,]+)*(?:is|are|am|was|were|do|does|did|can|could|will|"
    r"would|should|shall|has|have|had|may|might|must|isn't|aren't|doesn't|don't|didn't|can't|won't|wouldn't|"
    r"couldn't|hasn't|haven't|wasn't|weren't)\b", re.IGNORECASE)
_CHINESE_YES_NO = re.compile(r"(吗|么)\s*[?？]?\s*$|是不是|能不能|有没有|会不会|可不可以|要不要|好不好")


def looks_yes_no(question: str) -> bool:
    """Whether a free-text question asks for yes or no (used when the question's type is not given)."""
    sentences = [s for s in re.split(r"(?<=[?？.!。])\s*", question.strip()) if s.strip()]
    asked = [s for s in sentences if s.rstrip().endswith(("?", "？"))] or sentences[:1]
    return any(_YES_NO.match(s) or _CHINESE_YES_NO.search(s) for s in asked)


def answer_tokens(text: str) -> list[str]:
    """Words and word pairs of an answer, stop words kept (the polarity model's analyser)."""
    found = [w.lower() for w in word_tokens(segment(text or ""))][:60]
    return found + [f"{a} {b}" for a, b in zip(found, found[1:], strict=False)]


@dataclass
class Evidence:
    """What the combiner sees of one question's evidence: earlier yes/no questions of the same product (their
    question vectors and their answers' polarity)."""
    vectors: np.ndarray  # (n, d) unit question vectors
    polarity: np.ndarray  # (n,) P(the answer says yes)


def features(question_vector: np.ndarray, prior: float, evidence: Evidence) -> np.ndarray:
    """The combiner's inputs, in :data:`FEATURES` order (polarities centred on ½: no evidence reads as zero)."""
    p = float(np.clip(prior, 1e-4, 1 - 1e-4))
    row = np.zeros(len(FEATURES), np.float32)
    row[0] = np.log(p / (1 - p))
    if len(evidence.polarity):
        similarity = evidence.vectors @ question_vector
        centred = evidence.polarity - 0.5
        best = int(np.argmax(similarity))
        weights = np.exp(10 * (similarity - similarity.max()))
        row[1] = centred[best] * max(float(similarity[best]), 0.0)
        row[2] = float(similarity[best])
        row[3] = float((weights * centred).sum() / weights.sum())
        row[4] = float(centred.mean())
        row[5] = float(np.log1p(len(centred)))
    return row


class YesNoModel:
    """P(yes) for a yes/no question, from the question and its evidence; see the module docstring."""

    def __init__(self) -> None:
        self.prior: Any = None
        self.polarity: Any = None
        self.combiner: Any = None
        self.kind: Any = None
        self.band = (0.5, 0.5)
        self.report: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------- answering
    def is_yes_no(self, question: str, question_vector: np.ndarray) -> bool:
        """Whether a question (of no stated type) asks for yes or no: the learnt kind model, else the rule."""
        if self.kind is None:
            return looks_yes_no(question)
        row = np.append(l2(np.asarray(question_vector, np.float32)[None, :])[0], float(looks_yes_no(question)))
        return bool(self.kind.predict(row[None, :])[0])

    def prior_yes(self, question_vectors: np.ndarray) -> np.ndarray:
        return self.prior.predict_proba(np.asarray(question_vectors, np.float32))[:, 1]

    def answer_polarity(self, answers: Sequence[str]) -> np.ndarray:
        """P(the answer says yes) of each answer text."""
        if not len(answers):
            return np.zeros(0, np.float32)
        return self.polarity.predict_proba(list(answers))[:, 1].astype(np.float32)

    def probability(self, question_vector: np.ndarray, evidence: Evidence, prior: float | None = None) -> float:
        vector = l2(np.asarray(question_vector, np.float32)[None, :])[0]
        prior = float(self.prior_yes(vector[None, :])[0]) if prior is None else prior
        return float(self.combiner.predict_proba(features(vector, prior, evidence)[None, :])[0, 1])

    def verdict(self, probability: float) -> str:
        """yes / no / unsure for P(yes)."""
        low, high = self.band
        if probability >= high and probability > 0.5:
            return "yes"
        if probability <= low and probability < 0.5:
            return "no"
        return "unsure"

    # -------------------------------------------------------------------------------------------- training
    def fit(self, question_vectors: np.ndarray, answers: Sequence[str], question_types: Sequence[str],
            answer_types: Sequence[str], products: Sequence[str], groups: Sequence[str], seed: int = 0,
            questions: Sequence[str] | None = None) -> YesNoModel:
        """Fit on every row of the shop's Q&A (evidence comes from all of them; labels from yes/no questions
        answered Y or N)."""
        from sklearn.linear_model import LogisticRegression

        vectors = l2(np.asarray(question_vectors, np.float32))
        answer_types = np.asarray([str(t) for t in answer_types])
        yes_no = np.asarray([str(t) == "yes/no" for t in question_types])
        labelled = yes_no & np.isin(answer_types, ["Y", "N"])
        if labelled.sum() < 20 or len(set(answer_types[labelled])) < 2:
            raise ValueError(f"too few yes/no questions answered Y or N to learn from ({int(labelled.sum())}; "
                             "at least 20 of both kinds together)")
        target = (answer_types == "Y").astype(int)
        fold = np.array([int(hash_share(str(g), seed, "tuwen-yesno") * FOLDS) for g in groups])
        prior_oof = np.full(len(vectors), 0.5)
        polarity_oof = np.full(len(vectors), 0.5)
        answers = [str(a or "") for a in answers]
        for k in range(FOLDS):
            train = labelled & (fold != k)
            if len(set(target[train])) < 2:
                continue
            test = fold == k
            prior = _prior_model(seed).fit(vectors[train], target[train])
            prior_oof[test] = prior.predict_proba(vectors[test])[:, 1]
            polarity = _polarity_model(seed).fit([answers[i] for i in np.where(train)[0]], target[train])
            polarity_oof[test & yes_no] = polarity.predict_proba([answers[i] for i in np.where(test & yes_no)[0]])[:, 1]
        if questions is not None and 0 < yes_no.sum() < len(yes_no):
            rule = np.array([float(looks_yes_no(str(q))) for q in questions], np.float32)
            self.kind = _prior_model(seed).fit(np.c_[vectors, rule], yes_no)
        self.prior = _prior_model(seed).fit(vectors[labelled], target[labelled])
        self.polarity = _polarity_model(seed).fit([answers[i] for i in np.where(labelled)[0]], target[labelled])
        rows = np.where(labelled)[0]
        evidence = TrainingEvidence(vectors, polarity_oof, yes_no, products)
        found = [evidence.leave_one_out(i) for i in rows]
        # each question twice: with its product's other Q&A, and as if its product were new to the shop (no Q&A of
        # its own), which is how questions about products the shop has not seen yet arrive
        unseen = [Evidence(e.vectors[:0], e.polarity[:0]) for e in found]
        table = np.stack([features(vectors[i], prior_oof[i], e) for i, e in zip([*rows, *rows], [*found, *unseen],
                                                                                  strict=True)])
        labels = np.concatenate([target[rows], target[rows]])
        folds = np.concatenate([fold[rows], fold[rows]])
        self.combiner = LogisticRegression(C=1.0, max_iter=1000).fit(table, labels)
        # the band, from the combiner's out-of-fold answers (with the product's own Q&A)
        combined = np.full(len(table), 0.5)
        for k in range(FOLDS):
            inside = folds == k
            if inside.any() and (~inside).sum() and len(set(labels[~inside])) == 2:
                model = LogisticRegression(C=1.0, max_iter=1000).fit(table[~inside], labels[~inside])
                combined[inside] = model.predict_proba(table[inside])[:, 1]
        own, new = combined[:len(rows)], combined[len(rows):]
        self.band = _band(own, target[rows])
        self.report = {"labelled": int(len(rows)), "yes_share": float(target[rows].mean()),
                       "oof_accuracy": float(((own >= 0.5) == target[rows]).mean()),
                       "oof_accuracy_new_product": float(((new >= 0.5) == target[rows]).mean()),
                       "oof_prior_accuracy": float(((prior_oof[rows] >= 0.5) == target[rows]).mean()),
                       "band": list(self.band)}
        return self

    # ----------------------------------------------------------------------------------------- persistence
    def save(self, folder: Path) -> None:
        import joblib

        parts = {"prior": self.prior, "polarity": self.polarity, "combiner": self.combiner, "kind": self.kind}
        joblib.dump(parts, folder / "yesno.joblib")

    def state(self) -> dict[str, Any]:
        return {"band": list(self.band), "report": self.report, "features": list(FEATURES)}

    @classmethod
    def load(cls, folder: Path, state: dict[str, Any]) -> YesNoModel:
        import joblib

        parts = joblib.load(folder / "yesno.joblib")
        model = cls()
        model.prior, model.polarity, model.combiner = parts["prior"], parts["polarity"], parts["combiner"]
        model.kind = parts.get("kind")
        model.band = (float(state["band"][0]), float(state["band"][1]))
        model.report = dict(state.get("report", {}))
        return model


class TrainingEvidence:
    """Evidence of the training rows for one another, built once: each product's rows."""

    def __init__(self, vectors: np.ndarray, polarity: np.ndarray, yes_no: np.ndarray, products: Sequence[str]) -> None:
        self.vectors, self.polarity, self.yes_no = vectors, polarity, yes_no
        self.products = [str(p) for p in products]
        self.rows: dict[str, list[int]] = {}
        for j, product in enumerate(self.products):
            self.rows.setdefault(product, []).append(j)

    def leave_one_out(self, i: int) -> Evidence:
        """Row ``i``'s evidence: its product's other yes/no questions."""
        same = np.array([j for j in self.rows[self.products[i]] if j != i and self.yes_no[j]], dtype=np.int64)
        return Evidence(self.vectors[same], self.polarity[same])


def nearest(similarity: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest finite similarities, best first."""
    k = min(k, int(np.isfinite(similarity).sum()))
    if k <= 0:
        return np.zeros(0, np.int64)
    top = np.argpartition(-similarity, k - 1)[:k]
    return top[np.argsort(-similarity[top])]


def _prior_model(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=0.5, max_iter=2000, random_state=seed)


def _polarity_model(seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(TfidfVectorizer(analyzer=answer_tokens, sublinear_tf=True, min_df=2),
                         LogisticRegression(C=4.0, max_iter=2000, random_state=seed))


def _band(probability: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """The narrowest band around ½ outside which out-of-fold answers reach :data:`TARGET_ACCURACY` (or the widest
    tried, when none does)."""
    for half in np.arange(0.0, 0.46, 0.01):
        outside = np.abs(probability - 0.5) >= half
        if outside.sum() >= 10 and ((probability[outside] >= 0.5) == target[outside]).mean() >= TARGET_ACCURACY:
            return round(0.5 - half, 2), round(0.5 + half, 2)
    return 0.05, 0.95
