"""Zero-shot cross-modal encoders from a CLIP checkpoint the user already has on disk.

No CLIP-style model ships offline in a package, so tuwen learns its own text-image
alignment; a user who does have a Hugging Face-format checkpoint (``config.json`` +
weights + tokenizer + ``preprocessor_config.json``, e.g. a saved
``openai/clip-vit-base-patch32``) points tuwen at its folder and gets an image tower
and a text tower in one shared space. CLIP and Chinese-CLIP (anything ``AutoModel``
loads with ``get_image_features`` / ``get_text_features`` and a ``projection_dim``) work;
tested with a tiny random CLIP only, as no real checkpoint is available offline.
open_clip-format folders need the ``open_clip`` package, which depends on torchvision,
which cannot be installed beside this torch build: they are refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tuwen.encoders.base import Encoder, encode_distinct_texts
from tuwen.encoders.images import open_rgb
from tuwen.encoders.text_minilm import quiet_transformers
from tuwen.util.runtime import cpu_count, torch_threads

Tower = Literal["image", "text"]
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class ClipCheckpointError(ValueError):
    """The folder is not a CLIP checkpoint tuwen can load; the message says why and what to do."""


def load_local_clip(folder: Path, tower: Tower = "image", **kwargs: Any) -> Encoder:
    """An encoder for one tower of the CLIP checkpoint in ``folder`` (named ``clip:<folder>:<tower>``).

    Keyword arguments go to the encoder: ``batch_size`` (32), ``threads`` (all cores), ``device`` ("cpu").
    """
    folder = Path(folder)
    if tower not in ("image", "text"):
        raise ValueError(f"tower must be 'image' or 'text', not {tower!r}")
    _check_folder(folder)
    return LocalClipEncoder(folder, tower, **kwargs)


def _check_folder(folder: Path) -> None:
    if not folder.is_dir():
        raise ClipCheckpointError(f"{folder}: not a folder")
    config = folder / "config.json"
    if not config.is_file():
        if (folder / "open_clip_config.json").is_file():
            raise ClipCheckpointError(
                f"{folder} is an open_clip checkpoint (open_clip_config.json, no config.json). Loading it needs the "
                "open_clip package, which depends on torchvision, which cannot be installed beside tuwen's torch "
                "build. Use the Hugging Face-format export of the same model (a folder with config.json) instead."
            )
        raise ClipCheckpointError(f"{folder}: no config.json, so not a Hugging Face-format checkpoint")
    model_type = json.loads(config.read_text()).get("model_type", "")
    if "clip" not in model_type:
        raise ClipCheckpointError(f"{folder}: model_type {model_type!r} is not a CLIP-style two-tower model")


def _checkpoint_digest(folder: Path) -> str:
    """Cheap identity of a checkpoint: configs in full, weight files by size and first/last megabyte."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        digest.update(path.name.encode())
        if path.suffix == ".json":
            digest.update(path.read_bytes())
        elif path.suffix in _WEIGHT_SUFFIXES:
            size = path.stat().st_size
            digest.update(str(size).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read(1 << 20))
                handle.seek(max(0, size - (1 << 20)))
                digest.update(handle.read())
    return digest.hexdigest()[:16]


class LocalClipEncoder:
    """One tower of a local CLIP checkpoint: image paths or texts -> L2-normalised shared-space vectors.

    The model loads on the first ``encode``; ``dim`` (the projection width) and
    ``version`` (a digest of the checkpoint files) are known at once from the folder.
    Images are decoded here (JPEG draft-downscaled, never below the model's input
    size) and then prepared by the checkpoint's own image processor, so resizing and
    cropping follow what the model was trained with.
    """

    modality: Tower

    def __init__(
        self, folder: Path, tower: Tower, batch_size: int = 32, threads: int | None = None, device: str = "cpu"
    ) -> None:
        from transformers import AutoConfig

        self.folder = Path(folder)
        self.modality = tower
        self.name = f"clip:{self.folder.name}:{tower}"
        self.batch_size = batch_size
        self.threads = threads or cpu_count()
        self.device = device
        config = AutoConfig.from_pretrained(self.folder, local_files_only=True)
        dim = getattr(config, "projection_dim", None)
        if not dim:
            raise ClipCheckpointError(f"{self.folder}: config.json gives no projection_dim")
        self.dim = int(dim)
        self.version = f"clip-{_checkpoint_digest(self.folder)}-1"
        self._model: Any = None
        self._prepare: Any = None

    def _load(self) -> Any:
        if self._model is None:
            import torch
            from transformers import AutoModel

            device = self.device if self.device == "cpu" or torch.cuda.is_available() else "cpu"
            with quiet_transformers():
                model = AutoModel.from_pretrained(self.folder, local_files_only=True).eval().to(device)
            if not hasattr(model, f"get_{self.modality}_features"):
                raise ClipCheckpointError(f"{self.folder}: {type(model).__name__} has no {self.modality} tower")
            if self.modality == "image":
                from transformers import AutoImageProcessor

                # Without torchvision, transformers picks its PIL/numpy processor (the "slow" one).
                self._prepare = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True)
            else:
                from transformers import AutoTokenizer

                self._prepare = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            self._model = model
        return self._model

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Vectors for image paths (image tower) or texts (text tower), ``(len(batch), dim)`` float32."""
        if self.modality == "text":
            return encode_distinct_texts(batch, self.dim, self._encode_texts)
        batch = list(batch)
        out = np.empty((len(batch), self.dim), dtype=np.float32)
        if not len(batch):
            return out
        self._load()
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            for start in range(0, len(batch), self.batch_size):
                images = list(pool.map(self._open, batch[start : start + self.batch_size]))
                pixels = self._prepare(images=images, return_tensors="pt")["pixel_values"]
                out[start : start + len(images)] = self._features("image", pixel_values=pixels)
        return out

    def _open(self, path: str | os.PathLike[str]) -> Any:
        size = getattr(self._prepare, "size", None) or {}
        side = size.get("shortest_edge") or max(size.get("height", 0), size.get("width", 0)) or None
        return open_rgb(path, draft_size=side)

    def _encode_texts(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        limit = getattr(model.config.text_config, "max_position_embeddings", 77)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start : start + self.batch_size]
            tokens = self._prepare(chunk, padding=True, truncation=True, max_length=limit, return_tensors="pt")
            inputs = {key: tokens[key] for key in ("input_ids", "attention_mask") if key in tokens}
            out[start : start + len(chunk)] = self._features("text", **inputs)
        return out

    def _features(self, tower: str, **inputs: Any) -> np.ndarray:
        import torch

        model = self._load()
        device = next(model.parameters()).device
        with torch.no_grad(), torch_threads(self.threads):
            result = getattr(model, f"get_{tower}_features")(**{k: v.to(device) for k, v in inputs.items()})
        # transformers >= 5 returns a model output whose pooler_output is the projected vector; 4.x a tensor.
        vectors = getattr(result, "pooler_output", result).float()
        return torch.nn.functional.normalize(vectors, dim=-1).cpu().numpy()
