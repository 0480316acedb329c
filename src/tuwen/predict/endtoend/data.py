"""Pixels and token ids for the trainable encoders: decoding, resizing and caching photos.

* :func:`thumbnails`: each product's first photo squashed to ``size`` x ``size`` uint8 RGB (the
  same squash as the frozen encoders, :func:`tuwen.encoders.images.load_image`).
* :func:`trunk_activations`: the frozen MobileNetV2 trunk's activation map of each photo, the
  input of the fine-tuned tail (float16, computed once per photo).

Both are cached by photo path in one ``.npz`` per setting (``WS/artifacts/endtoend-cache/`` when
training from a workspace), so a second training run, another target, or ``tuwen predict`` on a
catalog product decodes nothing again. A file that cannot be decoded is *absent* (the model
predicts from the product's other modalities), and that is cached too. Writes are atomic
(temp file + rename): a concurrent reader sees the old cache or the new one.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from tuwen.encoders.images import PIXELS_VERSION, ImageDecodeError, load_image
from tuwen.predict.endtoend.image_encoders import MobileNetTrunk
from tuwen.util.progress import progress_bar
from tuwen.util.runtime import cpu_count

CACHE_VERSION = 1


def decode(paths: Sequence[str], size: int, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(n, size, size, 3)`` uint8 pixels and a presence flag per path (False: no path or not decodable)."""
    pixels = np.zeros((len(paths), size, size, 3), dtype=np.uint8)
    present = np.zeros(len(paths), dtype=bool)

    def one(row: int) -> None:
        if not paths[row]:
            return
        try:
            pixels[row] = load_image(paths[row], size)
            present[row] = True
        except ImageDecodeError:
            pass

    if len(paths) <= 4:
        for row in range(len(paths)):
            one(row)
    else:
        with ThreadPoolExecutor(max_workers=threads or cpu_count(), thread_name_prefix="tuwen-e2e") as pool:
            list(pool.map(one, range(len(paths))))
    return pixels, present


class ArrayCache:
    """Rows of one array keyed by strings (photo paths), stored as one ``.npz`` file."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def _read(self) -> tuple[dict[str, int], np.ndarray | None, np.ndarray | None]:
        if self.path is None or not self.path.exists():
            return {}, None, None
        try:
            with np.load(self.path, allow_pickle=False) as saved:
                keys, values, ok = saved["keys"], saved["values"], saved["ok"]
        except (OSError, KeyError, ValueError):  # a damaged cache is rebuilt, never trusted
            return {}, None, None
        return {str(k): i for i, k in enumerate(keys)}, values, ok

    def get(self, keys: Sequence[str], compute: Callable[[list[str]], tuple[np.ndarray, np.ndarray]],
            shape: tuple[int, ...], dtype: type) -> tuple[np.ndarray, np.ndarray]:
        """Values and presence for ``keys`` ("" is absent); the missing ones are computed, then stored."""
        where, values, ok = self._read()
        out = np.zeros((len(keys), *shape), dtype=dtype)
        present = np.zeros(len(keys), dtype=bool)
        if values is not None and values.shape[1:] != shape:
            where, values, ok = {}, None, None
        wanted = sorted({k for k in keys if k and k not in where})
        if wanted:
            new_values, new_ok = compute(wanted)
            if self.path is not None:
                old_keys = sorted(where, key=where.get)  # type: ignore[arg-type]
                all_keys = np.array(old_keys + wanted, dtype=str)
                values = new_values if values is None else np.concatenate([values, new_values])
                ok = new_ok if ok is None else np.concatenate([ok, new_ok])
                self._write(all_keys, values, ok)
                where = {k: i for i, k in enumerate(all_keys.tolist())}
            else:
                values, ok = new_values, new_ok
                where = {k: i for i, k in enumerate(wanted)}
        assert values is not None and ok is not None or not any(keys)
        for row, key in enumerate(keys):
            if key and key in where:
                index = where[key]
                out[row], present[row] = values[index], ok[index]  # type: ignore[index]
        return out, present

    def _write(self, keys: np.ndarray, values: np.ndarray, ok: np.ndarray) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{self.path.stem}-", suffix=".npz", dir=self.path.parent)
        os.close(handle)
        try:
            with open(temp, "wb") as stream:
                np.savez(stream, keys=keys, values=values, ok=ok)
            os.replace(temp, self.path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)


def cache_folder(workspace: object | None) -> Path | None:
    """Where a workspace keeps decoded thumbnails and trunk activations (None: no caching)."""
    if workspace is None:
        return None
    return Path(workspace.artifacts) / "endtoend-cache"  # type: ignore[attr-defined]


def thumbnails(paths: Sequence[str], size: int, folder: Path | None = None, threads: int | None = None,
               progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each photo as ``(size, size, 3)`` uint8 (squashed, as the frozen encoders see it), cached by path."""
    cache = ArrayCache(folder / f"thumbnails-{size}-{PIXELS_VERSION}-v{CACHE_VERSION}.npz" if folder else None)

    def compute(wanted: list[str]) -> tuple[np.ndarray, np.ndarray]:
        chunks, flags = [], []
        step = 512
        with progress_bar(len(wanted), f"decode photos · {size}px", progress and len(wanted) > step) as advance:
            for start in range(0, len(wanted), step):
                pixels, ok = decode(wanted[start:start + step], size, threads)
                chunks.append(pixels)
                flags.append(ok)
                advance(len(pixels))
        return np.concatenate(chunks), np.concatenate(flags)

    return cache.get(list(paths), compute, (size, size, 3), np.uint8)


@functools.lru_cache(maxsize=4)
def _trunk(blocks: int, device: str) -> Any:
    """The frozen MobileNetV2 trunk, built (and its weights read) once per process, not once per prediction."""
    return MobileNetTrunk(blocks).to(device)


@functools.lru_cache(maxsize=16)
def _trunk_shape(blocks: int, size: int, device: str) -> tuple[int, ...]:
    import torch

    with torch.no_grad():
        probe = _trunk(blocks, device)(torch.zeros((1, size, size, 3), dtype=torch.uint8, device=device))
    return tuple(probe.shape[1:])


def trunk_activations(paths: Sequence[str], blocks: int, size: int = 224, folder: Path | None = None,
                      threads: int | None = None, device: str = "cpu", progress: bool = False,
                      batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The frozen MobileNetV2 trunk's activations of each photo (float16), the fine-tuned tail's input."""
    import torch

    trunk = _trunk(blocks, device)
    shape = _trunk_shape(blocks, size, device)

    def compute(wanted: list[str]) -> tuple[np.ndarray, np.ndarray]:
        out = np.zeros((len(wanted), *shape), dtype=np.float16)
        flags = np.zeros(len(wanted), dtype=bool)
        with progress_bar(len(wanted), f"MobileNetV2 trunk · {size}px", progress and len(wanted) > 64) as advance:
            for start in range(0, len(wanted), batch_size):
                pixels, ok = decode(wanted[start:start + batch_size], size, threads)
                if ok.any():
                    activations = trunk(torch.from_numpy(pixels).to(device))
                    out[start:start + len(pixels)] = activations.cpu().numpy().astype(np.float16)
                flags[start:start + len(pixels)] = ok
                advance(len(pixels))
        return out, flags

    name = f"mobilenet_v2-trunk-{blocks}-{size}-{PIXELS_VERSION}-v{CACHE_VERSION}.npz"
    return ArrayCache(folder / name if folder else None).get(list(paths), compute, shape, np.float16)
