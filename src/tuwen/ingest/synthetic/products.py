"""SYNTHETIC products: brands, titles and descriptions in English and Chinese (with typos and marketing noise),
prices from material, pattern and size.
"""

from __future__ import annotations

import numpy as np

from tuwen.ingest.synthetic.world import (
    BRAND_SYLLABLES,
    CATEGORY_GRID,
    CHINESE_SHARE,
    COLOURS,
    CURRENCY,
    EN_FILLERS,
    EN_MARKETING,
    EN_MATERIAL_SENTENCES,
    EN_NOUNS,
    EN_PATTERN_SENTENCES,
    EN_SIZE_SENTENCES,
    MATERIALS,
    PATTERNS,
    SIZES,
    ZH_FILLERS,
    ZH_MARKETING,
    ZH_MATERIAL_SENTENCES,
    ZH_NOUNS,
    ZH_PATTERN_SENTENCES,
    ZH_SIZE_SENTENCES,
    Product,
    pick,
    typo,
)

# ------------------------------------------------------------------------------------------------ products


def _balanced(rng: np.random.Generator, n_items: int, n: int) -> np.ndarray:
    """Indices 0..n_items-1 repeated evenly and shuffled, so even a tiny catalog covers every value."""
    return rng.permutation(np.resize(np.arange(n_items), n))


def _make_brands(rng: np.random.Generator, n: int = 24) -> list[str]:
    """Brand-like nonsense words: noise that a model must learn to ignore."""
    brands: list[str] = []
    while len(brands) < n:
        word = "".join(pick(rng, BRAND_SYLLABLES) for _ in range(int(rng.integers(2, 4)))).capitalize()
        if word not in brands:
            brands.append(word)
    return brands


def make_products(rng: np.random.Generator, n: int) -> list[Product]:
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
        pattern = pick(rng, list(PATTERNS))
        size = pick(rng, list(SIZES))
        chinese = rng.random() < CHINESE_SHARE
        brand = pick(rng, brands)
        name_colour = rng.random() < 0.5
        if chinese:
            title = _title_zh(rng, brand, colour if name_colour else None, material, pattern)
            description = _description_zh(rng, material, pattern, size)
        else:
            title = _title_en(rng, brand, colour if name_colour else None, material, pattern)
            description = _description_en(rng, material, pattern, size)
        products.append(
            Product(
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


def _title_en(rng: np.random.Generator, brand: str, colour: str | None, material: str, pattern: str) -> str:
    """Brand, maybe the colour, the material, maybe the pattern and some marketing noise; never the shape."""
    words = [brand]
    if colour is not None:
        words.append(colour.capitalize())
    material_at = len(words)
    words.append(material.capitalize())
    if rng.random() < 0.4:
        words.append({"solid": "Plain", "stripes": "Striped", "dots": "Polka-Dot", "checks": "Checked"}[pattern])
    words.append(pick(rng, EN_NOUNS))
    if rng.random() < 0.5:
        words.append(pick(rng, EN_MARKETING))
    if rng.random() < 0.2:
        words.insert(0, pick(rng, EN_MARKETING))
        material_at += 1
    if rng.random() < 0.15:  # a typo anywhere but in the material, which must stay readable
        j = pick(rng, [k for k in range(len(words)) if k != material_at])
        words[j] = typo(rng, words[j])
    title = " ".join(words)
    return title.lower() if rng.random() < 0.08 else title


def _title_zh(rng: np.random.Generator, brand: str, colour: str | None, material: str, pattern: str) -> str:
    words = [brand]
    if rng.random() < 0.4:
        words.append(pick(rng, ZH_MARKETING))
    if colour is not None:
        words.append(COLOURS[colour][1])
    words.append(MATERIALS[material][0])
    if rng.random() < 0.4:
        words.append(PATTERNS[pattern][1])
    words.append(pick(rng, ZH_NOUNS))
    return " ".join(words)


def _description_en(rng: np.random.Generator, material: str, pattern: str, size: str) -> str:
    """Material and pattern are usually, but not always, mentioned; the colour and shape never are."""
    sentences = []
    if rng.random() < 0.8:
        sentences.append(pick(rng, EN_MATERIAL_SENTENCES).format(m=material, M=material.capitalize()))
    if rng.random() < 0.7:
        words = PATTERNS[pattern][0]
        sentences.append(pick(rng, EN_PATTERN_SENTENCES).format(p=words, P=words.capitalize()))
    if rng.random() < 0.5:
        sentences.append(pick(rng, EN_SIZE_SENTENCES).format(s=size, S=size.capitalize()))
    for _ in range(int(rng.integers(1, 3))):
        sentences.append(pick(rng, EN_FILLERS))
    return " ".join(sentences[k] for k in rng.permutation(len(sentences)))


def _description_zh(rng: np.random.Generator, material: str, pattern: str, size: str) -> str:
    sentences = []
    if rng.random() < 0.8:
        sentences.append(pick(rng, ZH_MATERIAL_SENTENCES).format(m=MATERIALS[material][0]))
    if rng.random() < 0.7:
        sentences.append(pick(rng, ZH_PATTERN_SENTENCES).format(p=PATTERNS[pattern][1]))
    if rng.random() < 0.5:
        sentences.append(pick(rng, ZH_SIZE_SENTENCES).format(s=SIZES[size][0]))
    for _ in range(int(rng.integers(1, 3))):
        sentences.append(pick(rng, ZH_FILLERS))
    return "".join(sentences[k] for k in rng.permutation(len(sentences)))


def _price(rng: np.random.Generator, material: str, pattern: str, size: str) -> float:
    """Base price per material x pattern x size multipliers x lognormal noise, so price is learnable."""
    value = MATERIALS[material][1] * PATTERNS[pattern][2] * SIZES[size][1] * float(rng.lognormal(0.0, 0.2))
    return max(1.0, round(value, 2))


def product_row(p: Product) -> list[str]:
    return [
        p.id, p.title, p.description, p.image, p.category, p.colour, p.shape, p.pattern, p.material,
        f"{p.price:.2f}", CURRENCY,
    ]
