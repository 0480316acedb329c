"""How relevant tuwen's search is, per mode, on real catalogs; and how well its text↔photo alignment retrieves.

Part 1 — attribute queries built from the catalogs' own labels (English and Chinese phrasings):

* H&M: "<colour> <product type>" ("black dress", 黑色连衣裙); relevant = both ``colour_group_name`` and
  ``product_type_name`` match. Two indexes: the full one (name + description) and *names only*
  (``prod_name`` is the only text: BM25, semantic vectors and the alignment all see just the name).
* fashion: "<colour> <article type> for <gender>" ("black casual shoes for men", 男士黑色休闲鞋); relevant =
  ``baseColour``, ``articleType`` and ``gender`` all match.

Combinations with at least 5 products are sampled (seed 0, up to --queries per catalog). The queries are
split in two halves by the seed: the *learnt* hybrid weights are fitted on half A (``learn_weights``) and
every mode is reported on half B, so the learnt fusion is judged on queries it never saw. Modes: lexical
(BM25), semantic (multilingual USE), crossmodal (query text → product photos through ``tuwen align``),
image (the photo of one relevant product, held out of the results and of the relevant set), hybrid by RRF,
hybrid with the weights learnt at ``tuwen index`` time (the default users get: learnt on the catalog's own
category and category + attribute pseudo-queries, in English and in Chinese; on H&M some coincide with benchmark
queries' label combinations), the same recipe with every pseudo-query whose products are a benchmark query's
left out (what the default owes to those), and hybrid with weights
learnt on half A. Chinese queries on these English catalogs go through the CC-CEDICT dictionary
(``tuwen.search.querywords``) in every mode. Metrics: nDCG@10, R@10 (capped: relevant found in the top 10 /
min(10, #relevant), since many queries have hundreds of relevant products), MRR. Under each table, per language:
each fused mode's nDCG@10 minus the best single text mode's, with a 95% paired bootstrap interval, on half B
and (for the default, which learnt from none of the queries) on every query; then, over ``--splits`` random
halvings (split 0 = the halves above), the mean / min / max of each mode on half B and on how many splits
each fused mode fell below its best single signal (``--queries 1000`` takes every combination: about twice the
queries, a narrower interval).

Part 2 — held-out text→photo retrieval on fashion, 80/20 random split (seed 0; the gallery is the 2,021
test photos; a query's only correct photo is its own product's), every method trained on the same 8,085
training pairs of frozen MobileNetV2 + multilingual USE features: random, ridge (text → image map),
regularised CCA (512 dims), the issue's reference InfoNCE (2-layer heads, fixed temperature, 30 epochs),
and tuwen's alignment with MobileNetV2 features alone and with the colour histogram added, each with and
without the CSLS hubness correction. Plus precision@10 of photo-only retrieval for attribute queries
("Black Casual Shoes for Men") over the same test gallery, against text-to-text matching of the titles.

    python benchmarks/search_quality.py                       # reads $TUWEN_BENCH_WS/{fashion,hm}
    python benchmarks/search_quality.py --parts 2 --quick     # alignment part only, fewer epochs
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from search_bench import BUILDERS, SEED, labels, run_parts  # noqa: E402  (also puts src/ on sys.path)
from tuwen import Workspace  # noqa: E402
from tuwen.metrics.ranking import capped_recall_at, mrr, ndcg_at  # noqa: E402
from tuwen.search import (  # noqa: E402
    IndexSettings,
    SearchEngine,
    build_index,
    category_queries,
    clear_engines,
    engine_for,
    learn_weights,
)
from tuwen.search.align import AlignConfig, Aligner, align_workspace, ensure_image_features, image_features  # noqa: E402
from tuwen.util.vectors import l2  # noqa: E402
from workspaces import BENCH_WS

# ------------------------------------------------------------------------------------------- part 1


def prepare(args: argparse.Namespace, source: str, folder: str, fields: tuple[str, ...],
            text_weights: dict[str, float], align_fields: tuple[str, ...], also: tuple[str, ...],
            log: dict) -> Workspace:
    """A private copy of a ready workspace with an alignment and a search index (reused when present)."""
    target = args.work / folder
    if not (target / "tuwen.json").exists():
        shutil.copytree(args.data / source, target)
    ws = Workspace(target, create=False)
    if not (ws.artifacts / "align" / "align.json").exists():
        extra = []
        for other in also:
            if not (args.work / other / "tuwen.json").exists():
                shutil.copytree(args.data / other, args.work / other)
            extra.append(args.work / other)
        t = time.perf_counter()
        report = align_workspace(ws, fields=align_fields, config=AlignConfig(epochs=args.epochs), progress=False,
                                 also=extra)
        log["align_seconds"] = round(time.perf_counter() - t, 1)
        log["align"] = report
    settings = IndexSettings(fields=fields, text_weights=text_weights)
    t = time.perf_counter()
    log["index"] = build_index(ws, settings, progress=False, learn=True)
    log["index_seconds"] = round(time.perf_counter() - t, 1)
    return ws


def evaluate(ws: Workspace, queries: list[dict], splits: int = 1, k: int = 10) -> pd.DataFrame:
    """Every mode on every query; the learnt-on-A weights are fitted per split (not saved into the workspace).

    Split 0 is the benchmark's halves (``half``); split s > 0 re-draws the halves of the label combinations with
    seed s. Modes that learn nothing from the queries (the single signals, RRF, the index-time default) are run
    once per query; "learnt on half A" is run on each split's half B, learnt on its half A. Rows carry ``split``
    (-1 for the modes run once) and ``half``.
    """
    clear_engines()
    engine: SearchEngine = engine_for(ws)
    index_weights = engine.weights
    # the index-time recipe again, without any pseudo-query whose products are a benchmark query's: shows that the
    # default owes nothing to having seen the benchmark's label combinations among its pseudo-queries
    asked = {frozenset(q["relevant"]) for q in queries}
    pseudo = [(text, ids) for text, ids in zip(*category_queries(ws), strict=True) if frozenset(ids) not in asked]
    recipe = learn_weights(ws, [t for t, _ in pseudo], [ids for _, ids in pseudo], save=False)
    products = ws.read("products", ["id", "image_paths"]).set_index("id")["image_paths"]
    combo = -1
    for q in queries:  # make_queries puts a combination's Chinese phrasing right after its English one
        combo += q["lang"] == "en"
        q["combo"] = combo
    halves = {0: {q["combo"]: q["half"] for q in queries}}
    for s in range(1, splits):
        order = np.random.default_rng(s).permutation(combo + 1)
        halves[s] = {int(c): "A" if r % 2 == 0 else "B" for r, c in enumerate(order)}
    rows = []

    def record(q: dict, n: int, mode: str, ids: list, split: int, half: str) -> None:
        relevant = set(q["relevant"])
        if mode.startswith("image"):
            ids = [i for i in ids if i != q["example"]][:k]
            relevant.discard(q["example"])
        rows.append({"query": n, "combo": q["combo"], "lang": q["lang"], "mode": mode, "split": split,
                     "half": half, "ndcg@10": ndcg_at(ids, relevant, k), "R@10": capped_recall_at(ids, relevant, k),
                     "MRR": mrr(ids, relevant)})

    for n, q in enumerate(queries):
        runs = {
            "lexical": lambda q=q: engine.search(q["query"], mode="lexical", k=k),
            "semantic": lambda q=q: engine.search(q["query"], mode="semantic", k=k),
            "crossmodal": lambda q=q: engine.search(q["query"], mode="crossmodal", k=k),
            "image (query photo)": lambda q=q: engine.search(image=products[q["example"]][0], mode="image", k=k + 1),
            "hybrid rrf": lambda q=q: engine.search(q["query"], mode="hybrid", fusion="rrf", k=k),
            DEFAULT: lambda q=q: engine.search(q["query"], mode="hybrid", fusion="weighted", k=k,
                                               weights=index_weights),
            RECIPE: lambda q=q: engine.search(q["query"], mode="hybrid", fusion="weighted", k=k, weights=recipe),
        }
        for mode, run in runs.items():
            if mode in (DEFAULT, RECIPE) and not index_weights:
                continue
            record(q, n, mode, run().ids, -1, q["half"])
    learnt_first: dict = {}
    for s, half in halves.items():
        train = [q for q in queries if half[q["combo"]] == "A"]
        learnt = learn_weights(ws, [q["query"] for q in train], [q["relevant"] for q in train], save=False)
        if s == 0:
            learnt_first = learnt
        for n, q in enumerate(queries):
            if half[q["combo"]] == "B":
                record(q, n, LEARNT, engine.search(q["query"], mode="hybrid", fusion="weighted", k=k,
                                                   weights=learnt).ids, s, "B")
    frame = pd.DataFrame(rows)
    frame.attrs["halves"] = halves
    frame.attrs["learnt"] = {k: v for k, v in learnt_first.items()
                             if k.startswith(("weights", "scale", "held_out", "soft"))}
    frame.attrs["index_weights"] = {k: v for k, v in (index_weights or {}).items()
                                    if k.startswith(("weights", "scale", "soft", "queries"))}
    frame.attrs["recipe_queries"] = len(pseudo)
    return frame


DEFAULT = "hybrid weighted (index-time, default)"
RECIPE = "hybrid weighted (index-time recipe, benchmark combinations left out)"
LEARNT = "hybrid weighted (learnt on half A)"


def split_view(frame: pd.DataFrame, split: int) -> pd.DataFrame:
    """The rows of one split's half B: the modes run once restricted to that half, and that split's learnt mode."""
    half = frame.attrs["halves"][split]
    once = frame[(frame["split"] == -1) & (frame["combo"].map(half) == "B")]
    return pd.concat([once, frame[frame["split"] == split]])


def summarise(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    view = split_view(frame, 0)
    order = list(dict.fromkeys(view["mode"]))
    table = view.groupby(["mode", "lang"])[["ndcg@10", "R@10", "MRR"]].mean().unstack("lang")
    table.columns = [f"{metric} {lang}" for metric, lang in table.columns]
    table = table.reindex(order)
    counts = view[view["mode"] == order[0]].groupby("lang").size()
    print(f"\n## {name}  (split 0, half-B queries: {dict(counts)}; weights learnt on A: {frame.attrs['learnt']}; "
          f"index-time weights: {frame.attrs['index_weights']})")
    print(table.round(3).to_string())
    for lang in ("en", "zh"):  # the Chinese rows per mode, on their own
        part = view[view["lang"] == lang].groupby("mode")[["ndcg@10", "R@10", "MRR"]].mean().reindex(order)
        print(f"{lang}: " + "; ".join(f"{m} {v:.3f}" for m, v in part["ndcg@10"].items() if v == v))
    print(margin(view, LEARNT))
    print(margin(view, DEFAULT))
    everything = frame[frame["split"] == -1]
    print(margin(everything, DEFAULT, label="every query (the default learnt from none of them)"))
    print(margin(everything, RECIPE, label="every query"))
    splits = sorted(frame.attrs["halves"])
    if len(splits) > 1:
        print(split_summary(frame, splits))
    return table


SINGLE_TEXT_MODES = ("lexical", "semantic", "crossmodal")


def margin(frame: pd.DataFrame, mode: str = LEARNT, samples: int = 2000, label: str = "half B") -> str:
    """nDCG@10 of ``mode`` minus the best single text mode (best on these very queries), per language, with
    a 95% paired bootstrap interval over the queries: ~100 queries per language leave a difference of ±0.01
    inside the noise, and the bar "hybrid beats the best single mode" should be read with that in mind."""
    rng = np.random.default_rng(SEED)
    parts = []
    for lang, group in frame.groupby("lang"):
        wide = group.pivot(index="query", columns="mode", values="ndcg@10")
        if mode not in wide:
            continue
        best = max(SINGLE_TEXT_MODES, key=lambda m: wide[m].mean())
        diff = (wide[mode] - wide[best]).to_numpy()
        boot = rng.choice(diff, (samples, len(diff))).mean(axis=1)
        low, high = np.percentile(boot, [2.5, 97.5])
        parts.append(f"{lang}: {wide[mode].mean():.3f} − {wide[best].mean():.3f} = {diff.mean():+.3f} vs {best} "
                     f"(95% CI {low:+.3f} … {high:+.3f}, {len(diff)} queries)")
    return f"{mode} − best single mode, nDCG@10, {label}: " + "; ".join(parts)


def split_summary(frame: pd.DataFrame, splits: list[int]) -> str:
    """Per language, over the splits' halves B: mean (min … max) nDCG@10 of the single signals, the default and
    the learnt-on-A weights, and how often each fused mode is below its best single signal on that half."""
    lines = [f"over {len(splits)} splits (halves B; mean, min … max):"]
    for lang in ("en", "zh"):
        per: dict[str, list[float]] = {}
        below: dict[str, int] = {DEFAULT: 0, LEARNT: 0}
        worst: dict[str, float] = {DEFAULT: np.inf, LEARNT: np.inf}
        for s in splits:
            view = split_view(frame, s)
            means = view[view["lang"] == lang].groupby("mode")["ndcg@10"].mean()
            for mode, value in means.items():
                per.setdefault(mode, []).append(float(value))
            best = max(means.get(m, 0.0) for m in SINGLE_TEXT_MODES)
            for mode in below:
                below[mode] += bool(mode in means and means[mode] < best - 1e-9)
                worst[mode] = min(worst[mode], float(means.get(mode, np.inf)) - best)
        cells = [f"{m} {np.mean(v):.3f} ({min(v):.3f} … {max(v):.3f})" for m, v in per.items()
                 if m in (*SINGLE_TEXT_MODES, DEFAULT, LEARNT)]
        lines.append(f"  {lang}: " + "; ".join(cells) + f"; below best single on "
                     f"{below[DEFAULT]}/{len(splits)} (default, worst {worst[DEFAULT]:+.3f}), "
                     f"{below[LEARNT]}/{len(splits)} (learnt on A, worst {worst[LEARNT]:+.3f})")
    return "\n".join(lines)


FULL = (("title", "description"), {"title": 1.0, "description": 0.5}, ("title", "description"))
NAMES = (("title",), {"title": 1.0}, ("title",))
PLANS = {  # key: (label, source, folder, (fields, text weights, align fields), align also with, queries)
    "hm": ("H&M, name + description; alignment on H&M + fashion pairs", "hm", "hm-x", FULL, ("fashion",),
           "hm"),
    "hm-names": ("H&M, prod_name is the only text; alignment on H&M names + fashion pairs", "hm", "hm-names-x",
                 NAMES, ("fashion",), "hm"),
    "fashion": ("fashion, title; alignment on fashion alone", "fashion", "fashion", FULL, (), "fashion"),
    "hm-alone": ("H&M, name + description; alignment on H&M alone", "hm", "hm", FULL, (), "hm"),
    "hm-names-alone": ("H&M, prod_name is the only text; alignment on H&M names alone", "hm", "hm-names", NAMES, (),
                       "hm"),
}
def part1(args: argparse.Namespace) -> dict:
    results = {}
    for key in args.only or ["hm", "hm-names", "fashion"]:
        name, source, folder, (fields, weights, align_fields), also, queries_of = PLANS[key]
        log: dict = {}
        t = time.perf_counter()
        ws = prepare(args, source, folder, fields, weights, align_fields, also, log)
        queries = BUILDERS[queries_of](labels(ws), args.queries)
        frame = evaluate(ws, queries, args.splits)
        table = summarise(name, frame)
        print(f"(prepare: {json.dumps({k: v for k, v in log.items() if k != 'index'}, default=str)}; "
              f"index: {log['index'].get('seconds')} s; evaluation {time.perf_counter() - t:.0f} s)", flush=True)
        results[name] = {"table": table.round(4).to_dict(), "log": log, "learnt": frame.attrs["learnt"]}
    return results


# ------------------------------------------------------------------------------------------- part 2


def _std(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return ((x - ref.mean(0)) / (ref.std(0) + 1e-6)).astype(np.float32)


def reference_infonce(t_tr: np.ndarray, i_tr: np.ndarray, epochs: int = 30, seed: int = SEED):  # noqa: ANN201
    """The issue's reference: 2-layer heads (Linear-ReLU-Linear, 1024 hidden, 256 out) on standardised features,
    fixed temperature 0.07, batch 256, Adam 1e-3, 30 epochs."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    torch.set_num_threads(1)

    def head(d: int) -> torch.nn.Module:
        return torch.nn.Sequential(torch.nn.Linear(d, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 256))

    ft, fi = head(t_tr.shape[1]), head(i_tr.shape[1])
    params = [*ft.parameters(), *fi.parameters()]
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    xt, xi = torch.from_numpy(t_tr), torch.from_numpy(i_tr)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for lo in range(0, len(order), 256):
            rows = order[lo:lo + 256]
            zt, zi = F.normalize(ft(xt[rows]), dim=1), F.normalize(fi(xi[rows]), dim=1)
            logits = zt @ zi.T / 0.07
            y = torch.arange(len(rows))
            loss = (F.cross_entropy(logits, y) + F.cross_entropy(logits.T, y)) / 2
            for p in params:
                p.grad = None
            loss.backward()
            step += 1
            with torch.no_grad():  # plain Adam, lr 1e-3 (written out: torch.optim imports torch._dynamo, ~10 s)
                for p, mm, vv in zip(params, m, v, strict=True):
                    mm.mul_(0.9).add_(p.grad, alpha=0.1)
                    vv.mul_(0.999).addcmul_(p.grad, p.grad, value=0.001)
                    p.addcdiv_(mm / (1 - 0.9 ** step), (vv / (1 - 0.999 ** step)).sqrt_().add_(1e-8), value=-1e-3)
    ft.eval()
    fi.eval()

    def encode(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(x)).numpy()

    return lambda x: encode(ft, x), lambda x: encode(fi, x)


def _scores_metrics(scores: np.ndarray) -> dict[str, float]:
    rank = (scores > np.diag(scores)[:, None]).sum(1)
    out = {f"R@{k}": float((rank < k).mean()) for k in (1, 5, 10)}
    out["MRR"] = float((1.0 / (rank + 1)).mean())
    return out


def attribute_precision(scores_fn, te_labels: pd.DataFrame, encode_query, min_count: int = 5) -> tuple[float, int]:  # noqa: ANN001
    """P@10 over the test gallery for "<Colour> <Type> for <Gender>" queries (relevance: all three match)."""
    groups = te_labels.groupby(["baseColour", "articleType", "gender"]).indices
    precisions = []
    for (colour, kind, gender), rows in groups.items():
        if len(rows) < min_count:
            continue
        query = encode_query(f"{colour} {kind} for {gender}")
        top = np.argsort(-scores_fn(query))[:10]
        precisions.append(np.isin(top, rows).mean())
    return float(np.mean(precisions)), len(precisions)


def part2(args: argparse.Namespace) -> dict:
    from tuwen.encoders import get_encoder

    ws = Workspace(args.data / "fashion", create=False)
    products = ws.read("products", ["id", "title", "attributes"])
    title_ids, titles = ws.vectors("use_multilingual", "title")
    image_ids, images = ws.vectors("mobilenet_v2", "image")
    position = {pid: i for i, pid in enumerate(products["id"])}
    ids = sorted(set(title_ids) & set(image_ids), key=position.__getitem__)
    tr_row = {p: i for i, p in enumerate(title_ids)}
    im_row = {p: i for i, p in enumerate(image_ids)}
    T = titles[[tr_row[p] for p in ids]]
    Im = images[[im_row[p] for p in ids]]
    if not (args.work / "fashion" / "tuwen.json").exists():
        shutil.copytree(args.data / "fashion", args.work / "fashion")
    colour_ws = Workspace(args.work / "fashion", create=False)
    ensure_image_features(colour_ws, "color_histogram", progress=False)
    cids, cvec = image_features(colour_ws, "color_histogram")
    crow = {p: i for i, p in enumerate(cids)}
    colour = cvec[[crow[p] for p in ids]]
    n = len(ids)
    perm = np.random.default_rng(SEED).permutation(n)
    n_test = int(round(0.2 * n))
    te, tr = np.sort(perm[:n_test]), np.sort(perm[n_test:])
    title_text = products.set_index("id").loc[ids, "title"].str.strip().str.lower().to_numpy()
    _, groups = np.unique(title_text, return_inverse=True)
    attrs = pd.DataFrame([json.loads(a) for a in products.set_index("id").loc[ids, "attributes"]])
    print(f"\n## held-out text→photo retrieval, fashion: {len(tr)} train / {len(te)} test pairs (80/20, seed {SEED}); "
          "gallery = the test photos")
    use = get_encoder("use_multilingual")
    rows: dict[str, dict] = {}
    probes: dict[str, tuple] = {}  # method -> (gallery matrix, query encoder) for attribute queries

    def record(name: str, scores: np.ndarray, seconds: float, gallery=None, encode=None) -> None:  # noqa: ANN001
        rows[name] = {**_scores_metrics(scores), "train s": round(seconds, 1)}
        if gallery is not None:
            probes[name] = (gallery, encode)
        print(f"{name:58s} " + "  ".join(f"{k} {v:.3f}" for k, v in rows[name].items()), flush=True)

    rng = np.random.default_rng(SEED)
    record("random", rng.random((len(te), len(te))), 0.0)
    from sklearn.linear_model import Ridge

    Isq = np.sqrt(np.maximum(Im, 0))
    t = time.perf_counter()
    ridge = Ridge(alpha=1.0).fit(_std(T[tr], T[tr]), _std(Isq[tr], Isq[tr]))
    g = l2(_std(Isq[te], Isq[tr]))
    record("ridge text→image (standardised, √image)", l2(ridge.predict(_std(T[te], T[tr]))) @ g.T,
           time.perf_counter() - t, g, lambda x: l2(ridge.predict(_std(x, T[tr]))))
    from tuwen.search.align import fit_cca

    t = time.perf_counter()
    xt, xi = _std(T[tr], T[tr]), _std(Isq[tr], Isq[tr])
    a, b = fit_cca(xt, xi, 512, 0.1)
    g = l2(_std(Isq[te], Isq[tr]) @ b)
    record("CCA, 512 dims (regularised, closed form)", l2(_std(T[te], T[tr]) @ a) @ g.T, time.perf_counter() - t, g,
           lambda x: l2(_std(x, T[tr]) @ a))
    t = time.perf_counter()
    ft, fi = reference_infonce(_std(T[tr], T[tr]), _std(Im[tr], Im[tr]), epochs=args.reference_epochs)
    g = l2(fi(_std(Im[te], Im[tr])))
    record(f"reference InfoNCE (2-layer, T=0.07, {args.reference_epochs} epochs)",
           l2(ft(_std(T[te], T[tr]))) @ g.T, time.perf_counter() - t, g, lambda x: l2(ft(_std(x, T[tr]))))
    variants = [("MobileNetV2", Im), ("MobileNetV2 + colour histogram", np.hstack([Im, colour]))]
    config = AlignConfig(epochs=args.epochs)
    for label, feats in variants:
        t = time.perf_counter()
        aligner = Aligner(config).fit(T[tr], feats[tr], groups[tr])
        seconds = time.perf_counter() - t
        g_plain = aligner.encode_image(feats[te])
        record(f"tuwen align, {label}, no CSLS", aligner.encode_text(T[te]) @ g_plain.T, seconds, g_plain,
               aligner.encode_text)
        g = aligner.index_images(feats[te])
        record(f"tuwen align, {label} + CSLS (default)", aligner.query_texts(T[te]) @ g.T, seconds, g,
               aligner.query_texts)
    # photo-only retrieval for attribute queries, and text-to-text for comparison
    te_labels = attrs.iloc[te].reset_index(drop=True)
    print("\nattribute queries over the test photos (P@10; relevance = colour + article type + gender):")
    precision = {}
    for name, (gallery, encode) in probes.items():
        p, count = attribute_precision(lambda q, g=gallery: g @ q, te_labels, lambda s, e=encode: e(use.encode([s]))[0])
        precision[name] = p
        print(f"  {name:58s} P@10 {p:.3f}  ({count} queries)")
    titles_te = l2(T[te])
    p, count = attribute_precision(lambda q: titles_te @ q, te_labels, lambda s: l2(use.encode([s]))[0])
    precision["text-to-text (query vs test titles)"] = p
    print(f"  {'text-to-text (query vs test titles, USE)':58s} P@10 {p:.3f}  ({count} queries)")
    return {"retrieval": rows, "attribute_p@10": precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=BENCH_WS, help="ready workspaces (fashion, hm)")
    parser.add_argument("--work", type=Path, default=BENCH_WS / "search-bench", help="private copies go here")
    parser.add_argument("--parts", default="1,2")
    parser.add_argument("--only", nargs="*", choices=list(PLANS), help="part 1 plans (default: hm hm-names fashion)")
    parser.add_argument("--queries", type=int, default=200, help="attribute combinations per catalog")
    parser.add_argument("--splits", type=int, default=5, help="random A/B halvings for the learnt weights (split 0: "
                        "the benchmark's own halves)")
    parser.add_argument("--epochs", type=int, default=AlignConfig().epochs)
    parser.add_argument("--reference-epochs", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="10 epochs everywhere, 60 queries")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.reference_epochs, args.queries = 10, 10, 60
    args.work.mkdir(parents=True, exist_ok=True)
    run_parts(args, {"1": part1, "2": part2})


if __name__ == "__main__":
    main()
