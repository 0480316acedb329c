"""What the SYNTHETIC world is made of: categories, colours, shapes, materials, words, price and time
constants, and the product, shopper and event records the generator passes around.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import numpy as np

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

BRAND_SYLLABLES = ("lu", "mo", "ra", "ka", "zen", "vi", "ta", "no", "shi", "ya", "el", "qi", "ro", "ba", "fen", "li")
EN_NOUNS = ("Piece", "Item", "Design", "Classic", "Edition", "Essential", "Original", "Collection")
EN_MARKETING = ("New", "2024", "Gift", "Hot Sale", "Premium", "Handmade", "Limited", "Best Seller", "Free Shipping")
ZH_NOUNS = ("单品", "好物", "精选", "新品", "经典款")
ZH_MARKETING = ("新款", "2024", "热卖", "包邮", "限量", "爆款", "礼物")
EN_MATERIAL_SENTENCES = ("Made of {m}.", "Crafted from quality {m}.", "{M} construction.", "Material: {m}.")
EN_PATTERN_SENTENCES = ("{P} pattern.", "Features a {p} design.", "Pattern: {p}.")
EN_SIZE_SENTENCES = ("Size: {s}.", "{S} size.")
EN_FILLERS = (
    "Perfect as a gift.",
    "Ships within 48 hours.",
    "Easy to care for.",
    "Limited stock.",
    "A customer favourite.",
    "Designed in Hangzhou.",
    "Satisfaction guaranteed.",
)
ZH_MATERIAL_SENTENCES = ("材质：{m}。", "{m}材质，品质保证。", "精选{m}。")
ZH_PATTERN_SENTENCES = ("图案：{p}。", "{p}设计。")
ZH_SIZE_SENTENCES = ("尺寸：{s}。", "{s}。")
ZH_FILLERS = ("送礼佳品。", "48小时内发货。", "限时优惠。", "好评如潮。", "易于打理。", "杭州设计。")

REVIEW_TEMPLATES_EN: dict[int, tuple[str, ...]] = {
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
REVIEW_TEMPLATES_ZH: dict[int, tuple[str, ...]] = {
    5: ("非常喜欢！", "质量很好，和图片一样。", "五星好评，还会回购。", "{m}质感很棒。"),
    4: ("挺好的，满意。", "性价比不错。", "还不错，有小瑕疵。", "物流很快，{m}不错。"),
    3: ("一般般。", "还行吧，没什么特别。", "和预期有点差距。", "凑合用。"),
    2: ("不太好，有点失望。", "质量偏差。", "和图片不一样。", "不会再买了。"),
    1: ("太差了，退货。", "用了一天就坏了。", "完全浪费钱。", "{m}很廉价，差评。"),
}
REVIEW_FILLERS_EN = ("Bought it for my sister.", "Arrived in three days.", "Packaging was fine.", "Second order.")
REVIEW_FILLERS_ZH = ("给朋友买的。", "三天就到了。", "包装还可以。", "第二次购买。")

T = TypeVar("T")


@dataclass(frozen=True)
class Product:
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
class Shopper:
    """A simulated user whose taste is a product of a category and a colour distribution."""

    id: str
    category_pref: dict[str, float]
    colour_pref: dict[str, float]

    def affinity(self, product: Product) -> float:
        return self.category_pref[product.category] * self.colour_pref[product.colour]


@dataclass(frozen=True)
class Event:
    user_id: str
    product_id: str
    time: datetime
    kind: str
    value: float


# ------------------------------------------------------------------------------------------------ helpers


def pick(rng: np.random.Generator, items: Sequence[T]) -> T:
    """One uniformly chosen element, as the original Python object (``rng.choice`` returns numpy scalars)."""
    return items[int(rng.integers(len(items)))]


def typo(rng: np.random.Generator, word: str) -> str:
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


def iso(time: datetime) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ")
