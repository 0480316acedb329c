"""Colour histogram of the product (not its white background): 128-d, no model, thousands of images a second.

A baseline for the CNN features and a cheap, interpretable signal for the
``baseColour`` attribute. Catalog photos show the product on white, so near-white,
unsaturated pixels are dropped before counting (unless almost nothing else is left:
a white shirt on white is still white).

Layout (128 dims): 108 chromatic bins (12 hues x 3 saturations x 3 values) and 16
grey-level bins for unsaturated pixels, because the hue of a grey pixel is noise and
would scatter black and grey products over every hue bin; then 4 summary numbers
(share of product pixels, mean saturation, mean value, spread of value), scaled by 1/4 so they
season rather than dominate a comparison. The histogram part is square-rooted
(Hellinger), so it has unit L2 norm and a dot product of two vectors compares colour
distributions sensibly.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from tuwen.encoders.base import register
from tuwen.encoders.images import PIXELS_VERSION, iter_batches
from tuwen.util.runtime import cpu_count

HUE_BINS, SAT_BINS, VAL_BINS, GREY_BINS = 12, 3, 3, 16
CHROMATIC_MIN_SAT = 40  # of 255: below this a pixel counts as grey/black/white
BACKGROUND_MIN_VAL, BACKGROUND_MAX_SAT = 235, 25  # near-white and nearly unsaturated: the photo background
MIN_FOREGROUND_SHARE = 0.03
STATS_WEIGHT = 0.25
_N_HIST = HUE_BINS * SAT_BINS * VAL_BINS + GREY_BINS


def _rgb_to_hsv(pixels: np.ndarray) -> np.ndarray:
    """uint8 RGB ``(n, h, w, 3)`` -> uint8 HSV with PIL's conventions (hue 0..255 for 0..360 degrees)."""
    flat = pixels.reshape(-1, pixels.shape[-2], 3)
    hsv = Image.fromarray(np.ascontiguousarray(flat), "RGB").convert("HSV")
    return np.asarray(hsv).reshape(pixels.shape)


def color_features(pixels: np.ndarray) -> np.ndarray:
    """Features for a ``(n, h, w, 3)`` uint8 RGB batch -> ``(n, 128)`` float32."""
    n = len(pixels)
    out = np.zeros((n, _N_HIST + 4), dtype=np.float32)
    if n == 0:
        return out
    hsv = _rgb_to_hsv(pixels).reshape(n, -1, 3).astype(np.int32)
    hue, sat, val = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    foreground = ~((val >= BACKGROUND_MIN_VAL) & (sat <= BACKGROUND_MAX_SAT))
    share = foreground.mean(axis=1)
    foreground[share < MIN_FOREGROUND_SHARE] = True  # (almost) all white: the product is white, count it all
    # Shift hue by half a bin so pure red sits in the middle of one bin instead of straddling 0/360.
    hue_bin = ((hue + 256 // (2 * HUE_BINS)) % 256) * HUE_BINS // 256
    sat_bin = np.minimum((sat - CHROMATIC_MIN_SAT) * SAT_BINS // (256 - CHROMATIC_MIN_SAT), SAT_BINS - 1)
    val_bin = val * VAL_BINS // 256
    chromatic_bin = (hue_bin * SAT_BINS + sat_bin) * VAL_BINS + val_bin
    grey_bin = HUE_BINS * SAT_BINS * VAL_BINS + val * GREY_BINS // 256
    bins = np.where(sat >= CHROMATIC_MIN_SAT, chromatic_bin, grey_bin)
    rows = np.broadcast_to(np.arange(n)[:, None], bins.shape)
    counts = np.zeros((n, _N_HIST), dtype=np.float64)
    np.add.at(counts, (rows[foreground], bins[foreground]), 1.0)
    out[:, :_N_HIST] = np.sqrt(counts / counts.sum(axis=1, keepdims=True))
    weight = foreground / foreground.sum(axis=1, keepdims=True)
    mean_val = (weight * val).sum(axis=1) / 255
    out[:, _N_HIST] = share
    out[:, _N_HIST + 1] = (weight * sat).sum(axis=1) / 255
    out[:, _N_HIST + 2] = mean_val
    out[:, _N_HIST + 3] = np.sqrt((weight * (val / 255 - mean_val[:, None]) ** 2).sum(axis=1))
    out[:, _N_HIST:] *= STATS_WEIGHT
    return out


@register("color_histogram")
class ColorHistogramEncoder:
    """HSV colour histogram of the product pixels of each image (128-d); see the module docstring.

    Keyword arguments: ``size`` (side the image is squashed to before counting, 64),
    ``batch_size`` (256), ``threads`` (decode threads, all cores).
    """

    name = "color_histogram"
    modality = "image"
    dim = _N_HIST + 4

    def __init__(self, size: int = 64, batch_size: int = 256, threads: int | None = None) -> None:
        self.size = size
        self.batch_size = batch_size
        self.threads = threads or cpu_count()
        self.version = f"hsv-{HUE_BINS}x{SAT_BINS}x{VAL_BINS}+{GREY_BINS}-nobg-{size}px-{PIXELS_VERSION}-2"

    def encode(self, batch: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        """Histograms for image files, ``(len(batch), 128)`` float32; raises ImageDecodeError on a bad file."""
        parts = [color_features(px) for px in iter_batches(batch, self.size, self.batch_size, self.threads)]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)
