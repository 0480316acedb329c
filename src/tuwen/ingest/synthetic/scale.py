"""A SYNTHETIC catalog at a real shop's size: up to millions of products and tens of millions of purchases.

Why apart from :func:`tuwen.ingest.synthetic.generate_catalog`: that one draws every product and event in a
Python loop with a ground truth per shopper, which is right for tests and demos and hopeless at 30M
purchases. This one draws everything with vectorised numpy, writes the files in chunks with Arrow's CSV writer
(memory bounded by one chunk of shoppers, whatever the totals) and keeps the shape of the H&M sample that the
benchmarks compare against:

* power-law (Zipf) product popularity, within product types that shoppers prefer;
* a repeat-purchase rate (a shopper buys an article bought before) near the H&M sample's;
* weekly seasonality (more purchases at the end of the week) and a yearly wave over two years;
* heavy-tailed shopper activity: many shoppers buy once or twice, a few hundreds of times;
* product types, groups and colours as columns, bilingual (English / Chinese) titles and descriptions;
* photos optional and few (``photos=N`` draws plain colour swatches for the first N products).

It is a benchmark input, generated once and reused: a folder whose ``synthetic.json`` records the same
parameters is returned untouched. Ingest it with ``tuwen ingest WS --preset synthetic FOLDER``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from tuwen.ingest.synthetic.api import _check_replaceable, _publish
from tuwen.ingest.synthetic.world import COLOURS, MANIFEST, SOURCE

SCALE_GENERATOR_VERSION = 1
SCALE_PRODUCT_COLUMNS = ("id", "title", "description", "image", "category", "product_type", "colour", "material",
                         "price", "currency")
SCALE_EVENT_COLUMNS = ("user_id", "product_id", "timestamp", "kind", "value")
SHOPPERS_PER_CHUNK = 50_000
PRODUCTS_PER_CHUNK = 200_000

# group -> [(type in English, type in Chinese, median price)]
PRODUCT_TYPES: dict[str, list[tuple[str, str, float]]] = {
    "Ladieswear": [("Dress", "连衣裙", 199.0), ("Blouse", "女衬衫", 129.0), ("Skirt", "半身裙", 149.0),
                   ("Cardigan", "开衫", 179.0), ("Leggings", "打底裤", 79.0), ("Bra", "文胸", 99.0)],
    "Menswear": [("Shirt", "衬衫", 159.0), ("Trousers", "长裤", 199.0), ("Jacket", "夹克", 399.0),
                 ("Hoodie", "连帽衫", 229.0), ("Shorts", "短裤", 99.0), ("Polo", "翻领衫", 129.0)],
    "Divided": [("T-shirt", "T恤", 59.0), ("Jeans", "牛仔裤", 249.0), ("Sweater", "毛衣", 199.0),
                ("Top", "上衣", 69.0), ("Vest", "背心", 49.0)],
    "Baby/Children": [("Romper", "连体衣", 89.0), ("Bodysuit", "包屁衣", 69.0), ("Kids dress", "童裙", 99.0),
                      ("Kids trousers", "童裤", 89.0)],
    "Sport": [("Sports bra", "运动文胸", 149.0), ("Running tights", "跑步紧身裤", 199.0),
              ("Training top", "训练上衣", 129.0)],
    "Accessories": [("Socks", "袜子", 29.0), ("Scarf", "围巾", 99.0), ("Bag", "包", 199.0), ("Hat", "帽子", 79.0),
                    ("Earrings", "耳环", 49.0), ("Belt", "腰带", 89.0)],
}
FABRICS = {"cotton": "纯棉", "denim": "牛仔布", "wool": "羊毛", "jersey": "针织", "linen": "亚麻",
           "viscose": "粘胶纤维"}
FITS = (("Slim fit", "修身"), ("Relaxed fit", "宽松"), ("Regular fit", "常规版型"), ("Oversized", "廓形"))
EN_DETAILS = ("Soft {f}, {fit_l}.", "Made of {f}.", "Machine washable.", "Easy to combine.",
              "With pockets.", "Ribbed trims.", "Part of our conscious collection.", "Fully lined.")
ZH_DETAILS = ("{f}面料，{fit}。", "可机洗。", "百搭。", "带口袋。", "罗纹收边。", "环保系列。", "全衬里。")
BRAND_PARTS = ("lu", "mo", "ra", "ka", "zen", "vi", "ta", "no", "shi", "ya", "el", "qi", "ro", "ba", "fen", "li",
               "sa", "do", "mi", "ke")
CHINESE_SHARE = 0.3
ZIPF_EXPONENT = 1.0  # popularity of the k-th product of its type ∝ k^-a
TASTE_SHARE = 0.6  # of purchases made in one of the shopper's two favourite product types
REPEAT_SHARE = 0.12  # of purchases that repeat the shopper's previous article
START_DAY = np.datetime64("2018-09-20", "D")
DAYS = 711  # 2018-09-20 .. 2020-08-31, as in the H&M sample
WEEKDAY_WEIGHT = (0.95, 0.9, 1.05, 1.05, 1.1, 1.15, 1.0)  # Monday .. Sunday
CURRENCY = "CNY"


def generate_scale_catalog(out_dir: Path | str, n_products: int, n_shoppers: int, n_purchases: int, seed: int = 0,
                           photos: int = 0, progress: Callable[[str, int, int], None] | None = None) -> Path:
    """Write (or reuse) a SYNTHETIC catalog of this size in ``out_dir``: products.csv, interactions.csv, a
    README and ``synthetic.json``; built in a temporary sibling folder and renamed into place.

    ``progress(stage, done, total)`` is called after each written chunk, for a progress bar.
    """
    for name, value in (("products", n_products), ("shoppers", n_shoppers)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if n_purchases < 0 or photos < 0:
        raise ValueError("purchases and photos must not be negative")
    out_dir = Path(out_dir)
    params = {"n_products": n_products, "n_shoppers": n_shoppers, "n_purchases": n_purchases, "seed": seed,
              "photos": min(photos, n_products)}
    if _matches(out_dir, params):
        return out_dir
    _check_replaceable(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.scale-tmp-", dir=out_dir.parent))
    try:
        counts = _write(tmp, params, progress or (lambda stage, done, total: None))
        manifest = {"source": SOURCE, "generator": "tuwen.ingest.synthetic.scale",
                    "generator_version": SCALE_GENERATOR_VERSION, "params": params, "counts": counts,
                    "shape": {"zipf_exponent": ZIPF_EXPONENT, "taste_share": TASTE_SHARE,
                              "repeat_share": REPEAT_SHARE, "weekday_weight": list(WEEKDAY_WEIGHT),
                              "start": str(START_DAY), "days": DAYS}}
        (tmp / "README.txt").write_text(_readme(params, counts), encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        return _publish(tmp, out_dir, params)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _matches(folder: Path, params: dict[str, int]) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return manifest.get("params") == params and manifest.get("generator_version") == SCALE_GENERATOR_VERSION \
        and manifest.get("generator") == "tuwen.ingest.synthetic.scale"


# ------------------------------------------------------------------------------------------------ the world


class _Catalog:
    """The product-side arrays every chunk of shoppers samples from (ids are positions)."""

    def __init__(self, rng: np.random.Generator, n: int):
        self.types = [(group, *entry) for group, entries in PRODUCT_TYPES.items() for entry in entries]
        type_share = rng.dirichlet(np.full(len(self.types), 3.0))
        self.type_of = np.sort(rng.choice(len(self.types), size=n, p=type_share)).astype(np.int32)
        # Products are laid out by type; inside a type, the k-th product has popularity k^-a (a shuffled rank).
        starts = np.searchsorted(self.type_of, np.arange(len(self.types) + 1))
        popularity = np.empty(n)
        for t in range(len(self.types)):
            size = starts[t + 1] - starts[t]
            popularity[starts[t]:starts[t + 1]] = rng.permutation(np.arange(1, size + 1) ** -ZIPF_EXPONENT)
        popularity *= rng.lognormal(0.0, 0.3, size=len(self.types))[self.type_of]
        self.cdf = np.cumsum(popularity)
        self.cdf /= self.cdf[-1]
        self.type_lo = np.concatenate([[0.0], self.cdf])[starts[:-1]]
        self.type_hi = self.cdf[np.maximum(starts[1:] - 1, 0)]
        self.type_share = np.bincount(self.type_of, minlength=len(self.types)) / n
        self.order = rng.permutation(n).astype(np.int32)  # position -> product number, so ids don't reveal type
        self.n = n

    def sample(self, rng: np.random.Generator, types: np.ndarray | None, size: int) -> np.ndarray:
        """Product numbers drawn by popularity, inside ``types`` (one per draw) when given."""
        u = rng.random(size)
        if types is not None:
            u = self.type_lo[types] + u * (self.type_hi[types] - self.type_lo[types])
        return self.order[np.minimum(np.searchsorted(self.cdf, u, side="right"), self.n - 1)]


def _write(folder: Path, params: dict[str, int], progress: Callable[[str, int, int], None]) -> dict[str, int]:
    product_rng, shopper_rng, image_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(params["seed"])
                                           .spawn(3))
    catalog = _Catalog(product_rng, params["n_products"])
    _write_products(folder, catalog, product_rng, params, progress)
    if params["photos"]:
        _write_photos(folder / "images", catalog, image_rng, params["photos"])
    n_events = _write_events(folder / "interactions.csv", catalog, shopper_rng, params, progress)
    return {"products": params["n_products"], "shoppers": params["n_shoppers"], "interactions": n_events,
            "photos": params["photos"]}


def _width(n: int) -> int:
    return max(7, len(str(n)))


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    return pa.array(np.char.add(prefix, np.char.zfill((numbers + 1).astype(str), width)).tolist(), pa.string())


def _pick(rng: np.random.Generator, items: tuple[str, ...] | list[str], size: int) -> np.ndarray:
    return np.asarray(items, dtype=object)[rng.integers(len(items), size=size)]


def _write_products(folder: Path, catalog: _Catalog, rng: np.random.Generator, params: dict[str, int],
                    progress: Callable[[str, int, int], None]) -> None:
    n, width = params["n_products"], _width(params["n_products"])
    colours = list(COLOURS)
    fabrics = list(FABRICS)
    brands = sorted({"".join(rng.choice(BRAND_PARTS, size=int(rng.integers(2, 4)))).capitalize()
                     for _ in range(400)})
    # Product number -> position in the catalog's layout (its type).
    position = np.empty(n, dtype=np.int64)
    position[catalog.order] = np.arange(n)
    schema = pa.schema([(name, pa.string()) for name in SCALE_PRODUCT_COLUMNS])
    options = pacsv.WriteOptions(quoting_style="needed")
    with pacsv.CSVWriter(folder / "products.csv", schema, write_options=options) as writer:
        for lo in range(0, n, PRODUCTS_PER_CHUNK):
            numbers = np.arange(lo, min(n, lo + PRODUCTS_PER_CHUNK))
            writer.write_table(_product_chunk(rng, catalog, numbers, position, width, colours, fabrics, brands,
                                              params["photos"], schema))
            progress("products", int(numbers[-1]) + 1, n)


def _two_distinct(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """Two different sentence numbers per product, so a description never repeats itself."""
    first = rng.integers(n, size=size)
    return np.stack([first, (first + rng.integers(1, n, size=size)) % n], axis=1)


def _product_chunk(rng: np.random.Generator, catalog: _Catalog, numbers: np.ndarray, position: np.ndarray,
                   width: int, colours: list[str], fabrics: list[str], brands: list[str], photos: int,
                   schema: pa.Schema) -> pa.Table:
    size = len(numbers)
    types = catalog.type_of[position[numbers]]
    colour = np.asarray(colours, dtype=object)[rng.integers(len(colours), size=size)]
    fabric = np.asarray(fabrics, dtype=object)[rng.integers(len(fabrics), size=size)]
    fit = rng.integers(len(FITS), size=size)
    brand = _pick(rng, brands, size)
    model = rng.integers(100, 1000, size=size)
    chinese = rng.random(size) < CHINESE_SHARE
    named_colour = rng.random(size) < 0.7
    details = _two_distinct(rng, len(EN_DETAILS), size)
    zh_details = _two_distinct(rng, len(ZH_DETAILS), size)
    titles, descriptions, categories, type_names = [], [], [], []
    for i in range(size):
        group, en_type, zh_type, _ = catalog.types[types[i]]
        c, f, fit_en, fit_zh = colour[i], fabric[i], *FITS[fit[i]]
        if chinese[i]:
            zh_colour = COLOURS[c][1] if named_colour[i] else ""
            titles.append(f"{brand[i]} {zh_colour}{FABRICS[f]}{zh_type} {model[i]}")
            descriptions.append("".join(ZH_DETAILS[k].format(f=FABRICS[f], fit=fit_zh) for k in zh_details[i]))
        else:
            words = f"{c.capitalize()} {f}" if named_colour[i] else f.capitalize()
            titles.append(f"{brand[i]} {words} {en_type.lower()} {model[i]}")
            descriptions.append(" ".join(EN_DETAILS[k].format(f=f, fit_l=fit_en.lower()) for k in details[i]))
        categories.append(f"{group} > {en_type}")
        type_names.append(en_type)
    medians = np.array([entry[3] for entry in catalog.types])[types]
    price = np.round(np.maximum(1.0, medians * rng.lognormal(0.0, 0.35, size=size)), 2)
    image = np.where(numbers < photos, np.char.add(np.char.add("images/p", numbers.astype(str)), ".png"), "")
    columns = {
        "id": _ids("syn-", numbers, width), "title": titles, "description": descriptions, "image": image.tolist(),
        "category": categories, "product_type": type_names, "colour": colour.tolist(),
        "material": fabric.tolist(), "price": [f"{p:.2f}" for p in price], "currency": [CURRENCY] * size,
    }
    return pa.table(columns, schema=schema)


def _write_photos(folder: Path, catalog: _Catalog, rng: np.random.Generator, count: int) -> None:
    """Plain colour swatches with a lighter band: photos for the few products a photo benchmark needs."""
    from PIL import Image

    folder.mkdir()
    rgb = np.array([value[0] for value in COLOURS.values()], dtype=np.int16)
    for number in range(count):
        base = rgb[rng.integers(len(rgb))] + rng.integers(-12, 13, size=3)
        pixels = np.empty((64, 64, 3), dtype=np.int16)
        pixels[:] = base
        band = int(rng.integers(8, 48))
        pixels[band:band + 8] = (pixels[band:band + 8] + 255) // 2
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(folder / f"p{number}.png")


# --------------------------------------------------------------------------------------------------- events


def _activity(rng: np.random.Generator, n_shoppers: int, n_purchases: int) -> np.ndarray:
    """Purchases per shopper: heavy-tailed (lognormal weights), every shopper at least one while there are enough."""
    base = 1 if n_purchases >= n_shoppers else 0
    weights = rng.lognormal(0.0, 1.2, size=n_shoppers)
    return base + rng.multinomial(n_purchases - base * n_shoppers, weights / weights.sum())


def _days(rng: np.random.Generator, size: int) -> np.ndarray:
    """Purchase days with weekly seasonality and a yearly wave (summer and December peaks)."""
    day = np.arange(DAYS)
    weekday = (day + START_DAY.astype(np.int64) + 3) % 7  # Monday = 0; 1970-01-01 was a Thursday
    weight = np.asarray(WEEKDAY_WEIGHT)[weekday] * (1.0 + 0.25 * np.cos(2 * np.pi * (day - 270) / 365.25))
    return rng.choice(DAYS, size=size, p=weight / weight.sum())


def _write_events(path: Path, catalog: _Catalog, rng: np.random.Generator, params: dict[str, int],
                  progress: Callable[[str, int, int], None]) -> int:
    n_shoppers, total = params["n_shoppers"], params["n_purchases"]
    counts = _activity(rng, n_shoppers, total)
    width = _width(n_shoppers)
    product_width = _width(params["n_products"])
    schema = pa.schema([(name, pa.string()) for name in SCALE_EVENT_COLUMNS])
    written = 0
    path.write_text(",".join(SCALE_EVENT_COLUMNS) + "\n", encoding="utf-8")
    options = pacsv.WriteOptions(quoting_style="none", include_header=False)
    with path.open("ab") as sink, pacsv.CSVWriter(sink, schema, write_options=options) as writer:
        for lo in range(0, n_shoppers, SHOPPERS_PER_CHUNK):
            hi = min(n_shoppers, lo + SHOPPERS_PER_CHUNK)
            table = _event_chunk(rng, catalog, np.arange(lo, hi), counts[lo:hi], width, product_width, schema)
            if table.num_rows:
                writer.write_table(table)
            written += table.num_rows
            progress("purchases", written, total)
    return written


def _event_chunk(rng: np.random.Generator, catalog: _Catalog, shoppers: np.ndarray, counts: np.ndarray,
                 width: int, product_width: int, schema: pa.Schema) -> pa.Table:
    size = int(counts.sum())
    user = np.repeat(shoppers, counts)
    # Two favourite types per shopper, drawn by how much of the catalog each type holds.
    favourite = rng.choice(len(catalog.types), size=(len(shoppers), 2), p=catalog.type_share)
    local = np.repeat(np.arange(len(shoppers)), counts)
    by_taste = rng.random(size) < TASTE_SHARE
    product = catalog.sample(rng, None, size)
    chosen = favourite[local[by_taste], rng.integers(2, size=int(by_taste.sum()))]
    product[by_taste] = catalog.sample(rng, chosen, int(by_taste.sum()))
    seconds = _days(rng, size).astype(np.int64) * 86_400 + rng.integers(8 * 3600, 22 * 3600, size=size)
    order = np.lexsort((seconds, local))  # each shopper's purchases in time order
    user, local, product, seconds = user[order], local[order], product[order], seconds[order]
    # A repeat buys the article of the shopper's previous purchase again (never the first one).
    first = np.ones(size, dtype=bool)
    first[1:] = local[1:] != local[:-1]
    repeat = (rng.random(size) < REPEAT_SHARE) & ~first
    source = np.where(repeat, 0, np.arange(size))
    np.maximum.accumulate(source, out=source)
    product = product[source]
    value = np.where(rng.random(size) < 0.92, "1.0", "2.0")
    stamps = np.datetime_as_string(START_DAY.astype("datetime64[s]") + seconds, unit="s", timezone="UTC")
    columns = {"user_id": _ids("syn-u", user, width), "product_id": _ids("syn-", product, product_width),
               "timestamp": stamps.tolist(), "kind": ["purchase"] * size, "value": value.tolist()}
    return pa.table(columns, schema=schema)


def _readme(params: dict[str, int], counts: dict[str, Any]) -> str:
    return f"""SYNTHETIC CATALOG AT SCALE - NOT REAL PRODUCTS OR SHOPPERS

Generated by tuwen.ingest.synthetic.scale (version {SCALE_GENERATOR_VERSION}) with
products={params["n_products"]}, shoppers={params["n_shoppers"]}, purchases={params["n_purchases"]},
seed={params["seed"]}, photos={params["photos"]}. Every id starts with "syn-".

Files
  products.csv      {counts["products"]} products: {",".join(SCALE_PRODUCT_COLUMNS)}
  interactions.csv  {counts["interactions"]} purchases: {",".join(SCALE_EVENT_COLUMNS)} (UTC, ISO 8601)
  images/           {params["photos"]} colour swatches (only when photos > 0)
  {MANIFEST}    parameters and the shape of the purchase process

Shape: Zipf popularity (exponent {ZIPF_EXPONENT}) inside product types; {TASTE_SHARE:.0%} of purchases in one of
the shopper's two favourite types; {REPEAT_SHARE:.0%} repeat the shopper's previous article; weekly and yearly
seasonality over {DAYS} days from {START_DAY}; about {CHINESE_SHARE:.0%} of titles in Chinese.
"""
