"""Words for the full-text index: Chinese cut by jieba, the rest left to LanceDB's tokenizer.

LanceDB's tokenizers cannot cut Chinese without a downloaded model (``jieba/*`` needs a language-model
folder; ``icu`` works but keeps 连衣裙 whole, so 衣裙 never matches), so tuwen pre-segments every text into a
dedicated ``tokens`` column with jieba's *search mode* (连衣裙 → 连衣 / 衣裙 / 连衣裙) and leaves the rest to
LanceDB's ``simple`` tokenizer, which lower-cases, folds accents, drops English stop words and stems
(dresses → dress). Queries go through the same two steps.
"""

from __future__ import annotations

import re

from tuwen.chinese import CJK_RUN as _CJK
from tuwen.chinese import jieba as _jieba

_WORD = re.compile(r"[\w\u3400-\u4dbf\u4e00-\u9fff]+", re.UNICODE)


def segment(text: str | None) -> str:
    """Space-separated words for the full-text index: Chinese runs cut by jieba (search mode), the rest as is.

    Search mode emits the whole word and its dictionary sub-words (连衣裙 → 连衣 衣裙 连衣裙), so a query for a
    part of a compound still matches. English stemming, lower-casing and stop words are left to LanceDB's
    tokenizer, applied identically to documents and queries.
    """
    if not text:
        return ""
    parts = []
    for piece in _CJK.split(str(text)):
        if not piece:
            continue
        if _CJK.fullmatch(piece):
            parts.extend(w for w in _jieba().cut_for_search(piece) if w.strip())
        else:
            parts.append(piece.strip())
    return " ".join(p for p in parts if p)


def query_terms(text: str) -> list[str]:
    """The words of a query as the hit explanations report them (lower case, de-duplicated, in order)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(segment(text)) if len(w) > 1 or _CJK.match(w)))
