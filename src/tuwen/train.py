"""One training loop for every task, and the workspace-level ``train`` / ``evaluate`` (modality ablation).

The split is stated and reproducible: 80/20 train/test, with 1/8 of train held out for validation
(70/10/20 overall), stratified by the target and grouped where copies exist (H&M colour variants
by ``product_code``, Amazon review copies by ``group``), all from one seed. Every model and every
ablation variant of one call uses the same split, so their numbers compare.

The loop: AdamW with warm-up and cosine decay, mini-batches, modality dropout, auxiliary unimodal
losses, class weights from the task, early stopping on the task's validation metric (the best
epoch's weights are restored and written as ``checkpoint.pt``), a Rich progress bar, and a
metrics log, twice: ``metrics.jsonl`` (one JSON object per epoch, for pandas and scripts) and
TensorBoard event files under ``tensorboard/member-N`` (``tensorboard --logdir MODEL/tensorboard``),
written by tensorboardX, which needs neither TensorFlow nor the TensorBoard server.
"""

from __future__ import annotations

import copy
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from tuwen.embed import vector_tables
from tuwen.encoders.images import torch_threads
from tuwen.features import FeatureBuilder, FeatureSet, canonical_fields, default_specs, workspace_vectors
from tuwen.fusion import FUSIONS
from tuwen.linear import LINEAR, fit_linear
from tuwen.models import (
    EnsembleModel,
    ExpertBlend,
    MultimodalModel,
    TuwenModel,
    make_batch,
    network_inputs,
    network_outputs,
)
from tuwen.progress import progress_bar
from tuwen.tasks import Task, group_values, make_task

MODALITIES = ("text", "image", "tabular")
WIDE_LR = 30.0
REVIEW_ENCODERS = ("use_multilingual",)  # review text encoder when the workspace has no text vectors yet


@dataclass
class TrainConfig:
    """Network and optimisation settings; the defaults train a fused head on 10k products in well under a minute."""

    fusion: str = "gated"
    hidden: int = 256
    dropout: float = 0.4
    input_dropout: float = 0.2
    modality_dropout: float = 0.15
    aux_weight: float = 0.5
    epochs: int = 40
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-2
    patience: int = 6
    monitor: str = "metric"  # early stopping watches the task's main validation "metric", or "loss"; "last": none
    ensemble: int = 0  # networks averaged; 0 = by training size: 5 under 1,500 items, 3 under 4,000, else 1
    blend: bool = True  # fit the fused/unimodal output blend on the validation rows (MultimodalModel.fit_blend)
    # A fused model keeps one network per modality beside the fused one and blends them on the validation rows,
    # falling back to the best of them where fusing does not pay (models.ExpertBlend).
    experts: bool = True
    # Every model's validation blend also holds a regularised linear model over its inputs (tuwen.linear: logistic
    # regression on TF-IDF + standardised vectors), a differently-built member; it never replaces the blend alone.
    linear: bool = True
    # Class weightings tried besides the task's own ("sqrt" soft balancing by default) for a classifier's
    # single-modality networks; the best on the validation rows is kept, and a fused network trains with its
    # best expert's pick. Why both: which one wins depends on the target, and validation sees it. Fashion
    # colours (seed 1): text macro-F1 0.904 with "sqrt", 0.922 with none (validation 0.914 vs 0.933); H&M
    # product types: 0.748 with "sqrt", 0.732 with none (validation 0.760 vs 0.749). The price: each
    # single-modality network trains once per candidate. ``()`` trains once, with the task's own weighting.
    class_weights: tuple[str, ...] = ("none",)
    # A linear TF-IDF → output part beside the projections (MultimodalModel's wide part). Off by default: on H&M
    # names it cost the text model 1.5 macro-F1 points (0.769 → 0.754, it overfits within two epochs).
    wide: bool = False
    min_steps_per_epoch: int = 16  # small catalogs get smaller batches, so an epoch is still several steps
    seed: int = 0
    device: str = "cpu"
    # CPU threads while training (0: torch's default). One: these heads are small, and on a busy 2-core machine
    # two OpenMP threads fighting other processes measured 5x slower than one (22 s vs 4 s for one variant).
    threads: int = 1
    progress: bool = True


# ---------------------------------------------------------------------------------------------- split


def split_items(strata: np.ndarray | None, groups: np.ndarray | None, seed: int = 0, test_size: float = 0.2,
                val_size: float = 0.1) -> np.ndarray:
    """"train" / "val" / "test" per row: test is one fold of round(1/test_size), val one fold of the rest.

    scikit-learn's (Stratified)(Group)KFold does the work, so stratification and grouping hold together.
    """
    n = len(strata) if strata is not None else len(groups) if groups is not None else 0
    labels = np.full(n, "train", dtype=object)
    test_rows = _one_fold(np.arange(n), strata, groups, max(2, round(1 / test_size)), seed)
    labels[test_rows] = "test"
    rest = np.flatnonzero(labels == "train")
    if val_size > 0:
        folds = max(2, round((1 - test_size) / val_size))
        sub = lambda a: a[rest] if a is not None else None  # noqa: E731
        labels[rest[_one_fold(np.arange(len(rest)), sub(strata), sub(groups), folds, seed + 1)]] = "val"
    return labels


def _one_fold(rows: np.ndarray, strata: np.ndarray | None, groups: np.ndarray | None, folds: int,
              seed: int) -> np.ndarray:
    if len(rows) < folds:
        return rows[:0]
    if strata is not None:
        counts = pd.Series(strata).value_counts()
        usable = strata if counts.min() >= folds else None  # too-rare strata: fall back to unstratified
    else:
        usable = None
    if groups is not None:
        if len(np.unique(groups)) < folds:
            return rows[:0]
        splitter: Any = StratifiedGroupKFold(folds, shuffle=True, random_state=seed) if usable is not None \
            else GroupKFold(folds, shuffle=True, random_state=seed)
        _, test = next(splitter.split(rows, usable, groups))
    else:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed) if usable is not None \
            else KFold(folds, shuffle=True, random_state=seed)
        _, test = next(splitter.split(rows, usable))
    return rows[test]


# ------------------------------------------------------------------------------------------- training


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _targets_tensor(targets: dict[str, np.ndarray], rows: np.ndarray, device: str) -> dict[str, torch.Tensor]:
    return {h: torch.from_numpy(v[rows]).to(device) for h, v in targets.items()}


def _loss(network: MultimodalModel, task: Task, result: dict[str, Any],
          targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Fused loss per head plus ``aux_weight`` × the mean loss of the unimodal heads on present inputs."""
    total = task.loss(result["outputs"], targets)
    mask = result["mask"]
    if network.aux_weight > 0:
        for head, unimodal in result["unimodal"].items():  # (batch, inputs, out)
            batch, inputs, width = unimodal.shape
            repeated = targets[head].repeat_interleave(inputs)
            losses, valid = task.head_loss(head, unimodal.reshape(batch * inputs, width), repeated)
            present = mask.reshape(-1) & valid
            total = total + network.aux_weight * (losses * present).sum() / present.sum().clamp(min=1)
    return total


@torch.no_grad()
def validation_loss(task: Task, outputs: dict[str, torch.Tensor], targets: dict[str, np.ndarray],
                    device: str) -> float:
    """Mean loss of the fused heads' raw outputs (no auxiliary terms): logged, and watched with ``monitor="loss"``."""
    total, count = 0.0, 0
    for head, output in outputs.items():
        losses, valid = task.head_loss(head, output, torch.from_numpy(targets[head]).to(output.device))
        total += float(losses.sum())
        count += int(valid.sum())
    return total / max(count, 1)


def make_optimizers(network: torch.nn.Module, lr: float, weight_decay: float = 1e-2) -> list[torch.optim.Optimizer]:
    """AdamW for dense weights, SparseAdam for the TF-IDF tables (their gradients are sparse: see SparseProjection)."""
    sparse = [p for m in network.modules() if isinstance(m, torch.nn.EmbeddingBag) for p in m.parameters()]
    dense = [p for p in network.parameters() if all(p is not q for q in sparse)]
    optimizers: list[torch.optim.Optimizer] = [torch.optim.AdamW(dense, lr=lr, weight_decay=weight_decay)]
    if sparse:
        # The wide (linear TF-IDF) tables start at zero and need larger steps than the projections to reach a
        # logistic regression's weights within the few epochs early stopping allows.
        wide = [p for m in network.modules() if isinstance(m, MultimodalModel) for p in m.wide.parameters()]
        deep = [p for p in sparse if all(p is not q for q in wide)]
        groups = [{"params": deep}] + ([{"params": wide, "lr": lr * WIDE_LR}] if wide else [])
        optimizers.append(torch.optim.SparseAdam(groups, lr=lr))
    return optimizers


EVENT_TAGS = {"train_loss": "train/loss", "lr": "train/lr"}  # TensorBoard tags; val_<metric> becomes val/<metric>


def event_writer(folder: Path | None, member: int) -> Any:
    """A TensorBoard writer for one network's run (``folder/tensorboard/member-N``, emptied first so a
    re-run does not draw two curves), or ``None`` when nothing is saved."""
    if folder is None:
        return None
    from tensorboardX import SummaryWriter

    run = folder / "tensorboard" / f"member-{member}"
    shutil.rmtree(run, ignore_errors=True)
    return SummaryWriter(str(run), flush_secs=10)


def fit_network(network: MultimodalModel, task: Task, train: FeatureSet, y_train: dict[str, np.ndarray],
                val: FeatureSet | None, y_val: dict[str, np.ndarray] | None, config: TrainConfig,
                folder: Path | None = None, member: int = 0) -> dict[str, Any]:
    """Train in place; restore the best validation epoch. Returns the history and the best epoch's metrics."""
    with torch_threads(config.threads if config.device == "cpu" else 0):
        return _fit_network(network, task, train, y_train, val, y_val, config, folder, member)


def _fit_network(network: MultimodalModel, task: Task, train: FeatureSet, y_train: dict[str, np.ndarray],
                 val: FeatureSet | None, y_val: dict[str, np.ndarray] | None, config: TrainConfig,
                 folder: Path | None, member: int) -> dict[str, Any]:
    seed_everything(config.seed)
    device = config.device
    network.to(device)
    network.fit_normalisation(train)
    optimizers = make_optimizers(network, config.lr, config.weight_decay)
    dense = optimizers[0].param_groups[0]["params"]
    batch_size = max(8, min(config.batch_size, len(train) // config.min_steps_per_epoch))
    steps_per_epoch = max(1, math.ceil(len(train) / batch_size))
    total_steps, warmup = config.epochs * steps_per_epoch, steps_per_epoch
    schedule = lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total_steps)))  # noqa: E731
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in optimizers]
    rng = np.random.default_rng(config.seed)
    sign = 1.0 if task.higher_is_better else -1.0
    best: dict[str, Any] = {"score": -math.inf, "epoch": -1, "metrics": {}, "state": None}
    history: list[dict[str, Any]] = []
    log = (folder / "metrics.jsonl").open("a" if member else "w", encoding="utf-8") if folder else None
    events = event_writer(folder, member)
    started = time.perf_counter()
    try:
        with progress_bar(config.epochs, f"train · {network.fusion_name}", config.progress) as advance:
            for epoch in range(config.epochs):
                network.train()
                order = rng.permutation(len(train))
                losses = []
                for start in range(0, len(order), batch_size):
                    rows = order[start:start + batch_size]
                    inputs, mask = make_batch(train, rows, device)
                    result = network(inputs, mask)
                    loss = _loss(network, task, result, _targets_tensor(y_train, rows, device))
                    for optimizer in optimizers:
                        optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(dense, 5.0)
                    for optimizer, scheduler in zip(optimizers, schedulers, strict=True):
                        optimizer.step()
                        scheduler.step()
                    losses.append(float(loss.detach()))
                entry: dict[str, Any] = {"member": member, "epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                                         "lr": schedulers[0].get_last_lr()[0],
                                         "seconds": round(time.perf_counter() - started, 3)}
                if val is not None and y_val is not None and len(val):
                    outputs = network_outputs(network, task, val)
                    metrics = task.metrics(outputs["predictions"], y_val)
                    metrics["loss"] = validation_loss(task, outputs["raw"], y_val, device)
                    entry.update({f"val_{k}": v for k, v in metrics.items()})
                    score = -metrics["loss"] if config.monitor == "loss" else float(epoch) \
                        if config.monitor == "last" else sign * metrics.get(task.primary, math.nan)
                else:  # no validation rows: keep the last epoch
                    metrics, score = {}, float(epoch)
                history.append(entry)
                if log:
                    log.write(json.dumps(entry) + "\n")
                    log.flush()
                if events:
                    for key, value in entry.items():
                        if key in EVENT_TAGS or key.startswith("val_"):
                            events.add_scalar(EVENT_TAGS.get(key, key.replace("val_", "val/", 1)), value, epoch + 1)
                advance(1)
                if score > best["score"]:
                    best = {"score": score, "epoch": epoch + 1, "metrics": metrics,
                            "state": copy.deepcopy(network.state_dict())}
                    if folder:
                        torch.save(best["state"], folder / f"checkpoint-{member}.pt" if member else
                                   folder / "checkpoint.pt")
                elif epoch + 1 - best["epoch"] >= config.patience:
                    break
    finally:
        if log:
            log.close()
        if events:
            events.close()
    if best["state"] is not None:
        network.load_state_dict(best["state"])
    network.eval()
    blend = None
    if config.blend and val is not None and y_val is not None and len(val) >= 20:
        inputs, mask = make_batch(val, None, device)
        blend = network.fit_blend(inputs, mask, _targets_tensor(y_val, np.arange(len(val)), device), task.head_loss)
        if folder:
            torch.save(network.state_dict(), folder / f"checkpoint-{member}.pt" if member else
                       folder / "checkpoint.pt")
    return {"history": history, "best_epoch": best["epoch"], "val": best["metrics"], "blend": blend,
            "seconds": round(time.perf_counter() - started, 3), "epochs_run": len(history)}


# ------------------------------------------------------------------------------------ workspace flow


@dataclass
class Prepared:
    """A task's items, split and features, built once and shared by every model/variant of one run."""

    task: Task
    frame: pd.DataFrame
    split: np.ndarray
    builder: FeatureBuilder
    features: FeatureSet
    split_info: dict[str, Any]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    # Linear members' fits (futures) by (inputs, class weights, device): an ablation's fusions all hold the same
    # one, which would otherwise be fitted once per fusion.
    linears: dict[tuple[Any, ...], Any] = field(default_factory=dict)

    def rows(self, part: str) -> np.ndarray:
        return np.flatnonzero(self.split == part)

    def part(self, part: str, names: list[str] | None = None) -> tuple[FeatureSet, dict[str, np.ndarray]]:
        rows = self.rows(part)
        features = self.features.subset(rows)
        if names is not None:
            features = features.select(names)
        return features, {h: v[rows] for h, v in self.targets.items()}

    def inputs(self, modalities: tuple[str, ...]) -> list[str]:
        return [s.name for s in self.features.specs if s.modality in modalities]


def load_items(workspace: Any, task: Task) -> pd.DataFrame:
    if not workspace.has_table(task.items):
        raise KeyError(f"{workspace.path}: no {task.items} in this workspace; run `tuwen ingest` first")
    return workspace.read(task.items)


def available_vectors(workspace: Any) -> list[tuple[str, str]]:
    return sorted({(m["encoder"], m["field"]) for m in vector_tables(workspace).values()})


def prepare(workspace: Any, task: Task, text_fields: tuple[str, ...] | None = None,
            modalities: tuple[str, ...] = MODALITIES, tabular: tuple[str, ...] = (),
            encoders: tuple[str, ...] | None = None, tfidf: bool = True, seed: int = 0, test_size: float = 0.2,
            val_size: float = 0.1, limit: int | None = None) -> Prepared:
    """Items → prepared rows → split → fitted features, for one task on one workspace.

    ``encoders`` limits which cached encoders are used (default: every cached one); ``limit``
    takes a seeded random sample of items first (tests, quick looks).
    """
    frame, split, info = split_frame(workspace, task, seed, test_size, val_size, limit)
    fields = canonical_fields(text_fields or task.default_text_fields)
    text_encoders = [(e, f) for e, f in available_vectors(workspace) if encoders is None or e in encoders]
    if task.items == "reviews":  # review texts are embedded on demand (cached in the workspace on first use)
        names = sorted({e for e, f in text_encoders if f != "image"}) or list(REVIEW_ENCODERS if encoders is None
                                                                               else encoders)
        text_encoders = [(e, f) for e in names for f in fields]
    specs = default_specs(text_encoders, fields, modalities, tabular, tfidf)
    task.fit(frame[split == "train"])
    builder = FeatureBuilder(specs).fit(frame[split == "train"])
    features = builder.build(frame, workspace_vectors(workspace, compute_missing=task.items == "reviews"))
    return Prepared(task, frame, split, builder, features, info, task.targets(frame))


def split_frame(workspace: Any, task: Task, seed: int = 0, test_size: float = 0.2, val_size: float = 0.1,
                limit: int | None = None) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """A task's usable items, their train/val/test labels and the split's description (rule, seed, sizes).

    Every model of a task (frozen features or end-to-end encoders) splits through here, so one seed gives one split.
    """
    frame = load_items(workspace, task)
    if limit is not None and len(frame) > limit:
        frame = frame.sample(limit, random_state=seed).reset_index(drop=True)
    frame = task.prepare(frame)
    group_column = task.group_column(frame)
    groups = group_values(frame, group_column) if group_column else None
    split = split_items(task.strata(frame), groups, seed, test_size, val_size)
    info = {"rule": "stratified by target" + (f", grouped by {group_column}" if group_column else "")
            + f"; test {test_size:.0%}, validation {val_size:.0%} (early stopping), rest train",
            "seed": seed, "train": int((split == "train").sum()), "val": int((split == "val").sum()),
            "test": int((split == "test").sum()), "items": len(frame), "notes": list(task.notes)}
    return frame, split, info


Experts = dict[str, tuple[Any, list[str]]]  # modality → (its trained single-modality network, its input names)


def fit_variant(prepared: Prepared, names: list[str], config: TrainConfig, folder: Path | None = None,
                experts: Experts | None = None) -> tuple[TuwenModel, dict[str, Any]]:
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
    from tuwen.tasks.classify import ClassifyTask

    task, label = prepared.task, getattr(prepared.task, "label", None)
    choices = [task.class_weight] + [c for c in config.class_weights if c != task.class_weight] \
        if type(task) is ClassifyTask and not experts and len(val) >= 20 and label is not None else []
    # The linear member (tuwen.linear) fits on the second core while the networks train on the first. It draws no
    # random numbers, so the networks train exactly as they would alone; it gets its own copy of the task, whose
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
    model = TuwenModel(prepared.task, prepared.builder.select(names), network, info)
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
    fitted = blended.fit_blend(inputs, mask, _targets_tensor(y_val, np.arange(len(val)), device), task.head_loss,
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


def _labels_for_neighbours(prepared: Prepared, rows: np.ndarray) -> list[str]:
    frame = prepared.frame.iloc[rows]
    title = frame["title"] if "title" in frame else frame.get("text", pd.Series([""] * len(frame)))
    return [str(t or "")[:80] for t in title]


def train_model(workspace: Any, task: str | Task, target: str | None = None, *, name: str | None = None,
                text_fields: tuple[str, ...] | None = None, modalities: tuple[str, ...] = MODALITIES,
                tabular: tuple[str, ...] = (), encoders: tuple[str, ...] | None = None, fusion: str = "gated",
                seed: int = 0, config: TrainConfig | None = None, save: bool = True,
                limit: int | None = None) -> TuwenModel:
    """Train one model on a workspace and save it under ``WS/artifacts/models/NAME``.

    ``encoders="trainable"`` / ``"finetune"`` trains end-to-end encoders instead (see :mod:`tuwen.endtoend`);
    there ``config=None`` means the mode's defaults (:func:`tuwen.endtoend.model.endtoend_config`).
    """
    task_obj = make_task(task, target) if isinstance(task, str) else task
    from tuwen.endtoend import parse_mode

    endtoend = parse_mode(encoders)
    if endtoend is not None:
        from tuwen.endtoend.model import train_endtoend

        return train_endtoend(workspace, task_obj, target, **endtoend, name=name, text_fields=text_fields,
                              modalities=modalities, tabular=tabular, fusion=fusion, seed=seed, config=config,
                              save=save, limit=limit)
    if task_obj.name == "purchase":
        from tuwen.tasks.purchase import train_purchase

        return train_purchase(workspace, name=name, seed=seed, config=config, save=save,  # type: ignore[return-value]
                              text_fields=text_fields or ("title",), modalities=modalities, encoders=encoders,
                              fusion=fusion)
    config = replace(config or TrainConfig(), fusion=fusion, seed=seed)
    prepared = prepare(workspace, task_obj, text_fields, modalities, tabular, encoders, seed=seed, limit=limit)
    name = name or f"{task_obj.name}-{(target or task_obj.name).replace(',', '+').replace(':', '')}"
    folder = workspace.artifacts / "models" / name
    staging = workspace.artifacts / "models" / f".{name}.training"
    names = prepared.inputs(modalities)
    experts = train_experts(prepared, names, config)
    model, result = fit_variant(prepared, names, config, staging if save else None, experts)
    model.info.update({"name": name, "workspace": str(workspace.path), "target": target,
                       "text_fields": list(text_fields or task_obj.default_text_fields),
                       "modalities": list(modalities)})
    train_rows = prepared.rows("train")
    model.set_neighbours(prepared.features.subset(train_rows).select(model.info["inputs"]),
                         _labels_for_neighbours(prepared, train_rows))
    if save:
        publish_model(model, prepared, staging, folder)
    return model


def publish_model(model: TuwenModel, prepared: Prepared, staging: Path, folder: Path) -> None:
    """Save into the staging folder (beside its training log and checkpoints), add ``split.json``, swap it in."""
    model.save(staging)
    ids = {part: [str(i) for i in prepared.frame["id"].iloc[prepared.rows(part)]] for part in ("train", "val", "test")}
    (staging / "split.json").write_text(json.dumps(ids), encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    model.info["folder"] = str(folder)


def ablation_variants(prepared: Prepared, fusions: tuple[str, ...] = FUSIONS) -> list[tuple[str, list[str], str]]:
    """(variant, input names, fusion) for: each modality alone, then every fusion over all inputs."""
    present = [m for m in MODALITIES if prepared.inputs((m,))]
    variants = [(m, prepared.inputs((m,)), "concat") for m in present]
    if len(present) > 1:
        variants += [(f"fusion:{f}", prepared.inputs(tuple(present)), f) for f in fusions]
    return variants


def evaluate_task(workspace: Any, task: str | Task, target: str | None = None, *,
                  text_fields: tuple[str, ...] | None = None, modalities: tuple[str, ...] = MODALITIES,
                  tabular: tuple[str, ...] = (), encoders: tuple[str, ...] | None = None,
                  fusions: tuple[str, ...] = FUSIONS, seed: int = 0, config: TrainConfig | None = None,
                  report: bool = True, limit: int | None = None) -> dict[str, Any]:
    """The modality ablation: on one split, train text-only, image-only and every fusion; score each on test.

    Returns ``{"task", "target", "split", "results": [{"variant", "metrics", ...}]}`` and (``report``)
    writes a Markdown report with charts into ``WS/artifacts/reports/``.
    """
    from tuwen.endtoend import MODES, encoder_names, names_mode

    if names_mode(encoders):  # here it would only filter the cached encoders down to none: TF-IDF alone
        cached = sorted({e for e, _ in available_vectors(workspace)})
        raise ValueError(f"encoders {','.join(encoder_names(encoders))}: end-to-end encoders ({', '.join(MODES)}) "
                         "train with `tuwen train` or Workspace.train; the ablation compares models on the "
                         f"workspace's stored features: name cached encoders ({', '.join(cached) or 'none yet'}), "
                         "or none")
    task_obj = make_task(task, target) if isinstance(task, str) else task
    config = config or TrainConfig()
    if task_obj.name == "purchase":
        return _evaluate_purchase(workspace, text_fields, modalities, encoders, fusions, seed, config, report)
    prepared = prepare(workspace, task_obj, text_fields, modalities, tabular, encoders, seed=seed, limit=limit)
    results, details = [], {}
    experts: Experts = {}  # the single-modality variants, reused as the fused models' experts
    for variant, names, fusion in ablation_variants(prepared, fusions):
        model, outcome = fit_variant(prepared, names, replace(config, fusion=fusion, seed=seed),
                                     experts=experts if config.experts else None)
        if variant in MODALITIES:
            experts[variant] = (model.network, names)
        results.append({"variant": variant, "fusion": fusion, "inputs": names,
                        "metrics": {k: round(v, 4) for k, v in outcome["metrics"].items()},
                        "seconds": outcome["seconds"], "best_epoch": outcome["best_epoch"],
                        "experts": outcome["experts"]})
        details[variant] = outcome
    summary = {"task": task_obj.name, "target": target or getattr(task_obj, "target", None),
               "split": prepared.split_info, "primary": task_obj.primary, "results": results}
    if report:
        from tuwen.report import write_report

        summary["report"] = str(write_report(workspace.artifacts / "reports", summary, prepared, details))
    return summary


def _evaluate_purchase(workspace: Any, text_fields: tuple[str, ...] | None, modalities: tuple[str, ...],
                       encoders: tuple[str, ...] | None, fusions: tuple[str, ...], seed: int, config: TrainConfig,
                       report: bool) -> dict[str, Any]:
    """The ablation for ``purchase``: the same temporal split and negatives, text-only, image-only, each fusion."""
    from tuwen.tasks.purchase import train_purchase

    fields = text_fields or ("title",)
    present = [m for m in modalities if m in ("text", "image")]
    variants = [(m, (m,), "concat") for m in present]
    variants += [(f"fusion:{f}", tuple(present), f) for f in fusions] if len(present) > 1 else []
    results, split = [], {}
    for variant, chosen, fusion in variants:
        model = train_purchase(workspace, seed=seed, config=config, save=False, text_fields=fields,
                               modalities=chosen, encoders=encoders, fusion=fusion)
        split = model.info["split"]
        results.append({"variant": variant, "fusion": fusion, "inputs": model.info["inputs"],
                        "metrics": {k: round(v, 4) for k, v in model.info["metrics"]["test"].items()},
                        "seconds": model.info["seconds"], "best_epoch": model.info["best_epoch"]})
    summary = {"task": "purchase", "target": None, "split": split, "primary": "auc", "results": results}
    if report:
        from tuwen.report import write_report

        summary["report"] = str(write_report(workspace.artifacts / "reports", summary, None, {}))
    return summary


def load_model(workspace: Any, name: str | Path, device: str = "cpu") -> Any:
    """A saved model by name (under ``WS/artifacts/models``) or by folder path."""
    folder = Path(name)
    if not (folder / "config.json").exists():
        folder = workspace.artifacts / "models" / str(name)
    if not (folder / "config.json").exists():
        known = sorted(p.name for p in (workspace.artifacts / "models").glob("*") if (p / "config.json").exists()) \
            if (workspace.artifacts / "models").exists() else []
        raise FileNotFoundError(f"no model {str(name)!r} in {workspace.path}; saved models: "
                                f"{', '.join(known) or 'none'} (train one with `tuwen train`)")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if config.get("task", {}).get("name") == "purchase":
        from tuwen.tasks.purchase import PurchaseModel

        model: Any = PurchaseModel.load(folder, device)
    elif config.get("endtoend"):
        from tuwen.endtoend.model import EndToEndModel

        model = EndToEndModel.load(folder, device)
    else:
        model = TuwenModel.load(folder, device)
    model.info["folder"] = str(folder)
    return model


def evaluate_saved(workspace: Any, name: str) -> dict[str, Any]:
    """Score a saved model on the test part of its own split, rebuilt from the same rule and seed."""
    model = load_model(workspace, name)
    info = model.info
    if model.task.name == "purchase":
        metrics = model.evaluate(workspace)
    else:
        folder = Path(info.get("folder") or workspace.artifacts / "models" / str(name))
        if not (folder / "split.json").exists():
            raise FileNotFoundError(f"{folder}: no split.json (the model was not trained with `tuwen train`)")
        test_ids = set(json.loads((folder / "split.json").read_text(encoding="utf-8"))["test"])
        frame = model.task.prepare(load_items(workspace, model.task))  # same filtering as in training
        metrics = model.evaluate(frame[frame["id"].astype(str).isin(test_ids)].reset_index(drop=True), workspace)
    return {"task": model.task.name, "target": info.get("target"), "split": info["split"],
            "primary": model.task.primary,
            "results": [{"variant": f"model:{info.get('name', name)}", "fusion": model.network.fusion_name,
                         "inputs": info.get("inputs", []), "metrics": {k: round(v, 4) for k, v in metrics.items()},
                         "seconds": 0.0, "best_epoch": info.get("best_epoch")}]}
