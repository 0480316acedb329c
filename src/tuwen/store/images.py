"""Product and review photos named by a catalog: where a reference points, and whether the file there can
serve as a photo.

Why a module of its own: photo checks guard against hostile files (decompression bombs, FIFOs, paths that
escape the catalog folder), a concern apart from checking text cells.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from tuwen.store.cells import clean_text

# Bigger than any product photo; a file past either limit is treated as hostile or broken.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 50 * 1024 * 1024


def check_image(path: Path) -> str | None:
    """Why this file cannot serve as a product photo, or None when it can.

    Decodes a thumbnail (JPEG ``draft``) so truncated files are caught without paying
    for a full-size decode, and checks the pixel count from the header before decoding,
    so a decompression bomb is refused instead of exhausting memory.
    """
    try:
        info = path.stat()
    except OSError as error:
        return f"unreadable file: {error.strerror or error}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, device or folder)"  # opening a FIFO would block for ever
    size = info.st_size
    if size == 0:
        return "empty file"
    if size > MAX_IMAGE_BYTES:
        return f"absurdly large file ({size / 1e6:.0f} MB > {MAX_IMAGE_BYTES / 1e6:.0f} MB)"
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                return f"image too large ({width}x{height} pixels): possible decompression bomb"
            image.draft("RGB", (64, 64))
            image.load()
    except UnidentifiedImageError:
        return "not an image file"
    except Image.DecompressionBombError:
        return "decompression bomb"
    except (OSError, SyntaxError, ValueError) as error:
        return f"broken image: {error}"
    return None


def resolve_image(raw: str, root: Path) -> tuple[Path | None, str | None]:
    """Resolve a catalog's image reference inside its folder; refuses paths that escape it."""
    root = root.resolve()
    candidate = (root / raw).resolve()
    if not candidate.is_relative_to(root):
        return None, f"image path escapes the catalog folder: {raw!r}"
    return candidate, None


def split_paths(value: Any) -> list[str]:
    """One cell may hold several images: a JSON list, or paths separated by '|' or ';'."""
    text = clean_text(value)
    if not text:
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
            return [str(item).strip() for item in items if str(item).strip()]
        except json.JSONDecodeError:
            pass
    for separator in ("|", ";"):
        if separator in text:
            return [part.strip() for part in text.split(separator) if part.strip()]
    return [text]
