"""The fused model over frozen features (``kind = "fused"``): a trained network plus everything needed to use it on
new products (features, label encoders, neighbours), saved as a folder.

A saved model folder holds ``config.json`` (task with label encoders, inputs, network hyper-parameters, split,
metrics), ``features.json`` (the fitted TF-IDF vocabularies / tabular categories), ``weights.pt`` (the state dict),
``neighbours.npz`` (fused vectors of the training items, for "nearest training products") and ``split.json``
(which rows trained, validated and tested it). It reloads in a fresh process and predicts identically.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from tuwen.predict.batches import make_batch
from tuwen.predict.endtoend import parse_mode
from tuwen.predict.features import FeatureBuilder, FeatureSet
from tuwen.predict.networks import EnsembleModel, MultimodalModel, build_network, network_outputs
from tuwen.predict.predictor import Predictor
from tuwen.predict.tasks import Task, make_task, task_from_state
from tuwen.predict.training.ablation import modality_ablation
from tuwen.predict.training.config import MODALITIES, TrainConfig, resolve_quality
from tuwen.predict.training.crossfit import fit_crossfitted
from tuwen.predict.training.fast import fit_fast
from tuwen.predict.training.members import neighbour_labels
from tuwen.predict.training.prepare import Prepared, labelled_rows, load_items, prepare
from tuwen.predict.vectors import model_features
from tuwen.util.folders import atomic_folder, read_info, swap_folder, write_info
from tuwen.util.runtime import torch_threads
from tuwen.util.vectors import l2

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace

FORMAT_VERSION = 1
FROZEN_TASKS = ("classify", "tag", "price", "review")  # what the fused model over stored vectors trains
SAVED_KEYS = {"artifact", "format_version", "predictor", "saved", "task", "network"}  # config.json's own keys


class TuwenModel(Predictor):
    """The fused model over frozen features: ``TuwenModel.fit(workspace, task, target)``, ``predict(frame)``,
    ``evaluate(workspace)``, ``save(folder)``, ``TuwenModel.load(folder)``.

    ``frame`` holds items shaped like the workspace's table (products: id, title, description,
    image_paths…; reviews: id, text, title…). Vectors come from the workspace cache when the item is
    there and from the encoders otherwise (new products).
    """

    kind = "fused"
    builder_type: Any = FeatureBuilder  # what load() rebuilds; end-to-end models bring their own
    network_type: Any = staticmethod(build_network)

    def __init__(self, task: Task, builder: FeatureBuilder, network: MultimodalModel | EnsembleModel,
                 info: dict[str, Any]):
        self.task = task
        self.builder = builder
        self.network = network.eval()
        self.info = info
        self.neighbours: dict[str, np.ndarray] | None = None
        self._encoders: dict[str, Any] = {}
        self._bank: np.ndarray | None = None

    # ------------------------------------------------------------------ inference
    def outputs(self, features: FeatureSet, batch_size: int = 4096, hide: Sequence[str] = ()) -> dict[str, Any]:
        """Predictions per head (probabilities / catalog units) and fused vectors; ``hide`` masks input names."""
        return network_outputs(self.network, self.task, features, batch_size, hide)

    def features(self, frame: pd.DataFrame, workspace: Workspace | None = None) -> FeatureSet:
        """Model inputs for items: cached vectors where the workspace has them, live encoders for the rest."""
        return model_features(self.builder, self.network.config, frame, workspace, self._encoders,
                              self.task.items)

    def predict(self, frame: pd.DataFrame, workspace: Workspace | None = None, contributions: bool = True,
                neighbours: int = 5, **_: Any) -> list[dict[str, Any]]:
        """One JSON-ready dict per item, in input order: prediction, scores, contributions, nearest training items.

        The networks run on one torch thread when the batch is small: for a handful of items the work per
        operator is microseconds, and waking a second OpenMP thread (on a 2-core machine often busy with
        the encoders) cost ~25 ms per GELU, most of a one-product prediction (see
        ``benchmarks/predict_latency.py``: median 25 ms for one product, photo and title embedded live).
        """
        with torch_threads(1 if len(frame) <= 64 else 0):
            return self._predict(frame, workspace, contributions, neighbours)

    def _predict(self, frame: pd.DataFrame, workspace: Workspace | None, contributions: bool,
                 neighbours: int) -> list[dict[str, Any]]:
        features = self.features(frame, workspace)
        result = self.outputs(features)
        predictions = result["predictions"]
        described = []
        for row, item_id in enumerate(features.ids):
            described.append({"id": item_id, **self.task.describe(predictions, row)})
        if contributions:
            for row, parts in enumerate(self.contributions(features, predictions)):
                described[row]["contributions"] = parts
        if neighbours and self.neighbours is not None:
            for row, near in enumerate(self.nearest(result["fused"], neighbours)):
                described[row]["neighbours"] = near
        return described

    def contributions(self, features: FeatureSet, predictions: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Leave-one-modality-out: how much the predicted class's probability (or the predicted value) drops
        when a modality is hidden; plus the fusion's own per-input weights where it has them."""
        base = self.task.confidence(predictions, predictions)
        modalities = sorted({s.modality for s in features.specs})
        deltas: dict[str, np.ndarray] = {}
        for modality in modalities:
            names = [s.name for s in features.specs if s.modality == modality]
            hidden = self.outputs(features, hide=names)["predictions"]
            deltas[modality] = base - self.task.confidence(hidden, predictions)
        present = {m: features.mask[:, [i for i, s in enumerate(features.specs) if s.modality == m]].any(axis=1)
                   for m in modalities}
        with torch.no_grad():
            inputs, mask = make_batch(features, device=next(self.network.parameters()).device)
            weights = self.network.weights(inputs, mask)
        weights_np = weights.cpu().numpy() if weights is not None else None
        rows = []
        for row in range(len(features)):
            parts: dict[str, Any] = {m: (round(float(deltas[m][row]), 4) if present[m][row] else None)
                                     for m in modalities}
            if weights_np is not None:
                parts["weights"] = {name: round(float(w), 4) for name, w in zip(features.names, weights_np[row],
                                                                                 strict=True)}
            rows.append(parts)
        return rows

    def nearest(self, fused: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
        assert self.neighbours is not None
        if self._bank is None:  # float32 once, not on every prediction (10k x 256 values)
            self._bank = np.ascontiguousarray(self.neighbours["vectors"], dtype=np.float32)
        bank = self._bank
        query = l2(fused)
        similarity = query @ bank.T
        order = np.argsort(-similarity, axis=1)[:, :k]
        ids, labels = self.neighbours["ids"], self.neighbours["labels"]
        return [[{"id": str(ids[j]), "label": str(labels[j]), "similarity": round(float(similarity[i, j]), 4)}
                 for j in row] for i, row in enumerate(order)]

    def set_neighbours(self, features: FeatureSet, labels: Sequence[str]) -> None:
        fused = self.outputs(features)["fused"]
        fused = l2(fused)
        self.neighbours = {"ids": np.array(features.ids), "labels": np.array([str(x) for x in labels]),
                           "vectors": fused.astype(np.float16)}
        self._bank = None

    # ---------------------------------------------------------------- the Predictor contract
    @classmethod
    def accepts(cls, task: str, options: Mapping[str, Any]) -> bool:
        return task in FROZEN_TASKS and parse_mode(options.get("encoders")) is None

    @classmethod
    def fit(cls, workspace: Workspace, task: str | Task, target: str | None = None, *, name: str | None = None,
            text_fields: tuple[str, ...] | None = None, modalities: tuple[str, ...] = MODALITIES,
            tabular: tuple[str, ...] = (), encoders: tuple[str, ...] | None = None, fusion: str = "gated",
            seed: int = 0, config: TrainConfig | None = None, save: bool = True,
            limit: int | None = None) -> TuwenModel:
        """Train one fused model (its experts, linear members and blend); saved under ``WS/artifacts/models/NAME``.

        ``config.quality`` picks how choices are made (cross-fitted "best", one validation part "fast", "auto" by
        size); ``config.refit`` learns from every labelled row instead of holding a test part back."""
        started = time.perf_counter()
        task_obj = make_task(task, target) if isinstance(task, str) else task
        config = replace(config or TrainConfig(), fusion=fusion, seed=seed)
        quality = resolve_quality(config, labelled_rows(workspace, task_obj, limit))
        test_size = 0.0 if config.refit else 0.2
        val_size = 0.0 if quality == "best" else 0.1
        prepared = prepare(workspace, task_obj, text_fields, modalities, tabular, encoders, seed=seed, limit=limit,
                           test_size=test_size, val_size=val_size)
        name = name or default_name(task_obj, target)
        folder = workspace.artifacts / "models" / name
        staging = workspace.artifacts / "models" / f".{name}.training"
        names = prepared.inputs(modalities)
        if quality == "best":
            if save:
                staging.mkdir(parents=True, exist_ok=True)
            fitted, _ = fit_crossfitted(prepared, names, config)
        else:
            if save:
                staging.mkdir(parents=True, exist_ok=True)
            fitted, _ = fit_fast(prepared, names, config, staging if save else None)
        model = cls(fitted.task, fitted.builder, fitted.network, fitted.info)
        # the cross-fitted members and the fast model's linear member learn from every non-test row
        fitted_rows = np.flatnonzero(prepared.split != "test") if quality == "best" or fitted.info.get("linear") \
            else prepared.rows("train")
        model.info.update({"name": name, "workspace": str(workspace.path), "target": target,
                           "text_fields": list(text_fields or task_obj.default_text_fields),
                           "modalities": list(modalities), "refit": config.refit, "fitted_rows": len(fitted_rows),
                           "labelled_rows": len(prepared.frame), "wall_seconds": round(time.perf_counter() - started,
                                                                                       2)})
        train_rows = prepared.rows("train")
        model.set_neighbours(prepared.features.subset(train_rows).select(model.info["inputs"]),
                             neighbour_labels(prepared, train_rows))
        if save:
            model.publish(prepared, staging, folder, fitted_rows)
        return model

    @classmethod
    def ablation(cls, workspace: Workspace, task: str | Task, target: str | None = None,
                 **options: Any) -> dict[str, Any]:
        return modality_ablation(workspace, task, target, **options)

    def publish(self, prepared: Prepared, staging: Path, folder: Path, fitted: np.ndarray | None = None) -> None:
        """Save into the staging folder (beside its training log and checkpoints), add ``split.json``, swap it in.

        ``split.json`` lists the ids of each part and, under ``fitted``, of every row the saved weights learnt from
        (``fitted`` row positions; default the training part)."""
        self.write(staging)  # staging is this training run's own folder: written in place, swapped in once
        ids = {part: [str(i) for i in prepared.frame["id"].iloc[prepared.rows(part)]]
               for part in ("train", "val", "test")}
        fitted = prepared.rows("train") if fitted is None else fitted
        ids["fitted"] = [str(i) for i in prepared.frame["id"].iloc[fitted]]
        (staging / "split.json").write_text(json.dumps(ids), encoding="utf-8")
        swap_folder(staging, folder)
        self.info["folder"] = str(folder)

    def evaluate(self, workspace: Workspace, frame: pd.DataFrame | None = None) -> dict[str, float]:
        """Task metrics on labelled items (rows the task cannot score, e.g. unknown classes, are ignored); without
        ``frame``, on the test rows of the model's own split (``split.json``), filtered as in training."""
        if frame is None:
            frame = self.held_out(workspace)
            if frame.empty and self.info.get("metrics", {}).get("crossfit"):
                return dict(self.info["metrics"]["crossfit"])  # refit on every row: its cross-fitted scores
            if frame.empty:
                raise ValueError(f"{self.info.get('name')}: trained on every labelled row with --quality fast, so no "
                                 "held-out rows are left to score; train with --no-refit to keep a test part")
        features = self.features(frame, workspace)
        return self.task.metrics(self.outputs(features)["predictions"], self.task.targets(frame))

    def held_out(self, workspace: Workspace) -> pd.DataFrame:
        """The test rows of the model's own split, as the task prepared them in training."""
        folder = Path(self.info.get("folder") or workspace.artifacts / "models" / str(self.info.get("name")))
        if not (folder / "split.json").exists():
            raise FileNotFoundError(f"{folder.name}: no split.json (the model was not trained with `tuwen train`)")
        test_ids = set(json.loads((folder / "split.json").read_text(encoding="utf-8"))["test"])
        frame = self.task.prepare(load_items(workspace, self.task))
        return frame[frame["id"].astype(str).isin(test_ids)].reset_index(drop=True)

    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically; training logs and checkpoints already in it are kept."""
        folder = Path(folder)
        with atomic_folder(folder, carry=("metrics.jsonl", "checkpoint*.pt", "tensorboard", "split.json")) as temp:
            self.write(temp)
        return folder

    def write(self, folder: Path) -> None:
        """The model's files into an existing folder that no reader sees yet (``save`` and ``publish`` swap it in)."""
        write_info(folder / "config.json", "model", FORMAT_VERSION,
                   {"predictor": self.kind, "saved": time.time(), "task": self.task.state(),
                    "network": self.network.config, **self.info})
        (folder / "features.json").write_text(json.dumps(self.builder.state(), ensure_ascii=False), encoding="utf-8")
        torch.save(self.network.state_dict(), folder / "weights.pt")
        if self.neighbours is not None:
            np.savez_compressed(folder / "neighbours.npz", **self.neighbours)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> TuwenModel:
        folder = Path(folder)
        config = read_info(folder / "config.json", "model", FORMAT_VERSION, "train one with `tuwen train`")
        builder = cls.builder_type.from_state(json.loads((folder / "features.json").read_text(encoding="utf-8")))
        network = cls.network_type(config["network"])
        network.load_state_dict(torch.load(folder / "weights.pt", map_location=device, weights_only=True))
        info = {k: v for k, v in config.items() if k not in SAVED_KEYS}
        model = cls(task_from_state(config["task"]), builder, network.to(device), info)
        if (folder / "neighbours.npz").exists():
            with np.load(folder / "neighbours.npz", allow_pickle=False) as saved:
                model.neighbours = {k: saved[k] for k in saved.files}
        model.info["folder"] = str(folder)
        return model


def default_name(task: Task, target: str | None, suffix: str = "") -> str:
    """A model's folder name when the user gives none: task and target, e.g. ``classify-articleType``."""
    return f"{task.name}-{(target or task.name).replace(',', '+').replace(':', '')}{suffix}"
