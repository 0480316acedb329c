"""Encoders by name: the built-in ones, those registered by a user, and CLIP-style checkpoint folders on disk.

``get_encoder(name)`` builds one; :func:`encoder_for` is the one way the stages (embedding, training, search,
alignment) obtain an encoder for a workspace, with what it learnt from that catalog loaded. Only the module of the
encoder asked for is imported, so a text-only run never pays for torch or ONNX Runtime.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuwen.encoders.base import REGISTERED, Encoder
from tuwen.encoders.local_clip import load_local_clip

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace

# Built-in encoder name → the module that registers it. Only the module of the encoder asked
# for is imported, so a text-only run never pays for torch or ONNX Runtime.
BUILTIN_MODULES = {
    "mobilenet_v2": "image_mobilenet",
    "mobilenet_v2-int8": "image_mobilenet",  # int8: quantised on first use, vectors in their own tables
    "efficientnet_lite0": "image_efficientnet",
    "efficientnet_lite0-int8": "image_efficientnet",
    "color_histogram": "image_color",
    "use_multilingual": "text_use",
    "minilm": "text_minilm",
    "tfidf": "text_tfidf",
}


def available() -> list[str]:
    """Names of every built-in or registered encoder."""
    return sorted(set(REGISTERED) | set(BUILTIN_MODULES))


def encoder_names(spec: str | None) -> list[str]:
    """The encoder names in ``"mobilenet_v2+color_histogram"`` (several photo encoders, each its own vectors)."""
    return [name.strip() for name in (spec or "").split("+") if name.strip()]


def get_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build an encoder by registry name, or from a local CLIP-style checkpoint folder.

    A name that is an existing folder is treated as a CLIP checkpoint; its
    ``:image`` / ``:text`` suffix picks the tower (``/models/clip:text``).
    """
    if name not in REGISTERED and name in BUILTIN_MODULES:
        importlib.import_module(f"tuwen.encoders.{BUILTIN_MODULES[name]}")
    if name in REGISTERED:
        return REGISTERED[name](**kwargs)
    folder, _, tower = name.rpartition(":") if name.endswith((":image", ":text")) else (name, "", "image")
    if Path(folder).is_dir():
        return load_local_clip(Path(folder), tower=tower, **kwargs)  # type: ignore[arg-type]
    raise KeyError(
        f"unknown encoder {name!r}; choose one of {', '.join(available())} or a CLIP checkpoint folder"
    )


def encoder_for(name: str, workspace: Workspace | None = None, corpus: Sequence[str] | None = None,
                **kwargs: Any) -> Encoder:
    """The encoder ``name`` as this workspace uses it.

    An encoder that learns from the catalog (TF-IDF) loads what it learnt in the workspace; with ``corpus`` (what
    ``tuwen embed`` passes) one that never learnt learns it now and keeps it, so vectors stay comparable across runs
    (delete ``WS/artifacts/encoders/NAME`` to refit). Without ``corpus``, one that never learnt is an error.
    """
    encoder = get_encoder(name, **kwargs)
    if not hasattr(encoder, "fit") or workspace is None:
        return encoder
    folder = workspace.artifacts / "encoders" / encoder.name
    if (folder / "fitted").exists():
        encoder.load(folder)  # type: ignore[attr-defined]
    elif corpus is not None:
        encoder.fit(corpus)  # type: ignore[attr-defined]
        folder.mkdir(parents=True, exist_ok=True)
        encoder.save(folder)  # type: ignore[attr-defined]
        (folder / "fitted").write_text("ok")
    else:
        raise KeyError(f"encoder {name!r} was never fitted in this workspace; run `tuwen embed` first")
    return encoder
