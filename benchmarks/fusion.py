"""Does fusing image and text beat either alone, and the simple scikit-learn baselines? Measured on real data.

For each case (data set, task, target, text fields) this script builds (or reuses) a workspace
under ``--ws-root`` (``workspaces.build``: the default encoders, MobileNetV2 + colour histogram photos,
multilingual USE text), prepares the task once with tuwen's split (stratified by target,
grouped by ``product_code`` for H&M and by review ``group`` for Amazon; test 20 %, validation
10 %, train 70 %; one seed) and then, on exactly that split and those features:

* scikit-learn baselines: logistic regression on TF-IDF (the same word + character n-gram
  TF-IDF tuwen's models use, fitted on the training rows), on USE vectors, on the photo vectors
  (every cached photo encoder, as tuwen's models get), on early concatenation (TF-IDF + L2-normalised
  photo vectors), and the late average of the TF-IDF and photo models' probabilities; C is picked on the
  validation rows (by the task's main metric) and the model is fitted on the training rows, as tuwen's models are.
  Price: Ridge on TF-IDF, on image, on both (alpha picked the same way).
* tuwen: text only, image only and every fusion strategy (``tuwen evaluate --ablation``).

It prints one Markdown table per case (test scores) and, with ``--json``, writes every number.
A second run with the same seed prints the same numbers (up to BLAS thread scheduling).

Usage::

    python benchmarks/fusion.py                       # every case
    python benchmarks/fusion.py --cases flipkart-category flipkart-price --seed 0
"""

from __future__ import annotations

import argparse
import json
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

from tuwen.predict.fusion import FUSIONS
from tuwen.predict.tasks import make_task
from tuwen.predict.training.ablation import ablation_variants
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.members import fit_variant
from tuwen.predict.training.prepare import Prepared, prepare
from tuwen.predict.training.report import describe_choice
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
    Case("flipkart-price", "flipkart", "price", "price", ("title",), "Flipkart retail price, INR (product_name)"),
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


def _fit_logistic(prepared: Prepared, x: Any, grid: tuple[float, ...], balanced: bool) -> tuple[np.ndarray, float]:
    """Fit on train for each C, keep the best on validation (task's main metric); test probabilities."""
    task, head = prepared.task, next(iter(prepared.task.heads()))
    y = prepared.targets[head]
    train, val, test = prepared.rows("train"), prepared.rows("val"), prepared.rows("test")
    n_classes = prepared.task.heads()[head]
    best: tuple[float, float, np.ndarray] | None = None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=300, tol=1e-3, class_weight="balanced" if balanced else None)
        model.fit(x[train], y[train])

        def probabilities(rows: np.ndarray, fitted: LogisticRegression = model) -> np.ndarray:
            full = np.zeros((len(rows), n_classes))
            full[:, fitted.classes_] = fitted.predict_proba(x[rows])
            return full

        score = task.metrics({head: probabilities(val)}, {head: y[val]})[task.primary]
        if best is None or score > best[0]:
            best = (score, c, probabilities(test))
    assert best is not None
    return best[2], best[1]


def _fit_ridge(prepared: Prepared, x: Any, grid: tuple[float, ...]) -> tuple[np.ndarray, float]:
    task, head = prepared.task, next(iter(prepared.task.heads()))
    y = prepared.targets[head].astype(np.float64)  # log price
    train, val, test = prepared.rows("train"), prepared.rows("val"), prepared.rows("test")
    best: tuple[float, float, np.ndarray] | None = None
    for alpha in grid:
        model = Ridge(alpha=alpha).fit(x[train], y[train])
        score = task.metrics({head: np.exp(model.predict(x[val]))}, {head: y[val]})[task.primary]
        if best is None or score < best[0]:
            best = (score, alpha, np.exp(model.predict(x[test])))
    assert best is not None
    return best[2], best[1]


def baselines(prepared: Prepared, predictions: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
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
                prices, alpha = _fit_ridge(prepared, _matrix(prepared, names), (0.1, 0.3, 1.0, 3.0, 10.0))
                record(variant, prices, f"alpha={alpha}", started)
        return rows
    balanced = task.name == "review"
    grid = (1.0, 10.0, 100.0)
    probabilities: dict[str, np.ndarray] = {}
    for variant, names in (("LR: TF-IDF", tfidf), ("LR: USE", use), ("LR: image", image),
                           ("LR: early concat (TF-IDF + image)", tfidf + image if image else [])):
        if names:
            started = time.perf_counter()
            probabilities[variant], c = _fit_logistic(prepared, _matrix(prepared, names), grid, balanced)
            record(variant, probabilities[variant], f"C={c}", started)
    if "LR: TF-IDF" in probabilities and "LR: image" in probabilities:
        record("LR: late average (TF-IDF, image)", (probabilities["LR: TF-IDF"] + probabilities["LR: image"]) / 2,
               "mean of probabilities", time.perf_counter())
    return rows


# ------------------------------------------------------------------------------------------------ tuwen


def tuwen_variants(prepared: Prepared, config: TrainConfig, fusions: tuple[str, ...],
                   predictions: dict[str, dict[str, np.ndarray]]) -> list[dict[str, Any]]:
    """Single-modality models first; each fused model then blends with them on validation (tuwen's ablation).

    Fills ``predictions`` (variant → test predictions per head) for :func:`verdict`'s intervals."""
    rows = []
    experts: dict[str, Any] = {}
    for variant, names, fusion in ablation_variants(prepared, fusions):
        model, outcome = fit_variant(prepared, names, replace(config, fusion=fusion), experts=experts)
        if not variant.startswith("fusion:"):
            experts[variant] = (model.network, names)
        chosen = outcome["experts"]
        setting = f"{len(names)} inputs, best epoch {outcome['best_epoch']}"
        if chosen:
            setting += f", validation pick: {describe_choice(chosen)}"
        rows.append({"variant": f"tuwen: {variant}", "metrics": {k: round(v, 4) for k, v in outcome["metrics"].items()},
                     "setting": setting, "seconds": outcome["seconds"], "experts": chosen})
        predictions[rows[-1]["variant"]] = outcome["predictions"]
        print(f"    {rows[-1]['variant']}: {rows[-1]['metrics']} ({outcome['seconds']:.1f}s)", file=sys.stderr,
              flush=True)
    return rows


def markdown(case: Case, prepared: Prepared, rows: list[dict[str, Any]]) -> str:
    keys = ("mae", "mae_log", "r2", "mdape") if prepared.task.name == "price" else \
        ("accuracy", "macro_f1", "top3", "mae") if prepared.task.name == "review" else ("accuracy", "macro_f1", "top3")
    split = prepared.split_info
    lines = [f"### {case.title}", "",
             f"{split['items']} items; split: {split['rule']}; seed {split['seed']}; {split['train']} train / "
             f"{split['val']} validation / {split['test']} test." + "".join(f" {n}." for n in split["notes"]), "",
             "| variant | " + " | ".join(keys) + " | setting | seconds |", "|---|" + "---|" * (len(keys) + 2)]
    for row in rows:
        cells = [f"{row['metrics'].get(k, float('nan')):.4f}" for k in keys]
        lines.append(f"| {row['variant']} | " + " | ".join(cells) + f" | {row['setting']} | {row['seconds']} |")
    return "\n".join(lines) + "\n"


def paired_interval(prepared: Prepared, predictions: dict[str, dict[str, np.ndarray]], a: str, b: str,
                    resamples: int = 500, seed: int = 0) -> tuple[float, float]:
    """95% paired bootstrap interval of main metric(a) − main metric(b) over the test rows.

    Why: a few thousand test rows over dozens of classes move macro-F1 by about a point between samples;
    the interval says whether a difference between two variants is one the test part can see."""
    task, test = prepared.task, prepared.rows("test")
    y = {h: v[test] for h, v in prepared.targets.items()}
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        rows = rng.integers(0, len(test), len(test))
        sample = {h: v[rows] for h, v in y.items()}
        differences.append(task.metrics({h: p[rows] for h, p in predictions[a].items()}, sample)[task.primary]
                           - task.metrics({h: p[rows] for h, p in predictions[b].items()}, sample)[task.primary])
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def verdict(prepared: Prepared, rows: list[dict[str, Any]], predictions: dict[str, dict[str, np.ndarray]]) -> str:
    """The issue's bars, checked: every fusion ≥ best single modality (with the difference's 95% interval);
    best fusion > best baseline."""
    primary, higher = prepared.task.primary, prepared.task.higher_is_better
    better = (lambda a, b: a >= b) if higher else (lambda a, b: a <= b)
    pick = max if higher else min
    score = {r["variant"]: r["metrics"].get(primary, float("nan")) for r in rows}
    singles = [v for v in score if v in ("tuwen: text", "tuwen: image", "tuwen: tabular")]
    fusions = [v for v in score if v.startswith("tuwen: fusion:")]
    base = [v for v in score if not v.startswith("tuwen:")]
    if not fusions or not singles:
        return f"only one modality: best tuwen {primary} {pick(score[v] for v in singles):.4f}; best baseline " \
               f"{pick(score[v] for v in base):.4f}\n" if base and singles else ""
    best_single_variant = pick(singles, key=lambda v: score[v])
    best_single = score[best_single_variant]
    best_base = pick(base, key=lambda v: score[v]) if base else None
    lines = [f"Main metric `{primary}`: best single modality (tuwen) {best_single:.4f}"
             + (f"; best baseline {best_base} {score[best_base]:.4f}" if best_base else "")]
    for variant in fusions:
        flags = ["≥ best single" if better(score[variant], best_single) else "< best single"]
        if best_base:
            flags.append("beats best baseline" if better(score[variant], score[best_base]) and
                         score[variant] != score[best_base] else "does not beat best baseline")
            if variant in predictions and best_base in predictions:
                low, high = paired_interval(prepared, predictions, variant, best_base)
                flags.append(f"vs best baseline {score[variant] - score[best_base]:+.4f}, 95% CI {low:+.4f} … "
                             f"{high:+.4f}")
        if variant in predictions and best_single_variant in predictions:
            low, high = paired_interval(prepared, predictions, variant, best_single_variant)
            flags.append(f"vs best single {score[variant] - best_single:+.4f}, 95% CI {low:+.4f} … {high:+.4f}")
        lines.append(f"- {variant}: {score[variant]:.4f} ({', '.join(flags)})")
    return "\n".join(lines) + "\n"


def speed(root: Path, seed: int) -> str:
    """Seconds to train one fused head on the fashion catalog's stored features (about 10k products), and
    milliseconds to predict one new product, embedding its photo and title live (median of 20, warm)."""
    import pandas as pd

    from tuwen.predict.registry import load_model, train_model

    ws = build("fashion", root=root, reuse=True)
    started = time.perf_counter()
    model = train_model(ws, "classify", "articleType", name="bench-speed", text_fields=("title",), fusion="gated",
                        seed=seed, config=TrainConfig(progress=False, ensemble=1, seed=seed))
    seconds = time.perf_counter() - started
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
    return (f"### Speed (torch threads {torch.get_num_threads()})\n\n"
            f"- train + save one fused (gated) model, fashion articleType, {split['items']} products "
            f"({split['train']} train, {model.info['epochs_run']} epochs, early stopping): {seconds:.1f} s "
            f"(training loop alone {model.info['seconds']:.1f} s)\n"
            f"- predict one new product with live MobileNetV2 + USE embedding, contributions and neighbours: "
            f"median {1000 * float(np.median(times)):.0f} ms over 20 (min {1000 * min(times):.0f} ms)\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=[c.name for c in CASES], help="which cases to run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ws-root", type=Path, default=BENCH_WS)
    parser.add_argument("--fusions", default=",".join(FUSIONS))
    parser.add_argument("--no-baselines", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--speed", action="store_true", help="also time training on ~10k products and one prediction")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = set(args.cases) - {c.name for c in CASES}
    if unknown:
        parser.error(f"unknown cases {sorted(unknown)}; known: {[c.name for c in CASES]}")
    config = TrainConfig(progress=False, seed=args.seed)
    print(f"# tuwen fusion benchmark (seed {args.seed}, torch threads {torch.get_num_threads()})\n")
    results = []
    for case in (c for c in CASES if c.name in args.cases):
        started = time.perf_counter()
        print(f"[{case.name}] preparing", file=sys.stderr, flush=True)
        ws = build(case.dataset, root=args.ws_root, reuse=True)
        prepared = prepare(ws, make_task(case.task, case.target), case.fields, modalities=("text", "image"),
                           seed=args.seed)
        predictions: dict[str, dict[str, np.ndarray]] = {}
        rows = [] if args.no_baselines else baselines(prepared, predictions)
        print(f"[{case.name}] baselines done", file=sys.stderr, flush=True)
        rows += tuwen_variants(prepared, config, tuple(args.fusions.split(",")), predictions)
        print(markdown(case, prepared, rows))
        print(verdict(prepared, rows, predictions), flush=True)
        results.append({"case": case.name, "title": case.title, "split": prepared.split_info, "rows": rows,
                        "seconds": round(time.perf_counter() - started, 1)})
    if args.speed:
        print(speed(args.ws_root, args.seed), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "results": results}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
