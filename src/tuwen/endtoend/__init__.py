"""End-to-end trainable encoders, for users with no pretrained model (and fine-tuning of the pretrained one).

``ws.train(task, target, encoders="trainable")`` / ``tuwen train WS --encoders trainable`` trains a
GRU (``trainable:cnn``: a 1-D CNN) over tokenized text and a small CNN over 64 px thumbnails;
``encoders="finetune"`` (``finetune:N``) trains MobileNetV2's last N modules (default 3) with the
same text encoder. Both feed the fast path's fusion, heads and training loop; see
:mod:`tuwen.endtoend.model`. Nothing heavy is imported here, so :func:`parse_mode` is cheap.
"""

from __future__ import annotations

from typing import Any

MODES = ("trainable", "finetune")
TEXT_KINDS = ("gru", "cnn")  # tuwen.endtoend.text_encoders.TEXT_ENCODERS


def parse_mode(encoders: Any) -> dict[str, Any] | None:
    """``"trainable"``, ``"trainable:cnn"``, ``"finetune"``, ``"finetune:4"`` (also as a one-item tuple) → options.

    None when ``encoders`` names ordinary cached encoders (the fast path).
    """
    if isinstance(encoders, (list, tuple)):
        if len(encoders) != 1:
            return None
        encoders = encoders[0]
    if not isinstance(encoders, str):
        return None
    mode, _, option = encoders.partition(":")
    if mode not in MODES:
        return None
    if mode == "trainable":
        if option and option not in TEXT_KINDS:
            raise ValueError(f"trainable text encoder {option!r}: choose one of {', '.join(TEXT_KINDS)}")
        return {"mode": mode, "text_encoder": option or "gru"}
    if option and not option.isdigit():
        raise ValueError(f"finetune:{option}: give the number of MobileNetV2 blocks to train, e.g. finetune:3")
    return {"mode": mode, "finetune_blocks": int(option or 3)}


__all__ = ["MODES", "parse_mode"]
