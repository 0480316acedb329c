"""The one training loop every network trains with.

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
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuwen.predict.batches import make_batch
from tuwen.predict.features import FeatureSet
from tuwen.predict.networks import MultimodalModel, network_outputs
from tuwen.predict.tasks import Task
from tuwen.predict.training.config import WIDE_LR, TrainConfig, seed_everything
from tuwen.util.progress import progress_bar
from tuwen.util.runtime import torch_threads


def targets_tensor(targets: dict[str, np.ndarray], rows: np.ndarray, device: str) -> dict[str, torch.Tensor]:
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
                folder: Path | None = None, member: int = 0, record: list[dict[str, np.ndarray]] | None = None,
                stop_after: int | None = None) -> dict[str, Any]:
    """Train in place; restore the best validation epoch. Returns the history and the best epoch's metrics.

    ``record`` receives the validation rows' raw outputs after every epoch (cross-fitting picks one epoch for
    every fold from them); ``stop_after`` ends training after that many epochs, on the schedule of
    ``config.epochs`` (a refit replays the chosen epoch of the cross-fitted runs)."""
    with torch_threads(config.threads if config.device == "cpu" else 0):
        return _fit_network(network, task, train, y_train, val, y_val, config, folder, member, record, stop_after)


def _fit_network(network: MultimodalModel, task: Task, train: FeatureSet, y_train: dict[str, np.ndarray],
                 val: FeatureSet | None, y_val: dict[str, np.ndarray] | None, config: TrainConfig,
                 folder: Path | None, member: int, record: list[dict[str, np.ndarray]] | None = None,
                 stop_after: int | None = None) -> dict[str, Any]:
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
            for epoch in range(min(config.epochs, stop_after or config.epochs)):
                network.train()
                order = rng.permutation(len(train))
                losses = []
                for start in range(0, len(order), batch_size):
                    rows = order[start:start + batch_size]
                    inputs, mask = make_batch(train, rows, device)
                    result = network(inputs, mask)
                    loss = _loss(network, task, result, targets_tensor(y_train, rows, device))
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
                    if record is not None:
                        record.append({h: v.cpu().numpy() for h, v in outputs["raw"].items()})
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
                elif epoch + 1 - best["epoch"] >= config.patience and stop_after is None:
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
        blend = network.fit_blend(inputs, mask, targets_tensor(y_val, np.arange(len(val)), device), task.head_loss)
        if folder:
            torch.save(network.state_dict(), folder / f"checkpoint-{member}.pt" if member else
                       folder / "checkpoint.pt")
    return {"history": history, "best_epoch": best["epoch"], "val": best["metrics"], "blend": blend,
            "seconds": round(time.perf_counter() - started, 3), "epochs_run": len(history)}
