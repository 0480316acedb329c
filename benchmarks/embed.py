"""How fast the encoders embed a real catalog on this machine, and how much memory they take.

Claim under test: tuwen's image pipeline (JPEG draft decoding in a thread pool,
overlapped with MobileNetV2 in ONNX Runtime) embeds product photos >= 2.5x faster
than a plain PyTorch loop over the same files and network; and 10k product titles
embed in under 10 s with the default text encoder.

Every measurement runs in its own subprocess, so each reports its own peak RSS
(``ru_maxrss``) and no variant inherits another's allocator state, threads or caches.
Throughput drifts by up to 2x between runs on shared machines, so the variants are
interleaved round by round (order rotated each round) and medians are quoted; the
speed-up is the median of the per-round ratios (both runs of a ratio from the same round).
Each subprocess warms up (model load, ONNX export on a cold cache, first batch) before
its timed pass; that set-up time is reported separately.

    python benchmarks/embed.py                   # 1024 images, 10k titles, 2k long texts, 3 rounds
    python benchmarks/embed.py --n 256 --rounds 1 --data /path/to/datasets
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
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
IMAGE_VARIANTS = {
    "mobilenet_v2": "tuwen mobilenet_v2 (ONNX Runtime, overlapped decode)",
    "mobilenet_v2_torch": "tuwen mobilenet_v2, backend=torch (channels-last)",
    "reference": "plain PyTorch loop, same network (reference)",
    "efficientnet_lite0": "tuwen efficientnet_lite0 (ONNX Runtime)",
    "color_histogram": "tuwen color_histogram",
}
TEXT_ENCODERS = ["use_multilingual", "minilm", "tfidf"]
TEXT_SETS = {"titles": "fashion productDisplayName", "long": "H&M prod_name + detail_desc"}


# -- data -------------------------------------------------------------------------------------


def image_paths(data: Path, n: int) -> list[str]:
    folder = data / "fashion-product-images"
    products = pd.read_csv(folder / "products.csv")
    sample = products.sample(min(n, len(products)), random_state=0)
    return [str(folder / image) for image in sample.image]


def texts(data: Path, which: str, n: int) -> list[str]:
    if which == "titles":
        titles = pd.read_csv(data / "fashion-product-images" / "products.csv").productDisplayName
        return titles.fillna("").astype(str).head(n).tolist()
    articles = pd.read_csv(data / "hm" / "articles.csv")
    joined = articles.prod_name.fillna("").astype(str) + ". " + articles.detail_desc.fillna("").astype(str)
    # Colour variants repeat the same text (the first 2,000 rows hold ~970 distinct ones); the encoders
    # embed each distinct text once, so distinct texts measure the model rather than the de-duplication.
    return joined.drop_duplicates().head(n).tolist()


# -- one measurement, in a subprocess ---------------------------------------------------------


def peak_rss_mb() -> float:
    scale = 1 if platform.system() == "Darwin" else 1024  # bytes on macOS, kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def reference_encode(paths: list[str], batch_size: int = 32) -> np.ndarray:
    """What a plain PyTorch user writes: decode, resize, normalise, stack, run; no overlap, no tricks."""
    import torch
    from PIL import Image

    from tuwen.encoders.image_mobilenet import IMAGENET_MEAN, IMAGENET_STD, load_pretrained

    torch.set_num_threads(os.cpu_count() or 1)
    network = load_pretrained().features.eval()
    mean = np.array(IMAGENET_MEAN, dtype=np.float32)
    std = np.array(IMAGENET_STD, dtype=np.float32)
    out = []
    for start in range(0, len(paths), batch_size):
        arrays = []
        for path in paths[start : start + batch_size]:
            image = Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
            arrays.append(((np.asarray(image, dtype=np.float32) / 255 - mean) / std).transpose(2, 0, 1))
        with torch.no_grad():
            out.append(network(torch.from_numpy(np.stack(arrays))).mean((2, 3)).numpy())
    return np.concatenate(out)


def run_image_variant(variant: str, paths: list[str]) -> dict:
    started = time.perf_counter()
    if variant == "reference":
        encode = reference_encode
    else:
        from tuwen.encoders import get_encoder

        if variant == "mobilenet_v2_torch":
            encoder = get_encoder("mobilenet_v2", backend="torch")
        else:
            encoder = get_encoder(variant)
        encode = encoder.encode
    encode(paths[:32])  # load the model (and export ONNX on a cold cache), warm the thread pools
    setup = time.perf_counter() - started
    started = time.perf_counter()
    vectors = encode(paths)
    elapsed = time.perf_counter() - started
    assert vectors.shape[0] == len(paths) and np.isfinite(vectors).all()
    return {"rate": len(paths) / elapsed, "seconds": elapsed, "setup": setup, "rss": peak_rss_mb()}


def run_text_variant(encoder_name: str, batch: list[str]) -> dict:
    from tuwen.encoders import get_encoder

    started = time.perf_counter()
    encoder = get_encoder(encoder_name)
    fit = 0.0
    if encoder_name == "tfidf":
        fit_started = time.perf_counter()
        encoder.fit(batch)  # fitted on the very texts it embeds, as on a catalog
        fit = time.perf_counter() - fit_started
    encoder.encode(batch[:64])  # load the model, warm BLAS/torch threads
    setup = time.perf_counter() - started
    started = time.perf_counter()
    vectors = encoder.encode(batch)
    elapsed = time.perf_counter() - started
    assert vectors.shape == (len(batch), encoder.dim)
    return {"rate": len(batch) / elapsed, "seconds": elapsed, "setup": setup, "fit": fit, "rss": peak_rss_mb()}


def worker(args: argparse.Namespace) -> None:
    kind, name = args.worker.split(":", 1)
    if kind == "image":
        result = run_image_variant(name, image_paths(args.data, args.n))
    else:
        encoder_name, text_set = name.split("@")
        count = args.n_titles if text_set == "titles" else args.n_long
        result = run_text_variant(encoder_name, texts(args.data, text_set, count))
    print("RESULT " + json.dumps(result), flush=True)


def spawn(job: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--worker", job, "--data", str(args.data), "--n", str(args.n)]
    command += ["--n-titles", str(args.n_titles), "--n-long", str(args.n_long)]
    env = dict(os.environ)
    if job == "image:reference":
        env["TUWEN_NO_MALLOC_TUNING"] = "1"  # the reference is plain PyTorch: no allocator tuning either
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{job} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


# -- orchestration and the table --------------------------------------------------------------


def measure(jobs: list[str], args: argparse.Namespace) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {job: [] for job in jobs}
    for round_index in range(args.rounds):
        shift = round_index % len(jobs)
        for job in jobs[shift:] + jobs[:shift]:
            result = spawn(job, args)
            results[job].append(result)
            print(
                f"  round {round_index + 1}: {job:38s} {result['rate']:8.1f}/s  rss {result['rss']:6.0f} MB",
                file=sys.stderr,
            )
    return results


def median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--n", type=int, default=1024, help="product photos to embed")
    parser.add_argument("--n-titles", type=int, default=10_000, help="short titles to embed")
    parser.add_argument("--n-long", type=int, default=2_000, help="title + description texts to embed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = args.data.resolve()
    if args.worker:
        worker(args)
        return

    paths = image_paths(args.data, args.n)
    load_before = os.getloadavg()[0]
    image_jobs = [f"image:{variant}" for variant in IMAGE_VARIANTS]
    text_jobs = [] if args.skip_text else [f"text:{e}@{s}" for s in TEXT_SETS for e in TEXT_ENCODERS]
    results = measure(image_jobs + text_jobs, args)
    print(f"# Embedding benchmark: {platform.node()} ({os.cpu_count()} CPUs), {args.rounds} interleaved rounds")
    print(f"Load average (1 min) before / after: {load_before:.1f} / {os.getloadavg()[0]:.1f}")
    print("(other processes share these cores: absolute rates vary between runs; same-round ratios are steadier)\n")

    reference = results["image:reference"]
    print(f"## Images: {len(paths)} fashion-product-images photos (224x224 or 225x300 JPEG), from file paths\n")
    print("| variant | images/s (median) | runs | set-up s | peak RSS MB |")
    print("|---|---:|---|---:|---:|")
    for variant, label in IMAGE_VARIANTS.items():
        runs = results[f"image:{variant}"]
        rates = ", ".join(f"{run['rate']:.0f}" for run in runs)
        cells = [
            label,
            f"{median(runs, 'rate'):.0f}",
            rates,
            f"{median(runs, 'setup'):.1f}",
            f"{median(runs, 'rss'):.0f}",
        ]
        print("| " + " | ".join(cells) + " |")
    ratios = [fast["rate"] / slow["rate"] for fast, slow in zip(results["image:mobilenet_v2"], reference, strict=True)]
    speedup = statistics.median(ratios)
    verdict = "meets" if speedup >= 2.5 else "MISSES"
    print(f"\nSpeed-up of tuwen's mobilenet_v2 over the plain PyTorch loop: **{speedup:.1f}x** (median of per-round")
    print(f"ratios {', '.join(f'{r:.1f}' for r in ratios)}; {verdict} the 2.5x target)\n")

    if text_jobs:
        print("## Texts\n")
        print(
            "| encoder | texts | n (distinct) | texts/s (median) | runs | time for 10k titles s | set-up s | RSS MB |"
        )
        print("|---|---|---:|---:|---|---:|---:|---:|")
        for text_set, label in TEXT_SETS.items():
            batch = texts(args.data, text_set, args.n_titles if text_set == "titles" else args.n_long)
            for encoder in TEXT_ENCODERS:
                runs = results[f"text:{encoder}@{text_set}"]
                rate = median(runs, "rate")
                rates = ", ".join(f"{run['rate']:.0f}" for run in runs)
                ten_k = f"{10_000 / rate:.1f}" if text_set == "titles" else ""
                setup = f"{median(runs, 'setup'):.1f}" + (
                    f" (fit {median(runs, 'fit'):.1f})" if encoder == "tfidf" else ""
                )
                row = [encoder, label, f"{len(batch)} ({len(set(batch))})", f"{rate:.0f}", rates, ten_k, setup]
                print("| " + " | ".join(row) + f" | {median(runs, 'rss'):.0f} |")
        print("\nText encoders embed each distinct text once, so repeated titles count at no cost; tfidf's set-up")
        print("includes fitting on the same texts. Target: 10k titles in < 10 s with the default use_multilingual.")


if __name__ == "__main__":
    main()
