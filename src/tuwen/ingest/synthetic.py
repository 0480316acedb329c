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

from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageDraw

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

# Bump whenever the same parameters would produce different files, so cached catalogs are rebuilt.
GENERATOR_VERSION = 1
SOURCE = "synthetic"
MANIFEST = "synthetic.json"

PRODUCT_COLUMNS = (
    "id",
    "title",
    "description",
    "image",
    "category",
    "colour",
    "shape",
    "pattern",
    "material",
    "price",
    "currency",
)
INTERACTION_COLUMNS = ("user_id", "product_id", "timestamp", "kind", "value")
REVIEW_KEYS = ("id", "product_id", "user_id", "rating", "text", "timestamp")

# name -> (RGB, Chinese). Far apart in RGB so the drawn colour is unambiguous in the photo.
COLOURS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red": ((214, 39, 40), "红色"),
    "orange": ((245, 130, 32), "橙色"),
    "yellow": ((238, 200, 30), "黄色"),
    "green": ((44, 160, 70), "绿色"),
    "blue": ((31, 90, 200), "蓝色"),
    "purple": ((128, 60, 170), "紫色"),
    "pink": ((240, 110, 170), "粉色"),
    "black": ((30, 30, 30), "黑色"),
}
# name -> (Chinese, base price in CNY). Glass is the expensive one, cotton the cheap one.
MATERIALS: dict[str, tuple[str, float]] = {
    "ceramic": ("陶瓷", 68.0),
    "glass": ("玻璃", 98.0),
    "cotton": ("纯棉", 49.0),
}
# name -> (English words used in text, Chinese, price multiplier)
PATTERNS: dict[str, tuple[str, str, float]] = {
    "solid": ("solid colour", "纯色", 1.0),
    "stripes": ("stripes", "条纹", 1.1),
    "dots": ("polka dots", "波点", 1.15),
    "checks": ("checks", "格子", 1.2),
}
# name -> (Chinese, price multiplier, radius as a fraction of half the image). Size is visible in the photo.
SIZES: dict[str, tuple[str, float, float]] = {
    "small": ("小号", 0.8, 0.50),
    "medium": ("中号", 1.0, 0.64),
    "large": ("大号", 1.3, 0.78),
}
SHAPES = ("circle", "square", "triangle", "star")

# The ground truth that makes the two modalities complementary. Every shape row holds three different
# categories and every material column at least three, so shape alone or material alone gets at most half
# of the categories right, while (shape, material) determines it exactly.
CATEGORY_GRID: dict[tuple[str, str], str] = {
    ("circle", "ceramic"): "Home > Mugs",
    ("circle", "glass"): "Home > Vases",
    ("circle", "cotton"): "Apparel > Tops",
    ("square", "ceramic"): "Home > Plates",
    ("square", "glass"): "Home > Mugs",
    ("square", "cotton"): "Apparel > Bags",
    ("triangle", "ceramic"): "Home > Vases",
    ("triangle", "glass"): "Home > Lamps",
    ("triangle", "cotton"): "Apparel > Scarves",
    ("star", "ceramic"): "Home > Lamps",
    ("star", "glass"): "Home > Plates",
    ("star", "cotton"): "Apparel > Tops",
}

START = datetime(2024, 1, 1, tzinfo=UTC)
HORIZON_DAYS = 120
CURRENCY = "CNY"
CHINESE_SHARE = 0.3  # of product titles/descriptions, and of reviews

# Shopper behaviour: purchases dominate; browsing is noisier than buying.
EVENT_KINDS = ("purchase", "view", "click", "cart")
EVENT_PROBS = (0.55, 0.22, 0.13, 0.10)
PREFERENCE_FOLLOW = {"purchase": 0.8, "view": 0.5, "click": 0.5, "cart": 0.7}
REVIEW_SHARE = 0.45  # of purchases that get a review

_BRAND_SYLLABLES = ("lu", "mo", "ra", "ka", "zen", "vi", "ta", "no", "shi", "ya", "el", "qi", "ro", "ba", "fen", "li")
_EN_NOUNS = ("Piece", "Item", "Design", "Classic", "Edition", "Essential", "Original", "Collection")
_EN_MARKETING = ("New", "2024", "Gift", "Hot Sale", "Premium", "Handmade", "Limited", "Best Seller", "Free Shipping")
_ZH_NOUNS = ("单品", "好物", "精选", "新品", "经典款")
_ZH_MARKETING = ("新款", "2024", "热卖", "包邮", "限量", "爆款", "礼物")
_EN_MATERIAL_SENTENCES = ("Made of {m}.", "Crafted from quality {m}.", "{M} construction.", "Material: {m}.")
_EN_PATTERN_SENTENCES = ("{P} pattern.", "Features a {p} design.", "Pattern: {p}.")
_EN_SIZE_SENTENCES = ("Size: {s}.", "{S} size.")
_EN_FILLERS = (
    "Perfect as a gift.",
    "Ships within 48 hours.",
    "Easy to care for.",
    "Limited stock.",
    "A customer favourite.",
    "Designed in Hangzhou.",
    "Satisfaction guaranteed.",
)
_ZH_MATERIAL_SENTENCES = ("材质：{m}。", "{m}材质，品质保证。", "精选{m}。")
_ZH_PATTERN_SENTENCES = ("图案：{p}。", "{p}设计。")
_ZH_SIZE_SENTENCES = ("尺寸：{s}。", "{s}。")
_ZH_FILLERS = ("送礼佳品。", "48小时内发货。", "限时优惠。", "好评如潮。", "易于打理。", "杭州设计。")

_REVIEW_TEMPLATES_EN: dict[int, tuple[str, ...]] = {
    5: ("Absolutely love it!", "Perfect, exactly as pictured.", "Five stars, would buy again.",
        "Excellent quality, the {m} feels great."),
    4: ("Really nice, happy with it.", "Good quality for the price.", "Pretty good, only minor flaws.",
        "Nice {m}, fast delivery."),
    3: ("It's okay.", "Average, nothing special.", "Decent but not what I expected.",
        "Fine I guess, the {m} is so-so."),
    2: ("Not great, a bit disappointed.", "Quality is poor.", "Looks different from the photo.",
        "Would not buy again."),
    1: ("Terrible, returning it.", "Broke after one day.", "Complete waste of money.", "Awful, the {m} feels cheap."),
}
_REVIEW_TEMPLATES_ZH: dict[int, tuple[str, ...]] = {
    5: ("非常喜欢！", "质量很好，和图片一样。", "五星好评，还会回购。", "{m}质感很棒。"),
    4: ("挺好的，满意。", "性价比不错。", "还不错，有小瑕疵。", "物流很快，{m}不错。"),
    3: ("一般般。", "还行吧，没什么特别。", "和预期有点差距。", "凑合用。"),
    2: ("不太好，有点失望。", "质量偏差。", "和图片不一样。", "不会再买了。"),
    1: ("太差了，退货。", "用了一天就坏了。", "完全浪费钱。", "{m}很廉价，差评。"),
}
_REVIEW_FILLERS_EN = ("Bought it for my sister.", "Arrived in three days.", "Packaging was fine.", "Second order.")
_REVIEW_FILLERS_ZH = ("给朋友买的。", "三天就到了。", "包装还可以。", "第二次购买。")

T = TypeVar("T")


@dataclass(frozen=True)
class _Product:
    """One generated product: the CSV row plus the latent attributes the photo and the shoppers need."""

    id: str
    title: str
    description: str
    category: str
    colour: str
    shape: str
    pattern: str
    material: str
    size: str
    price: float

    @property
    def image(self) -> str:
        return f"images/{self.id}.png"


@dataclass(frozen=True)
class _Shopper:
    """A simulated user whose taste is a product of a category and a colour distribution."""

    id: str
    category_pref: dict[str, float]
    colour_pref: dict[str, float]

    def affinity(self, product: _Product) -> float:
        return self.category_pref[product.category] * self.colour_pref[product.colour]


@dataclass(frozen=True)
class _Event:
    user_id: str
    product_id: str
    time: datetime
    kind: str
    value: float


# ----------------------------------------------------------------------------------------------- public API


def generate_catalog(
    out_dir: Path | str,
    n_products: int = 400,
    n_users: int = 60,
    seed: int = 0,
    image_size: int = 96,
) -> Path:
    """Write a SYNTHETIC catalog into ``out_dir`` and return its path.

    The catalog is built in a temporary sibling folder and renamed into place, so a crash never
    leaves half a catalog behind. When ``out_dir`` already holds a catalog made with the same
    parameters (and generator version) it is returned untouched; a synthetic catalog made with
    other parameters is replaced; any other non-empty folder is refused rather than deleted.
    """
    _validate(n_products, n_users, image_size)
    out_dir = Path(out_dir)
    params = {"n_products": n_products, "n_users": n_users, "seed": seed, "image_size": image_size}
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


def _manifest_matches(folder: Path, params: dict[str, int]) -> bool:
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


def _publish(tmp: Path, out_dir: Path, params: dict[str, int]) -> Path:
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


def _write_catalog(folder: Path, params: dict[str, int]) -> None:
    """Generate every file into ``folder``; the manifest goes last so it marks a complete catalog."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(params["seed"]).spawn(4)]
    product_rng, image_rng, shopper_rng, review_rng = streams
    products = _make_products(product_rng, params["n_products"])
    _write_images(folder / "images", products, image_rng, params["image_size"])
    shoppers = _make_shoppers(shopper_rng, params["n_users"])
    events = _simulate_events(shopper_rng, shoppers, products)
    reviews = _make_reviews(review_rng, events, shoppers, products)
    _write_csv(folder / "products.csv", PRODUCT_COLUMNS, [_product_row(p) for p in products])
    _write_csv(folder / "interactions.csv", INTERACTION_COLUMNS, [_event_row(e) for e in events])
    _write_jsonl(folder / "reviews.jsonl", reviews)
    (folder / "README.txt").write_text(_readme(params, len(events), len(reviews)), encoding="utf-8")
    manifest = _manifest(params, shoppers, len(events), len(reviews))
    (folder / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------ products


def _pick(rng: np.random.Generator, items: Sequence[T]) -> T:
    """One uniformly chosen element, as the original Python object (``rng.choice`` returns numpy scalars)."""
    return items[int(rng.integers(len(items)))]


def _balanced(rng: np.random.Generator, n_items: int, n: int) -> np.ndarray:
    """Indices 0..n_items-1 repeated evenly and shuffled, so even a tiny catalog covers every value."""
    return rng.permutation(np.resize(np.arange(n_items), n))


def _make_brands(rng: np.random.Generator, n: int = 24) -> list[str]:
    """Brand-like nonsense words: noise that a model must learn to ignore."""
    brands: list[str] = []
    while len(brands) < n:
        word = "".join(_pick(rng, _BRAND_SYLLABLES) for _ in range(int(rng.integers(2, 4)))).capitalize()
        if word not in brands:
            brands.append(word)
    return brands


def _make_products(rng: np.random.Generator, n: int) -> list[_Product]:
    cells = list(CATEGORY_GRID)
    colours = list(COLOURS)
    cell_idx = _balanced(rng, len(cells), n)
    colour_idx = _balanced(rng, len(colours), n)
    brands = _make_brands(rng)
    width = max(4, len(str(n)))
    products = []
    for i in range(n):
        shape, material = cells[cell_idx[i]]
        colour = colours[colour_idx[i]]
        pattern = _pick(rng, list(PATTERNS))
        size = _pick(rng, list(SIZES))
        chinese = rng.random() < CHINESE_SHARE
        brand = _pick(rng, brands)
        name_colour = rng.random() < 0.5
        if chinese:
            title = _title_zh(rng, brand, colour if name_colour else None, material, pattern)
            description = _description_zh(rng, material, pattern, size)
        else:
            title = _title_en(rng, brand, colour if name_colour else None, material, pattern)
            description = _description_en(rng, material, pattern, size)
        products.append(
            _Product(
                id=f"syn-{i + 1:0{width}d}",
                title=title,
                description=description,
                category=CATEGORY_GRID[(shape, material)],
                colour=colour,
                shape=shape,
                pattern=pattern,
                material=material,
                size=size,
                price=_price(rng, material, pattern, size),
            )
        )
    return products


def _typo(rng: np.random.Generator, word: str) -> str:
    """Swap, drop or double one letter: the kind of noise real marketplace titles are full of."""
    if len(word) < 4 or not word.isascii():
        return word
    i = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(3))
    if op == 0:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if op == 1:
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _title_en(rng: np.random.Generator, brand: str, colour: str | None, material: str, pattern: str) -> str:
    """Brand, maybe the colour, the material, maybe the pattern and some marketing noise; never the shape."""
    words = [brand]
    if colour is not None:
        words.append(colour.capitalize())
    material_at = len(words)
    words.append(material.capitalize())
    if rng.random() < 0.4:
        words.append({"solid": "Plain", "stripes": "Striped", "dots": "Polka-Dot", "checks": "Checked"}[pattern])
    words.append(_pick(rng, _EN_NOUNS))
    if rng.random() < 0.5:
        words.append(_pick(rng, _EN_MARKETING))
    if rng.random() < 0.2:
        words.insert(0, _pick(rng, _EN_MARKETING))
        material_at += 1
    if rng.random() < 0.15:  # a typo anywhere but in the material, which must stay readable
        j = _pick(rng, [k for k in range(len(words)) if k != material_at])
        words[j] = _typo(rng, words[j])
    title = " ".join(words)
    return title.lower() if rng.random() < 0.08 else title


def _title_zh(rng: np.random.Generator, brand: str, colour: str | None, material: str, pattern: str) -> str:
    words = [brand]
    if rng.random() < 0.4:
        words.append(_pick(rng, _ZH_MARKETING))
    if colour is not None:
        words.append(COLOURS[colour][1])
    words.append(MATERIALS[material][0])
    if rng.random() < 0.4:
        words.append(PATTERNS[pattern][1])
    words.append(_pick(rng, _ZH_NOUNS))
    return " ".join(words)


def _description_en(rng: np.random.Generator, material: str, pattern: str, size: str) -> str:
    """Material and pattern are usually, but not always, mentioned; the colour and shape never are."""
    sentences = []
    if rng.random() < 0.8:
        sentences.append(_pick(rng, _EN_MATERIAL_SENTENCES).format(m=material, M=material.capitalize()))
    if rng.random() < 0.7:
        words = PATTERNS[pattern][0]
        sentences.append(_pick(rng, _EN_PATTERN_SENTENCES).format(p=words, P=words.capitalize()))
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _EN_SIZE_SENTENCES).format(s=size, S=size.capitalize()))
    for _ in range(int(rng.integers(1, 3))):
        sentences.append(_pick(rng, _EN_FILLERS))
    return " ".join(sentences[k] for k in rng.permutation(len(sentences)))


def _description_zh(rng: np.random.Generator, material: str, pattern: str, size: str) -> str:
    sentences = []
    if rng.random() < 0.8:
        sentences.append(_pick(rng, _ZH_MATERIAL_SENTENCES).format(m=MATERIALS[material][0]))
    if rng.random() < 0.7:
        sentences.append(_pick(rng, _ZH_PATTERN_SENTENCES).format(p=PATTERNS[pattern][1]))
    if rng.random() < 0.5:
        sentences.append(_pick(rng, _ZH_SIZE_SENTENCES).format(s=SIZES[size][0]))
    for _ in range(int(rng.integers(1, 3))):
        sentences.append(_pick(rng, _ZH_FILLERS))
    return "".join(sentences[k] for k in rng.permutation(len(sentences)))


def _price(rng: np.random.Generator, material: str, pattern: str, size: str) -> float:
    """Base price per material x pattern x size multipliers x lognormal noise, so price is learnable."""
    value = MATERIALS[material][1] * PATTERNS[pattern][2] * SIZES[size][1] * float(rng.lognormal(0.0, 0.2))
    return max(1.0, round(value, 2))


def _product_row(p: _Product) -> list[str]:
    return [
        p.id, p.title, p.description, p.image, p.category, p.colour, p.shape, p.pattern, p.material,
        f"{p.price:.2f}", CURRENCY,
    ]


# -------------------------------------------------------------------------------------------------- images


def _write_images(folder: Path, products: Sequence[_Product], rng: np.random.Generator, size: int) -> None:
    folder.mkdir()
    for product in products:
        _render(product, rng, size).save(folder / f"{product.id}.png", format="PNG")


def _jitter_colour(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in rgb)
    return r, g, b


def _render(product: _Product, rng: np.random.Generator, size: int) -> Image.Image:
    """Draw the product photo at twice the size and halve it, which antialiases the edges cheaply.

    The pattern is drawn in white inside the shape and the outline in the product colour, so the
    colour dominates the non-white pixels while shape, pattern and size stay visible.
    """
    big = 2 * size
    colour = _jitter_colour(rng, COLOURS[product.colour][0])
    radius = SIZES[product.size][2] * big / 2 * float(rng.uniform(0.94, 1.04))
    slack = max(0.0, big / 2 - radius - big * 0.03)
    centre = (big / 2 + float(rng.uniform(-slack, slack)), big / 2 + float(rng.uniform(-slack, slack)))
    points = _shape_points(rng, product.shape, centre, radius)

    mask = Image.new("L", (big, big), 0)
    fill = _pattern_layer(rng, product.pattern, big, colour)
    outline = max(2, big // 48)
    canvas = Image.new("RGB", (big, big), (255, 255, 255))
    draw_mask, draw_canvas = ImageDraw.Draw(mask), ImageDraw.Draw(canvas)
    if points is None:  # circle: an ellipse with a little aspect jitter
        ry = radius * float(rng.uniform(0.95, 1.05))
        box = (centre[0] - radius, centre[1] - ry, centre[0] + radius, centre[1] + ry)
        draw_mask.ellipse(box, fill=255)
        canvas.paste(fill, (0, 0), mask)
        draw_canvas.ellipse(box, outline=colour, width=outline)
    else:
        draw_mask.polygon(points, fill=255)
        canvas.paste(fill, (0, 0), mask)
        draw_canvas.polygon(points, outline=colour, width=outline)
    return canvas.reduce(2)


def _shape_points(
    rng: np.random.Generator, shape: str, centre: tuple[float, float], radius: float
) -> list[tuple[float, float]] | None:
    """Polygon vertices for the shape, slightly rotated; ``None`` for the circle, drawn as an ellipse."""
    if shape == "circle":
        return None
    turn = math.radians(float(rng.uniform(-15, 15)))
    if shape == "star":
        radii = [radius if k % 2 == 0 else radius * 0.45 for k in range(10)]
    else:
        radii = [radius] * {"square": 4, "triangle": 3}[shape]
    n = len(radii)
    start = -math.pi / 2 + (math.pi / 4 if shape == "square" else 0.0) + turn
    return [
        (centre[0] + r * math.cos(start + 2 * math.pi * k / n), centre[1] + r * math.sin(start + 2 * math.pi * k / n))
        for k, r in enumerate(radii)
    ]


def _pattern_layer(rng: np.random.Generator, pattern: str, big: int, colour: tuple[int, int, int]) -> Image.Image:
    """A full-canvas fill in the product colour with the pattern in white, later cut out by the shape mask."""
    layer = Image.new("RGB", (big, big), colour)
    draw = ImageDraw.Draw(layer)
    white = (255, 255, 255)
    if pattern == "stripes":
        period = big * float(rng.uniform(0.09, 0.13))
        angle = math.radians(_pick(rng, (0, 45, 90, 135)))
        d, n = (math.cos(angle), math.sin(angle)), (-math.sin(angle), math.cos(angle))
        phase = float(rng.uniform(0, period))
        for k in range(-int(big / period) - 2, int(big / period) + 3):
            o = k * period + phase
            cx, cy = big / 2 + o * n[0], big / 2 + o * n[1]
            ends = [(cx - big * d[0], cy - big * d[1]), (cx + big * d[0], cy + big * d[1])]
            draw.line(ends, fill=white, width=max(1, round(period * 0.4)))
    elif pattern == "dots":
        step = big * float(rng.uniform(0.12, 0.16))
        r = step * 0.25
        ox, oy = float(rng.uniform(0, step)), float(rng.uniform(0, step))
        for i in range(int(big / step) + 2):
            for j in range(int(big / step) + 2):
                x, y = ox + i * step, oy + j * step
                draw.ellipse((x - r, y - r, x + r, y + r), fill=white)
    elif pattern == "checks":
        cell = big * float(rng.uniform(0.10, 0.14))
        ox, oy = float(rng.uniform(-cell, 0)), float(rng.uniform(-cell, 0))
        for i in range(int(big / cell) + 2):
            for j in range(int(big / cell) + 2):
                if (i + j) % 2 == 0:
                    x, y = ox + i * cell, oy + j * cell
                    draw.rectangle((x, y, x + cell, y + cell), fill=white)
    return layer


# ----------------------------------------------------------------------------------- shoppers and events


def _make_shoppers(rng: np.random.Generator, n: int) -> list[_Shopper]:
    """Sparse Dirichlet tastes: most shoppers care about one or two categories and colours."""
    categories = sorted(set(CATEGORY_GRID.values()))
    colours = list(COLOURS)
    width = max(4, len(str(n)))
    shoppers = []
    for i in range(n):
        cat = rng.dirichlet(np.full(len(categories), 0.4))
        col = rng.dirichlet(np.full(len(colours), 0.4))
        shoppers.append(
            _Shopper(
                id=f"syn-u{i + 1:0{width}d}",
                category_pref={c: float(p) for c, p in zip(categories, cat, strict=True)},
                colour_pref={c: float(p) for c, p in zip(colours, col, strict=True)},
            )
        )
    return shoppers


def _normalise(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def _simulate_events(
    rng: np.random.Generator, shoppers: Sequence[_Shopper], products: Sequence[_Product]
) -> list[_Event]:
    """Each shopper makes 5-40 events over ~120 days, choosing by taste, by popularity or by both."""
    popularity = rng.lognormal(0.0, 1.0, size=len(products))
    by_popularity = _normalise(popularity)
    events: list[_Event] = []
    for shopper in shoppers:
        affinity = np.array([shopper.affinity(p) for p in products])
        by_taste = _normalise(affinity * np.sqrt(popularity) + 1e-12)
        n_events = int(rng.integers(5, 41))
        seconds = np.sort(rng.uniform(0, HORIZON_DAYS * 86400, size=n_events))
        for t in seconds:
            kind = EVENT_KINDS[int(rng.choice(len(EVENT_KINDS), p=EVENT_PROBS))]
            weights = by_taste if rng.random() < PREFERENCE_FOLLOW[kind] else by_popularity
            product = products[int(rng.choice(len(products), p=weights))]
            value = float(rng.choice([1, 2, 3], p=[0.88, 0.09, 0.03])) if kind == "purchase" else 1.0
            time = START + timedelta(seconds=int(t))
            events.append(_Event(shopper.id, product.id, time, kind, value))
    events.sort(key=lambda e: (e.time, e.user_id, e.product_id, e.kind))
    return events


def _iso(time: datetime) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_row(e: _Event) -> list[str]:
    return [e.user_id, e.product_id, _iso(e.time), e.kind, f"{e.value:.1f}"]


# ------------------------------------------------------------------------------------------------- reviews


def _top(prefs: dict[str, float], k: int = 2) -> set[str]:
    return set(sorted(prefs, key=prefs.__getitem__, reverse=True)[:k])


def _rating(rng: np.random.Generator, shopper: _Shopper, product: _Product) -> int:
    """Higher when the product is in the shopper's favourite categories and colours, plus noise."""
    latent = 1.8 + 1.6 * (product.category in _top(shopper.category_pref))
    latent += 1.0 * (product.colour in _top(shopper.colour_pref)) + float(rng.normal(0.0, 0.7))
    return int(np.clip(round(latent), 1, 5))


def _review_text(rng: np.random.Generator, rating: int, material: str) -> str:
    """Templates for the rating, but sometimes for a neighbouring one, so text is a good, imperfect signal."""
    tone = rating
    if rng.random() < 0.15:
        tone = int(np.clip(rating + _pick(rng, (-1, 1)), 1, 5))
    chinese = rng.random() < CHINESE_SHARE
    templates = (_REVIEW_TEMPLATES_ZH if chinese else _REVIEW_TEMPLATES_EN)[tone]
    fillers = _REVIEW_FILLERS_ZH if chinese else _REVIEW_FILLERS_EN
    name = MATERIALS[material][0] if chinese else material
    sentences = [_pick(rng, templates).format(m=name) for _ in range(int(rng.integers(1, 3)))]
    if rng.random() < 0.3:
        sentences.append(_pick(rng, fillers))
    if not chinese and rng.random() < 0.1:
        words = sentences[0].split(" ")
        j = int(rng.integers(len(words)))
        words[j] = _typo(rng, words[j])
        sentences[0] = " ".join(words)
    return ("" if chinese else " ").join(dict.fromkeys(sentences))


def _make_reviews(
    rng: np.random.Generator,
    events: Sequence[_Event],
    shoppers: Sequence[_Shopper],
    products: Sequence[_Product],
) -> list[dict[str, Any]]:
    shopper_by_id = {s.id: s for s in shoppers}
    product_by_id = {p.id: p for p in products}
    reviews = []
    for event in events:
        if event.kind != "purchase" or rng.random() >= REVIEW_SHARE:
            continue
        shopper, product = shopper_by_id[event.user_id], product_by_id[event.product_id]
        rating = _rating(rng, shopper, product)
        delay = timedelta(seconds=int(rng.uniform(3600, 14 * 86400)))
        reviews.append(
            {
                "product_id": product.id,
                "user_id": shopper.id,
                "rating": rating,
                "text": _review_text(rng, rating, product.material),
                "timestamp": _iso(event.time + delay),
            }
        )
    reviews.sort(key=lambda r: (r["timestamp"], r["user_id"], r["product_id"]))
    width = max(5, len(str(len(reviews))))
    return [{"id": f"syn-r{i + 1:0{width}d}", **r} for i, r in enumerate(reviews)]


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
            f.write(json.dumps({k: record[k] for k in REVIEW_KEYS}, ensure_ascii=False) + "\n")


def _manifest(params: dict[str, int], shoppers: Sequence[_Shopper], n_events: int, n_reviews: int) -> dict[str, Any]:
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
        "time_range": {"start": _iso(START), "days": HORIZON_DAYS},
        "users": [
            {
                "id": s.id,
                "category_preference": {k: round(v, 4) for k, v in s.category_pref.items()},
                "colour_preference": {k: round(v, 4) for k, v in s.colour_pref.items()},
            }
            for s in shoppers
        ],
    }


def _readme(params: dict[str, int], n_events: int, n_reviews: int) -> str:
    grid = "\n".join(f"  {shape:<9} + {material:<8} -> {cat}" for (shape, material), cat in CATEGORY_GRID.items())
    return f"""SYNTHETIC CATALOG - NOT REAL PRODUCTS, SHOPPERS OR REVIEWS

Generated by tuwen.ingest.synthetic (generator version {GENERATOR_VERSION}) with
n_products={params["n_products"]}, n_users={params["n_users"]}, seed={params["seed"]},
image_size={params["image_size"]}. Every id starts with "syn-"; the same seed gives identical files.

Files
  products.csv      {params["n_products"]} products: {",".join(PRODUCT_COLUMNS)}
  images/           one PNG per product: a coloured shape with a pattern on white
  interactions.csv  {n_events} events: {",".join(INTERACTION_COLUMNS)} (UTC, ISO 8601)
  reviews.jsonl     {n_reviews} reviews: {", ".join(REVIEW_KEYS)}
  {MANIFEST}    parameters and ground truth (category grid, price model, shopper tastes)

The category is a function of (shape, material). The shape is visible only in the photo and the
material is named only in the text, so neither modality alone determines the category:
{grid}
The colour is named in about half of the titles and is otherwise visible only in the photo.
About 30% of titles, descriptions and reviews are in Chinese.
"""
