"""End-to-end trainable encoders, for users with no pretrained model (and fine-tuning of the pretrained one).

``ws.train(task, target, encoders="trainable")`` / ``tuwen train WS --encoders trainable`` trains a
GRU (``trainable:cnn``: a 1-D CNN) over tokenized text and a small CNN over 64 px thumbnails;
``encoders="finetune"`` (``finetune:N``) trains MobileNetV2's last N modules (default 3) with the
same text encoder. Both feed the fast path's fusion, heads and training loop; see
:mod:`tuwen.predict.endtoend.model`. Nothing heavy is imported here, so :func:`parse_mode` is cheap.
"""

from __future__ import annotations

from typing import Any

MODES = ("trainable", "finetune")
TEXT_KINDS = ("gru", "cnn")  # tuwen.predict.endtoend.text_encoders.TEXT_ENCODERS


def encoder_names(encoders: Any) -> list[str]:
    """The encoder names of an ``encoders`` value: a tuple/list of names, or one string (commas split it)."""
    if isinstance(encoders, str):
        encoders = encoders.split(",")
    if not isinstance(encoders, (list, tuple)):
        return []
    return [str(e).strip() for e in encoders if str(e).strip()]


def names_mode(encoders: Any) -> bool:
    """Whether ``encoders`` names an end-to-end mode anywhere (``trainable``, ``finetune:4``, ...)."""
    return any(name.partition(":")[0] in MODES for name in encoder_names(encoders))


def parse_mode(encoders: Any) -> dict[str, Any] | None:
    """``"trainable"``, ``"trainable:cnn"``, ``"finetune"``, ``"finetune:4"`` (also as a one-item tuple) → options.

    None when ``encoders`` names only ordinary cached encoders (the fast path). A mode beside other names
    (``trainable,use_multilingual``) is a ValueError, not the fast path: the end-to-end encoders replace the
    cached ones, so the caller asked for two different models and training either would be a silent guess.
    """
    names = encoder_names(encoders)
    if not names_mode(names):
        return None
    if len(names) > 1:
        raise ValueError(f"encoders {','.join(names)}: an end-to-end mode ({', '.join(MODES)}) trains its own text "
                         "and image encoders and goes alone; give one of them, or only cached encoders")
    mode, _, option = names[0].partition(":")
    if mode == "trainable":
        if option and option not in TEXT_KINDS:
            raise ValueError(f"trainable text encoder {option!r}: choose one of {', '.join(TEXT_KINDS)}")
        return {"mode": mode, "text_encoder": option or "gru"}
    if option and not option.isdigit():
        raise ValueError(f"finetune:{option}: give the number of MobileNetV2 blocks to train, e.g. finetune:3")
    return {"mode": mode, "finetune_blocks": int(option or 3)}


__all__ = ["MODES", "encoder_names", "names_mode", "parse_mode"]
