"""How fast search answers on two CPU cores: per mode at catalog size (~10k real products) and at 1M vectors.

Part 1 — the fashion catalog (10,106 products, exact in-memory vectors + LanceDB BM25), one engine in one
process, queries run one at a time. Every query is new to the engine (its query-vector cache is cleared),
so the time includes encoding the words with the multilingual USE model (and, in image mode, reading and
encoding the photo with MobileNetV2). Modes are interleaved query by query, so drift on a shared machine
hits them alike. Reported: p50 / p99 latency (ms) and queries per second (1 / mean), plus the median of each
stage.

Part 2 — 1,000,000 synthetic products: each vector a random mix of two real fashion vectors (weight 0.5-1
on the first) plus Gaussian noise — title vectors (USE, 512-d) and aligned photo vectors (tuwen align,
513-d) — with the first one's title as words. They go into a workspace-format LanceDB table; building the
BM25 index and one ANN vector index per column (IndexSettings.ann_index, IVF-flat by default; --index picks
another) is timed per column with a progress bar, each step committed on its own, so with --keep an
interrupted build resumes where it stopped (a kept index of another type is rebuilt). Then ANN Recall@10
against exact brute-force search over the same vectors for a sweep of nprobes (ef for IVF-HNSW-SQ) /
refine factor, and p50 / p99 per mode through the ANN indexes at the chosen setting.

    python benchmarks/search_latency.py                      # both parts (part 2 builds ~5 min on 2 cores)
    python benchmarks/search_latency.py --parts 2 --n 200000 # smaller synthetic set
    python benchmarks/search_latency.py --parts 2 --keep     # a rerun reuses (or resumes) the kept build
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from search_bench import SEED, fashion_queries, labels, percentiles, run_parts  # noqa: E402  (also puts src/ on sys.path)
from tuwen import Workspace  # noqa: E402
from tuwen.search import (  # noqa: E402
    IndexSettings,
    SearchEngine,
    build_index,
    clear_engines,
    create_indexes,
    engine_for,
)
from tuwen.search.build import ANN_INDEXES, has_ann_index, has_index, resolve_ann  # noqa: E402
from tuwen.search.common import read_meta, write_meta  # noqa: E402
from tuwen.store.workspace import table_names  # noqa: E402
from tuwen.util.vectors import l2  # noqa: E402
from workspaces import BENCH_WS


def queries_from(ws: Workspace, n: int) -> list[str]:
    """Shop-like queries, all distinct: the quality benchmark's attribute phrasings (English and Chinese)
    interleaved with three-word fragments of real titles."""
    attribute = [q["query"] for q in fashion_queries(labels(ws), n)]
    titles = ws.read("products", ["title"])["title"].sample(n, random_state=SEED).tolist()
    fragments = [" ".join(str(t).split()[1:4]) for t in titles]
    mixed = [q for pair in zip(attribute, fragments, strict=False) for q in pair]
    return list(dict.fromkeys(q for q in mixed if q.strip()))[:n]


def time_modes(engine: SearchEngine, queries: list[str], photos: list[str], modes: dict[str, dict],
               where: str | None = None) -> pd.DataFrame:
    """Run every mode on every query, modes rotated per query; cold caches each time (query vectors, filter masks,
    the rows' words: :meth:`SearchEngine.clear_caches`), the index's own data loaded as in a running server."""
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


ALL_FEATURES = {"lexical": 0.3, "semantic": 0.2, "crossmodal": 0.2, "coverage": 0.3}


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
             # every feature weighted, word coverage included (the index-time weights may leave it out)
             "hybrid (all features)": {"mode": "hybrid", "fusion": "weighted", "weights": ALL_FEATURES},
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
        out[sl] = l2(mixed)
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


SYNTHETIC = "search__synthetic"


def build_synthetic(args: argparse.Namespace, source: Workspace, folder: Path) -> tuple[Workspace, dict, np.ndarray,
                                                                                        np.ndarray]:
    """The synthetic workspace, built step by step: rows, then each index, each step its own transaction.

    A step that finished is kept (with its measured seconds, in the meta table), so an interrupted build
    resumes with the missing indexes; ``--rebuild`` starts from scratch.
    """
    t = time.perf_counter()
    table_data, text, xmodal = synthetic_table(source, args.n)
    print(f"\n## {args.n:,} synthetic products: generated in {time.perf_counter() - t:.0f} s", flush=True)
    if args.rebuild and folder.exists():
        shutil.rmtree(folder)
    ws = Workspace(folder)
    if not (ws.artifacts / "align").exists():
        shutil.copytree(source.artifacts / "align", ws.artifacts / "align")
    meta = read_meta(ws) or {}
    build: dict = dict(meta.get("build", {}))
    table = ws.table(SYNTHETIC) if ws.has_table(SYNTHETIC) else None
    if table is None or table.count_rows() != args.n:
        build = {}
        with ws.transaction("synthetic search rows") as writer:
            t = time.perf_counter()
            if SYNTHETIC in table_names(ws.db):
                ws.db.drop_table(SYNTHETIC)
            table = ws.db.create_table(SYNTHETIC, schema=table_data.schema)
            for lo in range(0, len(table_data), 100_000):
                table.add(table_data.slice(lo, 100_000))
            writer.versions[SYNTHETIC] = table.version
            build["write s"] = round(time.perf_counter() - t, 1)
    settings = ann_settings(args)
    steps = [("tokens", dict(use_ann=False, fts=True)), ("text_vec", dict(use_ann=True, fts=False)),
             ("xmodal_vec", dict(use_ann=True, fts=False))]
    missing = [(name, kwargs) for name, kwargs in steps
               if not (has_ann_index(table, name, settings.ann_index) if kwargs["use_ann"] else has_index(table, name))]
    for name, _ in missing:
        build.pop(f"index {name} s", None)
    print(f"indexes to build: {[name for name, _ in missing] or 'none'}; kept from an earlier run: "
          f"{ {k: v for k, v in build.items()} }", flush=True)
    for name, kwargs in missing:
        with ws.transaction(f"synthetic search index {name}") as writer:
            table = ws.db.open_table(SYNTHETIC)
            seconds = create_indexes(table, settings, progress=True, **kwargs)
            build.update({f"index {k} s": v for k, v in seconds.items()})
            _write_synthetic_meta(writer, args, build)
            writer.versions[SYNTHETIC] = table.version
    with ws.transaction("synthetic search meta") as writer:  # the query settings of this run
        _write_synthetic_meta(writer, args, build)
    vectors = {k: v for k, v in build.items() if k.endswith("_vec s")}
    print(f"build ({settings.ann_index}): " + ", ".join(f"{k} {v:.0f} s" for k, v in build.items())
          + f"; vector indexes {sum(vectors.values()):.0f} s, total {sum(build.values()):.0f} s", flush=True)
    return ws, build, text, xmodal


def ann_settings(args: argparse.Namespace) -> IndexSettings:
    """The index and query settings of this run: the defaults unless --index / --nprobes / --ef / --refine."""
    settings = IndexSettings(ann="on", ann_index=args.index or IndexSettings().ann_index)
    if args.nprobes:
        settings.nprobes = args.nprobes
    if args.ef:
        settings.ef = args.ef
    settings.refine_factor = args.refine
    return resolve_ann(settings)


def _write_synthetic_meta(writer, args: argparse.Namespace, build: dict) -> None:  # noqa: ANN001
    s = ann_settings(args)
    write_meta(writer, {"settings": {
        "text_encoder": "use_multilingual", "image_encoder": "mobilenet_v2", "table": SYNTHETIC, "ann_built": True,
        "signals": ["lexical", "semantic", "crossmodal"], "rows": args.n, "ann_index": s.ann_index, "ef": s.ef,
        "nprobes": s.nprobes, "refine_factor": s.refine_factor, "price_edges": [50.0, 150.0, 300.0],
        "build": build}})


def exact_top10(engine: SearchEngine, queries: list[str], text: np.ndarray, xmodal: np.ndarray) -> dict:
    """Brute-force top 10 of every query per signal (the ground truth for ANN recall), computed once."""
    truth: dict = {}
    vectors = {q: engine.query_vectors(q, ["semantic", "crossmodal"]) for q in queries}
    for signal, matrix in (("semantic", text), ("crossmodal", xmodal)):
        Q = np.stack([vectors[q][signal] for q in queries])
        best = np.full((len(Q), 10), -np.inf, np.float32)
        rows = np.zeros((len(Q), 10), np.int64)
        for lo in range(0, len(matrix), 200_000):  # chunked: the full score matrix would not fit
            scores = Q @ matrix[lo:lo + 200_000].T
            part = np.argpartition(-scores, 10, axis=1)[:, :10]
            cand = np.concatenate([best, np.take_along_axis(scores, part, 1)], 1)
            ids = np.concatenate([rows, part + lo], 1)
            keep = np.argsort(-cand, axis=1)[:, :10]
            best, rows = np.take_along_axis(cand, keep, 1), np.take_along_axis(ids, keep, 1)
        truth[signal] = {q: {f"s{r:07d}" for r in row} for q, row in zip(queries, rows, strict=True)}
    return {"vectors": vectors, **truth}


def ann_recall(engine: SearchEngine, truth: dict, queries: list[str]) -> dict[str, float]:
    recall = {}
    for signal, column in (("semantic", "text_vec"), ("crossmodal", "xmodal_vec")):
        hits = [len(set(engine.vector(column, truth["vectors"][q][signal], None, 10).keys) & truth[signal][q]) / 10
                for q in queries]
        recall[signal] = round(float(np.mean(hits)), 3)
    return recall


def part2(args: argparse.Namespace) -> dict:
    source = Workspace(args.work / "fashion", create=False)
    folder = args.work / f"synthetic-{args.n}"
    ws, build, text, xmodal = build_synthetic(args, source, folder)
    clear_engines()
    engine = engine_for(ws)
    queries = queries_from(source, args.queries)
    probe = queries[: args.recall_queries]
    t = time.perf_counter()
    truth = exact_top10(engine, probe, text, xmodal)
    print(f"exact top 10 of {len(probe)} queries by brute force: {time.perf_counter() - t:.0f} s", flush=True)
    del text, xmodal
    chosen = ann_settings(args)
    knob = "ef" if chosen.ann_index == "ivf_hnsw_sq" else "nprobes"
    sweep = []
    for value in (100, 200, 400, 800) if knob == "ef" else (25, 50, 75, 100, 150):
        for refine in (1, 2):
            setattr(engine.settings, knob, value)
            engine.settings.refine_factor = refine
            t = time.perf_counter()
            recall = ann_recall(engine, truth, probe)
            ms = (time.perf_counter() - t) * 1000 / (2 * len(probe))
            sweep.append({knob: value, "refine": refine, **{f"recall@10 {k}": v for k, v in recall.items()},
                          "mean ms per ANN query": round(ms, 1)})
            print(sweep[-1], flush=True)
    engine.settings = chosen
    modes = {"lexical": {"mode": "lexical"}, "semantic": {"mode": "semantic"}, "crossmodal": {"mode": "crossmodal"},
             "hybrid (rrf)": {"mode": "hybrid", "fusion": "rrf"},
             "hybrid (all features)": {"mode": "hybrid", "fusion": "weighted", "weights": ALL_FEATURES}}
    for warm in queries[:5]:
        for kwargs in modes.values():
            engine.search(warm, **kwargs)
    frame = time_modes(engine, queries, [], modes)
    title = (f"{args.n:,} synthetic products, ANN ({chosen.ann_index}, {knob}={getattr(chosen, knob)}, "
             f"refine={chosen.refine_factor})")
    out = {"build": build, "sweep": sweep, "latency": report(title, frame)}
    out["recall@10"] = ann_recall(engine, truth, probe)
    print(f"ANN Recall@10 vs exact at {knob}={getattr(chosen, knob)}, refine={chosen.refine_factor} "
          f"({len(probe)} queries):", out["recall@10"])
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=BENCH_WS / "search-bench",
                        help="where search_quality.py left its aligned + indexed fashion copy")
    parser.add_argument("--parts", default="1,2")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=200)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--index", choices=list(ANN_INDEXES), help="ANN index type (default: IndexSettings's)")
    parser.add_argument("--nprobes", type=int, default=0, help="IVF partitions per query (default: IndexSettings's)")
    parser.add_argument("--ef", type=int, default=0, help="IVF-HNSW-SQ breadth (default: IndexSettings's)")
    parser.add_argument("--refine", type=int, default=IndexSettings().refine_factor,
                        help="re-rank factor; 0: the index type's default")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic workspace")
    parser.add_argument("--rebuild", action="store_true", help="build the synthetic workspace from scratch even "
                        "when a kept one has the rows and indexes already")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    run_parts(args, {"1": part1, "2": part2})


if __name__ == "__main__":
    main()
