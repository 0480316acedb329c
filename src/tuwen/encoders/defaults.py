"""The default encoders every stage reads: ``tuwen embed`` computes them, the search index, the text-photo
alignment and the recommenders' item content read them unless told otherwise (training reads every encoder the
workspace has vectors for).

The names themselves live in :mod:`tuwen.choices`, which imports nothing, so ``tuwen --help`` can show them
without loading an encoder; this module gives them their encoder-side names.
"""

from __future__ import annotations

from tuwen.choices import DEFAULT_IMAGE_ENCODERS as IMAGE_ENCODERS
from tuwen.choices import DEFAULT_TEXT_ENCODER as TEXT_ENCODER
from tuwen.choices import SEARCH_IMAGE_ENCODER

TEXT_FALLBACKS = (TEXT_ENCODER, "minilm", "tfidf")  # text vectors the recommenders look for, in this order

__all__ = ["IMAGE_ENCODERS", "SEARCH_IMAGE_ENCODER", "TEXT_ENCODER", "TEXT_FALLBACKS"]
