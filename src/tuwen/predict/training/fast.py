"""The default model above ``BEST_BELOW`` labelled rows (``quality="fast"``): one fused network and the plain
TF-IDF logistic / ridge regression, combined on one validation part.

Why this shape: on 7k-product catalogs the single-split pipeline of :mod:`tuwen.predict.training.members` trained
five networks (two per modality expert for the class-weight choice, then the fused one) and still lost to
logistic regression on TF-IDF on fashion articleType (issue 16). Here:

* the fused network trains once, with early stopping on the validation part and a short schedule
  (:data:`FAST_EPOCHS`, :data:`FAST_PATIENCE`: its validation score peaks within a few epochs on these sizes,
  README "Cross-fitted models"); its own output blend over its unimodal heads keeps a fallback towards the
  best single input;
* the plain baseline (:mod:`tuwen.predict.training.plain`, the same solver and grid as the cross-fitted
  members) fits in a second process at the same time, its grid point chosen on the validation part, then fits
  again on training + validation rows with that point;
* greedy ensemble selection (:func:`tuwen.predict.training.crossfit.ensemble_selection`) weighs network and
  baseline on the validation part, starting from the better one alone, so on those rows the model scores at
  least as well as the baseline.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import Future
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from tuwen.predict.features import TFIDF
from tuwen.predict.linear import LINEAR
from tuwen.predict.networks import ExpertBlend, MultimodalModel, network_inputs, network_outputs
from tuwen.predict.tasks import Task
from tuwen.predict.training.config import TrainConfig, seed_everything
from tuwen.predict.training.crossfit import (
    Member,
    assemble,
    blend_logits,
    combine,
    ensemble_selection,
    presence,
    score,
)
from tuwen.predict.training.loop import fit_network
from tuwen.predict.training.members import Fitted
from tuwen.predict.training.plain import CLASS_WEIGHTS, as_module, design, fit_heads, raw_outputs, settings
from tuwen.predict.training.prepare import Prepared
from tuwen.util.runtime import cpu_count, torch_threads

FAST_EPOCHS = 10  # the cosine schedule's length for the fused network (early stopping usually ends sooner)
FAST_PATIENCE = 2  # epochs without a better validation score before stopping
# Logistic regression's grid here (C × class weighting, each point fitted from scratch), chosen by measurement on
# fashion articleType (README, "Cross-fitted models"); ridge keeps the cross-fitted members' alpha grid.
FAST_C = (3.0, 10.0)


def linear_member(task: Task, features: Any, targets: dict[str, np.ndarray], train: np.ndarray, val: np.ndarray,
                  grid: list[dict[str, Any]]) -> dict[str, Any]:
    """Fit every grid point on ``train``, keep the one whose ``val`` outputs score best, fit it again on
    ``train`` + ``val``. Self-contained (it runs in a worker process); returns the kept point's validation raw
    outputs (fitted without those rows), the refit heads and every point's validation score."""
    started = time.perf_counter()
    with threadpool_limits(1):
        x = design(features)
        y_val = {h: v[val] for h, v in targets.items()}
        best: tuple[float, int, dict[str, np.ndarray]] | None = None
        scores = []
        for k, setting in enumerate(grid):
            fitted = fit_heads(task, x[train], {h: v[train] for h, v in targets.items()}, setting)
            raw = raw_outputs(x[val], fitted)
            scores.append(score(task, raw, y_val))
            if best is None or scores[-1] > best[0]:
                best = (scores[-1], k, raw)
        assert best is not None
        both = np.concatenate([train, val])
        refit = fit_heads(task, x[both], {h: v[both] for h, v in targets.items()}, grid[best[1]])
    return {"val": best[2], "fitted": refit, "setting": grid[best[1]], "scores": scores,
            "seconds": time.perf_counter() - started}


def fast_grid(targets: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    grid = settings(targets)
    if all("C" in s for s in grid):
        return [{"C": c, "class_weight": w} for w in CLASS_WEIGHTS for c in FAST_C]
    return grid


def start_linear(prepared: Prepared, inputs: list[str], jobs: int, backend: str = "loky"
                 ) -> tuple[Any, Future | dict[str, Any]]:
    """The linear member's fit, in a worker process when a second core is allowed (else here, at once); from
    ``backend``'s pool when it is not loky (``TrainConfig.backend``, e.g. "ray" on a cluster)."""
    rows = np.flatnonzero(prepared.split != "test")
    features = prepared.features.subset(rows).select(inputs)
    position = {r: i for i, r in enumerate(rows)}
    train = np.array([position[r] for r in prepared.rows("train")], dtype=np.int64)
    val = np.array([position[r] for r in prepared.rows("val")], dtype=np.int64)
    targets = {h: v[rows] for h, v in prepared.targets.items()}
    args = (prepared.task, features, targets, train, val, fast_grid(targets))
    if jobs <= 1:
        return features, linear_member(*args)
    if backend != "loky":
        from concurrent.futures import ThreadPoolExecutor

        from joblib import Parallel, delayed

        def remote() -> dict[str, Any]:
            # a pool of two: with one worker, joblib would run the fit in this process instead
            [result] = Parallel(n_jobs=2, backend=backend)([delayed(linear_member)(*args)])
            return copy.deepcopy(result)  # Ray hands arrays back as read-only views of its object store

        waiter = ThreadPoolExecutor(1, thread_name_prefix="tuwen-linear")  # waits while this thread trains
        future = waiter.submit(remote)
        waiter.shutdown(wait=False)  # the thread ends with its one job
        return features, future
    # joblib's executor, not loky's directly: both share one reusable worker pool, and a pool that loky made on
    # its own lacks the temporary-folder manager that a later joblib.Parallel (the cross-fitted folds) expects
    from joblib.executor import get_memmapping_executor

    # max_nbytes=None: arguments are pickled, not memory-mapped into /dev/shm files that a lone submit() never frees
    return features, get_memmapping_executor(1, max_nbytes=None).submit(linear_member, *args)


def fast_schedule(config: TrainConfig) -> TrainConfig:
    """The network's schedule here: :data:`FAST_EPOCHS` / :data:`FAST_PATIENCE` where the config holds
    ``TrainConfig``'s defaults (which suit the cross-fitted runs' epoch choice), the caller's values otherwise
    (an explicit ``tuwen train --epochs``)."""
    default = TrainConfig()
    return replace(config, epochs=FAST_EPOCHS if config.epochs == default.epochs else config.epochs,
                   patience=FAST_PATIENCE if config.patience == default.patience else config.patience)


def fit_fast(prepared: Prepared, names: list[str], config: TrainConfig, folder: Path | None = None
             ) -> tuple[Fitted, dict[str, Any]]:
    """Train the fused network and the plain linear member, combine them on the validation part; score the test
    part when there is one. Returns the model and an outcome shaped like ``fit_variant``'s; ``folder`` receives
    the network's training log and checkpoint."""
    started = time.perf_counter()
    task = prepared.task
    tfidf = [n for n in names if n.endswith("@" + TFIDF)]
    val_rows = prepared.rows("val")
    pending = None
    if config.linear and tfidf and len(val_rows) >= 20:
        features, pending = start_linear(prepared, tfidf, config.jobs or cpu_count(), config.backend)
    train, y_train = prepared.part("train", names)
    val, y_val = prepared.part("val", names)
    network_config = fast_schedule(config)
    seed_everything(config.seed)
    network = MultimodalModel(network_inputs(train), task.heads(), config.fusion, config.hidden, config.dropout,
                              config.input_dropout, config.modality_dropout, config.aux_weight, config.wide)
    fit = fit_network(network, task, train, y_train, val if len(val) else None, y_val if len(val) else None,
                      network_config, folder)
    model: Any = network
    experts: dict[str, Any] | None = None
    linear_info = None
    if pending is not None:
        result = pending.result() if isinstance(pending, Future) else pending
        with torch_threads(config.threads if config.device == "cpu" else 0):
            own = {h: v.numpy() for h, v in network_outputs(network, task, val)["raw"].items()}
        present = np.stack([np.ones(len(val), dtype=bool), presence(val, tuple(tfidf))], axis=1)
        # one selection per head (a tag model's colour may follow the words, its shape the photo): the other heads
        # keep the network's outputs, so each head's choice moves only its own part of the task's metric
        heads = list(task.heads())
        per_head = np.stack([ensemble_selection(task, [own, {**own, h: result["val"][h]}], present, y_val)[0]
                             for h in heads])
        member = Member("linear:tfidf", LINEAR, tuple(tfidf))
        linear = as_module(task, features, network_inputs(features), result["fitted"])
        model = assemble([Member("fused", "network", tuple(names), config.fusion), member], per_head.max(axis=0),
                         [[network], [linear]], names)
        if isinstance(model, ExpertBlend):
            model.blend.copy_(torch.from_numpy(np.stack([blend_logits(w) for w in per_head])))
        blended = {h: combine(w, [{h: own[h]}, {h: result["val"][h]}], present)[h]
                   for h, w in zip(heads, per_head, strict=True)}
        sign = 1.0 if task.higher_is_better else -1.0
        weights = per_head.mean(axis=0)
        experts = {"choice": "blend" if (weights > 0).all() else ("fused" if weights[0] > 0 else member.name),
                   "validation": {"blend": round(sign * score(task, blended, y_val), 4),
                                  "fused": round(sign * score(task, own, y_val), 4),
                                  member.name: round(sign * score(task, result["val"], y_val), 4)},
                   "weights": {h: {"fused": round(float(w[0]), 4), member.name: round(float(w[1]), 4)}
                               for h, w in zip(heads, per_head, strict=True)}, "on": "validation part"}
        linear_info = {"setting": result["setting"], "validation": [round(sign * s, 4) for s in result["scores"]],
                       "seconds": round(result["seconds"], 2), "fitted": "train + validation rows"}
    with torch_threads(config.threads if config.device == "cpu" else 0):
        val_metrics = task.metrics(network_outputs(model, task, val)["predictions"], y_val) if len(val) else {}
        test, y_test = prepared.part("test", names)
        outputs = network_outputs(model, task, test) if len(test) else {"predictions": {}}
    test_metrics = task.metrics(outputs["predictions"], y_test) if len(test) else {}
    seconds = round(time.perf_counter() - started, 3)
    info = {"split": prepared.split_info, "train": {k: v for k, v in asdict(network_config).items() if k != "progress"},
            "quality": "fast", "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"], "seconds": seconds,
            "network_seconds": fit["seconds"], "blend": fit["blend"], "ensemble": 1, "experts": experts,
            "class_weight": None, "linear": linear_info, "metrics": {"val": val_metrics, "test": test_metrics},
            "inputs": names}
    fitted = Fitted(task, prepared.builder.select(names), model, info)
    return fitted, {"metrics": test_metrics, "val": val_metrics, "seconds": seconds, "best_epoch": fit["best_epoch"],
                    "predictions": outputs["predictions"], "y": y_test, "experts": experts, "network": model,
                    "class_weight": None}
