"""Uploaded photos: checked, decoded once at a small size, and handled in a bounded pool off the event loop.

Its own module because three route groups take photos (search, ask, predict) and must treat them the same way.
Routes call :func:`prepare_photo` through this module, so a test can replace it here.
"""

from __future__ import annotations

import base64
import binascii
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuwen.encoders.images import ImageDecodeError, open_downscaled
from tuwen.serve.limits import MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, UPLOAD_SIDE
from tuwen.serve.state import Server


def prepare_photo(payload: bytes, path: Path, field: str = "photo") -> Path:
    """Uploaded bytes as a small PNG at ``path`` (short side :data:`UPLOAD_SIDE`), or a ValueError saying why not.

    Decoded once, shrunk while decoding where the format allows: what the encoders then read is a few hundred
    pixels, whatever came in."""
    if not payload:
        raise ValueError(f"{field}: empty upload")
    if len(payload) > MAX_PHOTO_BYTES:
        raise ValueError(f"{field}: {len(payload):,} bytes is more than the {MAX_PHOTO_BYTES:,} allowed")
    try:
        image = open_downscaled(io.BytesIO(payload), UPLOAD_SIDE, MAX_PHOTO_PIXELS)
    except ImageDecodeError as error:
        raise ValueError(f"{field}: {error.reason}") from None
    image.save(path, format="PNG", compress_level=1)
    return path


def decode_base64(text: str, field: str) -> bytes:
    """A base64 photo (a ``data:`` URL too) as bytes, or a ValueError naming the field."""
    try:
        return base64.b64decode(text.split(",", 1)[-1] if text.startswith("data:") else text, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{field}: not base64 ({error})") from error


async def off_loop(server: Server, work: Callable[[], Any]) -> Any:
    """Run photo decoding and encoding in the bounded pool: the event loop keeps answering other requests."""
    import anyio

    return await anyio.to_thread.run_sync(work, limiter=server.photo_slots())
