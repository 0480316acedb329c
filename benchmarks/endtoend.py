"""End-to-end trainable encoders vs the frozen-feature fast path, on one real task, one split, one seed.

Variants (each trained on the same rows: tuwen's split, stratified by target, test 20 %, validation 10 %):

* ``frozen``: the fast path's default model (gated fusion over TF-IDF + multilingual USE + MobileNetV2
  vectors cached in the workspace), as ``tuwen train`` trains it;
* ``gru+cnn64``: ``encoders="trainable"``: a bidirectional GRU over jieba/word tokens + a small CNN over
  64 px thumbnails, trained from scratch, gated fusion;
* ``textcnn+cnn64``: the same with a 1-D CNN text encoder;
* ``gru``, ``cnn64``: each trainable modality alone;
* ``finetune``: the GRU text encoder + MobileNetV2 with its last 3 modules trained (``--finetune-size`` px).

Prints a Markdown table (accuracy, macro-F1, epochs, training seconds). Thumbnails and trunk
activations are cached in the workspace (``artifacts/endtoend-cache``), so the first run also pays
for decoding the photos (reported separately). Torch runs on one thread (``--threads``).

Usage::

    python benchmarks/endtoend.py --variants frozen gru+cnn64 gru cnn64
    python benchmarks/endtoend.py --variants finetune --finetune-size 160
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from tuwen import Workspace
from tuwen.predict.endtoend.data import cache_folder, thumbnails, trunk_activations
from tuwen.predict.endtoend.model import endtoend_config, train_endtoend
from tuwen.predict.features import first_image
from tuwen.predict.registry import train_model
from tuwen.predict.tasks import make_task
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.prepare import load_items
from workspaces import BENCH_WS

VARIANTS = ("frozen", "gru+cnn64", "textcnn+cnn64", "gru", "cnn64", "finetune")


def run(ws: Workspace, variant: str, task: str, target: str, seed: int, epochs: int | None,
        finetune_size: int) -> dict[str, Any]:
    settings: dict[str, Any] = {"progress": False, "seed": seed, "ensemble": 1}
    if epochs:
        settings["epochs"] = epochs
    mode = "frozen" if variant == "frozen" else "finetune" if variant == "finetune" else "trainable"
    # End-to-end variants start from their mode's defaults (fewer epochs, smaller batches), not the fast path's.
    config = TrainConfig(**settings) if mode == "frozen" else endtoend_config(mode, **settings)
    started = time.perf_counter()
    common: dict[str, Any] = {"text_fields": ("title",), "seed": seed, "config": config, "save": False}
    if mode == "frozen":
        model = train_model(ws, task, target, modalities=("text", "image"), fusion="gated", **common)
    elif mode == "finetune":
        model = train_endtoend(ws, task, target, mode="finetune", image_size=finetune_size, **common)
    else:
        text = {"gru+cnn64": "gru", "textcnn+cnn64": "cnn", "gru": "gru", "cnn64": "gru"}[variant]
        modalities = {"gru": ("text",), "cnn64": ("image",)}.get(variant, ("text", "image"))
        model = train_endtoend(ws, task, target, mode="trainable", text_encoder=text, image_size=64,
                               modalities=modalities, **common)
    info = model.info
    return {"variant": variant, "metrics": info["metrics"]["test"], "epochs_run": info["epochs_run"],
            "best_epoch": info["best_epoch"], "train_seconds": info["seconds"],
            "total_seconds": round(time.perf_counter() - started, 1), "split": info["split"],
            "inputs": info["inputs"]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ws", type=Path, default=BENCH_WS / "fashion",
                        help="an ingested + embedded fashion workspace (benchmarks/fusion.py builds one)")
    parser.add_argument("--task", default="classify")
    parser.add_argument("--target", default="articleType")
    parser.add_argument("--variants", nargs="*", default=["frozen", "gru+cnn64", "gru", "cnn64"], choices=VARIANTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None, help="most epochs (default: the end-to-end defaults)")
    parser.add_argument("--finetune-size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ws = Workspace(args.ws, create=False)
    paths = first_image(load_items(ws, make_task(args.task, args.target)))
    tick = time.perf_counter()
    if any(v != "frozen" and v != "gru" and v != "finetune" for v in args.variants):
        thumbnails(paths, 64, cache_folder(ws), progress=True)
    if "finetune" in args.variants:
        trunk_activations(paths, 3, args.finetune_size, cache_folder(ws), progress=True)
    cache_seconds = time.perf_counter() - tick
    print(f"# end-to-end vs frozen features: {args.ws.name} {args.task} {args.target}, seed {args.seed}, "
          f"torch threads {torch.get_num_threads()}\n")
    print(f"photo cache (decode 64 px thumbnails / MobileNetV2 trunk, first run only): {cache_seconds:.1f} s\n",
          flush=True)
    rows = []
    for variant in args.variants:
        print(f"[{variant}] training", file=sys.stderr, flush=True)
        rows.append(run(ws, variant, args.task, args.target, args.seed, args.epochs, args.finetune_size))
        row = rows[-1]
        print(f"[{variant}] {json.dumps(row['metrics'])} {row['train_seconds']} s", file=sys.stderr, flush=True)
    split = rows[0]["split"]
    print(f"{split['items']} items; split: {split['rule']}; seed {split['seed']}; {split['train']} train / "
          f"{split['val']} validation / {split['test']} test\n")
    print("| variant | inputs | accuracy | macro_f1 | epochs (best) | training s | total s |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        m = row["metrics"]
        print(f"| {row['variant']} | {', '.join(row['inputs'])} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
              f"{row['epochs_run']} ({row['best_epoch']}) | {row['train_seconds']:.1f} | {row['total_seconds']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"seed": args.seed, "cache_seconds": cache_seconds, "rows": rows}, indent=2),
                             encoding="utf-8")


if __name__ == "__main__":
    main()
