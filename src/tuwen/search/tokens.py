"""Words for the full-text index: Chinese cut by jieba, the rest left to LanceDB's tokenizer.

LanceDB's tokenizers cannot cut Chinese without a downloaded model (``jieba/*`` needs a language-model
folder; ``icu`` works but keeps 连衣裙 whole, so 衣裙 never matches), so tuwen pre-segments every text into a
dedicated ``tokens`` column with jieba's *search mode* (连衣裙 → 连衣 / 衣裙 / 连衣裙) and leaves the rest to
LanceDB's ``simple`` tokenizer, which lower-cases, folds accents, drops English stop words and stems
(dresses → dress). Queries go through the same two steps.
"""

from __future__ import annotations

import re

import numpy as np

from tuwen.util.chinese import CJK_RUN as _CJK
from tuwen.util.chinese import jieba as _jieba

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


# The English stop words LanceDB's ``simple`` tokenizer drops (tantivy's list): BM25 never matches them, so the
# coverage feature does not count them either ("shoes for men" has two words to find, not three).
STOP_WORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these they "
    "this to was will with".split())


def match_form(word: str) -> str:
    """A word as the coverage feature compares it: lower case, English plurals folded (dresses → dress, hoodies /
    hoodie → hoodi, shoes → shoe).

    Both sides go through it, so all it must do is give a word's singular and plural one form; no stemmer
    ships with tuwen, and the BM25 index's own stemmer lives inside LanceDB. Chinese words pass unchanged.
    """
    w = word.lower()
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us")):
        if w.endswith(("sses", "xes", "ches", "shes", "zes")):
            w = w[:-2]
        elif w.endswith("ies"):
            w = w[:-2]
        else:
            w = w[:-1]
    if len(w) > 3 and w.endswith(("ie", "y")):
        w = w[:-2] + "i" if w.endswith("ie") else w[:-1] + "i"
    return w


def word_tokens(tokens: str | None) -> list[str]:
    """The words of an indexed ``tokens`` text (already segmented), as written."""
    return _WORD.findall(tokens or "")


def word_set(tokens: str | None) -> frozenset[str]:
    """The distinct words of an indexed ``tokens`` text (already segmented), in :func:`match_form`."""
    return frozenset(match_form(w) for w in word_tokens(tokens))


def match_words(query: str) -> dict[str, str]:
    """The query words coverage counts, match form → the word as typed (soft coverage embeds the typed word:
    "grei" is no word, "grey" is)."""
    out: dict[str, str] = {}
    for w in query_terms(query):
        if w not in STOP_WORDS:
            out.setdefault(match_form(w), w)
    return out


def word_hits(terms: list[str], sets: list[frozenset[str]]) -> np.ndarray:
    """Exact word coverage, the one definition: 1 where a query term (rows, from :func:`match_words`) is among a
    candidate's words (columns, from :func:`word_set`), else 0. A candidate's coverage is its column's mean."""
    return np.array([[t in ws for ws in sets] for t in terms], np.float32).reshape(len(terms), len(sets))
