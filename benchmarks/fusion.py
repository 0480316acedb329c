"""Is tuwen's default model at least as good as the plain baselines, and does fusing beat either modality alone?

For each case (data set, task, target, text fields) and each ``--seeds`` seed this script reuses a workspace
under ``--ws-root`` (``workspaces.build``: MobileNetV2 + colour histogram photos, multilingual USE text),
prepares the task with tuwen's split for that seed (stratified by target, grouped by ``product_code`` for
H&M and by review ``group`` for Amazon, 20 % test) and then, on exactly that split and those features:

* plain scikit-learn baselines: logistic regression on TF-IDF (tuwen's word + character n-grams), on
  USE vectors, on the photo vectors, on early concatenation (TF-IDF + L2-normalised photo vectors), the late
  average of the TF-IDF and photo models; class-balanced for review ratings. Price: Ridge on the TF-IDF of
  name + description, on image, on both. C / alpha are chosen as tuwen makes its own choices in the same
  run (5-fold cross-validation on the non-test rows for cross-fitted cases, the validation part otherwise),
  then every baseline is fitted on all non-test rows.
* tuwen: text only, image only, the ``--fusions`` (with their modality networks as stack members) and
  ``default``: the model ``tuwen train`` builds (cross-fitted: its network + the plain linear members; fast, above
  ``BEST_BELOW`` rows: one fused network + LR / ridge on TF-IDF blended on the validation part, and text / image
  alone and every other ``--fusions`` entry built the same way, :mod:`tuwen.predict.training.fast`).

It prints one Markdown table per case and seed (test scores, training seconds), the default model against
the best baseline with a 95% paired bootstrap interval of the main metric's difference, and a summary over
seeds. ``--json`` writes every number. The same seed prints the same numbers.

Usage::

    TUWEN_BENCH_WS=/work/bench-ws-after python benchmarks/fusion.py --cases flipkart-price amazon-review \\
        --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import normalize

from tuwen.metrics.intervals import paired_bootstrap, paired_difference_interval
from tuwen.predict.tasks import make_task
from tuwen.predict.tasks.base import group_values
from tuwen.predict.training.ablation import ablation_variants
from tuwen.predict.training.config import TrainConfig, resolve_quality
from tuwen.predict.training.crossfit import fit_crossfitted, plan
from tuwen.predict.training.fast import fit_fast
from tuwen.predict.training.members import fit_variant
from tuwen.predict.training.prepare import Prepared, labelled_rows, prepare
from tuwen.predict.training.report import describe_choice
from tuwen.predict.training.splits import fold_of
from workspaces import BENCH_WS, build


@dataclass(frozen=True)
class Case:
    name: str
    dataset: str  # a key of workspaces.SETS
    task: str
    target: str
    fields: tuple[str, ...]
    title: str


CASES = [
    Case("hm-name", "hm", "classify", "product_type_name", ("title",),
         "H&M product_type_name (prod_name only)"),
    Case("hm-name-desc", "hm", "classify", "product_type_name", ("title", "description"),
         "H&M product_type_name (prod_name + detail_desc)"),
    Case("fashion-articleType", "fashion", "classify", "articleType", ("title",),
         "fashion articleType (productDisplayName)"),
    Case("fashion-baseColour", "fashion", "classify", "baseColour", ("title",),
         "fashion baseColour (productDisplayName)"),
    Case("flipkart-category", "flipkart", "classify", "category:1", ("title",),
         "Flipkart top category (product_name)"),
    Case("flipkart-price", "flipkart", "price", "price", ("title", "description"),
         "Flipkart retail price, INR (product_name + description)"),
    Case("amazon-review", "amazon", "review", "rating", ("text", "title"),
         "Amazon fashion review rating (reviewText + summary)"),
]


# ------------------------------------------------------------------------------------------- baselines


def _inputs(prepared: Prepared, modality: str, encoder: str) -> list[str]:
    return [s.name for s in prepared.features.specs if s.modality == modality and s.encoder == encoder]


def _matrix(prepared: Prepared, names: list[str]) -> Any:
    blocks = []
    for name in names:
        if name in prepared.features.sparse:
            blocks.append(prepared.features.sparse[name])
        else:
            blocks.append(sp.csr_matrix(normalize(prepared.features.dense[name])))
    return sp.hstack(blocks, format="csr") if blocks else None


def _choose_and_fit(prepared: Prepared, grid: tuple[Any, ...], fit: Any, predict: Any,
                    seed: int) -> tuple[np.ndarray, Any]:
    """Pick a grid point, then fit it on every non-test row and predict the test rows.

    The choice is made as tuwen's model of the same run makes its own: on the validation part where the split has
    one ("fast"), else by 5-fold cross-validation over the non-test rows (the same folds tuwen cross-fits on).
    Either way the baseline then learns from every non-test row, as tuwen's model does."""
    task, head = prepared.task, next(iter(prepared.task.heads()))
    y = prepared.targets[head]
    test, pool = prepared.rows("test"), np.flatnonzero(prepared.split != "test")
    sign = 1.0 if task.higher_is_better else -1.0
    if len(prepared.rows("val")):
        parts = [(prepared.rows("train"), prepared.rows("val"))]
    else:
        fold = fold_of(task.strata(prepared.frame.iloc[pool]), _groups(prepared, pool), 5, seed + 7)
        parts = [(pool[fold != k], pool[fold == k]) for k in range(int(fold.max()) + 1)]
    scores = []
    for point in grid:
        held = np.concatenate([h for _, h in parts])
        out = np.concatenate([predict(fit(train, point), h) for train, h in parts])
        scores.append(sign * task.metrics({head: out}, {head: y[held]})[task.primary])
    chosen = grid[int(np.argmax(scores))]
    return predict(fit(pool, chosen), test), chosen


def _groups(prepared: Prepared, rows: np.ndarray) -> np.ndarray | None:
    frame = prepared.frame.iloc[rows]
    column = prepared.task.group_column(frame)
    return group_values(frame, column) if column else None


def _fit_logistic(prepared: Prepared, x: Any, grid: tuple[float, ...], balanced: bool,
                  seed: int) -> tuple[np.ndarray, float]:
    """Logistic regression, C chosen on validation / by cross-validation, refitted on every non-test row."""
    head = next(iter(prepared.task.heads()))
    y = prepared.targets[head]
    n_classes = prepared.task.heads()[head]

    def fit(rows: np.ndarray, c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=300, tol=1e-3, class_weight="balanced" if balanced else None
                                  ).fit(x[rows], y[rows])

    def predict(model: LogisticRegression, rows: np.ndarray) -> np.ndarray:
        full = np.zeros((len(rows), n_classes))
        full[:, model.classes_] = model.predict_proba(x[rows])
        return full

    return _choose_and_fit(prepared, grid, fit, predict, seed)


def _fit_ridge(prepared: Prepared, x: Any, grid: tuple[float, ...], seed: int) -> tuple[np.ndarray, float]:
    """Ridge on the log price, alpha chosen on validation / by cross-validation, refitted on every non-test row."""
    head = next(iter(prepared.task.heads()))
    y = prepared.targets[head].astype(np.float64)  # log price
    return _choose_and_fit(prepared, grid, lambda rows, a: Ridge(alpha=a).fit(x[rows], y[rows]),
                           lambda model, rows: np.exp(model.predict(x[rows])), seed)


def baselines(prepared: Prepared, predictions: dict[str, dict[str, np.ndarray]], seed: int = 0) -> list[dict[str, Any]]:
    """The issue's scikit-learn baselines on tuwen's split and features (test predictions into ``predictions``)."""
    task, head = prepared.task, next(iter(prepared.task.heads()))
    y_test = {head: prepared.targets[head][prepared.rows("test")]}
    tfidf = _inputs(prepared, "text", "tfidf_sparse")
    use = _inputs(prepared, "text", "use_multilingual")
    image = prepared.inputs(("image",))  # every cached photo encoder, as tuwen's models get
    rows: list[dict[str, Any]] = []

    def record(variant: str, test_predictions: np.ndarray, setting: str, started: float) -> None:
        metrics = task.metrics({head: test_predictions}, y_test)
        predictions[variant] = {head: test_predictions}
        rows.append({"variant": variant, "metrics": {k: round(v, 4) for k, v in metrics.items()},
                     "setting": setting, "seconds": round(time.perf_counter() - started, 1)})

    if task.name == "price":
        for variant, names in (("ridge: TF-IDF", tfidf), ("ridge: image", image), ("ridge: TF-IDF + image",
                                                                                     tfidf + image)):
            if names:
                started = time.perf_counter()
                prices, alpha = _fit_ridge(prepared, _matrix(prepared, names), (0.1, 0.3, 1.0, 3.0, 10.0), seed)
                record(variant, prices, f"alpha={alpha}", started)
        return rows
    balanced = task.name == "review"
    grid = (1.0, 10.0, 100.0)
    probabilities: dict[str, np.ndarray] = {}
    for variant, names in (("LR: TF-IDF", tfidf), ("LR: USE", use), ("LR: image", image),
                           ("LR: early concat (TF-IDF + image)", tfidf + image if image else [])):
        if names:
            started = time.perf_counter()
            probabilities[variant], c = _fit_logistic(prepared, _matrix(prepared, names), grid, balanced, seed)
            record(variant, probabilities[variant], f"C={c}", started)
    if "LR: TF-IDF" in probabilities and "LR: image" in probabilities:
        record("LR: late average (TF-IDF, image)", (probabilities["LR: TF-IDF"] + probabilities["LR: image"]) / 2,
               "mean of probabilities", time.perf_counter())
    return rows


# ------------------------------------------------------------------------------------------------ tuwen


def tuwen_variants(prepared: Prepared, config: TrainConfig, fusions: tuple[str, ...],
                   predictions: dict[str, dict[str, np.ndarray]], quality: str) -> list[dict[str, Any]]:
    """Single-modality models first, then each fusion (tuwen's ablation), then, cross-fitted, the default model
    `tuwen train` builds (its own network and the plain baselines, no modality networks).

    Fills ``predictions`` (variant → test predictions per head) for :func:`verdict`'s intervals. Cross-fitted
    variants share members (``prepared.bagged``), so a row's seconds count only what that row trained anew;
    "member s" sums every fold and refit job its model holds, the cost of training it alone on one core."""
    rows = []
    experts: dict[str, Any] = {}
    variants = ablation_variants(prepared, fusions)
    if quality == "best" and any(v.startswith("fusion:") for v, _, _ in variants):
        variants.append(("default", prepared.inputs(("text", "image")), config.fusion))
    if quality == "fast":  # what `tuwen train` builds above BEST_BELOW rows, on each modality and on all of them
        singles = [v for v in variants if not v[0].startswith("fusion:")]
        fused = [v for v in variants if v[0].startswith("fusion:") and v[2] != config.fusion]
        variants = singles + [("default", prepared.inputs(("text", "image")), config.fusion)] + fused
    for variant, names, fusion in variants:
        variant_config = replace(config, fusion=fusion)
        if quality == "fast":
            model, outcome = fit_fast(prepared, names, variant_config)
            setting = f"{len(names)} inputs, best epoch {outcome['best_epoch']}"
            if outcome["experts"]:
                setting += f", validation pick: {describe_choice(outcome['experts'])}"
            member_seconds = outcome["seconds"]
        elif quality == "best":
            # the default row is what `tuwen train` cross-fits (plan's defaults); the ablation's rows add the
            # modality networks, which it trains anyway for its single-modality rows
            members = plan(prepared, names, variant_config, fusion) if variant == "default" else \
                plan(prepared, names, variant_config, fusion, experts=True)
            model, outcome = fit_crossfitted(prepared, names, variant_config, members)
            info = model.info
            setting = f"{len(names)} inputs, {info['folds']}-fold OOF, stack: {describe_choice(outcome['experts'])}"
            member_seconds = round(sum(m["seconds"] for m in info["members"].values()), 1)
        else:
            model, outcome = fit_variant(prepared, names, variant_config, experts=experts)
            if not variant.startswith("fusion:"):
                experts[variant] = (model.network, names)
            setting = f"{len(names)} inputs, best epoch {outcome['best_epoch']}"
            if outcome["experts"]:
                setting += f", validation pick: {describe_choice(outcome['experts'])}"
            member_seconds = outcome["seconds"]
        rows.append({"variant": f"tuwen: {variant}", "metrics": {k: round(v, 4) for k, v in outcome["metrics"].items()},
                     "setting": setting, "seconds": outcome["seconds"], "member_seconds": member_seconds,
                     "experts": outcome["experts"], "crossfit": outcome.get("crossfit")})
        predictions[rows[-1]["variant"]] = outcome["predictions"]
        print(f"    {rows[-1]['variant']}: {rows[-1]['metrics']} ({outcome['seconds']:.1f}s)", file=sys.stderr,
              flush=True)
    return rows


def default_variant(rows: list[dict[str, Any]], config: TrainConfig) -> str:
    """The row of the model `tuwen train` builds with the defaults: the cross-fitted default, else the fusion
    of the default kind (fast: it holds its modality networks), else the only modality."""
    names = [r["variant"] for r in rows]
    for candidate in ("tuwen: default", f"tuwen: fusion:{config.fusion}"):
        if candidate in names:
            return candidate
    return next(n for n in names if n.startswith("tuwen: "))


def markdown(case: Case, prepared: Prepared, rows: list[dict[str, Any]], quality: str) -> str:
    keys = ("mae", "mae_log", "r2", "mdape") if prepared.task.name == "price" else \
        ("accuracy", "macro_f1", "top3", "mae") if prepared.task.name == "review" else ("accuracy", "macro_f1", "top3")
    split = prepared.split_info
    lines = [f"### {case.title}", "",
             f"{split['items']} items; quality {quality}; split: {split['rule']}; seed {split['seed']}; "
             f"{split['train']} train / {split['val']} validation / {split['test']} test."
             + "".join(f" {n}." for n in split["notes"]), "",
             "| variant | " + " | ".join(keys) + " | setting | seconds | member s |",
             "|---|" + "---|" * (len(keys) + 3)]
    for row in rows:
        cells = [f"{row['metrics'].get(k, float('nan')):.4f}" for k in keys]
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + f" | {row['setting']} | {row['seconds']:.1f} | "
                     f"{row.get('member_seconds', row['seconds'])} |")
    return "\n".join(lines) + "\n"


def paired_interval(prepared: Prepared, predictions: dict[str, dict[str, np.ndarray]], a: str, b: str,
                    resamples: int = 500, seed: int = 0) -> tuple[float, float]:
    """95% paired bootstrap interval of main metric(a) − main metric(b) over the test rows.

    Why: a few thousand test rows over dozens of classes move macro-F1 by about a point between samples;
    the interval says whether a difference between two variants is one the test part can see."""
    task, test = prepared.task, prepared.rows("test")
    y = {h: v[test] for h, v in prepared.targets.items()}

    def difference(rows: np.ndarray) -> float:
        sample = {h: v[rows] for h, v in y.items()}
        return (task.metrics({h: p[rows] for h, p in predictions[a].items()}, sample)[task.primary]
                - task.metrics({h: p[rows] for h, p in predictions[b].items()}, sample)[task.primary])

    return paired_difference_interval(difference, len(test), resamples, seed)


def row_scores(prepared: Prepared, prediction: dict[str, np.ndarray]) -> np.ndarray:
    """A per-row score for :func:`tuwen.metrics.intervals.paired_bootstrap`: 1/0 for a right/wrong class,
    minus the absolute log-price error for prices."""
    head, test = next(iter(prepared.task.heads())), prepared.rows("test")
    y = prepared.targets[head][test]
    if prepared.task.name == "price":
        return -np.abs(np.log(prediction[head]) - y)
    return (prediction[head].argmax(axis=1) == y).astype(float)


def verdict(prepared: Prepared, rows: list[dict[str, Any]], predictions: dict[str, dict[str, np.ndarray]],
            default: str) -> tuple[str, dict[str, Any]]:
    """The issue's bars, checked: the default model ≥ the best plain baseline, every fused model ≥ the best single
    modality, each with the 95% paired bootstrap interval of the main metric's difference and, from
    :func:`paired_bootstrap`, the share of resamples in which it wins on per-row scores."""
    primary, higher = prepared.task.primary, prepared.task.higher_is_better
    better = (lambda a, b: a >= b) if higher else (lambda a, b: a <= b)
    pick = max if higher else min
    score = {r["variant"]: r["metrics"].get(primary, float("nan")) for r in rows}
    singles = [v for v in score if v in ("tuwen: text", "tuwen: image", "tuwen: tabular")]
    fusions = [v for v in score if v.startswith("tuwen: fusion:") or v == "tuwen: default"]
    base = [v for v in score if not v.startswith("tuwen:")]
    lines, summary = [], {"primary": primary, "default": default, "default_score": score[default]}
    if base:
        best_base = pick(base, key=lambda v: score[v])
        low, high = paired_interval(prepared, predictions, default, best_base)
        diff = score[default] - score[best_base]
        wins = paired_bootstrap(row_scores(prepared, predictions[default]), row_scores(prepared,
                                                                                      predictions[best_base]))
        ok = (high >= 0) if higher else (low <= 0)
        lines.append(f"**Default model ({default}) vs best plain baseline ({best_base})**: {primary} "
                     f"{score[default]:.4f} vs {score[best_base]:.4f}, difference {diff:+.4f}, 95% paired bootstrap "
                     f"CI {low:+.4f} … {high:+.4f} ({'bar met' if ok else 'BAR MISSED'}); per-row paired bootstrap: "
                     f"default better in {wins:.0%} of resamples")
        summary.update({"baseline": best_base, "baseline_score": score[best_base], "difference": diff,
                        "interval": [low, high], "share_better": wins, "bar": bool(ok)})
    if fusions and singles:
        best_single_variant = pick(singles, key=lambda v: score[v])
        best_single = score[best_single_variant]
        lines.append(f"Best single modality (tuwen): {best_single_variant} {best_single:.4f}")
        for variant in fusions:
            low, high = paired_interval(prepared, predictions, variant, best_single_variant)
            flag = "≥ best single" if better(score[variant], best_single) else "< best single"
            lines.append(f"- {variant}: {score[variant]:.4f} ({flag}, {score[variant] - best_single:+.4f}, 95% CI "
                         f"{low:+.4f} … {high:+.4f})")
            summary.setdefault("fused_vs_single", {})[variant] = [score[variant] - best_single, low, high]
    return "\n".join(lines) + "\n", summary


def speed(root: Path, seed: int) -> str:
    """Seconds to train one fused head on the fashion catalog's stored features (about 10k products), and
    milliseconds to predict one new product, embedding its photo and title live (median of 20, warm)."""
    import pandas as pd

    from tuwen.predict.registry import load_model, train_model

    ws = build("fashion", root=root, reuse=True)
    started = time.perf_counter()
    model = train_model(ws, "classify", "articleType", name="bench-speed", text_fields=("title",), fusion="gated",
                        seed=seed, config=TrainConfig(progress=False, seed=seed, refit=True))  # `tuwen train`
    seconds = time.perf_counter() - started
    load = os.getloadavg()[0]
    reloaded = load_model(ws, "bench-speed")
    row = ws.read("products").iloc[0]
    new = pd.DataFrame([{"id": "new", "title": row["title"], "description": "", "image_paths": list(row["image_paths"]),
                         "has_image": True}])
    reloaded.predict(new, None)  # loads the encoders once
    times = []
    for _ in range(20):
        tick = time.perf_counter()
        reloaded.predict(new, None)
        times.append(time.perf_counter() - tick)
    split = model.info["split"]
    return (f"### Speed (torch threads {torch.get_num_threads()}, {os.cpu_count()} cores, load average {load:.1f} "
            f"at the end of training)\n\n"
            f"- `tuwen train` defaults (quality {model.info['quality']}, refit), fashion articleType, "
            f"{split['items']} products "
            f"({split['train']} train, {model.info['epochs_run']} epochs, early stopping): {seconds:.1f} s "
            f"(training loop alone {model.info['seconds']:.1f} s)\n"
            f"- predict one new product with live MobileNetV2 + USE embedding, contributions and neighbours: "
            f"median {1000 * float(np.median(times)):.0f} ms over 20 (min {1000 * min(times):.0f} ms)\n")


Run = tuple[Prepared, list[dict[str, Any]], dict[str, dict[str, np.ndarray]], str]


def run_split(case: Case, seed: int, fold: int, config: TrainConfig, args: argparse.Namespace) -> Run:
    """Baselines and tuwen's variants on one split: the seed's test fold ``fold`` (0: tuwen's own split)."""
    print(f"[{case.name} seed {seed} fold {fold}] preparing", file=sys.stderr, flush=True)
    ws = build(case.dataset, root=args.ws_root, reuse=True)
    task = make_task(case.task, case.target)
    quality = resolve_quality(config, labelled_rows(ws, task))
    prepared = prepare(ws, task, case.fields, modalities=("text", "image"), seed=seed,
                       val_size=0.0 if quality == "best" else 0.1, test_fold=fold)
    predictions: dict[str, dict[str, np.ndarray]] = {}
    rows = [] if args.no_baselines else baselines(prepared, predictions, seed)
    print(f"[{case.name}] baselines done", file=sys.stderr, flush=True)
    rows += tuwen_variants(prepared, config, tuple(f for f in args.fusions.split(",") if f), predictions, quality)
    return prepared, rows, predictions, quality


def pool(runs: list[Run]) -> Run:
    """The outer folds of one seed as one test part holding every row once: each variant's test predictions put
    back in row order and scored together, so a comparison rests on all the rows instead of one fifth of them.

    Why: on a few hundred reviews one test part holds three rows of a rare rating, and one of them crossing a
    decision boundary moves macro-F1 by more than the differences the bars are about."""
    first, _, _, quality = runs[0]
    task, n = first.task, len(first.frame)
    for prepared, _, _, _ in runs[1:]:
        if any(not np.array_equal(prepared.targets[h], v) for h, v in first.targets.items()):
            raise ValueError("outer folds encode the targets differently; pool them only when every class is in "
                             "every fold's training part")
    folds = len(runs)
    predictions: dict[str, dict[str, np.ndarray]] = {}
    for prepared, _, fold_predictions, _ in runs:
        test = prepared.rows("test")
        for variant, heads in fold_predictions.items():
            pooled = predictions.setdefault(variant, {})
            for head, values in heads.items():
                pooled.setdefault(head, np.zeros((n, *values.shape[1:]), dtype=values.dtype))[test] = values
    everything = replace(first, split=np.full(n, "test", dtype=object),
                         split_info={**first.split_info, "test_fold": None, "test": n,
                                     "rule": first.split_info["rule"] + f"; {folds} outer folds, each row tested once",
                                     "train": "/".join(str(p.split_info["train"]) for p, _, _, _ in runs)})
    targets = first.targets
    rows = []
    for row in runs[0][1]:
        variant = row["variant"]
        mine = [next(r for r in fold_rows if r["variant"] == variant) for _, fold_rows, _, _ in runs]
        metrics = task.metrics(predictions[variant], targets)
        rows.append({**row, "metrics": {k: round(v, 4) for k, v in metrics.items()},
                     "setting": fold_settings([r["setting"] for r in mine]),
                     "seconds": round(sum(r["seconds"] for r in mine), 1),
                     "member_seconds": round(sum(r.get("member_seconds", r["seconds"]) for r in mine), 1),
                     "folds": [r["metrics"] for r in mine]})
    return everything, rows, predictions, quality


def fold_settings(settings: list[str]) -> str:
    """The outer folds' settings in one cell: each distinct one once, a stack's shared description once."""
    marker = "stack: "
    if all(marker in s for s in settings):
        head = settings[0].split(marker)[0]
        return head + "stacks: " + " / ".join(dict.fromkeys(s.split(marker, 1)[1] for s in settings))
    return " / ".join(dict.fromkeys(settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES], help="which cases to run")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0], help="one split (and training run) per seed")
    parser.add_argument("--ws-root", type=Path, default=BENCH_WS)
    parser.add_argument("--fusions", default="gated", help="fusions besides the default model (comma separated)")
    parser.add_argument("--quality", default="auto", choices=("auto", "best", "fast"))
    parser.add_argument("--outer-folds", type=int, default=1,
                        help="K > 1: each seed runs its K test folds (every row tested once) and pools them")
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--speed", action="store_true", help="also time `tuwen train` on fashion and one prediction")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.outer_folds not in (1, 5):
        parser.error("--outer-folds: 1 (tuwen's split) or 5 (its 20% test part's five folds)")
    unknown = set(args.cases) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {[c.name for c in CASES]}")
    print(f"# tuwen fusion benchmark (seeds {args.seeds}, torch threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start)\n")
    results, summaries = [], []
    for case in (c for c in CASES if c.name in args.cases):
        for seed in args.seeds:
            started = time.perf_counter()
            config = TrainConfig(progress=False, seed=seed, quality=args.quality)
            runs = [run_split(case, seed, fold, config, args) for fold in range(args.outer_folds)]
            prepared, rows, predictions, quality = runs[0] if len(runs) == 1 else pool(runs)
            default = default_variant(rows, config)
            text, summary = verdict(prepared, rows, predictions, default)
            print(markdown(case, prepared, rows, quality))
            print(text, flush=True)
            summary.update({"case": case.name, "seed": seed, "quality": quality,
                            "seconds": next(r["member_seconds"] for r in rows if r["variant"] == default)})
            summaries.append(summary)
            results.append({"case": case.name, "seed": seed, "title": case.title, "split": prepared.split_info,
                            "rows": rows, "seconds": round(time.perf_counter() - started, 1), "summary": summary})
    print(summary_table(summaries))
    if args.speed:
        print(speed(args.ws_root, args.seeds[0]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"seeds": args.seeds, "results": results}, indent=2, default=str),
                             encoding="utf-8")


def summary_table(summaries: list[dict[str, Any]]) -> str:
    """One line per case over every seed: default model − best plain baseline (mean, and each seed's interval)."""
    lines = ["## Default model vs best plain baseline, every seed", "",
             "| case | quality | metric | seeds | default (mean) | best baseline (mean) | mean difference | "
             "per-seed 95% CI | bar met | training s (member jobs, mean) |", "|---|" + "---|" * 9]
    for case in dict.fromkeys(s["case"] for s in summaries):
        mine = [s for s in summaries if s["case"] == case and "baseline" in s]
        if not mine:
            continue
        intervals = "; ".join(f"{s['interval'][0]:+.3f} … {s['interval'][1]:+.3f}" for s in mine)
        lines.append(f"| {case} | {mine[0]['quality']} | {mine[0]['primary']} | {len(mine)} | "
                     f"{np.mean([s['default_score'] for s in mine]):.4f} | "
                     f"{np.mean([s['baseline_score'] for s in mine]):.4f} | "
                     f"{np.mean([s['difference'] for s in mine]):+.4f} | {intervals} | "
                     f"{sum(s['bar'] for s in mine)}/{len(mine)} | {np.mean([s['seconds'] for s in mine]):.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
