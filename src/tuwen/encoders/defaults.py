"""The one place the default encoder names live: what ``tuwen embed`` computes and what every stage reads.

Training reads every photo and text encoder the workspace has vectors for; the search index, the text-photo
alignment and the recommenders' item content read the ones named here unless told otherwise.
"""

from __future__ import annotations

TEXT_ENCODER = "use_multilingual"  # multilingual USE: Chinese + English, 512-d, numpy only
IMAGE_ENCODERS = "mobilenet_v2+color_histogram"  # what `tuwen embed` computes for photos (each its own vectors)
SEARCH_IMAGE_ENCODER = "mobilenet_v2"  # the photo vectors search and similar-product lookups index
TEXT_FALLBACKS = (TEXT_ENCODER, "minilm", "tfidf")  # text vectors the recommenders look for, in this order
