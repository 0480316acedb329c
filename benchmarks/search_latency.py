"""How fast search answers on two CPU cores: per mode at catalog size (~10k real products) and at 1M vectors.

Part 1 — the fashion catalog (10,106 products, exact in-memory vectors + LanceDB BM25), one engine in one
process, queries run one at a time. Every query is new to the engine (its query-vector cache is cleared),
so the time includes encoding the words with the multilingual USE model (and, in image mode, reading and
encoding the photo with MobileNetV2). Modes are interleaved query by query, so drift on a shared machine
hits them alike. Reported: p50 / p99 latency (ms) and queries per second (1 / mean), plus the median of each
stage.

Part 2 — 1,000,000 synthetic products: each vector a random mix of two real fashion vectors (weight 0.5-1
on the first) plus Gaussian noise — title vectors (USE, 512-d) and aligned photo vectors (tuwen align,
257-d) — with the first one's title as words. They go into a workspace-format LanceDB table; building the
BM25 index and the HNSW (IVF-HNSW-SQ) vector indexes is timed with a progress bar. Then ANN Recall@10
against exact brute-force search over the same vectors for a sweep of ef / refine factor, and p50 / p99
per mode through the ANN indexes at the chosen setting.

    python benchmarks/search_latency.py                      # both parts (part 2 builds ~10 min on 2 cores)
    python benchmarks/search_latency.py --parts 2 --n 200000 # smaller synthetic set
    python benchmarks/search_latency.py --parts 2 --keep     # then --reuse to re-measure without rebuilding
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tuwen.search import (  # noqa: E402
    IndexSettings,
    SearchEngine,
    build_index,
    clear_engines,
    create_indexes,
    engine_for,
)
from tuwen.workspace import Workspace  # noqa: E402

SEED = 0


def percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {"p50 ms": float(np.percentile(values, 50)), "p99 ms": float(np.percentile(values, 99)),
            "QPS": float(1000.0 / values.mean()), "n": len(values)}


def queries_from(ws: Workspace, n: int) -> list[str]:
    """Half attribute phrasings (English, Chinese), half real titles: typical shop queries, all distinct."""
    products = ws.read("products", ["title", "attributes"])
    rng = np.random.default_rng(SEED)
    attrs = pd.DataFrame([json.loads(a) for a in products["attributes"]])
    out = []
    colours_zh = {"Black": "黑色", "White": "白色", "Blue": "蓝色", "Red": "红色", "Green": "绿色", "Grey": "灰色"}
    for i in rng.permutation(len(attrs)):
        row = attrs.iloc[i]
        colour, kind, gender = row.get("baseColour", ""), row.get("articleType", ""), row.get("gender", "")
        out.append(f"{colour} {kind} for {gender}".lower())
        if colour in colours_zh:
            out.append(f"{colours_zh[colour]} {kind}")
        out.append(" ".join(str(products["title"].iloc[i]).split()[1:4]))
        out = list(dict.fromkeys(q for q in out if q.strip()))
        if len(out) >= n:
            break
    return out[:n]


def time_modes(engine: SearchEngine, queries: list[str], photos: list[str], modes: dict[str, dict],
               where: str | None = None) -> pd.DataFrame:
    """Run every mode on every query, modes rotated per query; cold query-vector cache each time."""
    rows = []
    names = list(modes)
    for i, query in enumerate(queries):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            kwargs = dict(modes[name])
            if kwargs.get("mode") == "image":
                kwargs["image"] = photos[i % len(photos)]
                q = None
            else:
                q = query
            engine.clear_caches()
            t = time.perf_counter()
            result = engine.search(q, k=10, where=where, **kwargs)
            ms = (time.perf_counter() - t) * 1000
            rows.append({"mode": name, "ms": ms, **{f"stage {k}": v for k, v in result.timings.items()
                                                      if k != "total"}})
    return pd.DataFrame(rows)


def report(title: str, frame: pd.DataFrame) -> dict:
    print(f"\n## {title}")
    table = {}
    for mode, group in frame.groupby("mode", sort=False):
        stages = {c.replace("stage ", ""): round(float(group[c].median()), 2) for c in group.columns
                  if c.startswith("stage ") and group[c].notna().any()}
        table[mode] = {**{k: round(v, 2) for k, v in percentiles(group["ms"].tolist()).items()},
                       "stages (median ms)": stages}
    print(pd.DataFrame({m: {k: v for k, v in t.items() if k != "stages (median ms)"} for m, t in table.items()})
          .T.to_string())
    for mode, t in table.items():
        print(f"  {mode:28s} stages: {t['stages (median ms)']}")
    return table


# ------------------------------------------------------------------------------------------- part 1


def part1(args: argparse.Namespace) -> dict:
    folder = args.work / "fashion"
    if not (folder / "tuwen.json").exists():
        raise SystemExit(f"{folder}: run benchmarks/search_quality.py first (it aligns and indexes the fashion copy)")
    ws = Workspace(folder, create=False)
    clear_engines()
    engine = engine_for(ws)
    if engine.ann:
        build_index(ws, IndexSettings(ann="off"), progress=False, learn=False)
        engine = engine_for(ws)
    queries = queries_from(ws, args.queries)
    photos = [p[0] for p in ws.read("products", ["image_paths"])["image_paths"].sample(50, random_state=SEED)]
    modes = {"lexical": {"mode": "lexical"}, "semantic": {"mode": "semantic"}, "crossmodal": {"mode": "crossmodal"},
             "hybrid (rrf)": {"mode": "hybrid", "fusion": "rrf"},
             "hybrid (learnt weights)": {"mode": "hybrid", "fusion": "weighted"},
             "image (photo query)": {"mode": "image"}}
    for warm in queries[:5]:  # load models, index files and caches once
        for kwargs in modes.values():
            engine.search(None if kwargs.get("mode") == "image" else warm, image=photos[0], **kwargs)
    out = {}
    frame = time_modes(engine, queries, photos, modes)
    out["fashion 10k"] = report(f"fashion, {engine.table.count_rows():,} products, exact vectors in memory, "
                                f"{len(queries)} distinct queries, cold query cache", frame)
    frame = time_modes(engine, queries[: args.queries // 2], photos,
                       {"hybrid (rrf) + filter": {"mode": "hybrid", "fusion": "rrf"}},
                       where="gender = 'Men' AND category LIKE 'Footwear%'")
    out["fashion 10k, filtered"] = report("same, hybrid with where \"gender = 'Men' AND category LIKE 'Footwear%'\"",
                                          frame)
    return out


# ------------------------------------------------------------------------------------------- part 2


def _mix(base: np.ndarray, n: int, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """n unit vectors between two random real ones (weight 0.5-1 on the first) plus Gaussian noise.

    Mixing (rather than copying each real vector ~100 times with jitter) gives a continuous cloud shaped like
    the real one, without clumps of near-ties that no index, exact float rounding aside, could rank stably.
    """
    first = rng.integers(0, len(base), n)
    second = rng.integers(0, len(base), n)
    weight = rng.uniform(0.5, 1.0, (n, 1)).astype(np.float32)
    out = np.empty((n, base.shape[1]), np.float32)
    for lo in range(0, n, 100_000):
        sl = slice(lo, lo + 100_000)
        mixed = weight[sl] * base[first[sl]] + (1 - weight[sl]) * base[second[sl]]
        mixed += rng.normal(0, noise, mixed.shape).astype(np.float32)
        out[sl] = mixed / np.maximum(np.linalg.norm(mixed, axis=1, keepdims=True), 1e-12)
    return out, first


def synthetic_table(source: Workspace, n: int) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """n synthetic products from the real catalog's vectors (see _mix) and its words."""
    engine = engine_for(source)
    data = engine.table.to_arrow()
    text = np.asarray(engine.matrices["text_vec"], np.float32)
    xmodal = np.asarray(engine.matrices["xmodal_vec"], np.float32)
    tokens = data.column("tokens").to_pylist()
    categories = data.column("category").to_pylist()
    rng = np.random.default_rng(SEED)
    text_n, base = _mix(text, n, rng, 0.01)
    photo, photo_base = _mix(xmodal[:, :-1], n, rng, 0.01)
    xmodal_n = np.hstack([photo, xmodal[photo_base, -1:]]).astype(np.float32)  # keep the hubness column
    table = pa.table({
        "id": pa.array([f"s{i:07d}" for i in range(n)]),
        "title": pa.array([tokens[i] for i in base]),
        "category": pa.array([categories[i] for i in base]),
        "price": pa.array(rng.uniform(5, 500, n).round(2)),
        "tokens": pa.array([tokens[i] for i in base]),
        "text_vec": pa.FixedSizeListArray.from_arrays(pa.array(text_n.ravel()), text_n.shape[1]),
        "xmodal_vec": pa.FixedSizeListArray.from_arrays(pa.array(xmodal_n.ravel()), xmodal_n.shape[1]),
    })
    return table, text_n, xmodal_n


def build_synthetic(args: argparse.Namespace, source: Workspace, folder: Path) -> tuple[Workspace, dict, np.ndarray,
                                                                                        np.ndarray]:
    t = time.perf_counter()
    table_data, text, xmodal = synthetic_table(source, args.n)
    print(f"\n## {args.n:,} synthetic products: generated in {time.perf_counter() - t:.0f} s", flush=True)
    name = "search__synthetic"
    if args.reuse and (folder / "tuwen.json").exists():
        return Workspace(folder, create=False), {"reused": True}, text, xmodal
    if folder.exists():
        shutil.rmtree(folder)
    ws = Workspace(folder)
    shutil.copytree(source.artifacts / "align", ws.artifacts / "align")
    settings = IndexSettings(ef=args.ef, ann="on")
    build = {}
    with ws.transaction("synthetic search index") as writer:
        t = time.perf_counter()
        table = ws.db.create_table(name, schema=table_data.schema)
        for lo in range(0, len(table_data), 100_000):
            table.add(table_data.slice(lo, 100_000))
        build["write s"] = round(time.perf_counter() - t, 1)
        seconds = create_indexes(table, settings, use_ann=True, fts=True, progress=True)
        build.update({f"index {k} s": v for k, v in seconds.items()})
        meta = {"text_encoder": "use_multilingual", "image_encoder": "mobilenet_v2", "table": name, "ann_built": True,
                "signals": ["lexical", "semantic", "crossmodal"], "rows": args.n, "ef": args.ef,
                "price_edges": [50.0, 150.0, 300.0]}
        writer.upsert("search_meta", pd.DataFrame({"id": ["settings"], "json": [json.dumps(meta)]}),
                      schema=pa.schema([("id", pa.string()), ("json", pa.string())]))
        writer.versions[name] = table.version
    print("build:", build, f"(total {sum(build.values()):.0f} s)", flush=True)
    return ws, build, text, xmodal


def ann_recall(engine: SearchEngine, queries: list[str], text: np.ndarray, xmodal: np.ndarray) -> dict[str, float]:
    recall = {}
    alignment = engine.alignment()
    for signal, column, matrix in (("semantic", "text_vec", text), ("crossmodal", "xmodal_vec", xmodal)):
        hits = []
        for query in queries:
            vector = engine._text_vector(engine.settings.text_encoder, query)
            q = vector / np.linalg.norm(vector) if signal == "semantic" else alignment.text_space(vector[None])[0]
            exact = set(np.argpartition(-(matrix @ q), 10)[:10].tolist())
            ann = engine._vector(column, q, None, 10).keys
            hits.append(len({int(k[1:]) for k in ann} & exact) / 10)
        recall[signal] = round(float(np.mean(hits)), 3)
    return recall


def part2(args: argparse.Namespace) -> dict:
    source = Workspace(args.work / "fashion", create=False)
    folder = args.work / f"synthetic-{args.n}"
    ws, build, text, xmodal = build_synthetic(args, source, folder)
    clear_engines()
    engine = engine_for(ws)
    queries = queries_from(source, args.queries)
    sweep = []
    for ef in (50, 100, 200):
        for refine in (1, 2, 4):
            engine.settings.ef, engine.settings.refine_factor = ef, refine
            t = time.perf_counter()
            recall = ann_recall(engine, queries[: args.recall_queries], text, xmodal)
            ms = (time.perf_counter() - t) * 1000 / (2 * args.recall_queries)
            sweep.append({"ef": ef, "refine": refine, **{f"recall@10 {k}": v for k, v in recall.items()},
                          "mean ms per ANN query": round(ms, 1)})
            print(sweep[-1], flush=True)
    engine.settings.ef, engine.settings.refine_factor = args.ef, args.refine
    modes = {"lexical": {"mode": "lexical"}, "semantic": {"mode": "semantic"}, "crossmodal": {"mode": "crossmodal"},
             "hybrid (rrf)": {"mode": "hybrid", "fusion": "rrf"}}
    for warm in queries[:5]:
        for kwargs in modes.values():
            engine.search(warm, **kwargs)
    frame = time_modes(engine, queries, [], modes)
    title = f"{args.n:,} synthetic products, ANN (IVF-HNSW-SQ, ef={args.ef}, refine={args.refine})"
    out = {"build": build, "sweep": sweep, "latency": report(title, frame)}
    out["recall@10"] = ann_recall(engine, queries[: args.recall_queries], text, xmodal)
    print(f"ANN Recall@10 vs exact at ef={args.ef}, refine={args.refine} ({args.recall_queries} queries):",
          out["recall@10"])
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/work/ws/search-bench"),
                        help="where search_quality.py left its aligned + indexed fashion copy")
    parser.add_argument("--parts", default="1,2")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--ef", type=int, default=IndexSettings().ef)
    parser.add_argument("--refine", type=int, default=IndexSettings().refine_factor)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic workspace")
    parser.add_argument("--reuse", action="store_true", help="reuse a kept synthetic workspace (skip the build)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",")}
    out = {}
    if "1" in parts:
        out["part1"] = part1(args)
    if "2" in parts:
        out["part2"] = part2(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
