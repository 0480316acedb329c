"""Text printed in product photos (brand names, "SALE 50%", sizes, Chinese labels) via RapidOCR.

RapidOCR runs PaddleOCR's PP-OCRv4 detector and recogniser (Chinese + English) on
ONNX Runtime with model files inside the ``rapidocr-onnxruntime`` package, so it
works offline. OCR output is text, not a vector: feed ``OcrReader.read`` results to
a text encoder. It is ~100x slower per image than MobileNetV2, hence opt-in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

from tuwen.encoders.images import open_rgb
from tuwen.util.runtime import cpu_count

_NOISY_LOGGERS = ("RapidOCR", "OrtInferSession")


class OcrReader:
    """Reads the text lines in images; the OCR models load on the first ``read``.

    ``min_confidence`` (0.5) drops recognised boxes the recogniser is unsure of;
    ``threads`` (all cores) is ONNX Runtime's intra-op thread count.
    """

    def __init__(self, min_confidence: float = 0.5, threads: int | None = None) -> None:
        self.min_confidence = min_confidence
        self.threads = threads or cpu_count()
        self._engine: Any = None

    def _load(self) -> Any:
        if self._engine is None:
            from rapidocr_onnxruntime import RapidOCR

            _quiet()
            self._engine = RapidOCR(
                text_score=self.min_confidence,
                print_verbose=False,
                intra_op_num_threads=self.threads,
                inter_op_num_threads=1,
            )
            _quiet()  # the engine's sessions create (and configure) their own loggers while loading
        return self._engine

    def read_one(self, path: str | os.PathLike[str]) -> str:
        """Text of one image: recognised lines, top to bottom, joined by spaces; ``""`` when there is none.

        Raises :class:`~tuwen.encoders.images.ImageDecodeError` when the file is not a readable image.
        """
        image = open_rgb(path)
        result, _ = self._load()(image)
        if not result:
            return ""
        lines = [str(text).strip() for _, text, score in result if float(score) >= self.min_confidence]
        return " ".join(line for line in lines if line)

    def read(self, paths: Sequence[str | os.PathLike[str]]) -> list[str]:
        """Text of each image, in order (see :meth:`read_one`)."""
        return [self.read_one(path) for path in paths]


def _quiet() -> None:
    """RapidOCR logs at DEBUG/INFO to its own stderr handlers; keep only warnings and errors."""
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        for handler in logger.handlers:
            handler.setLevel(logging.WARNING)
