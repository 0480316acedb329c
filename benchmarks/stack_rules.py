"""Which stacking rule generalises? Nested out-of-fold comparison of the cross-fitted model's stack rules.

The cross-fitted model (:mod:`tuwen.predict.training.crossfit`) chooses its stack on out-of-fold (OOF)
predictions of its members. That choice is itself fitted to those rows, so its OOF score is optimistic, the
more so the more members and rounds it may combine. Here every candidate member is cross-fitted once per case
and seed (on the non-test rows of ``benchmarks/fusion.py``'s split, the same folds), and each rule is scored
*nested*: for each fold, the rule chooses its weights on the other folds' OOF rows and predicts the fold's own
OOF rows; the pooled predictions give the rule's honest score, on every learning row (about four times the
test part's rows, so less noisy than the test split). No refit, no test rows: the test part stays for
``benchmarks/fusion.py``.

Rules (members: ``fused`` the model's own network; ``text`` / ``image`` one network per modality;
``linear:tfidf`` LR on TF-IDF; ``linear:all`` LR on every input; ``linear:<modality>`` LR on a modality's inputs):

* ``greedy:default``: greedy ensemble selection over what `tuwen train` cross-fits (fused, linear:tfidf,
  linear:all);
* ``greedy:experts``: the same plus the modality networks (``plan(..., experts=True)``);
* ``se:<set>``: the best single member unless the greedy blend beats it by more than one bootstrap SE;
* ``modality-first:<set>``: the best single-modality stack unless the full stack beats it by more than one SE;
* ``greedy-nll:<set>``: greedy selection on the class-balanced log loss instead of the main metric;
* ``best-member:<set>``: the member with the best OOF score alone; ``average:<set>``: every member, equal weights;
* each member alone, and the best single-modality stack (``best-modality``);
* ``calibrated-nll:<set>``: greedy selection on the class-balanced log loss after one temperature per member
  (chosen on the same rows by that loss): the log loss then weighs how well a member ranks the classes, not
  how over-confident its fit is;
* ``anchor-tfidf:<set>``: linear:tfidf alone unless the class-balanced log-loss blend beats it on the main metric
  by more than one paired bootstrap SE (a prior for the plain baseline; ``anchor-tfidf-nll``: the margin on the
  log loss itself).

``--save DIR`` keeps each case and seed's OOF predictions; ``--load DIR`` scores the rules on them again without
training anything (seconds, not minutes).

Usage::

    TUWEN_BENCH_WS=/work/bench-ws-after python benchmarks/stack_rules.py --cases flipkart-category --seeds 0 1 2
    python benchmarks/stack_rules.py --cases amazon-review --seeds 0 1 2 --load runs/oof
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from fusion import CASES
from tuwen.predict.features import TFIDF
from tuwen.predict.linear import LINEAR
from tuwen.predict.tasks import make_task
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.crossfit import (
    Member,
    balanced_nll,
    crossfit_members,
    ensemble_selection,
    folds,
    presence,
    score,
    temperature,
)
from tuwen.predict.training.prepare import Prepared, prepare
from workspaces import BENCH_WS, build

Raw = dict[str, np.ndarray]


def candidates(prepared: Prepared, config: TrainConfig) -> list[Member]:
    """Every member a rule may use: the fused network, one network and one LR per modality, LR on TF-IDF / all."""
    names = prepared.inputs(("text", "image"))
    present = [m for m in ("text", "image") if prepared.inputs((m,))]
    main = "fused" if len(present) > 1 else present[0]
    members = [Member(main, "network", tuple(names), config.fusion)]
    if len(present) > 1:
        members += [Member(m, "network", tuple(prepared.inputs((m,)))) for m in present]
    members.append(Member("linear:tfidf", LINEAR, tuple(n for n in names if n.endswith("@" + TFIDF))))
    members.append(Member("linear:all", LINEAR, tuple(names)))
    if len(present) > 1:
        members += [Member(f"linear:{m}", LINEAR, tuple(prepared.inputs((m,)))) for m in present]
    return members


def paired_se(task: Any, a: Raw, b: Raw, targets: dict[str, np.ndarray], resamples: int = 200,
              seed: int = 0, measure: Any = None) -> float:
    """Bootstrap standard error of ``score(a) - score(b)``: rows resampled with replacement, the same rows for
    both (paired), so it measures how far apart two candidates' OOF scores may land by the rows' luck alone."""
    rng = np.random.default_rng(seed)
    n = len(next(iter(targets.values())))
    differences = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        sample = {h: v[rows] for h, v in targets.items()}
        measure = measure or score
        difference = measure(task, {h: v[rows] for h, v in a.items()}, sample) - \
            measure(task, {h: v[rows] for h, v in b.items()}, sample)
        if math.isfinite(difference):
            differences.append(difference)
    return float(np.std(differences, ddof=1)) if len(differences) > 1 else 0.0


def one_hot(n: int, i: int) -> np.ndarray:
    w = np.zeros(n)
    w[i] = 1.0
    return w


def mix(weights: np.ndarray, outputs: list[Raw], present: np.ndarray) -> Raw:
    """The blend without the first-member-present assumption of crossfit.combine (a rule may leave it out)."""
    w = weights[None, :] * present
    w = w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
    return {h: sum(w[:, i:i + 1] * o[h] for i, o in enumerate(outputs)) for h in outputs[0]}


def scaled(outputs: list[Raw], temps: list[float]) -> list[Raw]:
    return [{h: v / t for h, v in o.items()} for o, t in zip(outputs, temps, strict=True)]


def rules(names: list[str]) -> dict[str, Any]:
    """Rule name → function(task, outputs, present, targets) → weights, over the members ``names``."""
    index = {n: i for i, n in enumerate(names)}
    default = [index[n] for n in names if n in ("fused", "text", "linear:tfidf", "linear:all")
               and not (n == "text" and "fused" in index)]
    experts = default + [index[n] for n in ("text", "image") if n in index and "fused" in index]
    everything = list(range(len(names)))
    groups = {m: [index[n] for n in names if n in (m, f"linear:{m}") or (m == "text" and n == "linear:tfidf")]
              for m in ("text", "image") if m in index and "fused" in index}

    def greedy(allowed: list[int]):
        return lambda task, out, present, y: ensemble_selection(task, out, present, y, allowed=sorted(allowed))[0]

    def se(allowed: list[int]):
        def rule(task, out, present, y):
            blend = ensemble_selection(task, out, present, y, allowed=sorted(allowed))[0]
            best = max(allowed, key=lambda i: score(task, out[i], y))
            single = one_hot(len(out), best)
            a, b = mix(blend, out, present), mix(single, out, present)
            gain = score(task, a, y) - score(task, b, y)
            return blend if gain > paired_se(task, a, b, y) else single
        return rule

    def best_modality(task, out, present, y, allowed: list[int] | None = None):
        within = [[i for i in g if allowed is None or i in allowed] for g in groups.values()]
        stacks = [ensemble_selection(task, out, present, y, allowed=sorted(g))[0] for g in within if g]
        return max(stacks, key=lambda w: score(task, mix(w, out, present), y))

    def modality_first(allowed: list[int]):
        def rule(task, out, present, y):
            single = best_modality(task, out, present, y, allowed)
            full = ensemble_selection(task, out, present, y, allowed=sorted(allowed))[0]
            a, b = mix(full, out, present), mix(single, out, present)
            gain = score(task, a, y) - score(task, b, y)
            return full if gain > paired_se(task, a, b, y) else single
        return rule

    def alone(i: int):
        return lambda task, out, present, y: one_hot(len(out), i)

    def greedy_nll(allowed: list[int]):
        return lambda task, out, present, y: ensemble_selection(task, out, present, y, allowed=sorted(allowed),
                                                                objective=balanced_nll)[0]

    def best_member(allowed: list[int]):
        return lambda task, out, present, y: one_hot(len(out), max(allowed, key=lambda i: score(task, out[i], y)))

    def calibrated(allowed: list[int]):
        def rule(task, out, present, y):
            temps = [temperature(None, o, y) for o in out]  # type: ignore[arg-type]
            weights = ensemble_selection(task, scaled(out, temps), present, y, allowed=sorted(allowed),
                                         objective=balanced_nll)[0]
            return weights, temps
        return rule

    def anchor(allowed: list[int], margin_on_nll: bool = False):
        measure = balanced_nll if margin_on_nll else score

        def rule(task, out, present, y):
            blend = ensemble_selection(task, out, present, y, allowed=sorted(allowed), objective=balanced_nll)[0]
            single = one_hot(len(out), index["linear:tfidf"])
            a, b = mix(blend, out, present), mix(single, out, present)
            gain = measure(task, a, y) - measure(task, b, y)
            return blend if gain > paired_se(task, a, b, y, measure=measure) else single
        return rule

    def average(allowed: list[int]):
        return lambda task, out, present, y: np.isin(np.arange(len(out)), allowed) / len(allowed)

    table: dict[str, Any] = {f"member:{n}": alone(i) for n, i in index.items()}
    table["greedy:default"] = greedy(default)
    table["greedy-nll:default"] = greedy_nll(default)
    table["best-member:default"] = best_member(default)
    table["average:default"] = average(default)
    table["se:default"] = se(default)
    if "linear:tfidf" in index:
        table["calibrated-nll:default"] = calibrated(default)
        table["anchor-tfidf:default"] = anchor(default)
        table["anchor-tfidf-nll:default"] = anchor(default, margin_on_nll=True)
    if groups:
        table["greedy:experts"] = greedy(experts)
        table["greedy:all"] = greedy(everything)
        table["se:experts"] = se(experts)
        table["best-modality"] = best_modality
        table["modality-first:default"] = modality_first(default)
        table["modality-first:experts"] = modality_first(experts)
        table["modality-first:all"] = modality_first(everything)
    return table


def nested(task: Any, rule: Any, outputs: list[Raw], present: np.ndarray, targets: dict[str, np.ndarray],
           fold: np.ndarray) -> tuple[float, Raw]:
    """The rule's pooled predictions when each fold's weights are chosen on the other folds."""
    pooled = {h: np.zeros_like(v) for h, v in outputs[0].items()}
    for k in range(int(fold.max()) + 1):
        inner, outer = fold != k, fold == k
        chosen = rule(task, [{h: v[inner] for h, v in o.items()} for o in outputs], present[inner],
                      {h: v[inner] for h, v in targets.items()})
        weights, temps = chosen if isinstance(chosen, tuple) else (chosen, [1.0] * len(outputs))
        blended = mix(weights, scaled([{h: v[outer] for h, v in o.items()} for o in outputs], temps), present[outer])
        for h in pooled:
            pooled[h][outer] = blended[h]
    return score(task, pooled, targets), pooled


def crossfit(case: Any, seed: int, args: argparse.Namespace) -> tuple[Any, ...]:
    """Cross-fit every candidate member of ``case`` for ``seed`` (and save their OOF predictions with --save)."""
    config = TrainConfig(progress=False, seed=seed)
    ws = build(case.dataset, root=args.ws_root, reuse=True)
    prepared = prepare(ws, make_task(case.task, case.target), case.fields, modalities=("text", "image"),
                       seed=seed, val_size=0.0)
    members = candidates(prepared, config)
    bagged = crossfit_members(prepared, members, config)
    rows = np.flatnonzero(prepared.split != "test")
    fold = folds(prepared, rows, config)
    features = prepared.features.subset(rows)
    targets = {h: v[rows] for h, v in prepared.targets.items()}
    present = np.stack([presence(features, m.inputs) for m in members], axis=1)
    present[:, 0] = True
    outputs = [b["oof"] for b in bagged]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        np.savez(args.save / f"{case.name}-{seed}.npz", fold=fold, present=present,
                 **{f"y:{h}": v for h, v in targets.items()},
                 **{f"oof:{m.name}:{h}": v for m, o in zip(members, outputs, strict=True) for h, v in o.items()})
    settings = {m.name: b.get("setting", b.get("epoch")) for m, b in zip(members, bagged, strict=True)}
    member_seconds = {m.name: round(b["seconds"], 1) for m, b in zip(members, bagged, strict=True)}
    return prepared.task, [m.name for m in members], outputs, present, targets, fold, settings, member_seconds


def load(path: Path, case: Any) -> tuple[Any, ...]:
    """OOF predictions saved by --save: the task (unfitted: the rules need only its metric and probabilities),
    member names in their saved order, outputs, presence, targets, folds."""
    saved = np.load(path)
    heads = [k.split(":", 1)[1] for k in saved.files if k.startswith("y:")]
    names = list(dict.fromkeys(k[len("oof:"):].rsplit(":", 1)[0] for k in saved.files if k.startswith("oof:")))
    outputs = [{h: saved[f"oof:{n}:{h}"] for h in heads} for n in names]
    return (make_task(case.task, case.target), names, outputs, saved["present"], {h: saved[f"y:{h}"] for h in heads},
            saved["fold"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="*", default=["flipkart-category", "amazon-review"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--ws-root", type=Path, default=BENCH_WS)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--save", type=Path, help="folder for each case and seed's OOF predictions (.npz)")
    parser.add_argument("--load", type=Path, help="score the rules on OOF predictions saved by --save (no training)")
    args = parser.parse_args(argv)
    print(f"# nested OOF comparison of stack rules (load average {os.getloadavg()[0]:.1f} at the start)\n")
    results = []
    for case in (c for c in CASES if c.name in args.cases):
        for seed in args.seeds:
            started = time.perf_counter()
            if args.load:
                task, names, outputs, present, targets, fold = load(args.load / f"{case.name}-{seed}.npz", case)
                settings: dict[str, Any] = {}
                member_seconds: dict[str, Any] = {}
            else:
                task, names, outputs, present, targets, fold, settings, member_seconds = crossfit(case, seed, args)
            rows = fold
            sign = 1.0 if task.higher_is_better else -1.0
            table = {}
            for name, rule in rules(names).items():
                value, _ = nested(task, rule, outputs, present, targets, fold)
                table[name] = round(sign * value, 4)
            seconds = round(time.perf_counter() - started, 1)
            print(f"## {case.name} seed {seed}: {len(rows)} learning rows, {seconds} s\n", flush=True)
            for name, value in table.items():
                print(f"- {name}: {value}")
            print(f"- chosen settings / epochs: {settings}\n", flush=True)
            print(f"[{case.name} seed {seed}] done in {seconds} s", file=sys.stderr, flush=True)
            results.append({"case": case.name, "seed": seed, "rows": len(rows), "nested": table,
                            "settings": settings, "seconds": seconds, "member_seconds": member_seconds})
    print("## mean over seeds (nested OOF, main metric)\n")
    for case in dict.fromkeys(r["case"] for r in results):
        mine = [r for r in results if r["case"] == case]
        print(f"### {case} ({len(mine)} seeds)\n")
        for name in mine[0]["nested"]:
            values = [r["nested"][name] for r in mine]
            print(f"- {name}: mean {np.mean(values):.4f} ({', '.join(f'{v:.4f}' for v in values)})")
        print()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
