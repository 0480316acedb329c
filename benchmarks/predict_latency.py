"""How long does ``model.predict`` take for one new product (photo + title), with a warm model?

Trains (or reuses) a gated text + image model on the fashion workspace's stored features, reloads
it as ``tuwen predict`` does, predicts once to load the encoders (MobileNetV2 through ONNX
Runtime, multilingual USE), then times ``predict`` on one product that is *not* in the workspace,
so its photo and title are embedded live, with contributions (leave-one-modality-out) and the
five nearest training products. Prints the median and the split of the time by stage.

Usage::

    python benchmarks/predict_latency.py --ws /path/to/fashion-workspace [--repeats 30] [--retrain]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tuwen import Workspace
from tuwen.predict.registry import load_model, train_model
from tuwen.predict.training.config import TrainConfig
from tuwen.util.runtime import torch_threads
from workspaces import BENCH_WS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ws", type=Path, default=BENCH_WS / "fashion", help="an embedded fashion workspace "
                        "(a model named bench-latency is saved into it: use a copy)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args(argv)
    ws = Workspace(args.ws)
    if args.retrain or not (ws.artifacts / "models" / "bench-latency" / "config.json").exists():
        train_model(ws, "classify", "articleType", name="bench-latency", text_fields=("title",), fusion="gated",
                    config=TrainConfig(progress=False, ensemble=1))
    model = load_model(ws, "bench-latency")
    products = ws.read("products")
    stages: dict[str, list[float]] = {"total": [], "features (live embedding)": [], "network + contributions": [],
                                      "neighbours": []}
    for i in range(args.repeats + 1):
        row = products.iloc[i % len(products)]
        new = pd.DataFrame([{"id": f"new-{i}", "title": f"{row['title']} {i}", "description": "",
                             "image_paths": list(row["image_paths"]), "has_image": True}])
        tick = time.perf_counter()
        model.predict(new, None)
        total = time.perf_counter() - tick
        with torch_threads(1):  # the same stages, timed one by one
            t0 = time.perf_counter()
            features = model.features(new, None)
            t1 = time.perf_counter()
            result = model.outputs(features)
            model.contributions(features, result["predictions"])
            t2 = time.perf_counter()
            model.nearest(result["fused"], 5)
            t3 = time.perf_counter()
        if i:  # the first call loads the encoders
            for key, value in zip(stages, (total, t1 - t0, t2 - t1, t3 - t2), strict=True):
                stages[key].append(value)
    print(f"### Predict one new product (photo + title), fashion articleType, gated fusion with experts "
          f"({len(model.neighbours['ids']) if model.neighbours else 0} neighbour candidates; torch threads "
          f"{torch.get_num_threads()} outside predict)\n")
    for key, values in stages.items():
        print(f"- {key}: median {1000 * float(np.median(values)):.1f} ms (min {1000 * min(values):.1f}, "
              f"max {1000 * max(values):.1f}) over {len(values)}")


if __name__ == "__main__":
    main()
