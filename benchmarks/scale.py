"""A real shop's size on one machine: generate, ingest, embed, index, search, train, recommend and forget.

Claim under test (issue 18, part 1): on the 2-core, 24 GB machine, 1M products + 30M purchases ingest in
under 20 min with peak RSS under 8 GB; text vectors for 1M titles in under 20 min; the search index builds
in under 10 min, hybrid search answers in under 50 ms (p50) with ANN Recall@10 ≥ 0.95; implicit ALS + the
candidate ranker train in under 30 min; batch recommendations run at ≥ 2,000 shoppers/s; forgetting one
shopper takes under 10 s.

    python benchmarks/scale.py --products 200000 --shoppers 200000 --purchases 2000000 --json
    python benchmarks/scale.py --products 1000000 --shoppers 1000000 --purchases 30000000 --skip embed
    python benchmarks/scale.py ... --only search,forget     # reuse the workspace of an earlier run

The catalog is the SYNTHETIC scale generator's (:mod:`tuwen.ingest.synthetic.scale`, seed 0), generated once
into ``--data`` and reused. Each stage runs in a child process, so each stage's peak RSS is its own
(``<stage>_rss_mb``; ``peak_rss_mb`` is the largest). Stages: generate, ingest, embed (text vectors of the
titles), photos (bring-your-own photo vectors: seeded random unit vectors, ``--photo-dim``), index, search,
recommend (ALS, then the candidate ranker with ``--label-weeks`` label weeks of at most ``--label-users``
shoppers each), batch (top 12 for every shopper with the ALS model), forget (one shopper). ``--skip`` and
``--only`` pick stages; every later stage reuses what the earlier ones left in the workspace. The machine's
load average is printed with the figures: these 2 cores are shared, and timings drift with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # see tuwen.cli.recommend._blas_single_thread
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

STAGES = ("generate", "ingest", "embed", "photos", "index", "search", "recommend", "batch", "forget")
DEFAULT_DATA = Path(os.environ.get("TUWEN_SCALE_DATA", "/tmp/tuwen-scale"))


def ray_figures(ws_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Single-process vs Ray on the same workspace and cores (issue 18 part 2).

    Text vectors of the titles of the first ``TUWEN_RAY_PRODUCTS`` products (20,000 by default), each run into a
    fresh scratch workspace holding only those products, so both start cold: ``single_embed_s`` in this process,
    ``ray_embed_s`` with Ray started on this machine (one actor per core; Ray's start is not counted, its
    workers' start is). Then top 12 for ``TUWEN_RAY_SHOPPERS`` shoppers (20,000) with the workspace's ALS model,
    when the recommend stage left one: ``single_batch_per_s`` (:func:`tuwen.recommend.batch.recommend_many`)
    and ``ray_batch_per_s``; a cross-fitted product model's training (:func:`ray_train_figures`). ``ray_equal``:
    the same ids and hashes, vectors within 1e-5, the same lists, the same cross-fitted scores.
    """
    import tempfile

    from tuwen.distributed.cluster import ray_session
    from tuwen.distributed.embed import embed_workspace_ray
    from tuwen.distributed.recommend import recommend_all_ray

    n_products = int(os.environ.get("TUWEN_RAY_PRODUCTS", "20000"))
    n_shoppers = int(os.environ.get("TUWEN_RAY_SHOPPERS", "20000"))
    out: dict[str, Any] = {"ray_products": n_products, "ray_cpus": os.cpu_count()}
    with ray_session(None) as ray, tempfile.TemporaryDirectory(prefix="tuwen-ray-") as scratch:
        from tuwen import Workspace  # LanceDB opens after Ray has started its processes
        from tuwen.encoders.cache import load_vectors, table_name
        from tuwen.recommend.batch import recommend_many
        from tuwen.recommend.store import load

        source = Workspace(ws_path, create=False)
        products = source.table("products").search().limit(n_products).to_pandas()
        runs = {}
        for name in ("single", "ray"):
            runs[name] = Workspace(Path(scratch) / name)
            with runs[name].transaction("products for the Ray benchmark") as writer:
                writer.upsert("products", products.drop(columns=["_distance"], errors="ignore"))
        start = time.perf_counter()
        runs["single"].embed(image_encoder=None, text_encoder=args.text_encoder, fields=("title",), progress=False)
        out["single_embed_s"] = round(time.perf_counter() - start, 1)
        start = time.perf_counter()
        embed_workspace_ray(runs["ray"], None, args.text_encoder, ("title",), progress=False)
        out["ray_embed_s"] = round(time.perf_counter() - start, 1)
        out["ray_embed_speedup"] = round(out["single_embed_s"] / out["ray_embed_s"], 2)
        vectors = {}
        for name, ws in runs.items():
            ids, matrix = load_vectors(ws, args.text_encoder, "title")
            order = np.argsort(ids)
            vectors[name] = (np.asarray(ids)[order], matrix[order])
        hashes = [ws.read(table_name(args.text_encoder, "title"), ["id", "hash"]).sort_values("id")
                  .reset_index(drop=True) for ws in runs.values()]
        same_ids = np.array_equal(vectors["single"][0], vectors["ray"][0]) and hashes[0].equals(hashes[1])
        diff = float(np.abs(vectors["single"][1] - vectors["ray"][1]).max()) if same_ids else float("inf")
        out["ray_max_abs_diff"] = diff
        equal = same_ids and diff <= 1e-5
        out.update(ray_train_figures(runs["single"]))
        equal = equal and out["ray_train_equal"]
        try:
            model = load(source, "als")
        except Exception:  # noqa: BLE001 - the recommend stage may have been skipped
            model = None
        if model is not None and model.histories is not None:
            users = list(model.histories.users)[:n_shoppers]
            start = time.perf_counter()
            single = [items for _, items in recommend_many(model, users, k=12, progress=False)]
            out["single_batch_per_s"] = round(len(users) / (time.perf_counter() - start))
            start = time.perf_counter()
            batch = recommend_all_ray(source, k=12, model="als", users=users, progress=False)
            out["ray_batch_per_s"] = round(len(users) / (time.perf_counter() - start))
            equal = equal and [list(items) for items in batch["items"]] == single
        out["ray_equal"] = bool(equal)
        out["ray_nodes"] = len([node for node in ray.nodes() if node["Alive"]])
    return out


def ray_train_figures(ws: Any) -> dict[str, Any]:
    """A cross-fitted product model (``--quality best``: 5 folds, text vectors of the titles, category target) on
    the first ``TUWEN_RAY_TRAIN`` products (2,000), its jobs in loky's pool on this machine (``single_train_s``,
    one process per core) and as Ray tasks (``ray_train_s``, the pools' start included); ``ray_train_equal``:
    the same cross-fitted scores to the last digit."""
    from tuwen.distributed.train import train_ray
    from tuwen.predict.registry import train_model
    from tuwen.predict.training.config import TrainConfig

    options = {"modalities": ("text",), "save": False, "limit": int(os.environ.get("TUWEN_RAY_TRAIN", "2000")),
               "config": TrainConfig(quality="best", ensemble=1, progress=False)}
    start = time.perf_counter()
    single = train_model(ws, "classify", "category", **options)
    out: dict[str, Any] = {"ray_train_rows": options["limit"], "single_train_s": round(time.perf_counter() - start, 1)}
    start = time.perf_counter()
    on_ray = train_ray(ws, "classify", "category", **options)
    out["ray_train_s"] = round(time.perf_counter() - start, 1)
    out["ray_train_speedup"] = round(out["single_train_s"] / out["ray_train_s"], 2)
    out["ray_train_equal"] = single.info["metrics"] == on_ray.info["metrics"]
    return out


# ------------------------------------------------------------------------------------------------ stages


def _shop(args: argparse.Namespace, create: bool = False) -> Any:
    from tuwen import Workspace

    return Workspace(args.workspace, create=create)


def stage_generate(args: argparse.Namespace) -> dict[str, Any]:
    from tuwen.ingest.synthetic.scale import generate_scale_catalog
    from tuwen.util.progress import progress_bar

    start = time.perf_counter()
    with progress_bar(args.products + args.purchases, "generate", True) as advance:
        seen = {"products": 0, "purchases": 0}

        def report(stage: str, done: int, total: int) -> None:
            advance(done - seen[stage])
            seen[stage] = done

        generate_scale_catalog(args.catalog, args.products, args.shoppers, args.purchases, seed=args.seed,
                               progress=report)
    return {"generate_s": round(time.perf_counter() - start, 1)}


def stage_ingest(args: argparse.Namespace) -> dict[str, Any]:
    if Path(args.workspace).exists():
        shutil.rmtree(args.workspace)
    shop = _shop(args, create=True)
    start = time.perf_counter()
    batch = shop.ingest("synthetic", args.catalog)
    seconds = time.perf_counter() - start
    summary = batch.summary()
    return {"ingest_s": round(seconds, 1), "ingested_products": summary["products"],
            "ingested_purchases": summary["interactions"], "ingest_rejects": summary["rejects"],
            "ingest_rows_per_s": round((summary["products"] + summary["interactions"]) / seconds)}


def stage_embed(args: argparse.Namespace) -> dict[str, Any]:
    shop = _shop(args)
    start = time.perf_counter()
    shop.embed(image_encoder=None, text_encoder=args.text_encoder, fields=("title",))
    seconds = time.perf_counter() - start
    return {"embed_s": round(seconds, 1), "embed_titles_per_s": round(args.products / seconds),
            "text_encoder": args.text_encoder}


def stage_photos(args: argparse.Namespace) -> dict[str, Any]:
    """Bring-your-own photo vectors: a Parquet file of seeded random unit vectors, ingested like a user's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tuwen.encoders.byo import ingest_vectors

    shop = _shop(args)
    ids = shop.read("products", ["id"])["id"].tolist()
    path = Path(args.data) / f"photo-vectors-{len(ids)}-{args.photo_dim}.parquet"
    if not path.exists():
        rng = np.random.default_rng(args.seed)
        writer = None
        for lo in range(0, len(ids), 100_000):
            vectors = rng.standard_normal((len(ids[lo:lo + 100_000]), args.photo_dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            table = pa.table({"id": ids[lo:lo + 100_000], "vector": pa.FixedSizeListArray.from_arrays(
                pa.array(vectors.ravel()), args.photo_dim)})
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
        if writer:
            writer.close()
    start = time.perf_counter()
    report = ingest_vectors(shop, path, name="byo_photo", field="image")
    out = {"photos_s": round(time.perf_counter() - start, 1), "photo_vectors": report["written"]}
    if args.byo_text_dim:
        text_path = _byo_text_vectors(shop, args)
        start = time.perf_counter()
        report = ingest_vectors(shop, text_path, name=args.text_encoder, field="title")
        out.update({"byo_text_s": round(time.perf_counter() - start, 1), "byo_text_vectors": report["written"],
                    "byo_text_note": f"title vectors stored as {args.text_encoder}'s: hashed words, not the model"})
    return out


def _byo_text_vectors(shop: Any, args: argparse.Namespace) -> Path:
    """Title vectors that stand in for a text encoder's at 1M (USE needs ~1 h here): the sum of one seeded random
    vector per word of the title plus a little per-product noise, unit length. Titles sharing words are near each
    other, as with a real encoder, so an ANN index meets clustered data rather than uniform noise (the easy case
    for exact search, the hard one for IVF)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dim = args.byo_text_dim
    frame = shop.read("products", ["id", "title"])
    path = Path(args.data) / f"text-vectors-{len(frame)}-{dim}-s{args.seed}.parquet"
    if path.exists():
        return path
    words = frame["title"].fillna("").str.lower().str.split()
    vocabulary = {w: i for i, w in enumerate(sorted({w for title in words for w in title}))}
    rng = np.random.default_rng(args.seed + 1)
    basis = rng.standard_normal((len(vocabulary) + 1, dim)).astype(np.float32)
    writer = None
    for lo in range(0, len(frame), 100_000):
        part = words.iloc[lo:lo + 100_000]
        vectors = 0.35 * rng.standard_normal((len(part), dim)).astype(np.float32)
        for row, title in enumerate(part):
            vectors[row] += basis[[vocabulary[w] for w in title] or [len(vocabulary)]].sum(axis=0) / np.sqrt(
                max(1, len(title)))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        table = pa.table({"id": frame["id"].iloc[lo:lo + 100_000].tolist(),
                          "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)})
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    if writer:
        writer.close()
    return path


def stage_index(args: argparse.Namespace) -> dict[str, Any]:
    from tuwen.search import build_index
    from tuwen.search.common import IndexSettings

    shop = _shop(args)
    settings = IndexSettings(text_encoder=args.text_encoder, fields=("title", "description"),
                             text_weights={"title": 1.0})
    if _has_vectors(shop, "byo_photo"):
        settings.image_encoder = "byo_photo"
    start = time.perf_counter()
    report = build_index(shop, settings, learn=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    again = build_index(shop, settings, learn=False)  # nothing changed: what a nightly re-index costs
    return {"index_s": round(first, 1), "reindex_unchanged_s": round(time.perf_counter() - start, 1),
            "index_rows": report.get("rows"), "index_ann": report.get("ann"), "reindex_written": again.get("written")}


def _has_vectors(shop: Any, encoder: str) -> bool:
    from tuwen.encoders.cache import vector_counts

    return any(name == encoder for name, _ in vector_counts(shop))


def stage_search(args: argparse.Namespace) -> dict[str, Any]:
    """Hybrid queries (two title words of a random product, k=10) timed one at a time, twice in this process:

    * ``search_cold_*``: right after the first query (which loads the encoder and opens the tables), the
      first queries of a process that did not prewarm: each probes IVF partitions LanceDB has not cached yet;
    * ``search_*`` (the claim): after :meth:`~tuwen.search.SearchEngine.prewarm` (what a server runs as it
      starts; ``search_prewarm_s``), on another set of queries.

    Each pass gives p50/p95 wall time, p50/p95 of the CPU time per query (all threads of this process: LanceDB's
    included) and p50/p95 of every stage the engine times (``SearchResult.timings``; BM25 runs beside the query
    encoding and the vector search, so the stages overlap), with the load average over the pass: on this
    shared machine wall time follows the load, CPU time much less.
    """
    from tuwen.search import engine_for, search
    from tuwen.search.common import read_meta

    shop = _shop(args)
    rng = np.random.default_rng(args.seed)
    titles = shop.read("products", ["title"])["title"].tolist()

    def pick(n: int) -> list[str]:
        return [" ".join(titles[i].split()[1:3]) or titles[i] for i in rng.choice(len(titles), n)]

    cold, warm = pick(args.queries), pick(args.queries)
    start = time.perf_counter()
    search(shop, cold[0], k=10)  # loads the encoder and opens the tables: not a query's cost
    out: dict[str, Any] = {"search_first_query_s": round(time.perf_counter() - start, 1)}
    out.update(_time_queries(shop, search, cold, "search_cold"))
    start = time.perf_counter()
    parts = engine_for(shop).prewarm()
    out["search_prewarm_s"] = round(time.perf_counter() - start, 1)
    out["search_prewarm_parts_s"] = {k: round(v, 1) for k, v in parts.items()}
    out.update(_time_queries(shop, search, warm, "search"))
    out.update(_ann_recall(shop, read_meta(shop) or {}, rng, args.queries, engine_for(shop), warm))
    return out


def _time_queries(shop: Any, search: Any, queries: list[str], prefix: str) -> dict[str, Any]:
    """Wall and CPU time per query and the engine's own per-stage timings, as p50/p95 (milliseconds)."""
    walls, cpus, stages = [], [], {}
    load = os.getloadavg()[0]
    for query in queries:
        start, cpu = time.perf_counter(), time.process_time()
        result = search(shop, query, k=10)
        walls.append((time.perf_counter() - start) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
        for stage, ms in result.timings.items():
            stages.setdefault(stage, []).append(ms)
    return {f"{prefix}_p50_ms": round(float(np.median(walls)), 1),
            f"{prefix}_p95_ms": round(float(np.percentile(walls, 95)), 1),
            f"{prefix}_cpu_ms_p50": round(float(np.median(cpus)), 1),
            f"{prefix}_cpu_ms_p95": round(float(np.percentile(cpus, 95)), 1), f"{prefix}_queries": len(queries),
            f"{prefix}_stages_p50_ms": {k: round(float(np.median(v)), 1) for k, v in stages.items()},
            f"{prefix}_stages_p95_ms": {k: round(float(np.percentile(v, 95)), 1) for k, v in stages.items()},
            f"{prefix}_load_avg": [round(load, 1), round(os.getloadavg()[0], 1)]}


def _ann_recall(shop: Any, meta: dict[str, Any], rng: np.random.Generator, n: int, engine: Any = None,
                queries: list[str] | None = None) -> dict[str, Any]:
    """Recall@10 of the ANN index against exact search, asked as the search engine asks (:mod:`tuwen.search.engine`):
    ``ann_recall_at_10`` for product text vectors used as queries, ``ann_recall_at_10_queries`` for the timed query
    texts' own vectors (``queries``, encoded by ``engine``), which are no catalog item."""
    if not meta.get("ann_built"):
        return {"ann_recall_at_10": None, "ann_note": "below the ANN threshold: exact search"}
    from tuwen.store.workspace import sql_list

    table = shop.db.open_table(meta["table"])
    if "text_vec" not in table.schema.names:
        return {"ann_recall_at_10": None, "ann_note": "no text vectors (embed skipped)"}
    ids = shop.read("products", ["id"])["id"].to_numpy()
    picks = ids[rng.choice(len(ids), size=min(n, len(ids)), replace=False)]
    sample = table.search().where(f"id IN ({sql_list(picks)})").select(["text_vec"]).limit(len(picks)) \
        .to_arrow().column("text_vec").to_pylist()
    out = {"ann_recall_at_10": _recall(table, meta, sample), "ann_nprobes": meta.get("nprobes", 75)}
    if engine is not None and queries:
        vectors = [engine.query_vectors(q, ["semantic"])["semantic"] for q in queries]
        out["ann_recall_at_10_queries"] = _recall(table, meta, vectors)
    return out


def _recall(table: Any, meta: dict[str, Any], vectors: list[Any]) -> float:
    hits = []
    for vector in vectors:
        query = table.search(vector, vector_column_name="text_vec").metric("cosine").limit(10)
        exact = set(query.bypass_vector_index().select(["id"]).to_arrow().column("id").to_pylist())
        ann = table.search(vector, vector_column_name="text_vec").metric("cosine").limit(10) \
            .nprobes(meta.get("nprobes", 75)).ef(max(meta.get("ef", 400), 10 * (meta.get("refine_factor") or 1)))
        if (meta.get("refine_factor") or 1) > 1:  # as the search engine asks (tuwen.search.engine)
            ann = ann.refine_factor(meta["refine_factor"])
        found = set(ann.select(["id"]).to_arrow().column("id").to_pylist())
        hits.append(len(found & exact) / max(1, len(exact)))
    return round(float(np.mean(hits)), 4)


def stage_recommend(args: argparse.Namespace) -> dict[str, Any]:
    from tuwen.recommend.base import content_sources
    from tuwen.recommend.store import train

    shop = _shop(args)
    start = time.perf_counter()
    train(shop, "als", default=True)
    als = time.perf_counter() - start
    out: dict[str, Any] = {"als_train_s": round(als, 1)}
    params: dict[str, Any] = {"label_weeks": args.label_weeks, "label_users": args.label_users}
    if not content_sources(shop):  # the id-only ranker (its content features off), rather than no ranker
        params["content_features"] = False
        out["ranker_note"] = "no product vectors (embed skipped): id-only ranker"
    start = time.perf_counter()
    train(shop, "ranker", params, default=False)
    ranker = time.perf_counter() - start
    out.update({"ranker_train_s": round(ranker, 1), "recommend_train_s": round(als + ranker, 1),
                "ranker_label_weeks": args.label_weeks, "ranker_label_users": args.label_users})
    return out


def stage_batch(args: argparse.Namespace) -> dict[str, Any]:
    from tuwen.recommend.batch import recommend_many
    from tuwen.recommend.store import load

    shop = _shop(args)
    model = load(shop, "als")
    users = list(model.histories.users)[: args.batch_users or None]
    start = time.perf_counter()
    served = sum(1 for _ in recommend_many(model, users, k=12))
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"batch_recommend_per_s": round(served / seconds), "batch_shoppers": served,
                           "batch_model": "als"}
    try:
        ranker = load(shop, "ranker")
    except Exception:  # noqa: BLE001 - the ranker stage may have been skipped
        return out
    sample = users[:200]
    start = time.perf_counter()
    sum(1 for _ in recommend_many(ranker, sample, k=12, progress=False))
    out["ranker_recommend_per_s"] = round(len(sample) / (time.perf_counter() - start), 1)
    return out


def stage_forget(args: argparse.Namespace) -> dict[str, Any]:
    from tuwen.recommend.profiles import forget

    shop = _shop(args)
    user = shop.table("interactions").search().select(["user_id"]).limit(1).to_arrow().column("user_id")[0].as_py()
    start = time.perf_counter()
    report = forget(shop, user)
    return {"forget_s": round(time.perf_counter() - start, 1), "forget_rows": sum(report["rows_removed"].values())}


# ------------------------------------------------------------------------------------------------ driver


def _run_stage(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One stage in a child process: its own peak RSS, and a crash that names the stage."""
    out = Path(args.data) / f".stage-{name}-{os.getpid()}.json"
    command = [sys.executable, __file__, "--stage", name, "--stage-out", str(out), *sys.argv[1:]]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    _, status, usage = os.wait4(process.pid, 0)
    rss = round(usage.ru_maxrss / 1024)
    if os.waitstatus_to_exitcode(status) != 0 or not out.exists():
        raise SystemExit(f"stage {name} failed (exit {os.waitstatus_to_exitcode(status)})")
    figures = json.loads(out.read_text())
    out.unlink()
    # CPU seconds beside the wall-clock ones: on a shared machine the stage may get a fraction of a core
    cpu = round(usage.ru_utime + usage.ru_stime, 1)
    return {**figures, f"{name}_rss_mb": rss, f"{name}_cpu_s": cpu}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, required=True)
    parser.add_argument("--shoppers", type=int, required=True)
    parser.add_argument("--purchases", type=int, required=True)
    parser.add_argument("--ray", action="store_true", help="also single-process vs Ray (issue 18 part 2)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="where catalogs and workspaces live")
    parser.add_argument("--workspace", type=Path, help="default: DATA/ws-<products>-<shoppers>-<purchases>")
    parser.add_argument("--skip", default="", help=f"comma-separated stages to skip ({', '.join(STAGES)})")
    parser.add_argument("--only", default="", help="comma-separated stages to run (the rest reuse the workspace)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text-encoder", default="use_multilingual")
    parser.add_argument("--photo-dim", type=int, default=0, help="bring-your-own photo vectors of this size (0: none)")
    parser.add_argument("--byo-text-dim", type=int, default=0,
                        help="photos stage: also bring-your-own title vectors of this size, stored as the text "
                             "encoder's (hashed words; stands in for `embed` at 1M). 0: none")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--label-weeks", type=int, default=2)
    parser.add_argument("--label-users", type=int, default=20_000)
    parser.add_argument("--batch-users", type=int, default=0, help="shoppers to recommend for (0: all)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--stage-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    name = f"{args.products}-{args.shoppers}-{args.purchases}-s{args.seed}"
    args.catalog = Path(args.data) / f"catalog-{name}"
    args.workspace = args.workspace or Path(args.data) / f"ws-{name}"
    return args


def _chosen(args: argparse.Namespace) -> list[str]:
    only = [s for s in args.only.split(",") if s]
    skip = {s for s in args.skip.split(",") if s}
    unknown = (set(only) | skip) - set(STAGES)
    if unknown:
        raise SystemExit(f"unknown stage(s) {', '.join(sorted(unknown))}; stages: {', '.join(STAGES)}")
    chosen = [s for s in STAGES if (not only or s in only) and s not in skip]
    if not args.photo_dim and "photos" in chosen and not only:
        chosen.remove("photos")
    return chosen


def main(argv: list[str]) -> None:
    args = _parse(argv)
    if args.stage:
        figures = globals()[f"stage_{args.stage}"](args)
        Path(args.stage_out).write_text(json.dumps(figures))
        return
    Path(args.data).mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"products": args.products, "shoppers": args.shoppers, "purchases": args.purchases,
                               "seed": args.seed, "load_avg_start": round(os.getloadavg()[0], 1),
                               "cpus": os.cpu_count()}
    for name in _chosen(args):
        print(f"[{time.strftime('%H:%M:%S')}] scale · {name}", file=sys.stderr, flush=True)
        figures = _run_stage(name, args)
        print(f"[{time.strftime('%H:%M:%S')}] scale · {name}: {json.dumps(figures)}", file=sys.stderr, flush=True)
        results.update(figures)
    if args.ray:
        results.update(ray_figures(Path(args.workspace), args))
    results["peak_rss_mb"] = max([v for k, v in results.items() if k.endswith("_rss_mb")] or
                                 [round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)])
    results["load_avg_end"] = round(os.getloadavg()[0], 1)
    if args.json:
        print(json.dumps(results))
        return
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main(sys.argv[1:])
