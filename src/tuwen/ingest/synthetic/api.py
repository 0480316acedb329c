"""Writing a SYNTHETIC catalog folder: generate_catalog (built in a temporary sibling and renamed into place,
reused when its parameters match), the CSV/JSONL files, the manifest with the ground truth and the README.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.ingest.synthetic.images import write_images, write_review_photos
from tuwen.ingest.synthetic.products import make_products, product_row
from tuwen.ingest.synthetic.shoppers import event_row, make_reviews, make_shoppers, simulate_events
from tuwen.ingest.synthetic.world import (
    CATEGORY_GRID,
    COLOURS,
    CURRENCY,
    GENERATOR_VERSION,
    HORIZON_DAYS,
    INTERACTION_COLUMNS,
    MANIFEST,
    MATERIALS,
    PATTERNS,
    PRODUCT_COLUMNS,
    REVIEW_KEYS,
    SHAPES,
    SIZES,
    SOURCE,
    START,
    Shopper,
    iso,
)

# ----------------------------------------------------------------------------------------------- public API


def generate_catalog(
    out_dir: Path | str,
    n_products: int = 400,
    n_users: int = 60,
    seed: int = 0,
    image_size: int = 96,
    review_photos: float = 0.0,
) -> Path:
    """Write a SYNTHETIC catalog into ``out_dir`` and return its path.

    The catalog is built in a temporary sibling folder and renamed into place, so a crash never
    leaves half a catalog behind. When ``out_dir`` already holds a catalog made with the same
    parameters (and generator version) it is returned untouched; a synthetic catalog made with
    other parameters is replaced; any other non-empty folder is refused rather than deleted.

    ``review_photos``: the share of reviews that come with a shopper's photo (``images/reviews/``; the product,
    damaged mostly in unhappy reviews). No real data set here has review photos; this is how the review model's
    photo input is exercised. 0 (the default) writes exactly the files it always did.
    """
    _validate(n_products, n_users, image_size)
    if not 0.0 <= review_photos <= 1.0:
        raise ValueError(f"review_photos is a share between 0 and 1, got {review_photos}")
    out_dir = Path(out_dir)
    params: dict[str, Any] = {"n_products": n_products, "n_users": n_users, "seed": seed, "image_size": image_size}
    if review_photos:
        params["review_photos"] = review_photos
    if _manifest_matches(out_dir, params):
        return out_dir
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.synthetic-tmp-", dir=out_dir.parent))
    try:
        _write_catalog(tmp, params)
        return _publish(tmp, out_dir, params)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------- folder handling


def _validate(n_products: int, n_users: int, image_size: int) -> None:
    if n_products < 1:
        raise ValueError(f"n_products must be at least 1, got {n_products}")
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1, got {n_users}")
    if image_size < 16:
        raise ValueError(f"image_size must be at least 16 pixels, got {image_size}")


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _manifest_matches(folder: Path, params: dict[str, Any]) -> bool:
    """A folder is reusable when its manifest records the same parameters and generator version."""
    manifest = _read_manifest(folder)
    return (
        manifest is not None
        and manifest.get("params") == params
        and manifest.get("generator_version") == GENERATOR_VERSION
    )


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to overwrite anything that is not empty and not a synthetic catalog of ours."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise FileExistsError(f"{out_dir} exists and is not a folder")
    if any(out_dir.iterdir()) and _read_manifest(out_dir) is None:
        raise FileExistsError(f"{out_dir} is not empty and holds no {MANIFEST}; refusing to replace it")


def _publish(tmp: Path, out_dir: Path, params: dict[str, Any]) -> Path:
    """Move the finished catalog into place; the old synthetic catalog (if any) is moved aside first."""
    if out_dir.exists():
        _check_replaceable(out_dir)
        trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.synthetic-old-", dir=out_dir.parent))
        trash.rmdir()
        out_dir.rename(trash)
        try:
            tmp.rename(out_dir)
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        return out_dir
    try:
        tmp.rename(out_dir)
    except OSError:
        # Another process published the same catalog first: theirs is as good as ours.
        if _manifest_matches(out_dir, params):
            return out_dir
        raise
    return out_dir


def _write_catalog(folder: Path, params: dict[str, Any]) -> None:
    """Generate every file into ``folder``; the manifest goes last so it marks a complete catalog."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(params["seed"]).spawn(4)]
    product_rng, image_rng, shopper_rng, review_rng = streams
    products = make_products(product_rng, params["n_products"])
    write_images(folder / "images", products, image_rng, params["image_size"])
    shoppers = make_shoppers(shopper_rng, params["n_users"])
    events = simulate_events(shopper_rng, shoppers, products)
    reviews = make_reviews(review_rng, events, shoppers, products)
    if params.get("review_photos"):  # a stream of its own: the other files stay what they are without photos
        photo_rng = np.random.default_rng(np.random.SeedSequence(params["seed"]).spawn(5)[4])
        write_review_photos(folder / "images" / "reviews", reviews, products, photo_rng, params["image_size"],
                            params["review_photos"])
    _write_csv(folder / "products.csv", PRODUCT_COLUMNS, [product_row(p) for p in products])
    _write_csv(folder / "interactions.csv", INTERACTION_COLUMNS, [event_row(e) for e in events])
    _write_jsonl(folder / "reviews.jsonl", reviews)
    (folder / "README.txt").write_text(_readme(params, len(events), len(reviews)), encoding="utf-8")
    manifest = _manifest(params, shoppers, len(events), len(reviews))
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------- writers


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """UTF-8, ``\\n`` line ends and preformatted numbers, so the bytes depend on the seed only."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_jsonl(path: Path, records: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        for record in records:
            keys = (*REVIEW_KEYS, "image") if "image" in record else REVIEW_KEYS
            f.write(json.dumps({k: record[k] for k in keys}, ensure_ascii=False) + "\n")


def _manifest(params: dict[str, Any], shoppers: Sequence[Shopper], n_events: int, n_reviews: int) -> dict[str, Any]:
    """Parameters for reuse checks, plus the ground truth tests and demos compare models against."""
    grid: dict[str, dict[str, str]] = {}
    for (shape, material), category in CATEGORY_GRID.items():
        grid.setdefault(shape, {})[material] = category
    return {
        "source": SOURCE,
        "generator": "tuwen.ingest.synthetic",
        "generator_version": GENERATOR_VERSION,
        "params": params,
        "counts": {"products": params["n_products"], "users": len(shoppers), "interactions": n_events,
                   "reviews": n_reviews},
        "category_grid": grid,
        "categories": sorted(set(CATEGORY_GRID.values())),
        "shapes": list(SHAPES),
        "colours": {name: {"rgb": list(rgb), "zh": zh} for name, (rgb, zh) in COLOURS.items()},
        "materials": {name: {"zh": zh, "base_price": base} for name, (zh, base) in MATERIALS.items()},
        "patterns": {name: {"en": en, "zh": zh, "price_multiplier": m} for name, (en, zh, m) in PATTERNS.items()},
        "sizes": {name: {"zh": zh, "price_multiplier": m} for name, (zh, m, _) in SIZES.items()},
        "currency": CURRENCY,
        "time_range": {"start": iso(START), "days": HORIZON_DAYS},
        "users": [
            {
                "id": s.id,
                "category_preference": {k: round(v, 4) for k, v in s.category_pref.items()},
                "colour_preference": {k: round(v, 4) for k, v in s.colour_pref.items()},
            }
            for s in shoppers
        ],
    }


def _readme(params: dict[str, Any], n_events: int, n_reviews: int) -> str:
    grid = "\n".join(f"  {shape:<9} + {material:<8} -> {cat}" for (shape, material), cat in CATEGORY_GRID.items())
    photos = ""
    if params.get("review_photos"):
        photos = (f", image (a photo with {params['review_photos']:.0%} of the reviews, in images/reviews/: the "
                  "product, damaged mostly in 1-2 star reviews)")
    return f"""SYNTHETIC CATALOG - NOT REAL PRODUCTS, SHOPPERS OR REVIEWS

Generated by tuwen.ingest.synthetic (generator version {GENERATOR_VERSION}) with
n_products={params["n_products"]}, n_users={params["n_users"]}, seed={params["seed"]},
image_size={params["image_size"]}. Every id starts with "syn-"; the same seed gives identical files.

Files
  products.csv      {params["n_products"]} products: {",".join(PRODUCT_COLUMNS)}
  images/           one PNG per product: a coloured shape with a pattern on white
  interactions.csv  {n_events} events: {",".join(INTERACTION_COLUMNS)} (UTC, ISO 8601)
  reviews.jsonl     {n_reviews} reviews: {", ".join(REVIEW_KEYS)}{photos}
  {MANIFEST}    parameters and ground truth (category grid, price model, shopper tastes)

The category is a function of (shape, material). The shape is visible only in the photo and the
material is named only in the text, so neither modality alone determines the category:
{grid}
The colour is named in about half of the titles and is otherwise visible only in the photo.
About 30% of titles, descriptions and reviews are in Chinese.
"""
