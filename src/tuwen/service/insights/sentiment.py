"""Clause sentiment learnt from the workspace's own review labels, per language.

Why this model: the only sentiment truth the workspace holds is per review (star rating, "recommends it", the
Chinese positive/negative label), so a bag-of-n-grams logistic regression is fitted on whole reviews and applied to
each clause. Linear n-gram weights transfer from a review to its clauses by construction (a clause's score is the
sum of the weights of the n-grams in it), which a sentence encoder fine-tuned on whole reviews does not promise; the
benchmark (``benchmarks/insights.py``) measures the model on held-out products, on whole reviews and on one-clause
reviews, where review label and clause label coincide. No word list of ours says what is positive.

Labels: the Chinese ``label`` ("1"/"0") where a review has one, else the rating (4-5 positive, 1-2 negative, 3 left
out), else ``recommended``. Classes are balanced, so 0.5 means "no lean" whatever the shop's share of happy reviews.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tuwen.store.review_scores import polarity

__all__ = ["ClauseSentiment", "polarity", "vectorizer"]

MIN_REVIEWS = 20  # fewer labelled reviews of a language than this (or one class only): no model for it
POSITIVE_AT = 0.6  # clause probability at or above which it counts as praise
NEGATIVE_AT = 0.4  # ... at or below which it counts as a complaint; in between it is neutral


def vectorizer(language: str) -> Any:
    """Word 1-2-grams for English; character 1-3-grams for Chinese (no segmentation errors, short texts)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if language == "zh":
        return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True, max_features=200_000)
    return TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=200_000,
                           token_pattern=r"(?u)\b\w[\w']*\b")


@dataclass
class ClauseSentiment:
    """One logistic regression per language over TF-IDF n-grams; ``score`` gives P(positive) per text."""

    C: float = 4.0
    seed: int = 0
    models: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, int] = field(default_factory=dict)

    def fit(self, texts: pd.Series, labels: pd.Series, languages: pd.Series) -> ClauseSentiment:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        known = labels.notna() & (texts.str.len() > 0)
        for language in sorted(languages[known].unique()):
            rows = known & (languages == language)
            y = labels[rows].astype(int).to_numpy()
            if rows.sum() < MIN_REVIEWS or len(np.unique(y)) < 2:
                continue
            model = make_pipeline(vectorizer(language), LogisticRegression(
                C=self.C, class_weight="balanced", max_iter=2000, random_state=self.seed))
            model.fit(texts[rows].tolist(), y)
            self.models[language] = model
            self.trained_on[language] = int(rows.sum())
        return self

    def score(self, texts: list[str], languages: list[str]) -> np.ndarray:
        """P(positive) per text; NaN where its language has no model."""
        out = np.full(len(texts), np.nan)
        lang = np.asarray(languages)
        for language, model in self.models.items():
            rows = np.flatnonzero(lang == language)
            if len(rows):
                out[rows] = model.predict_proba([texts[i] for i in rows])[:, 1]
        return out

