"""Word tokenizer for the trainable text encoders: Chinese cut by jieba, other scripts by words.

Why words and not a learned sub-word model: catalog titles are short, and a user with no
pretrained model has no sub-word vocabulary either. Chinese runs are cut by jieba's dictionary
(连衣裙 → 连衣裙), everything else is split on non-word characters and lower-cased (after NFKC,
so full-width ``ＵＮＩＱＬＯ`` and ``uniqlo`` are one token). The vocabulary also holds the single
characters of the Chinese words it saw, so a Chinese word never seen in training falls back to
its characters (红色连衣裙 and 红裙 share 红) instead of one unknown token.

The vocabulary is built from the *training* texts only and saved as plain JSON in the model folder.
Ids: 0 is padding, 1 is unknown.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from tuwen.util.chinese import CJK_RUN, jieba

PAD, UNK = 0, 1
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: str | None) -> list[str]:
    """The tokens of one text: jieba words for Chinese runs, lower-cased words for the rest."""
    if not text:
        return []
    text = unicodedata.normalize("NFKC", str(text)).lower()
    out: list[str] = []
    for piece in CJK_RUN.split(text):
        if not piece:
            continue
        if CJK_RUN.fullmatch(piece):
            out.extend(w for w in jieba().lcut(piece, HMM=False) if w.strip())
        else:
            out.extend(_WORD.findall(piece))
    return out


def _is_cjk(token: str) -> bool:
    return bool(CJK_RUN.fullmatch(token))


class Tokenizer:
    """Texts → padded id matrices; ``fit`` on training texts, ``state``/``from_state`` as JSON."""

    version = 1

    def __init__(self, max_size: int = 30000, min_count: int = 2, max_len: int | None = None,
                 len_cap: int = 64) -> None:
        self.max_size = max_size
        self.min_count = min_count
        self.max_len = max_len
        self.len_cap = len_cap
        self.vocab: list[str] = ["<pad>", "<unk>"]
        self.index: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.vocab)

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Vocabulary from training texts: tokens seen ``min_count`` times (once in tiny corpora), commonest first."""
        counts: Counter[str] = Counter()
        lengths = []
        documents = [words(t) for t in texts if t]
        for tokens in documents:
            lengths.append(len(tokens))
            counts.update(tokens)
            counts.update(ch for token in tokens if _is_cjk(token) and len(token) > 1 for ch in token)
        min_count = self.min_count if len(documents) >= 50 else 1
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        self.vocab = ["<pad>", "<unk>", *kept[: self.max_size - 2]]
        self.index = {t: i for i, t in enumerate(self.vocab)}
        if self.max_len is None:  # long enough for 98% of the training texts, within [4, len_cap]
            longest = float(np.percentile(lengths, 98)) if lengths else 4.0
            self.max_len = int(min(self.len_cap, max(4, math.ceil(longest))))
        return self

    def ids(self, text: str | None) -> list[int]:
        """Token ids of one text; an unknown Chinese word becomes its known characters."""
        out: list[int] = []
        for token in words(text):
            known = self.index.get(token)
            if known is not None:
                out.append(known)
            elif _is_cjk(token):
                out.extend(self.index.get(ch, UNK) for ch in token)
            else:
                out.append(UNK)
        return out

    def encode(self, texts: Sequence[str | None]) -> np.ndarray:
        """``(len(texts), max_len)`` int64 ids, right-padded with 0 (an empty text is all padding)."""
        assert self.max_len is not None, "fit() before encode()"
        matrix = np.zeros((len(texts), self.max_len), dtype=np.int64)
        for row, text in enumerate(texts):
            ids = self.ids(text)[: self.max_len]
            matrix[row, : len(ids)] = ids
        return matrix

    def state(self) -> dict[str, Any]:
        return {"version": self.version, "vocab": self.vocab, "max_len": self.max_len, "max_size": self.max_size,
                "min_count": self.min_count, "len_cap": self.len_cap}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tokenizer:
        if state.get("version") != cls.version:
            raise ValueError(f"tokenizer format {state.get('version')} is not readable by this tuwen")
        tokenizer = cls(state["max_size"], state["min_count"], state["max_len"], state["len_cap"])
        tokenizer.vocab = list(state["vocab"])
        tokenizer.index = {t: i for i, t in enumerate(tokenizer.vocab)}
        return tokenizer
