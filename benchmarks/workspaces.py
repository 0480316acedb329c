"""Build the embedded workspaces the benchmarks read: ``python benchmarks/workspaces.py [fashion hm flipkart amazon]``.

Each real data set is ingested with its preset and embedded with the default encoders (MobileNetV2 photos,
multilingual USE text) into ``$TUWEN_BENCH_WS/<name>`` (default ``bench-ws/`` in the repository, ignored by
git). Re-running is cheap: ingestion upserts and embedding skips what is cached.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tuwen import Workspace

ROOT = Path(__file__).resolve().parents[1]
BENCH_WS = Path(os.environ.get("TUWEN_BENCH_WS", ROOT / "bench-ws"))
DATASETS = Path(os.environ.get("TUWEN_DATASETS", ROOT.parent / "shared" / "datasets"))
SETS = {"fashion": ("fashion", "fashion-product-images"), "hm": ("hm", "hm"), "flipkart": ("flipkart", "flipkart"),
        "amazon": ("amazon-reviews", "amazon-fashion-reviews")}


def build(name: str, data: Path = DATASETS, root: Path = BENCH_WS, reuse: bool = False) -> Workspace:
    """The data set's embedded workspace; ``reuse``: skip ingestion when it already holds the data set."""
    preset, folder = SETS[name]
    ws = Workspace(root / name)
    if not (reuse and (ws.has_table("products") or ws.has_table("reviews"))):
        ws.ingest(preset=preset, path=data / folder)
    if name != "amazon":  # reviews carry no photos; the review models embed their text themselves
        ws.embed(text_encoder="use_multilingual")  # default photo encoders: MobileNetV2 + colour histogram
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # checked below, not with ``choices``: Python 3.11's argparse refuses an empty list against choices
    parser.add_argument("sets", nargs="*", help=f"data sets to build: {', '.join(SETS)} (default: all)")
    parser.add_argument("--data", type=Path, default=DATASETS)
    parser.add_argument("--root", type=Path, default=BENCH_WS)
    args = parser.parse_args()
    unknown = sorted(set(args.sets) - set(SETS))
    if unknown:
        parser.error(f"unknown data sets {unknown}; known: {list(SETS)}")
    for name in args.sets or list(SETS):
        started = time.perf_counter()
        ws = build(name, args.data, args.root)
        print(f"{name}: {ws.info()['products']:,} products in {ws.path} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
