"""SYNTHETIC shoppers, their events and their reviews: taste over (category, colour) pairs, events drawn from
it over a time horizon, rating-dependent review templates with noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import numpy as np

from tuwen.ingest.synthetic.world import (
    CATEGORY_GRID,
    CHINESE_SHARE,
    COLOURS,
    EVENT_KINDS,
    EVENT_PROBS,
    HORIZON_DAYS,
    MATERIALS,
    PREFERENCE_FOLLOW,
    REVIEW_FILLERS_EN,
    REVIEW_FILLERS_ZH,
    REVIEW_SHARE,
    REVIEW_TEMPLATES_EN,
    REVIEW_TEMPLATES_ZH,
    START,
    Event,
    Product,
    Shopper,
    iso,
    pick,
    typo,
)

# ----------------------------------------------------------------------------------- shoppers and events


def make_shoppers(rng: np.random.Generator, n: int) -> list[Shopper]:
    """Sparse Dirichlet tastes: most shoppers care about one or two categories and colours."""
    categories = sorted(set(CATEGORY_GRID.values()))
    colours = list(COLOURS)
    width = max(4, len(str(n)))
    shoppers = []
    for i in range(n):
        cat = rng.dirichlet(np.full(len(categories), 0.4))
        col = rng.dirichlet(np.full(len(colours), 0.4))
        shoppers.append(
            Shopper(
                id=f"syn-u{i + 1:0{width}d}",
                category_pref={c: float(p) for c, p in zip(categories, cat, strict=True)},
                colour_pref={c: float(p) for c, p in zip(colours, col, strict=True)},
            )
        )
    return shoppers


def _normalise(weights: np.ndarray) -> np.ndarray:
    return weights / weights.sum()


def simulate_events(
    rng: np.random.Generator, shoppers: Sequence[Shopper], products: Sequence[Product]
) -> list[Event]:
    """Each shopper makes 5-40 events over ~120 days, choosing by taste, by popularity or by both."""
    popularity = rng.lognormal(0.0, 1.0, size=len(products))
    by_popularity = _normalise(popularity)
    events: list[Event] = []
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
            events.append(Event(shopper.id, product.id, time, kind, value))
    events.sort(key=lambda e: (e.time, e.user_id, e.product_id, e.kind))
    return events


def event_row(e: Event) -> list[str]:
    return [e.user_id, e.product_id, iso(e.time), e.kind, f"{e.value:.1f}"]


# ------------------------------------------------------------------------------------------------- reviews


def _top(prefs: dict[str, float], k: int = 2) -> set[str]:
    return set(sorted(prefs, key=prefs.__getitem__, reverse=True)[:k])


def _rating(rng: np.random.Generator, shopper: Shopper, product: Product) -> int:
    """Higher when the product is in the shopper's favourite categories and colours, plus noise."""
    latent = 1.8 + 1.6 * (product.category in _top(shopper.category_pref))
    latent += 1.0 * (product.colour in _top(shopper.colour_pref)) + float(rng.normal(0.0, 0.7))
    return int(np.clip(round(latent), 1, 5))


def _review_text(rng: np.random.Generator, rating: int, material: str) -> str:
    """Templates for the rating, but sometimes for a neighbouring one, so text is a good, imperfect signal."""
    tone = rating
    if rng.random() < 0.15:
        tone = int(np.clip(rating + pick(rng, (-1, 1)), 1, 5))
    chinese = rng.random() < CHINESE_SHARE
    templates = (REVIEW_TEMPLATES_ZH if chinese else REVIEW_TEMPLATES_EN)[tone]
    fillers = REVIEW_FILLERS_ZH if chinese else REVIEW_FILLERS_EN
    name = MATERIALS[material][0] if chinese else material
    sentences = [pick(rng, templates).format(m=name) for _ in range(int(rng.integers(1, 3)))]
    if rng.random() < 0.3:
        sentences.append(pick(rng, fillers))
    if not chinese and rng.random() < 0.1:
        words = sentences[0].split(" ")
        j = int(rng.integers(len(words)))
        words[j] = typo(rng, words[j])
        sentences[0] = " ".join(words)
    return ("" if chinese else " ").join(dict.fromkeys(sentences))


def make_reviews(
    rng: np.random.Generator,
    events: Sequence[Event],
    shoppers: Sequence[Shopper],
    products: Sequence[Product],
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
                "timestamp": iso(event.time + delay),
            }
        )
    reviews.sort(key=lambda r: (r["timestamp"], r["user_id"], r["product_id"]))
    width = max(5, len(str(len(reviews))))
    return [{"id": f"syn-r{i + 1:0{width}d}", **r} for i, r in enumerate(reviews)]
