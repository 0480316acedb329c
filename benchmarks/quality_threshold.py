"""Where should `tuwen train` switch from cross-fitted ("best") to single-split ("fast") training? (``BEST_BELOW``)

For each case and seed, the task is prepared once on the full catalog (tuwen's split for the seed: 20 % test,
stratified by target, grouped where copies exist). The test part is kept fixed; the learning rows are
subsampled to each ``--sizes`` count (seeded), 1/8 of them marked for validation, and on exactly those rows

* ``best``: :func:`~tuwen.predict.training.crossfit.fit_crossfitted`, what `tuwen train` builds below
  ``BEST_BELOW`` (it learns from train + validation rows: k-fold, no validation part of its own);
* ``fast``: :func:`~tuwen.predict.training.fast.fit_fast`, what it builds above (the network learns from the
  train rows and stops on the validation rows; its linear member is refitted on both);

both scored on the same fixed test rows (macro-F1 / the task's main metric, with the 95 % paired bootstrap
interval of best - fast), with wall seconds and CPU seconds (this process and its worker processes, read from
``/proc``: on a shared machine wall time follows the load, CPU time much less). Features (TF-IDF vocabulary, the
task's classes) are fitted once on the full catalog's training part, the same for both modes at every size.

Usage::

    TUWEN_BENCH_WS=/work/bench-ws-after python benchmarks/quality_threshold.py --cases fashion-articleType \\
        --sizes 1000 2000 4000 8000 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from fusion import CASES, paired_interval
from tuwen.predict.tasks import make_task
from tuwen.predict.tasks.base import group_values
from tuwen.predict.training.config import BEST_BELOW, TrainConfig
from tuwen.predict.training.crossfit import fit_crossfitted
from tuwen.predict.training.fast import fit_fast
from tuwen.predict.training.prepare import Prepared, prepare
from tuwen.predict.training.splits import _one_fold
from workspaces import BENCH_WS, build

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times() -> dict[int, float]:
    """User + system CPU seconds of this process and of every live descendant (the loky / joblib workers)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = (int(fields[11]) + int(fields[12])) / TICKS
    mine = {os.getpid()}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                changed = True
    return {pid: times[pid] for pid in mine if pid in times}


def cpu_since(before: dict[int, float]) -> float:
    """CPU seconds spent since ``before`` (a :func:`cpu_times` snapshot), process by process: a worker that a
    new pool replaced is left out (it sat idle meanwhile), a new worker counts from zero."""
    return sum(t - before.get(pid, 0.0) for pid, t in cpu_times().items())


def subsample(prepared: Prepared, size: int, seed: int) -> Prepared:
    """The same test rows, ``size`` of the learning rows (seeded), 1/8 of those marked "val"."""
    test = prepared.rows("test")
    learn = np.flatnonzero(prepared.split != "test")
    chosen = np.random.default_rng(seed + 11).choice(learn, size=min(size, len(learn)), replace=False)
    keep = np.sort(np.concatenate([chosen, test]))
    frame = prepared.frame.iloc[keep].reset_index(drop=True)
    split = np.where(prepared.split[keep] == "test", "test", "train").astype(object)
    rest = np.flatnonzero(split == "train")
    strata = prepared.task.strata(frame.iloc[rest])
    column = prepared.task.group_column(frame)
    groups = group_values(frame.iloc[rest], column) if column else None
    split[rest[_one_fold(np.arange(len(rest)), strata, groups, 8, seed + 1)]] = "val"
    info = {**prepared.split_info, "train": int((split == "train").sum()), "val": int((split == "val").sum()),
            "test": len(test), "items": len(frame), "learning_rows": len(chosen)}
    return Prepared(prepared.task, frame, split, prepared.builder, prepared.features.subset(keep), info,
                    {h: v[keep] for h, v in prepared.targets.items()})


def run(prepared: Prepared, quality: str, config: TrainConfig) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    names = prepared.inputs(("text", "image"))
    started, cpu = time.perf_counter(), cpu_times()
    if quality == "best":
        _, outcome = fit_crossfitted(prepared, names, replace(config, quality="best"))
    else:
        _, outcome = fit_fast(prepared, names, replace(config, quality="fast"))
    return ({"metrics": {k: round(v, 4) for k, v in outcome["metrics"].items()},
             "wall_s": round(time.perf_counter() - started, 1), "cpu_s": round(cpu_since(cpu), 1),
             "load": round(os.getloadavg()[0], 1), "choice": (outcome.get("experts") or {}).get("choice")},
            outcome["predictions"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=["fashion-articleType"])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--qualities", nargs="*", default=["fast", "best"], choices=("fast", "best"))
    parser.add_argument("--ws-root", type=Path, default=BENCH_WS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"# best vs fast by training size (BEST_BELOW = {BEST_BELOW}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the start)\n")
    print("| case | seed | learning rows | test rows | quality | macro-F1 | accuracy | wall s | CPU s | load | "
          "stack | best - fast [95% paired bootstrap] |")
    print("|---|" + "---|" * 11, flush=True)
    results = []
    for case in (c for c in CASES if c.name in args.cases):
        for seed in args.seeds:
            ws = build(case.dataset, root=args.ws_root, reuse=True)
            full = prepare(ws, make_task(case.task, case.target), case.fields, modalities=("text", "image"),
                           seed=seed, val_size=0.0)
            for size in args.sizes:
                prepared = subsample(full, size, seed)
                config = TrainConfig(progress=False, seed=seed)
                scored: dict[str, dict[str, np.ndarray]] = {}
                for quality in args.qualities:
                    print(f"[{case.name} seed {seed} size {size}] {quality}", file=sys.stderr, flush=True)
                    row, scored[quality] = run(prepared, quality, config)
                    interval = ""
                    if quality == "best" and "fast" in scored:
                        low, high = paired_interval(prepared, {"best": scored["best"], "fast": scored["fast"]},
                                                    "best", "fast")
                        primary = prepared.task.primary
                        previous = next(r for r in results if r["case"] == case.name and r["seed"] == seed
                                        and r["size"] == size and r["quality"] == "fast")
                        difference = row["metrics"][primary] - previous["metrics"][primary]
                        interval = f"{difference:+.4f} [{low:+.4f}, {high:+.4f}]"
                        row["vs_fast"] = [difference, low, high]
                    row.update({"case": case.name, "seed": seed, "size": size, "quality": quality,
                                "learning_rows": prepared.split_info["learning_rows"],
                                "test_rows": prepared.split_info["test"]})
                    results.append(row)
                    m = row["metrics"]
                    print(f"| {case.name} | {seed} | {row['learning_rows']} | {row['test_rows']} | {quality} | "
                          f"{m.get('macro_f1', float('nan')):.4f} | {m.get('accuracy', float('nan')):.4f} | "
                          f"{row['wall_s']} | {row['cpu_s']} | {row['load']} | {row['choice']} | {interval} |",
                          flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
