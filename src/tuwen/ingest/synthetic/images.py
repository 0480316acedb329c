"""SYNTHETIC product photos: a coloured shape with a pattern, jittered, the part of a product only the photo shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tuwen.ingest.synthetic.world import COLOURS, SIZES, Product, pick

# -------------------------------------------------------------------------------------------------- images


def write_images(folder: Path, products: Sequence[Product], rng: np.random.Generator, size: int) -> None:
    folder.mkdir()
    for product in products:
        _render(product, rng, size).save(folder / f"{product.id}.png", format="PNG")


def _jitter_colour(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = (int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in rgb)
    return r, g, b


def _render(product: Product, rng: np.random.Generator, size: int) -> Image.Image:
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
        angle = math.radians(pick(rng, (0, 45, 90, 135)))
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


# ------------------------------------------------------------------------------------------- review photos
DEFECT_IF_UNHAPPY = 0.9  # share of 1-2 star reviews whose photo shows damage
DEFECT_IF_HAPPY = 0.05  # ... and of the other reviews (a photo is a good, imperfect signal, like the text)


def write_review_photos(folder: Path, reviews: Sequence[dict], products: Sequence[Product], rng: np.random.Generator,
                        size: int, share: float) -> None:
    """A photo for ``share`` of the reviews (their ``image`` key is set): the product as the shopper received it,
    damaged (a dark tear and a stain) mostly when the review is unhappy, so the photo says what the words say."""
    folder.mkdir(parents=True, exist_ok=True)
    by_id = {p.id: p for p in products}
    for review in reviews:
        if rng.random() >= share:
            review["image"] = ""
            continue
        photo = _render(by_id[review["product_id"]], rng, size)
        if rng.random() < (DEFECT_IF_UNHAPPY if review["rating"] <= 2 else DEFECT_IF_HAPPY):
            _damage(photo, rng)
        photo.save(folder / f"{review['id']}.png", format="PNG")
        review["image"] = f"{folder.parent.name}/{folder.name}/{review['id']}.png"


def _damage(photo: Image.Image, rng: np.random.Generator) -> None:
    """A jagged dark tear across the product and a brown stain, drawn in place."""
    side = photo.size[0]
    draw = ImageDraw.Draw(photo)
    x, y = float(rng.uniform(0.15, 0.35)) * side, float(rng.uniform(0.15, 0.35)) * side
    points = [(x, y)]
    for _ in range(6):
        x += float(rng.uniform(0.05, 0.12)) * side
        y += float(rng.uniform(-0.02, 0.14)) * side
        points.append((x, y))
    draw.line(points, fill=(25, 20, 15), width=max(2, side // 12))
    cx, cy, r = float(rng.uniform(0.3, 0.7)) * side, float(rng.uniform(0.3, 0.7)) * side, side * 0.14
    draw.ellipse((cx - r, cy - r * 0.7, cx + r, cy + r * 0.7), fill=(110, 75, 40))
