"""Chinese text: where its runs are, and jieba (loaded once per process) to cut them into words.

Shared by the search index (``tuwen.search.tokens``) and the trainable text encoders (``tuwen.predict.endtoend``);
kept apart from both so importing it pulls in neither LanceDB nor torch.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from typing import Any

CJK_RUN = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)")
_lock = threading.Lock()


@functools.cache
def jieba() -> Any:
    """The jieba module with its dictionary loaded (~1-4 s once per process; only paid when Chinese appears)."""
    import jieba as module

    module.setLogLevel(logging.WARNING)
    with _lock:
        module.initialize()
    return module


@functools.lru_cache(maxsize=262_144)
def segment(text: str) -> str:
    """``text`` with every Chinese run cut into jieba words separated by spaces (other text unchanged).

    Why: word-level models (TF-IDF's word n-grams) split on spaces and punctuation, and Chinese has neither
    between words, so a whole clause would be one "word" seen once; jieba's words recur across reviews.
    Cached: a training run cuts the same texts several times (fitting the vocabulary, building features,
    scoring), and jieba is pure Python.
    """
    if not CJK_RUN.search(text):
        return text
    cut = jieba().lcut
    return CJK_RUN.sub(lambda run: " " + " ".join(cut(run.group(0))) + " ", text)


def segment_lower(text: str) -> str:
    """:func:`segment` of the lower-cased text: the preprocessing of TF-IDF word n-grams (lower-casing is what
    scikit-learn's default preprocessor does, which a custom one replaces)."""
    return segment(text.lower())
