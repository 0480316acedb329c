"""Names the command line offers in its help: presets, tasks, fusions, recommenders, default encoders.

They live here, in a module that imports nothing, so that ``tuwen --help`` can list them without
loading the modules that implement them (those pull in torch, LanceDB and pandas). The implementing
modules import their names from here, so each list has one home.
"""

from __future__ import annotations

PRESET_NAMES = ("fashion", "hm", "flipkart", "amazon-reviews", "synthetic", "support-intents", "amazon-qa",
                "womens-reviews", "chinese-reviews")  # keys of tuwen.ingest.PRESETS
TASKS = ("classify", "tag", "price", "review", "purchase", "intent")
FUSIONS = ("concat", "mean", "weighted", "gated", "attention", "late")
RECOMMENDERS = ("popularity", "repurchase", "itemknn", "als", "content", "vbpr", "two_tower", "ranker")
# The photo features every model and the search alignment read: MobileNetV2 sees shape and kind, the colour
# histogram sees colour, which ImageNet features barely keep (it lifts photo-only colour prediction on the
# fashion set, see the README) at little cost.
DEFAULT_IMAGE_ENCODERS = "mobilenet_v2+color_histogram"
DEFAULT_TEXT_ENCODER = "use_multilingual"
SEARCH_IMAGE_ENCODER = "mobilenet_v2"  # the photo vectors search and similar-product lookups index
