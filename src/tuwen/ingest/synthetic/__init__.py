"""A seeded SYNTHETIC e-commerce catalog: products, photos, shoppers, interactions and reviews.

Why it exists: tests and the offline demo need a catalog that is small, fast to build, free of
licensing questions and with a *known* ground truth. The generator is built so that image and
text carry complementary information, which is exactly what an image + text model must exploit:

* the category is a function of (shape, material); the shape is visible only in the photo and the
  material is named only in the text, and the grid is laid out so that neither alone determines it;
* the colour is named in the title only about half the time, otherwise it is visible only in the photo;
* shoppers prefer some (category, colour) pairs, so a recommender that sees product content can
  beat one that only sees product ids;
* review texts come from rating-dependent templates with noise, so text predicts the rating well
  but not perfectly.

Everything it writes is labelled SYNTHETIC: ids start with ``syn-``, a ``README.txt`` says so and
the ``synthetic.json`` manifest carries ``"source": "synthetic"`` plus the ground truth (parameters,
category grid, price model, shopper preferences). The same seed gives byte-identical files.
"""

from tuwen.ingest.synthetic.api import generate_catalog
from tuwen.ingest.synthetic.world import (
    CATEGORY_GRID,
    COLOURS,
    GENERATOR_VERSION,
    INTERACTION_COLUMNS,
    MATERIALS,
    PATTERNS,
    PRODUCT_COLUMNS,
    REVIEW_KEYS,
    SHAPES,
    SOURCE,
)

__all__ = [
    "CATEGORY_GRID",
    "COLOURS",
    "GENERATOR_VERSION",
    "INTERACTION_COLUMNS",
    "MATERIALS",
    "PATTERNS",
    "PRODUCT_COLUMNS",
    "REVIEW_KEYS",
    "SHAPES",
    "SOURCE",
    "generate_catalog",
]
