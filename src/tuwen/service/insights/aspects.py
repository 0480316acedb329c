"""Which product aspects a review clause talks about: seed words per aspect (English and Chinese), clause splitting.

Why clauses, not whole sentences: shoppers praise one aspect and complain about another in the same sentence ("love
the colour but it runs small", "物流很快，但是质量不好"), and one sentiment for the sentence would give both aspects
the same sign. A clause ends at sentence punctuation, at a semicolon and before a contrast word (but, however,
though; 但是, 不过, 可是, 就是); Chinese clauses also end at commas, which separate short statements there.

The seed words are the vocabulary of the aspect a shopper would use; :mod:`tuwen.service.insights.expand` adds the
words the reviews themselves use in the same contexts. English words are matched on lower-cased word tokens (a
phrase such as "true to size" as consecutive tokens); Chinese words on jieba's segmentation, so 码 inside 密码 never
counts as a size. Seeds that name two things in these reviews (速度: delivery or a laptop's speed; 收到: any
"received it") are left out: a wrong aspect costs more than a missed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tuwen.util.chinese import CJK_RUN, jieba

# aspect → seed words. Multi-word English seeds are matched as consecutive tokens.
SEEDS_EN: dict[str, tuple[str, ...]] = {
    "fit": ("fit", "fits", "fitted", "fitting", "size", "sizes", "sizing", "sized", "runs small", "runs large",
            "runs big", "true to size", "tight", "loose", "snug", "baggy", "roomy", "petite", "length", "too long",
            "too short", "too big", "too small", "xs", "waist", "hips", "bust", "shoulders", "boxy", "oversized"),
    "fabric": ("fabric", "material", "materials", "cotton", "linen", "silk", "silky", "wool", "polyester", "rayon",
               "knit", "sheer", "thin", "thick", "stretch", "stretchy", "lining", "lined", "texture", "itchy",
               "scratchy", "see-through", "see through", "soft"),
    "colour": ("color", "colors", "colour", "colours", "shade", "hue", "faded", "fade", "dye", "vibrant",
               "bright", "muted", "print", "pattern"),
    "quality": ("quality", "well made", "made well", "cheaply", "cheap", "construction", "stitching", "seam",
                "seams", "durable", "flimsy", "sturdy", "shrank", "shrunk", "shrink", "pilling", "pilled", "pill",
                "hole", "holes", "ripped", "tear", "torn", "unraveling", "fell apart", "wash", "washed", "washing"),
    "comfort": ("comfortable", "comfy", "comfort", "uncomfortable", "cozy", "cosy", "breathable", "lightweight",
                "warm", "wearable"),
    "price": ("price", "priced", "pricey", "expensive", "overpriced", "worth", "value", "sale", "money", "dollars",
              "cost", "costs", "bargain", "deal", "full price"),
    "delivery": ("shipping", "shipped", "ship", "delivery", "delivered", "arrived", "arrival", "package",
                 "packaging", "packaged", "box", "mail"),
    "returns": ("return", "returned", "returning", "exchange", "exchanged", "refund", "customer service"),
    "style": ("style", "stylish", "design", "cut", "silhouette", "flattering", "unflattering", "cute", "pretty",
              "beautiful", "gorgeous", "elegant", "classy", "chic", "frumpy", "looks"),
}

SEEDS_ZH: dict[str, tuple[str, ...]] = {
    "质量": ("质量", "品质", "质感", "正品", "假货", "耐用", "坏", "破", "瑕疵", "掉色", "起球", "缩水", "褪色"),
    "尺码": ("尺码", "尺寸", "码数", "大小", "偏大", "偏小", "合身", "大码", "小码", "码", "肥", "瘦"),
    "物流": ("物流", "快递", "发货", "送货", "到货", "配送", "送到", "快递员"),
    "价格": ("价格", "价钱", "便宜", "贵", "性价比", "划算", "实惠", "优惠", "特价", "降价", "活动"),
    "做工": ("做工", "线头", "工艺", "细节", "走线", "粗糙", "精致", "用料", "面料", "料子"),
    "服务": ("服务", "客服", "售后", "态度", "卖家", "商家", "退货", "换货", "退款"),
    "外观": ("外观", "颜色", "款式", "好看", "漂亮", "样子", "颜值", "外形", "设计", "图片", "色差"),
    "包装": ("包装", "盒子", "箱子", "破损", "外包装"),
    "口感": ("口感", "味道", "新鲜", "甜", "酸", "好吃", "难吃", "口味", "香味", "味"),
    "性能": ("性能", "系统", "屏幕", "电池", "运行", "反应", "卡", "死机", "续航", "配置", "声音", "发热"),
}

_CONTRAST_EN = re.compile(r"\s*(?:,\s*)?\b(?:but|however|though|although|except|yet|whereas)\b\s*", re.IGNORECASE)
_SENTENCE_EN = re.compile(r"(?<=[.!?])\s+|[\r\n]+|;\s*|(?<=[a-z])\.(?=[A-Z])")
_CLAUSE_ZH = re.compile(r"[。！？!?；;，,、~～\s\n]+|(?=但是|不过|可是|就是|只是|然而)")
_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


def is_chinese(text: str, share: float = 0.2) -> bool:
    """Whether a text is Chinese: CJK characters make up at least ``share`` of its non-space characters."""
    letters = [c for c in text if not c.isspace()]
    if not letters:
        return False
    cjk = sum(len(run) for run in CJK_RUN.findall(text))
    return cjk / len(letters) >= share


def clauses(text: str, chinese: bool | None = None) -> list[str]:
    """A review text cut into clauses (see the module docstring); empty pieces dropped."""
    text = (text or "").strip()
    if not text:
        return []
    chinese = is_chinese(text) if chinese is None else chinese
    if chinese:
        pieces = _CLAUSE_ZH.split(text)
    else:
        pieces = [part for sentence in _SENTENCE_EN.split(text) for part in _CONTRAST_EN.split(sentence)]
    return [p.strip(" ,.-") for p in pieces if p and len(p.strip(" ,.-")) >= 2]


def words(text: str, chinese: bool) -> list[str]:
    """The tokens aspects are matched on: lower-cased English words, or jieba's words for Chinese."""
    if chinese:
        return [w for w in jieba().lcut(text) if w.strip()]
    return _WORD.findall(text.lower())


@dataclass(frozen=True)
class Lexicon:
    """Aspect → words, compiled for matching: single tokens in a dict, multi-word phrases as token tuples."""

    language: str  # "en" | "zh"
    aspects: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        single: dict[str, set[str]] = {}
        phrases: dict[tuple[str, ...], set[str]] = {}
        for aspect, seeds in self.aspects.items():
            for seed in seeds:
                parts = tuple(seed.lower().split()) if self.language == "en" else (seed,)
                target = single if len(parts) == 1 else phrases
                target.setdefault(parts[0] if len(parts) == 1 else parts, set()).add(aspect)  # type: ignore[arg-type]
        object.__setattr__(self, "_single", single)
        object.__setattr__(self, "_phrases", phrases)

    @property
    def names(self) -> list[str]:
        return list(self.aspects)

    def match(self, tokens: list[str]) -> dict[str, str]:
        """Aspects named by these tokens → the first word that named each (kept as the evidence)."""
        found: dict[str, str] = {}
        single: dict[str, set[str]] = self._single  # type: ignore[attr-defined]
        for token in tokens:
            for aspect in single.get(token, ()):
                found.setdefault(aspect, token)
        phrases: dict[tuple[str, ...], set[str]] = self._phrases  # type: ignore[attr-defined]
        for phrase, aspects in phrases.items():
            n = len(phrase)
            for i in range(len(tokens) - n + 1):
                if tuple(tokens[i:i + n]) == phrase:
                    for aspect in aspects:
                        found.setdefault(aspect, " ".join(phrase))
                    break
        return found

    def extended(self, extra: Mapping[str, Iterable[str]]) -> Lexicon:
        """This lexicon plus ``extra`` words per aspect (the embedding-neighbour expansion)."""
        merged = {a: tuple(dict.fromkeys([*seeds, *extra.get(a, ())])) for a, seeds in self.aspects.items()}
        return Lexicon(self.language, merged)


def seed_lexicon(language: str) -> Lexicon:
    if language not in ("en", "zh"):
        raise ValueError(f"unknown review language {language!r}: insights know 'en' and 'zh'")
    return Lexicon(language, SEEDS_EN if language == "en" else SEEDS_ZH)
