"""End-to-end models: trainable encoders feeding the same fusion, heads and training loop as the fast path.

The fast path (:mod:`tuwen.predict.networks`) projects *frozen* vectors. Here each modality's projection is
replaced by a network that reads raw inputs and is trained with everything else:

* text: token ids (:mod:`tuwen.predict.endtoend.tokenizer`, Chinese and English) → :class:`TextGRU` or :class:`TextCNN`;
* image, ``mode="trainable"``: 64-128 px thumbnails → :class:`SmallCNN`, for users with no pretrained model;
* image, ``mode="finetune"``: the pretrained MobileNetV2 with its last blocks trained (:class:`MobileNetTail`).

What is reused unchanged: the task (targets, loss, metrics, label encoders), the split
(:func:`tuwen.predict.training.splits.split_items`, same rule and seed, so numbers compare with frozen-feature models),
the fusion modules and unimodal heads (:class:`tuwen.predict.networks.MultimodalModel`, which
:class:`EndToEndNetwork` subclasses), the training loop (:func:`tuwen.predict.training.loop.fit_network`: early
stopping, class weights, seed, checkpoints, ``metrics.jsonl``, progress bar), and the model folder
(:class:`tuwen.predict.model.TuwenModel`: ``predict`` with contributions and neighbours, ``evaluate``, ``save``).

The model folder is a normal tuwen model folder; ``features.json`` also holds the tokenizer's
vocabulary (built from the training texts only) and the image settings, and ``config.json`` says
``"predictor": "endtoend"``, which is how :func:`tuwen.predict.registry.load_model` knows to load it with
:class:`EndToEndModel`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from tuwen.encoders.cache import FEW_IDS
from tuwen.predict.endtoend import MODES, encoder_names, parse_mode
from tuwen.predict.endtoend.data import cache_folder, thumbnails, trunk_activations
from tuwen.predict.endtoend.image_encoders import MobileNetTail, SmallCNN
from tuwen.predict.endtoend.text_encoders import TEXT_ENCODERS
from tuwen.predict.endtoend.tokenizer import PAD, Tokenizer
from tuwen.predict.features import (
    TABULAR,
    FeatureBuilder,
    FeatureSet,
    InputSpec,
    canonical_fields,
    first_image,
    text_of,
)
from tuwen.predict.model import TuwenModel, default_name
from tuwen.predict.networks import EnsembleModel, MultimodalModel, build_network, network_inputs, network_outputs
from tuwen.predict.tasks import Task, make_task
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.members import fit_members, neighbour_labels
from tuwen.predict.training.prepare import Prepared, available_vectors, split_frame
from tuwen.store.workspace import Workspace

IMAGE_CNN = "image_cnn"
IMAGE_FINETUNE = "mobilenet_v2_ft"
TEXT_PREFIX = "text_"

# End-to-end training settings in place of TrainConfig's frozen-feature defaults (see endtoend_config). Fewer
# epochs and a shorter patience: an epoch here runs CNNs, not linear layers.
ENDTOEND_DEFAULTS: dict[str, dict[str, Any]] = {
    "trainable": {"epochs": 12, "patience": 3, "batch_size": 128, "lr": 2e-3, "dropout": 0.3, "input_dropout": 0.0,
                  "ensemble": 1},
    "finetune": {"epochs": 8, "patience": 3, "batch_size": 128, "lr": 1e-3, "dropout": 0.3, "input_dropout": 0.0,
                 "ensemble": 1},
}


# --------------------------------------------------------------------------------------------- network


def make_encoder(spec: dict[str, Any], hidden: int, dropout: float, pretrained: bool = True) -> nn.Module:
    """The trainable module of one input, from its saved description (``pretrained``: start the fine-tuned
    MobileNetV2 blocks from ImageNet, which a model about to load its own weights does not need)."""
    kind = spec["type"]
    if kind.startswith(TEXT_PREFIX):
        return TEXT_ENCODERS[kind[len(TEXT_PREFIX):]](spec["vocab"], hidden, dropout)
    if kind == IMAGE_CNN:
        return SmallCNN(hidden, dropout, spec["size"])
    if kind == IMAGE_FINETUNE:
        return MobileNetTail(hidden, dropout, spec["blocks"], pretrained)
    raise ValueError(f"unknown trainable encoder {kind!r}")


class EndToEndNetwork(MultimodalModel):
    """:class:`MultimodalModel` whose projections of trainable inputs are encoders (text RNN/CNN, image CNN)."""

    def __init__(self, inputs: list[dict[str, Any]], heads: dict[str, int], fusion: str = "gated",
                 hidden: int = 256, dropout: float = 0.2, input_dropout: float = 0.1,
                 modality_dropout: float = 0.15, aux_weight: float = 0.5, wide: bool = False,
                 pretrained: bool = True):
        super().__init__(inputs, heads, fusion, hidden, dropout, input_dropout, modality_dropout, aux_weight, wide)
        self.projections = nn.ModuleList(
            make_encoder(i["trainable"], hidden, dropout, pretrained) if i.get("trainable") else projection
            for i, projection in zip(inputs, self.projections, strict=True))


def build_endtoend_network(config: dict[str, Any]) -> MultimodalModel | EnsembleModel:
    """A saved network's skeleton: its weights are loaded next, so no ImageNet weights are read for it."""
    return build_network({**config, "pretrained": False}, EndToEndNetwork)


# -------------------------------------------------------------------------------------------- features


class EndToEndBuilder(FeatureBuilder):
    """Items → token ids, thumbnails or trunk activations (and tabular features), in a :class:`FeatureSet`.

    The tokenizer is fitted on the training rows' texts (every trainable text field); the image
    settings (``size``, and ``blocks`` when fine-tuning) are fixed. Saved with the model.
    """

    def __init__(self, specs: list[InputSpec], image: dict[str, Any] | None = None,
                 tokenizer: Tokenizer | None = None):
        super().__init__(specs)
        self.image = dict(image or {})
        self.tokenizer = tokenizer
        self.device = "cpu"
        self.progress = False

    @property
    def text_specs(self) -> list[InputSpec]:
        return [s for s in self.specs if s.encoder.startswith(TEXT_PREFIX)]

    def fit(self, frame: pd.DataFrame) -> EndToEndBuilder:
        super().fit(frame)
        if self.text_specs:
            texts = [t for s in self.text_specs for t in text_of(frame, s.field)]
            self.tokenizer = Tokenizer().fit(texts)
        return self

    def build(self, frame: pd.DataFrame, vector_source: Any = None, cache: Path | None = None) -> FeatureSet:  # type: ignore[override]
        """Features of items; ``cache`` is the folder of decoded thumbnails / trunk activations (a workspace's)."""
        return super().build(frame, vector_source or self.source(cache))

    def source(self, cache: Path | None) -> Any:
        def source(spec: InputSpec, ids: list[str], frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
            if spec.encoder.startswith(TEXT_PREFIX):
                assert self.tokenizer is not None, "fit() before build()"
                tokens = self.tokenizer.encode(list(text_of(frame, spec.field)))
                return tokens, tokens[:, 0] != PAD
            paths = first_image(frame)
            if spec.encoder == IMAGE_CNN:
                return thumbnails(paths, self.image["size"], cache, progress=self.progress)
            if spec.encoder == IMAGE_FINETUNE:
                return trunk_activations(paths, self.image["blocks"], self.image["size"], cache, device=self.device,
                                         progress=self.progress)
            raise KeyError(f"end-to-end models have no input {spec.name}")

        return source

    def select(self, names: list[str]) -> EndToEndBuilder:  # type: ignore[override]
        chosen = super().select(names)
        builder = EndToEndBuilder(chosen.specs, self.image, self.tokenizer)
        builder.text, builder.tabular = chosen.text, chosen.tabular
        return builder

    def state(self) -> dict[str, Any]:
        return {**super().state(), "endtoend": {"image": self.image,
                                                "tokenizer": self.tokenizer.state() if self.tokenizer else None}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> EndToEndBuilder:
        base = FeatureBuilder.from_state(state)
        extra = state["endtoend"]
        tokenizer = Tokenizer.from_state(extra["tokenizer"]) if extra.get("tokenizer") else None
        builder = cls(base.specs, extra.get("image"), tokenizer)
        builder.text, builder.tabular = base.text, base.tabular
        return builder


def endtoend_specs(fields: tuple[str, ...], modalities: tuple[str, ...], tabular: tuple[str, ...], mode: str,
                   text_encoder: str) -> list[InputSpec]:
    specs: list[InputSpec] = []
    if "text" in modalities:
        specs += [InputSpec(f, f"{TEXT_PREFIX}{text_encoder}", "text") for f in fields]
    if "image" in modalities:
        specs.append(InputSpec("image", IMAGE_CNN if mode == "trainable" else IMAGE_FINETUNE, "image"))
    if "tabular" in modalities and tabular:
        specs.append(InputSpec(TABULAR, TABULAR, "tabular", tuple(tabular)))
    if not specs:
        raise ValueError(f"no model inputs for modalities {','.join(modalities)}")
    return specs


def endtoend_inputs(builder: EndToEndBuilder, features: FeatureSet) -> list[dict[str, Any]]:
    """The network's input descriptions: :func:`tuwen.predict.networks.network_inputs` plus each trainable encoder's."""
    inputs = network_inputs(features)
    for entry, spec in zip(inputs, features.specs, strict=True):
        if spec.encoder.startswith(TEXT_PREFIX):
            assert builder.tokenizer is not None
            entry["trainable"] = {"type": spec.encoder, "vocab": len(builder.tokenizer)}
        elif spec.encoder == IMAGE_CNN:
            entry["trainable"] = {"type": IMAGE_CNN, "size": builder.image["size"]}
        elif spec.encoder == IMAGE_FINETUNE:
            entry["trainable"] = {"type": IMAGE_FINETUNE, "blocks": builder.image["blocks"]}
    return inputs


# ----------------------------------------------------------------------------------------------- model


class EndToEndModel(TuwenModel):
    """A trained end-to-end model (``kind = "endtoend"``): same ``predict`` / ``evaluate`` / ``save`` as
    :class:`TuwenModel`; ``encoders="trainable"`` / ``"finetune"`` picks it."""

    kind = "endtoend"
    builder: EndToEndBuilder
    builder_type = EndToEndBuilder
    network_type = staticmethod(build_endtoend_network)

    def features(self, frame: pd.DataFrame, workspace: Workspace | None = None) -> FeatureSet:
        """Token ids and pixels of items; for a batch, photos already decoded for the workspace come from its
        cache. A few products (a prediction) decode their photos directly: reading the whole cache file, and
        rewriting it with the new photos, costs far more than decoding them (the rule of ``load_vectors``)."""
        return self.builder.build(frame, cache=cache_folder(workspace) if len(frame) > FEW_IDS else None)

    @classmethod
    def accepts(cls, task: str, options: Mapping[str, Any]) -> bool:
        return parse_mode(options.get("encoders")) is not None

    @classmethod
    def fit(cls, workspace: Workspace, task: str | Task, target: str | None = None, *,  # type: ignore[override]
            encoders: Any = "trainable", **options: Any) -> EndToEndModel:
        """Train with the end-to-end encoders ``encoders`` names (see :func:`train_endtoend` for the options)."""
        return train_endtoend(workspace, task, target, **(parse_mode(encoders) or {}), **options)

    @classmethod
    def ablation(cls, workspace: Workspace, task: str | Task, target: str | None = None, *,
                 encoders: Any = None, **_: Any) -> dict[str, Any]:
        cached = sorted({e for e, _ in available_vectors(workspace)})
        raise ValueError(f"encoders {','.join(encoder_names(encoders))}: end-to-end encoders ({', '.join(MODES)}) "
                         "train with `tuwen train` or Workspace.train; the ablation compares models on the "
                         f"workspace's stored features: name cached encoders ({', '.join(cached) or 'none yet'}), "
                         "or none")

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> EndToEndModel:
        model = super().load(folder, device)
        if not (isinstance(model, EndToEndModel) and model.info.get("endtoend")):
            raise ValueError(f"{Path(folder).name}: not an end-to-end model")
        model.builder.device = device
        return model


# -------------------------------------------------------------------------------------------- training


def endtoend_config(mode: str, **settings: Any) -> TrainConfig:
    """A TrainConfig for end-to-end training: the mode's defaults (:data:`ENDTOEND_DEFAULTS`), then ``settings``.

    Why a constructor: the end-to-end defaults apply exactly where the caller set nothing. Comparing a
    given config with TrainConfig's defaults cannot tell "left at 40 epochs" from "asked for 40 epochs".
    """
    if mode not in MODES:
        raise ValueError(f"end-to-end mode {mode!r}: choose one of {', '.join(MODES)}")
    return TrainConfig(**{**ENDTOEND_DEFAULTS[mode], **settings})


def train_endtoend(workspace: Workspace, task: str | Task, target: str | None = None, *, mode: str = "trainable",
                   text_encoder: str = "gru", image_size: int | None = None, finetune_blocks: int = 3,
                   name: str | None = None, text_fields: tuple[str, ...] | None = None,
                   modalities: tuple[str, ...] = ("text", "image"), tabular: tuple[str, ...] = (),
                   fusion: str = "gated", seed: int = 0, config: Any = None, save: bool = True,
                   limit: int | None = None, test_size: float = 0.2, val_size: float = 0.1) -> EndToEndModel:
    """Train an end-to-end model on a workspace's products and save it under ``WS/artifacts/models/NAME``.

    ``mode="trainable"``: ``text_encoder`` ("gru" or "cnn") over the tokenized text fields and a
    small CNN over ``image_size`` px thumbnails (default 64). ``mode="finetune"``: the same text
    encoder, and MobileNetV2 with its last ``finetune_blocks`` modules trained, at ``image_size``
    (default 224). The split is the fast path's (:func:`tuwen.predict.training.prepare.split_frame`): the same rows as a
    frozen-feature model of the same task, target and seed. ``config`` is used as given; without one, the
    mode's defaults (:func:`endtoend_config`; ``endtoend_config(mode, epochs=5)`` changes only the epochs).
    """
    if mode not in MODES:
        raise ValueError(f"end-to-end mode {mode!r}: choose one of {', '.join(MODES)}")
    if text_encoder not in TEXT_ENCODERS:
        raise ValueError(f"text encoder {text_encoder!r}: choose one of {', '.join(TEXT_ENCODERS)}")
    task_obj = make_task(task, target) if isinstance(task, str) else task
    if task_obj.items != "products":
        raise ValueError(f"end-to-end encoders train on products; task {task_obj.name!r} is not supported "
                         "(use the frozen-feature path)")
    config = replace(config or endtoend_config(mode), fusion=fusion, seed=seed)

    frame, split, info_split = split_frame(workspace, task_obj, seed, test_size, val_size, limit)  # as the fast path
    text_fields = canonical_fields(text_fields or task_obj.default_text_fields)
    image = {"size": image_size or 64} if mode == "trainable" else {"size": image_size or 224,
                                                                     "blocks": finetune_blocks}
    specs = endtoend_specs(text_fields, tuple(modalities), tuple(tabular), mode, text_encoder)
    train_frame = frame[split == "train"]
    task_obj.fit(train_frame)
    builder = EndToEndBuilder(specs, image).fit(train_frame)
    builder.device, builder.progress = config.device, config.progress
    features = builder.build(frame, cache=cache_folder(workspace))
    builder.progress = False
    prepared = Prepared(task_obj, frame, split, builder, features, info_split, task_obj.targets(frame))

    name = name or default_name(task_obj, target, f"-{mode}")
    folder = workspace.artifacts / "models" / name
    staging = workspace.artifacts / "models" / f".{name}.training"
    if save:
        staging.mkdir(parents=True, exist_ok=True)
    train, y_train = prepared.part("train")
    val, y_val = prepared.part("val")
    test, y_test = prepared.part("test")
    inputs = endtoend_inputs(builder, train)
    members = max(1, config.ensemble)
    network, fit = fit_members(
        lambda: EndToEndNetwork(inputs, task_obj.heads(), config.fusion, config.hidden, config.dropout,
                                config.input_dropout, config.modality_dropout, config.aux_weight),
        task_obj, train, y_train, val, y_val, config, members, staging if save else None, batch_size=1024)
    outputs = network_outputs(network, task_obj, test, batch_size=1024)
    test_metrics = task_obj.metrics(outputs["predictions"], y_test) if len(test) else {}
    info = {"split": info_split, "train": {k: v for k, v in asdict(config).items() if k != "progress"},
            "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"], "seconds": fit["seconds"],
            "blend": fit["blend"], "ensemble": members, "metrics": {"val": fit["val"], "test": test_metrics},
            "inputs": [s.name for s in specs],
            "endtoend": {"mode": mode, "text_encoder": text_encoder if "text" in modalities else None,
                         "image": image if "image" in modalities else None},
            "name": name, "workspace": str(workspace.path), "target": target, "text_fields": list(text_fields),
            "modalities": list(modalities)}
    model = EndToEndModel(task_obj, builder, network, info)
    train_rows = prepared.rows("train")
    model.set_neighbours(features.subset(train_rows), neighbour_labels(prepared, train_rows))
    if save:
        model.publish(prepared, staging, folder)
    return model
