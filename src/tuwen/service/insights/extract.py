"""Reviews → clauses → (aspects, sentiment): the opinion rows every insight is counted from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tuwen.service.insights.aspects import Lexicon, clauses, is_chinese, words
from tuwen.service.insights.sentiment import ClauseSentiment
from tuwen.store.review_scores import polarity
from tuwen.util.progress import progress_bar


def review_texts(reviews: pd.DataFrame) -> pd.Series:
    """Title and body as one text (a title such as "Runs small!" is often the clearest opinion in a review)."""
    title = reviews["title"].fillna("").astype(str) if "title" in reviews else pd.Series("", index=reviews.index)
    text = reviews["text"].fillna("").astype(str) if "text" in reviews else pd.Series("", index=reviews.index)
    joined = [(f"{t}. {b}" if t and b and not is_chinese(t + b) else f"{t}，{b}" if t and b else t or b)
              for t, b in zip(title, text, strict=True)]
    return pd.Series(joined, index=reviews.index, dtype=object)


def languages(texts: pd.Series) -> pd.Series:
    return texts.map(lambda t: "zh" if is_chinese(t) else "en")


@dataclass
class Clauses:
    """One row per clause: which review (row position), its text, language and tokens."""

    frame: pd.DataFrame  # columns: review (int position), clause, language, tokens (list[str])


def cut_clauses(texts: pd.Series, langs: pd.Series, progress: bool = False) -> Clauses:
    """Every review's clauses and their tokens (jieba for Chinese): done once, shared by expansion and matching."""
    rows: list[tuple[int, str, str, list[str]]] = []
    with progress_bar(len(texts), "insights · clauses", progress and len(texts) > 5000) as advance:
        for position, (text, language) in enumerate(zip(texts, langs, strict=True)):
            chinese = language == "zh"
            for clause in clauses(text, chinese):
                rows.append((position, clause, language, words(clause, chinese)))
            advance(1)
    return Clauses(pd.DataFrame(rows, columns=["review", "clause", "language", "tokens"]))


def opinions(cut: Clauses, lexicons: dict[str, Lexicon], sentiment: ClauseSentiment) -> pd.DataFrame:
    """One row per (clause, aspect it names): review position, aspect, the word that named it, clause text and
    P(positive) of the clause."""
    frame = cut.frame
    matched = [lexicons[lang].match(tokens) if lang in lexicons else {}
               for lang, tokens in zip(frame["language"], frame["tokens"], strict=True)]
    keep = np.array([bool(m) for m in matched])
    if not keep.any():
        return pd.DataFrame(columns=["review", "aspect", "word", "clause", "language", "p"])
    kept = frame[keep]
    scores = sentiment.score(kept["clause"].tolist(), kept["language"].tolist())
    rows = [(review, aspect, word, clause, language, p)
            for (review, clause, language, found, p) in zip(kept["review"], kept["clause"], kept["language"],
                                                             [m for m in matched if m], scores, strict=True)
            for aspect, word in found.items()]
    return pd.DataFrame(rows, columns=["review", "aspect", "word", "clause", "language", "p"])


def fit_sentiment(reviews: pd.DataFrame, texts: pd.Series, langs: pd.Series, seed: int = 0) -> ClauseSentiment:
    """The clause sentiment model fitted on these reviews' own labels."""
    return ClauseSentiment(seed=seed).fit(texts, polarity(reviews), langs)
