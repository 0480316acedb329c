"""Cross-fitted models (``quality="best"``): every choice made on out-of-fold predictions, then one refit.

In the spirit of AutoGluon's ``best_quality``: the rows a model may learn from (every labelled row for
``tuwen train``, the non-test part for an evaluation) are cut into k folds, stratified and grouped like
the split. Each *member* is trained k times, each time predicting the fold it did not see:

* networks: the model's own network over every input; in the ablation also one network per modality
  (:func:`plan` can add a network per extra class weighting too, at k trainings each; off by default);
* plain baselines (:mod:`tuwen.predict.training.plain`): logistic / ridge regression on the TF-IDF
  word + char n-grams and on every input at once, over a grid of L2 strengths, weighing classes as the task does.

From those out-of-fold (OOF) predictions, pooled over every row: each network's early-stopping epoch
(one epoch for all folds), each baseline's grid point (for a fold's own OOF rows, chosen on the other
folds, so the stack sees honest baseline predictions) and its temperature (:func:`temperature`), and the
stack: greedy ensemble selection (Caruana et al., 2004, AutoGluon's weighted ensemble), which starts from the
best single member, so on OOF rows the model scores at least as well as its best member, a plain baseline
included, by the selection's objective: the class-balanced log loss for a single-label classifier (macro-F1
on a few hundred rows made the blend follow the luck of a rare class's few rows, :func:`choose_stack`), the task's
main metric otherwise. Then every member the stack kept is fitted again on all the rows with its chosen
settings (AutoGluon's ``refit_full``), and the stack's weights go into an
:class:`~tuwen.predict.networks.ExpertBlend`, which saves and loads like any other model.

The folds run as separate jobs in processes (joblib's loky pool, as many as ``TrainConfig.jobs`` or the
cores :func:`tuwen.util.runtime.cpu_count` allows). Each job seeds itself from the run's seed and its
fold, so the same seed gives the same numbers however the jobs are scheduled.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from tuwen.predict.features import TFIDF, FeatureSet
from tuwen.predict.linear import LINEAR
from tuwen.predict.networks import (
    NEG_INF,
    EnsembleModel,
    ExpertBlend,
    MultimodalModel,
    network_inputs,
    network_outputs,
)
from tuwen.predict.tasks import Task
from tuwen.predict.tasks.base import LabelTarget, group_values
from tuwen.predict.training.config import MODALITIES, TrainConfig, seed_everything
from tuwen.predict.training.loop import fit_network
from tuwen.predict.training.members import Fitted
from tuwen.predict.training.plain import as_module, design, fit_heads, raw_outputs, settings
from tuwen.predict.training.prepare import Prepared
from tuwen.predict.training.splits import fold_of
from tuwen.util.progress import progress_bar
from tuwen.util.runtime import cpu_count, torch_threads

TEMPERATURES = tuple(float(t) for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 31)))  # linear members' grid
ROUNDS = 25  # greedy ensemble-selection rounds (AutoGluon's default ensemble size)
PATIENCE = 8  # rounds without a better OOF score after which the selection stops

Raw = dict[str, np.ndarray]  # head → raw outputs (logits / standardised values), one row per item


@dataclass(frozen=True)
class Member:
    """One member of a cross-fitted model: a network over some inputs (with a fusion and a class weighting)
    or a plain linear baseline over some inputs."""

    name: str
    kind: str  # "network" or LINEAR
    inputs: tuple[str, ...]
    fusion: str = "concat"
    class_weight: str | None = None  # None: the task's own

    @property
    def key(self) -> tuple[Any, ...]:
        return self.kind, self.inputs, self.fusion, self.class_weight


# ------------------------------------------------------------------------------------------------ plan


def weightings(task: Task, config: TrainConfig) -> list[str]:
    """Class weightings tried besides the task's own (label tasks with one head only)."""
    label = getattr(task, "label", None)
    if not isinstance(label, LabelTarget) or len(task.heads()) != 1:
        return []
    return [w for w in config.class_weights if w != getattr(task, "class_weight", None)]


def plan(prepared: Prepared, names: list[str], config: TrainConfig, fusion: str, experts: bool = False,
         weighted: bool = False) -> list[Member]:
    """The members of one model over ``names``; the first is the model's own network (its fused vectors
    give the nearest training products, so it is always refitted).

    ``experts`` adds one network per modality and ``weighted`` a network per extra class weighting
    (``TrainConfig.class_weights``): each costs k more trainings, so `tuwen train` leaves them out (the
    plain baselines carry the single-modality signal and their own class weighting, chosen on OOF scores),
    and the ablation adds the modality networks, which it trains anyway for its single-modality rows."""
    present = [m for m in MODALITIES if any(n in names for n in prepared.inputs((m,)))]
    main = "fused" if len(present) > 1 else present[0]
    members = [Member(main, "network", tuple(names), fusion)]
    extra = weightings(prepared.task, config) if weighted else []
    if len(present) > 1 and experts and config.experts:
        for modality in present:
            inputs = tuple(n for n in prepared.inputs((modality,)) if n in names)
            members.append(Member(modality, "network", inputs))
            members += [Member(f"{modality}[{w}]", "network", inputs, "concat", w) for w in extra]
    else:
        members += [Member(f"{main}[{w}]", "network", tuple(names), fusion, w) for w in extra]
    if config.linear:
        tfidf = tuple(n for n in names if n.endswith("@" + TFIDF))
        if tfidf:
            members.append(Member("linear:tfidf", LINEAR, tfidf))
        if set(names) - set(tfidf):
            members.append(Member("linear:all", LINEAR, tuple(names)))
    return members


def folds(prepared: Prepared, rows: np.ndarray, config: TrainConfig) -> np.ndarray:
    """Each learning row's fold, computed once per prepared run (every member sees the same folds)."""
    key = ("folds", config.folds, config.seed)
    if key not in prepared.bagged:
        frame = prepared.frame.iloc[rows]
        strata = prepared.task.strata(frame)
        column = prepared.task.group_column(frame)
        groups = group_values(frame, column) if column else None
        prepared.bagged[key] = fold_of(strata, groups, config.folds, config.seed + 7)
    return prepared.bagged[key]


# ------------------------------------------------------------------------------------------------ jobs


def _subset(targets: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {h: v[rows] for h, v in targets.items()}


def _network(job: dict[str, Any], features: FeatureSet) -> MultimodalModel:
    config = job["config"]
    return MultimodalModel(network_inputs(features), job["task"].heads(), job["fusion"], config.hidden,
                           config.dropout, config.input_dropout, config.modality_dropout, config.aux_weight,
                           config.wide)


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One fold of one member (``held`` rows given: their raw outputs) or one refit (``held`` None: the model).

    Self-contained and seeded from ``job["seed"]``: it runs the same in this process or in a worker."""
    started = time.perf_counter()
    task = copy.deepcopy(job["task"])
    if job.get("weights") is not None:
        task.label.weights = list(job["weights"])  # type: ignore[attr-defined]
    features, targets, fit, held = job["features"], job["targets"], job["fit"], job["held"]
    with threadpool_limits(1), torch_threads(1):
        if job["kind"] == LINEAR:
            x = design(features)
            outputs = []
            for setting in job["settings"]:
                fitted = fit_heads(task, x[fit], _subset(targets, fit), setting)
                outputs.append(raw_outputs(x[held], fitted) if held is not None else fitted)
            return {"outputs": outputs, "seconds": time.perf_counter() - started}
        config = replace(job["config"], seed=job["seed"], blend=False, progress=False, threads=1)
        seed_everything(job["seed"])
        network = _network(job, features)
        record: list[Raw] = []
        val = features.subset(held) if held is not None else None
        y_val = _subset(targets, held) if held is not None else None
        fit_network(network, task, features.subset(fit), _subset(targets, fit), val, y_val, config,
                    record=record if val is not None else None, stop_after=job.get("stop_after"))
        return {"outputs": record, "state": network.state_dict() if held is None else None,
                "seconds": time.perf_counter() - started}


def run_jobs(jobs: list[dict[str, Any]], processes: int, description: str, progress: bool) -> list[dict[str, Any]]:
    """Results in job order; several processes (joblib's loky workers, kept warm between calls) when allowed."""
    if not jobs:
        return []
    with progress_bar(len(jobs), description, progress) as advance:
        if processes <= 1 or len(jobs) == 1:
            results = []
            for job in jobs:
                results.append(run_job(job))
                advance(1)
            return results
        from joblib import Parallel, delayed

        order = sorted(range(len(jobs)), key=lambda j: -jobs[j]["cost"])  # long jobs first: less idle at the end
        results_by_job: dict[int, dict[str, Any]] = {}
        # TrainConfig.backend: loky here, or a registered one ("ray": tuwen.distributed.train); Ray's joblib backend
        # (a multiprocessing-style pool) hands results back as one list, so its progress bar fills at the end
        backend = jobs[0]["config"].backend
        parallel = Parallel(n_jobs=min(processes, len(jobs)), backend=backend,
                            return_as="generator" if backend == "loky" else "list")
        for j, result in zip(order, parallel(delayed(run_job)(jobs[j]) for j in order), strict=True):
            results_by_job[j] = result
            advance(1)
        return [results_by_job[j] for j in range(len(jobs))]


# --------------------------------------------------------------------------------------------- scoring


def macro_f1(y: np.ndarray, predicted: np.ndarray) -> float:
    """scikit-learn's macro-F1 (labels: those in either array; zero_division=0), counted with numpy: the stack
    scores thousands of candidate blends, and the full metric set costs a hundred times more per call."""
    known = y >= 0
    y, predicted = y[known], predicted[known]
    if not len(y):
        return math.nan
    width = int(max(y.max(), predicted.max())) + 1
    tp = np.bincount(y[y == predicted], minlength=width)
    support, guessed = np.bincount(y, minlength=width), np.bincount(predicted, minlength=width)
    labels = (support + guessed) > 0
    return float(np.mean(2 * tp[labels] / (support[labels] + guessed[labels])))


def score(task: Task, raw: Raw, targets: dict[str, np.ndarray]) -> float:
    """The task's main metric of raw outputs, sign-adjusted so that higher is better (-inf where undefined)."""
    predictions = {h: task.transform(h, torch.from_numpy(np.ascontiguousarray(v))) for h, v in raw.items()}
    [(head, y)] = targets.items() if len(targets) == 1 else [(None, None)]
    if task.primary == "macro_f1" and y is not None and y.dtype.kind in "iu" and predictions[head].ndim == 2:
        value = macro_f1(y, predictions[head].argmax(axis=1))
    else:
        value = task.metrics(predictions, targets).get(task.primary, math.nan)
    sign = 1.0 if task.higher_is_better else -1.0
    return sign * value if math.isfinite(value) else -math.inf


def pooled(results: list[Raw], fold: np.ndarray) -> Raw:
    """Per-fold raw outputs (fold k's held-out rows in order) → one row per learning row."""
    first = next(r for r in results if r)
    out = {h: np.zeros((len(fold), *v.shape[1:]), dtype=np.float32) for h, v in first.items()}
    for k, raw in enumerate(results):
        for h, v in raw.items():
            out[h][fold == k] = v
    return out


def choose_epoch(task: Task, records: list[list[Raw]], fold: np.ndarray, targets: dict[str, np.ndarray]
                 ) -> tuple[int, Raw, list[float]]:
    """One early-stopping epoch for every fold: the epoch whose pooled OOF predictions score best (a fold that
    stopped earlier contributes its last epoch). Ties go to the earlier epoch."""
    epochs = max(len(r) for r in records)
    curve = []
    for e in range(epochs):
        raw = pooled([r[min(e, len(r) - 1)] for r in records], fold)
        curve.append(score(task, raw, targets))
    best = int(np.argmax(curve))
    return best + 1, pooled([r[min(best, len(r) - 1)] for r in records], fold), curve


def choose_setting(task: Task, grids: list[list[Raw]], fold: np.ndarray, targets: dict[str, np.ndarray]
                   ) -> tuple[int, Raw, list[float]]:
    """A linear member's grid point: on all folds for the refit; for each fold's own OOF rows, the point that
    scores best on the *other* folds (so the stack weighs honest baseline predictions)."""
    k_folds = len(grids)
    full = [pooled([grids[k][s] for k in range(k_folds)], fold) for s in range(len(grids[0]))]
    overall = [score(task, raw, targets) for raw in full]
    chosen = int(np.argmax(overall))
    out = {h: np.zeros_like(v) for h, v in full[0].items()}
    for k in range(k_folds):
        others = fold != k
        scores = [score(task, {h: v[others] for h, v in raw.items()}, _subset(targets, np.flatnonzero(others)))
                  for raw in full]
        pick = int(np.argmax(scores))
        for h in out:
            out[h][fold == k] = full[pick][h][fold == k]
    return chosen, out, overall


def presence(features: FeatureSet, inputs: tuple[str, ...]) -> np.ndarray:
    return features.mask[:, [features.names.index(n) for n in inputs]].any(axis=1)


def combine(weights: np.ndarray, outputs: list[Raw], present: np.ndarray) -> Raw:
    """The stack's outputs exactly as :meth:`ExpertBlend.combine` computes them (the first member always present)."""
    logits = torch.from_numpy(blend_logits(weights))
    mask = torch.from_numpy(present)
    return {h: ExpertBlend.combine(logits, [torch.from_numpy(o[h]) for o in outputs], mask).numpy()
            for h in outputs[0]}


def blend_logits(weights: np.ndarray) -> np.ndarray:
    return np.where(weights > 0, np.log(np.maximum(weights, 1e-12)), NEG_INF).astype(np.float32)


def balanced_nll(task: Task, raw: Raw, targets: dict[str, np.ndarray]) -> float:
    """Minus the class-balanced log loss of a single-label task's raw outputs (higher is better; every class
    weighs the same in total, as in macro-F1); the task's main metric (:func:`score`) for other tasks.

    Why: a smooth score of the probabilities moves a little with every row, where macro-F1 jumps with the few
    rows of a rare class that cross a decision boundary, so weights chosen on it follow those rows' luck."""
    if len(targets) != 1:
        return score(task, raw, targets)
    [(head, y)] = targets.items()
    logits = raw[head]
    if y.dtype.kind not in "iu" or logits.ndim != 2:
        return score(task, raw, targets)
    known = y >= 0
    y, logits = y[known], logits[known].astype(np.float64)
    if not len(y):
        return -math.inf
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted[np.arange(len(y)), y] - np.log(np.exp(shifted).sum(axis=1))
    counts = np.bincount(y, minlength=logits.shape[1]).astype(np.float64)
    return float(np.sum(log_p / counts[y]) / np.count_nonzero(counts))


def temperature(task: Task, raw: Raw, targets: dict[str, np.ndarray]) -> float:
    """The temperature (raw outputs divided by it) whose OOF outputs have the best class-balanced log loss, for
    a single-label classifier's linear member; 1 otherwise.

    Why: the stack is chosen on that log loss, which also charges a member for over-confidence. A weakly
    regularised logistic regression on TF-IDF ranks the classes well but is over-confident, so without this the
    stack preferred a strongly regularised member for its calibration, not for its predictions (README,
    "Cross-fitted models": nested OOF comparison). Dividing the weights by one number keeps every prediction's
    class and is exact in the refitted model."""
    if not uses_nll(targets, [raw]):
        return 1.0
    losses = [balanced_nll(task, {h: v / t for h, v in raw.items()}, targets) for t in TEMPERATURES]
    return TEMPERATURES[int(np.argmax(losses))]


def ensemble_selection(task: Task, outputs: list[Raw], present: np.ndarray, targets: dict[str, np.ndarray],
                       rounds: int = ROUNDS, allowed: list[int] | None = None,
                       objective: Any = None) -> tuple[np.ndarray, float]:
    """Greedy forward selection with replacement: each round adds the member that most improves the OOF score;
    the best round's weights are kept, so the stack scores at least as well as its best member on OOF rows.
    Ties go to the earlier member (the model's own network first, then experts, then baselines). ``allowed``:
    the members it may pick (default: all; the others keep weight 0)."""
    counts = np.zeros(len(outputs))
    best_counts, best_score, since = counts.copy(), -math.inf, 0
    allowed = list(range(len(outputs))) if allowed is None else allowed
    for _ in range(rounds):
        if since >= PATIENCE:
            break
        trials = []
        for m in allowed:
            trial = counts.copy()
            trial[m] += 1
            trials.append((objective or score)(task, combine(trial / trial.sum(), outputs, present), targets))
        pick = allowed[int(np.argmax(trials))]
        counts[pick] += 1
        since += 1
        if max(trials) > best_score + 1e-12:
            best_score, best_counts, since = max(trials), counts.copy(), 0
    return best_counts / best_counts.sum(), best_score


def choose_stack(task: Task, outputs: list[Raw], present: np.ndarray, targets: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, float, dict[str, Any]]:
    """The stack's weights (greedy ensemble selection on the class-balanced log loss, :func:`balanced_nll`, for
    a single-label classifier; on the task's main metric otherwise) and the stack's OOF main metric.

    Why not select on macro-F1 itself: on a few hundred rows a rare class has a handful of OOF rows, and the
    selection then fits the blend to which of them cross a decision boundary; its OOF score flatters it and
    the blend is worse on rows it has not seen (README, "Cross-fitted models": nested OOF comparison)."""
    weights, _ = ensemble_selection(task, outputs, present, targets, objective=balanced_nll)
    value = score(task, combine(weights, outputs, present), targets)
    return weights, value, {"objective": "class-balanced log loss" if uses_nll(targets, outputs) else task.primary}


def uses_nll(targets: dict[str, np.ndarray], outputs: list[Raw]) -> bool:
    [(head, y)] = targets.items() if len(targets) == 1 else [(None, None)]
    return y is not None and y.dtype.kind in "iu" and outputs[0][head].ndim == 2


# ------------------------------------------------------------------------------------------------- fit


def member_job(prepared: Prepared, rows: np.ndarray, features: FeatureSet, targets: dict[str, np.ndarray],
               config: TrainConfig, member: Member, fit: np.ndarray, held: np.ndarray | None, seed: int,
               **extra: Any) -> dict[str, Any]:
    """One fold (``held`` rows) or refit (``held`` None) of ``member`` over the learning ``rows`` (whose
    ``features`` and ``targets`` these are), as a job for :func:`run_job`."""
    cost = len(fit) * (len(member.inputs) + (2 if member.kind != LINEAR else 0))
    return {"kind": member.kind, "task": prepared.task, "features": features.select(list(member.inputs)),
            "targets": targets, "fit": fit, "held": held, "seed": seed, "config": config,
            "fusion": member.fusion, "cost": cost, "weights": label_weights(prepared, rows, member.class_weight),
            **extra}


def crossfit_members(prepared: Prepared, members: list[Member], config: TrainConfig) -> list[dict[str, Any]]:
    """Each member's out-of-fold predictions over the learning rows (every non-test row) with its chosen epoch or
    grid point: ``{"oof", "curve", "seconds", "epoch" | "setting"}``, cached in ``prepared.bagged`` by the member's
    key, so the variants of one run share their members."""
    task = prepared.task
    rows = np.flatnonzero(prepared.split != "test")
    fold = folds(prepared, rows, config)
    k_folds = int(fold.max()) + 1
    features = prepared.features.subset(rows)
    targets = _subset(prepared.targets, rows)
    todo = list({m.key: m for m in members if m.key not in prepared.bagged}.values())
    jobs = []
    for member in todo:
        for k in range(k_folds):
            fit, held = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
            extra = {"settings": grid(task, member, targets)} if member.kind == LINEAR else {}
            jobs.append(member_job(prepared, rows, features, targets, config, member, fit, held,
                                   config.seed + 100 * (k + 1), **extra))
    results = run_jobs(jobs, config.jobs or cpu_count(), f"cross-fit · {k_folds} folds", config.progress)
    for i, member in enumerate(todo):
        mine = results[i * k_folds:(i + 1) * k_folds]
        seconds = sum(r["seconds"] for r in mine)
        if member.kind == LINEAR:
            chosen, oof, curve = choose_setting(task, [r["outputs"] for r in mine], fold, targets)
            scale = temperature(task, oof, targets)
            prepared.bagged[member.key] = {"oof": {h: v / scale for h, v in oof.items()}, "temperature": scale,
                                           "setting": grid(task, member, targets)[chosen], "curve": curve,
                                           "seconds": seconds}
        else:
            epoch, oof, curve = choose_epoch(task, [r["outputs"] for r in mine], fold, targets)
            prepared.bagged[member.key] = {"oof": oof, "epoch": epoch, "curve": curve, "seconds": seconds}
    return [prepared.bagged[m.key] for m in members]


def grid(task: Task, member: Member, targets: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """A linear member's settings: the plain grid, with the member's class weighting (default: its task's)."""
    return settings(targets, member.class_weight or getattr(task, "class_weight", None))


def fit_crossfitted(prepared: Prepared, names: list[str], config: TrainConfig,
                    members: list[Member] | None = None) -> tuple[Fitted, dict[str, Any]]:
    """Cross-fit the members over ``names`` on the learning rows (every non-test row), stack them on their OOF
    predictions, refit the kept ones on all learning rows; score the test rows when there are any.

    Returns the fitted model and an outcome shaped like :func:`tuwen.predict.training.members.fit_variant`'s."""
    started = time.perf_counter()
    task = prepared.task
    members = members or plan(prepared, names, config, config.fusion)
    rows = np.flatnonzero(prepared.split != "test")
    fold = folds(prepared, rows, config)
    k_folds = int(fold.max()) + 1
    features = prepared.features.subset(rows)
    targets = _subset(prepared.targets, rows)
    processes = config.jobs or cpu_count()
    refit_seeds = config.ensemble or 1

    def job(member: Member, fit: np.ndarray, held: np.ndarray | None, seed: int, **extra: Any) -> dict[str, Any]:
        return member_job(prepared, rows, features, targets, config, member, fit, held, seed, **extra)

    # 1. out-of-fold predictions of every member not cross-fitted yet in this run
    bagged = crossfit_members(prepared, members, config)

    # 2. the stack, on the OOF predictions
    present = np.stack([np.ones(len(rows), dtype=bool)] + [presence(features, m.inputs) for m in members[1:]],
                       axis=1)
    weights, stack_score, rule = choose_stack(task, [b["oof"] for b in bagged], present, targets)
    kept = [m for m, w in zip(members, weights, strict=True) if w > 0 or m is members[0]]

    # 3. refit the kept members on every learning row
    everything = np.arange(len(rows))
    jobs, owners = [], []
    for member, b in zip(members, bagged, strict=True):
        if member not in kept or ("refit", member.key) in prepared.bagged:
            continue
        if member.kind == LINEAR:
            jobs.append(job(member, everything, None, config.seed, settings=[b["setting"]]))
            owners.append(member)
        else:
            seeds = refit_seeds if weights[members.index(member)] > 0 else 1
            for s in range(seeds):
                jobs.append(job(member, everything, None, config.seed + 1000 * s, stop_after=b["epoch"]))
                owners.append(member)
    results = run_jobs(jobs, processes, "refit on every row", config.progress)
    for member in dict.fromkeys(owners):
        mine = [r for r, o in zip(results, owners, strict=True) if o is member]
        scale = prepared.bagged[member.key].get("temperature", 1.0)
        prepared.bagged[("refit", member.key)] = {"models": [build_member(prepared, member, r, features, config,
                                                                          scale) for r in mine],
                                                  "seconds": sum(r["seconds"] for r in mine)}
    network = assemble(members, weights, [prepared.bagged[("refit", m.key)]["models"] if m in kept else None
                                          for m in members], names)

    # 4. what the model is worth: the stack's OOF scores (cross-fitted) and, when there is one, the test part
    oof_metrics = stack_metrics(task, bagged, weights, present, targets)
    test_rows = prepared.rows("test")
    test, y_test = prepared.part("test", names)
    outputs = network_outputs(network, task, test) if len(test_rows) else {"predictions": {}}
    test_metrics = task.metrics(outputs["predictions"], y_test) if len(test_rows) else {}
    seconds = round(time.perf_counter() - started, 3)
    main = bagged[0]
    sign = 1.0 if task.higher_is_better else -1.0
    board = {m.name: round(sign * score(task, b["oof"], targets), 4) for m, b in zip(members, bagged, strict=True)}
    choice = members[int(np.argmax(weights))].name if (weights == 1).any() else "blend"
    experts = {"choice": choice, "validation": {"blend": round(sign * stack_score, 4), **board},
               "weights": {h: {("fused" if i == 0 else m.name): round(float(w), 4)
                               for i, (m, w) in enumerate(zip(members, weights, strict=True))}
                           for h in task.heads()}, "on": "out-of-fold predictions", "stack": rule}
    details = {m.name: {"oof": board[m.name], "weight": round(float(w), 4),
                        **({"epoch": b["epoch"]} if "epoch" in b else {"setting": b["setting"],
                                                                       "temperature": round(b["temperature"], 3)}),
                        "seconds": round(b["seconds"], 2)} for m, b, w in zip(members, bagged, weights, strict=True)}
    info = {"split": prepared.split_info, "train": {k: v for k, v in asdict(config).items() if k != "progress"},
            "quality": "best", "folds": k_folds, "best_epoch": main.get("epoch"), "epochs_run": main.get("epoch"),
            "seconds": seconds, "blend": None, "ensemble": refit_seeds, "experts": experts,
            "class_weight": {"choice": None, "members": [m.name for m in members if m.class_weight]},
            "linear": {m.name: b["setting"] for m, b in zip(members, bagged, strict=True) if m.kind == LINEAR},
            "members": details, "learning_rows": len(rows),
            "metrics": {"crossfit": oof_metrics, "test": test_metrics}, "inputs": names}
    model = Fitted(task, prepared.builder.select(names), network, info)
    return model, {"metrics": test_metrics, "val": oof_metrics, "seconds": seconds, "best_epoch": main.get("epoch"),
                   "predictions": outputs["predictions"], "y": y_test, "experts": experts, "network": network,
                   "class_weight": info["class_weight"], "crossfit": oof_metrics}


def label_weights(prepared: Prepared, rows: np.ndarray, choice: str | None) -> list[float] | None:
    """The class weights of ``choice`` fitted on the learning rows (None: keep the task's own)."""
    if choice is None:
        return None
    label: LabelTarget = prepared.task.label  # type: ignore[attr-defined]
    classes, original = list(label.classes), list(label.weights)
    try:
        label.fit(prepared.frame.iloc[rows], choice)
        return list(label.weights)
    finally:
        label.classes, label.weights = classes, original


def build_member(prepared: Prepared, member: Member, result: dict[str, Any], features: FeatureSet,
                 config: TrainConfig, scale: float = 1.0) -> Any:
    """A refit job's result as a module: the linear member's weights, or a network from its state dict."""
    selected = features.select(list(member.inputs))
    if member.kind == LINEAR:
        fitted = {h: (w / scale, b / scale) for h, (w, b) in result["outputs"][0].items()}
        return as_module(prepared.task, selected, network_inputs(selected), fitted)
    network = _network({"config": config, "task": prepared.task, "fusion": member.fusion}, selected)
    network.load_state_dict(result["state"])
    return network.eval()


def assemble(members: list[Member], weights: np.ndarray, models: list[list[Any] | None], names: list[str]) -> Any:
    """The saved model: the main network (an average of seeds where there are several) blended with every other
    kept member at the stack's weights; the main network alone when the stack kept nothing else."""
    main = models[0][0] if len(models[0]) == 1 else EnsembleModel(models[0])  # type: ignore[index]
    others = [(m, ms, w) for m, ms, w in zip(members[1:], models[1:], weights[1:], strict=True) if w > 0 and ms]
    if not others and weights[0] > 0:
        return main
    experts = [ms[0] if len(ms) == 1 or m.kind == LINEAR else EnsembleModel(ms) for m, ms, _ in others]
    blend = ExpertBlend(main, experts, [[names.index(n) for n in m.inputs] for m, _, _ in others],
                        [m.name for m, _, _ in others])
    logits = blend_logits(np.array([weights[0], *(w for _, _, w in others)]))
    blend.blend.copy_(torch.from_numpy(logits).expand_as(blend.blend))
    return blend.eval()


def stack_metrics(task: Task, bagged: list[dict[str, Any]], weights: np.ndarray, present: np.ndarray,
                  targets: dict[str, np.ndarray]) -> dict[str, float]:
    raw = combine(weights, [b["oof"] for b in bagged], present)
    predictions = {h: task.transform(h, torch.from_numpy(np.ascontiguousarray(v))) for h, v in raw.items()}
    return task.metrics(predictions, targets)
