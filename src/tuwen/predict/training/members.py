"""One model's members and how they combine: networks (one or an ensemble), the class-weight choice, the linear
member fitted beside them, and the validation blend with the single-modality experts."""

from __future__ import annotations

import copy
import math
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tuwen.predict.batches import make_batch
from tuwen.predict.features import FeatureBuilder, FeatureSet
from tuwen.predict.linear import LINEAR, fit_linear
from tuwen.predict.networks import EnsembleModel, ExpertBlend, MultimodalModel, network_inputs, network_outputs
from tuwen.predict.tasks import Task
from tuwen.predict.tasks.classify import ClassifyTask
from tuwen.predict.training.config import MODALITIES, TrainConfig, seed_everything
from tuwen.predict.training.loop import fit_network, targets_tensor
from tuwen.predict.training.prepare import Prepared
from tuwen.util.runtime import torch_threads


@dataclass
class Fitted:
    """A trained network with what it needs to run on new items; the model classes (:mod:`tuwen.predict.model`)
    wrap it. Training hands this up rather than a model so that it needs nothing from the layer above."""

    task: Task
    builder: FeatureBuilder
    network: Any
    info: dict[str, Any]


Experts = dict[str, tuple[Any, list[str]]]  # modality → (its trained single-modality network, its input names)


def fit_variant(prepared: Prepared, names: list[str], config: TrainConfig, folder: Path | None = None,
                experts: Experts | None = None) -> tuple[Fitted, dict[str, Any]]:
    """Train one model on some inputs of a prepared task; returns it and its val/test metrics.

    ``experts`` (single-modality networks trained on the same split, see :func:`train_experts`) are
    blended with the fused network on the validation rows (:class:`tuwen.models.ExpertBlend`).
    """
    train, y_train = prepared.part("train", names)
    val, y_val = prepared.part("val", names)
    test, y_test = prepared.part("test", names)
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
    members = config.ensemble or (5 if len(train) < 1500 else 3 if len(train) < 4000 else 1)

    def train_members(into: Path | None = folder) -> tuple[Any, dict[str, Any]]:
        return fit_members(lambda: MultimodalModel(network_inputs(train), prepared.task.heads(), config.fusion,
                                                   config.hidden, config.dropout, config.input_dropout,
                                                   config.modality_dropout, config.aux_weight, config.wide),
                           prepared.task, train, y_train, val, y_val, config, members, into)

    experts = {m: e for m, e in (experts or {}).items() if set(e[1]) < set(names)}
    task, label = prepared.task, getattr(prepared.task, "label", None)
    choices = [task.class_weight] + [c for c in config.class_weights if c != task.class_weight] \
        if type(task) is ClassifyTask and not experts and len(val) >= 20 and label is not None else []
    # The linear member (predict.linear) fits on the second core while the networks train on the first. It draws
    # no random numbers, so the networks train exactly as they would alone; it gets its own copy of the task, whose
    # class weights the choice below changes; and both run at one thread count, set once here, so neither changes
    # the other's (process-wide) setting mid-run.
    with torch_threads(config.threads if config.device == "cpu" else 0), ThreadPoolExecutor(1) as pool:
        def start_linear() -> Any:
            if not config.linear or len(val) < 20:
                return None
            key = (tuple(names), tuple(label.weights if label is not None else ()), config.device)
            if key not in prepared.linears:
                prepared.linears[key] = pool.submit(fit_linear, network_inputs(train), copy.deepcopy(task), train,
                                                    y_train, val, y_val, device=config.device)
            return prepared.linears[key]

        if len(choices) > 1:
            network, fit, chosen, score, linear = choose_class_weight(prepared, choices, train_members, folder,
                                                                      start_linear)
            original = list(label.weights)
            label.fit(prepared.frame[prepared.split == "train"], chosen)  # the blend's loss weighs as chosen
            try:
                network, fit = blend_members(network, fit, linear, {}, names, task, val, y_val, config.device)
            finally:
                label.weights = original
            network.class_weight = chosen  # read by the fused networks that blend with this one
            network.class_weight_score = score  # sign-adjusted validation score: higher is better
        else:
            # A fused network trains (and fits its blend) with the weighting its best expert (on validation)
            # picked: the modality that predicts the target best is the one whose errors the weighting was chosen
            # for. Ties go to the first expert (the text one when both exist), not to the weighting's name.
            picks = [(e[0].class_weight_score, e[0].class_weight) for e in experts.values()
                     if getattr(e[0], "class_weight", None) is not None]
            agreed = max(picks, key=lambda p: p[0])[1] if picks and type(task) is ClassifyTask and \
                label is not None else None
            if agreed == getattr(task, "class_weight", None):
                agreed = None
            original = list(label.weights) if label is not None else []
            if agreed is not None:
                label.fit(prepared.frame[prepared.split == "train"], agreed)
            try:
                pending = start_linear()
                network, fit = train_members()
                linear = pending.result() if pending else None
                fit["class_weight"] = {"choice": agreed, "from": "experts"} if agreed is not None else None
                network, fit = blend_members(network, fit, linear, experts, names, task, val, y_val, config.device)
            finally:
                if label is not None:
                    label.weights = original
    outputs = network_outputs(network, prepared.task, test)
    test_metrics = prepared.task.metrics(outputs["predictions"], y_test) if len(test) else {}
    info = {"split": prepared.split_info, "train": {k: v for k, v in asdict(config).items() if k != "progress"},
            "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"], "seconds": fit["seconds"],
            "blend": fit["blend"], "ensemble": members, "experts": fit["experts"], "class_weight": fit["class_weight"],
            "linear": fit.get("linear"), "metrics": {"val": fit["val"], "test": test_metrics}, "inputs": names}
    model = Fitted(prepared.task, prepared.builder.select(names), network, info)
    return model, {"metrics": test_metrics, "val": fit["val"], "seconds": fit["seconds"],
                   "best_epoch": fit["best_epoch"], "predictions": outputs["predictions"], "y": y_test,
                   "experts": fit["experts"], "network": network, "class_weight": fit["class_weight"]}


def choose_class_weight(prepared: Prepared, choices: list[str], train_members: Callable[[Path | None], Any],
                        folder: Path | None, start_linear: Callable[[], Any]
                        ) -> tuple[Any, dict[str, Any], str, float, Any]:
    """Train a single-modality network once per class weighting; keep the best on the validation rows.

    Why: soft ("sqrt") balancing helped H&M types, no weighting fashion colours; validation sees which.
    ``start_linear()`` starts fitting the linear member with the task as it is now (beside each candidate's
    network, so the kept one's linear member learnt with the same weighting). Returns the network, its fit,
    the chosen weighting, its sign-adjusted validation score and the linear member's ``(model, fit)`` or None.
    """
    label = prepared.task.label  # type: ignore[attr-defined]
    original, trained, linears = list(label.weights), [], []
    sign = 1.0 if prepared.task.higher_is_better else -1.0
    # each candidate writes its checkpoints and logs into its own folder; the chosen one's are kept
    candidates = [folder / f".class-weight-{k}" for k in range(len(choices))] if folder else []
    try:
        for k, choice in enumerate(choices):
            label.fit(prepared.frame[prepared.split == "train"], choice)
            linears.append(start_linear())
            if folder:  # fresh: a crashed run's event files must not end up in this model
                shutil.rmtree(candidates[k], ignore_errors=True)
                candidates[k].mkdir(parents=True)
            network, fit = train_members(candidates[k] if folder else None)
            value = fit["val"].get(prepared.task.primary, math.nan)
            trained.append((sign * value if math.isfinite(value) else -math.inf, -k, choice, network, fit))
            label.weights = list(original)
    except BaseException:
        label.weights = list(original)
        for candidate in candidates:
            shutil.rmtree(candidate, ignore_errors=True)
        raise
    score, _, chosen, network, fit = max(trained, key=lambda t: (t[0], t[1]))  # ties keep the first candidate
    fit["seconds"] = round(sum(t[4]["seconds"] for t in trained), 3)
    fit["class_weight"] = {"choice": chosen, "validation": {t[2]: round(sign * t[0], 4) for t in trained}}
    if folder:
        keep_candidate(folder, candidates, candidates[choices.index(chosen)])
    pending = linears[choices.index(chosen)]
    return network, fit, chosen, score, pending.result() if pending else None


def blend_members(network: Any, fit: dict[str, Any], linear: tuple[Any, dict[str, Any]] | None, experts: Experts,
               names: list[str], task: Task, val: FeatureSet, y_val: dict[str, np.ndarray], device: str
               ) -> tuple[Any, dict[str, Any]]:
    """Blend a trained network with its experts and its linear member on the validation rows (when there are any).

    A single-modality network has no experts: it blends with the linear model over its own inputs and is never
    replaced by it, so "text alone" is the text network plus logistic regression on the same text.
    """
    fit["experts"] = None
    members = {**experts, **({LINEAR: (linear[0], names)} if linear is not None else {})}
    if linear is not None:
        fit["linear"] = linear[1]
    if members and len(val) >= 20:
        network, fit["experts"] = blend_experts(network, members, names, task, val, y_val, device)
        fit["val"] = task.metrics(network_outputs(network, task, val)["predictions"], y_val)
    return network, fit


def keep_candidate(folder: Path, candidates: list[Path], chosen: Path) -> None:
    """Move the chosen candidate's files (checkpoints, ``metrics.jsonl``, ``tensorboard/``) into ``folder``,
    replacing what is there, and delete every candidate folder: the model's logs describe the kept network."""
    for path in chosen.iterdir():
        target = folder / path.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        path.rename(target)
    for candidate in candidates:
        shutil.rmtree(candidate, ignore_errors=True)


def fit_members(build: Callable[[], MultimodalModel], task: Task, train: FeatureSet, y_train: dict[str, np.ndarray],
                val: FeatureSet, y_val: dict[str, np.ndarray], config: TrainConfig, members: int,
                folder: Path | None = None, batch_size: int = 4096) -> tuple[Any, dict[str, Any]]:
    """Train ``members`` networks from ``build`` (seeds ``seed + 1000·m``) and average them when there are several.

    Each member is seeded before ``build`` makes its weights, so one seed fixes the whole run. Returns the
    network (an :class:`EnsembleModel` for several) and the first member's fit, with the total seconds, every
    member's blend and, for an ensemble, the ensemble's validation metrics.
    """
    networks, fits = [], []
    for member in range(members):
        seed = config.seed + 1000 * member
        seed_everything(seed)
        network = build()
        fits.append(fit_network(network, task, train, y_train, val, y_val, replace(config, seed=seed), folder,
                                member))
        networks.append(network)
    network = networks[0] if members == 1 else EnsembleModel(networks)
    fit = {**fits[0], "seconds": round(sum(f["seconds"] for f in fits), 3),
           "blend": [f["blend"] for f in fits] if members > 1 else fits[0]["blend"]}
    if members > 1 and len(val):
        fit["val"] = task.metrics(network_outputs(network, task, val, batch_size)["predictions"], y_val)
    return network, fit


def blend_experts(network: Any, experts: Experts, names: list[str], task: Task, val: FeatureSet,
                  y_val: dict[str, np.ndarray], device: str) -> tuple[ExpertBlend, dict[str, Any]]:
    """Wrap a fused network with its modality experts; fit the blend (or pick an expert) on the validation rows."""
    blended = ExpertBlend(network, [e[0] for e in experts.values()],
                          [[names.index(n) for n in e[1]] for e in experts.values()], list(experts))
    sign = 1.0 if task.higher_is_better else -1.0

    def score(outputs: dict[str, torch.Tensor]) -> float:
        value = task.metrics({h: task.transform(h, o) for h, o in outputs.items()}, y_val).get(task.primary, math.nan)
        return sign * value if math.isfinite(value) else -math.inf

    inputs, mask = make_batch(val, None, device)
    fitted = blended.fit_blend(inputs, mask, targets_tensor(y_val, np.arange(len(val)), device), task.head_loss,
                               score, fallbacks=[name for name in experts if name != LINEAR])
    return blended, fitted


def train_experts(prepared: Prepared, names: list[str], config: TrainConfig) -> Experts:
    """One single-modality network per modality among ``names`` (none when there is only one modality)."""
    present = [m for m in MODALITIES if any(n in names for n in prepared.inputs((m,)))]
    if not config.experts or len(present) < 2:
        return {}
    experts: Experts = {}
    for modality in present:
        inputs = [n for n in prepared.inputs((modality,)) if n in names]
        model, _ = fit_variant(prepared, inputs, replace(config, fusion="concat"))
        experts[modality] = (model.network, inputs)
    return experts


def neighbour_labels(prepared: Prepared, rows: np.ndarray) -> list[str]:
    frame = prepared.frame.iloc[rows]
    title = frame["title"] if "title" in frame else frame.get("text", pd.Series([""] * len(frame)))
    return [str(t or "")[:80] for t in title]
