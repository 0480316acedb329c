"""Product question answering on real Amazon Q&A (clothing, shoes, jewellery): answer retrieval, yes/no, latency.

Split by product, with a twist the data set forces: Amazon shows one Q&A page for all variants of a listing, each
under its own asin, so 7 in 10 of a random 10% of asins' (question, answer) pairs appear word for word under
another asin. The split therefore hashes *listing groups* (asins sharing an identical (question, answer) pair,
:mod:`tuwen.service.qa.splits`) with a seed: ``--test-share`` of the groups are held out with all their questions.
The workspace (what the shop knows) is the rest, ingested with the ``amazon-qa`` preset; tuwen's answerer is
trained on it exactly as ``tuwen ask`` trains it.

Measured on the held-out products' questions:

* **answer retrieval** — each question's true answer ranked among all held-out answers (MRR, Recall@10) and among
  its own product's answers (MRR, R@1); ties count against the true answer (many answers are just "Yes").
  tuwen (learnt question→answer matcher fused with BM25) against TF-IDF cosine (the issue's baseline), BM25 alone
  and the plain multilingual-USE cosine. Differences: mean and 95% paired bootstrap interval (the same resampled
  questions for both), and the share of resamples in which tuwen wins.
* **yes/no** — questions of type yes/no answered Y or N: accuracy of the majority answer, TF-IDF + logistic
  regression on the question alone, tuwen's prior (the question alone), the same combiner shown no evidence (the
  fair "question alone": it recalibrates the prior as the evidence model does), and tuwen with evidence (the same
  product's other Q&A, leave-one-out: what the product page already shows); log loss of the last two; how much a
  product's other answers say about this one on the true labels (correlation, AUC); and the share tuwen answers
  (not "unsure") with its accuracy there. Variants of a listing repeat a (question, answer) pair under each of
  their asins, so the held-out rows hold copies (about half of them): the same accuracies are also given on
  distinct pairs, with intervals that resample listing groups.
* **latency** — p50 / p90 of one ``Answerer.answer`` call (encoding the question, ranking evidence, yes/no) over
  ``--latency`` held-out questions, one at a time.

    python benchmarks/service.py                      # ../shared/datasets/amazon-qa-clothing, seed 0, 20% held out
    python benchmarks/service.py --seed 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tuwen import Workspace  # noqa: E402
from tuwen.ingest import load_preset  # noqa: E402
from tuwen.metrics.intervals import bootstrap_interval, paired_bootstrap  # noqa: E402
from tuwen.service.qa import train_answerer  # noqa: E402
from tuwen.service.qa.splits import held_out, listing_groups  # noqa: E402
from tuwen.service.qa.yesno import Evidence  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "amazon-qa-clothing"


def ranks(matrix: np.ndarray, products: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rank of each question's true answer (the diagonal) across all candidates and within its product; ties count
    against it."""
    by_product: dict[str, list[int]] = {}
    for i, product in enumerate(products):
        by_product.setdefault(product, []).append(i)
    across = np.zeros(len(products))
    within = np.zeros(len(products))
    for i in range(len(products)):
        beaten = matrix[i] >= matrix[i, i]
        across[i] = beaten.sum()
        within[i] = beaten[by_product[products[i]]].sum()
    return across, within


def retrieval(answerer, train, test, seed: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer

    questions, answers = test["question"].tolist(), test["answer"].tolist()
    products = test["product_id"].astype(str).tolist()
    qv, av = answerer.vectors(questions), answerer.vectors(answers)
    matcher = answerer.matcher
    tfidf = TfidfVectorizer().fit([*train["question"], *train["answer"]])
    parts = matcher.components(qv, questions, av, answers)
    systems = {
        "tuwen (learnt + BM25)": matcher.matrix(qv, questions, av, answers),
        "TF-IDF cosine": (tfidf.transform(questions) @ tfidf.transform(answers).T).toarray(),
        "BM25": parts["bm25"],
        "USE cosine": parts["cosine"],
    }
    rows, per = {}, {}
    for name, matrix in systems.items():
        across, within = ranks(matrix, products)
        per[name] = {"across_rr": 1 / across, "across_r10": (across <= 10).astype(float), "within_rr": 1 / within,
                     "within_r1": (within <= 1).astype(float)}
        rows[name] = {k: float(v.mean()) for k, v in per[name].items()}
    deltas = {}
    ours = per["tuwen (learnt + BM25)"]
    for name in systems:
        if name.startswith("tuwen"):
            continue
        deltas[name] = {metric: {"delta": float((ours[metric] - per[name][metric]).mean()),
                                 "interval": bootstrap_interval(ours[metric] - per[name][metric], seed=seed),
                                 "p_win": paired_bootstrap(ours[metric], per[name][metric], seed=seed)}
                        for metric in ours}
    return {"questions": len(questions), "products": len(set(products)), "systems": rows, "vs_tuwen": deltas,
            "weights": matcher.weights}


def cluster_interval(values: np.ndarray, clusters: np.ndarray, seed: int, n_boot: int = 2000) -> dict:
    """Mean of ``values`` with a 95% interval from resampling whole clusters (listing groups) with replacement."""
    codes, unique = pd.factorize(clusters)
    sums, counts = np.bincount(codes, values, len(unique)), np.bincount(codes, None, len(unique))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(unique), size=(n_boot, len(unique)))
    means = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    return {"delta": float(values.mean()), "interval": [float(np.quantile(means, 0.025)),
                                                        float(np.quantile(means, 0.975))]}


def yes_no(answerer, train, test, groups: dict, seed: int) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    model = answerer.yesno
    train_labelled = train[(train["question_type"] == "yes/no") & train["answer_type"].isin(["Y", "N"])]
    majority = "Y" if (train_labelled["answer_type"] == "Y").mean() >= 0.5 else "N"
    tfidf = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2).fit(train_labelled["question"])
    baseline = LogisticRegression(C=10, max_iter=2000).fit(tfidf.transform(train_labelled["question"]),
                                                           train_labelled["answer_type"] == "Y")
    test = test.reset_index(drop=True)
    vectors = answerer.vectors(test["question"].tolist())
    yes_no_rows = (test["question_type"] == "yes/no").to_numpy()
    polarity = model.answer_polarity(test["answer"].tolist())
    products = test["product_id"].astype(str).to_numpy()
    labelled = np.where(yes_no_rows & test["answer_type"].isin(["Y", "N"]).to_numpy())[0]
    truth = (test["answer_type"].to_numpy()[labelled] == "Y")
    prior = model.prior_yes(vectors[labelled])
    with_evidence = np.zeros(len(labelled))
    alone = np.zeros(len(labelled))
    for n, i in enumerate(labelled):
        same = np.where((products == products[i]) & yes_no_rows)[0]
        same = same[same != i]
        with_evidence[n] = model.probability(vectors[i], Evidence(vectors[same], polarity[same]), prior[n])
        alone[n] = model.probability(vectors[i], Evidence(vectors[same[:0]], polarity[same[:0]]), prior[n])
    answered = np.array([model.verdict(p) != "unsure" for p in with_evidence])
    best_name = "tuwen, + own product's other Q&A (LOO)"
    correct = {
        f"majority ({majority})": np.full(len(labelled), majority == "Y") == truth,
        "TF-IDF + LR, question alone": baseline.predict(tfidf.transform(test["question"].iloc[labelled])) == truth,
        "tuwen, question alone (prior)": (prior >= 0.5) == truth,
        # the same combiner shown no evidence: it recalibrates the prior, so this is the fair "question alone"
        "tuwen, question alone (combiner, no evidence)": (alone >= 0.5) == truth,
        best_name: (with_evidence >= 0.5) == truth,
    }
    rows = {name: float(values.mean()) for name, values in correct.items()}
    best = correct[best_name].astype(float)
    deltas = {name: {"delta": float((best - v).mean()), "interval": bootstrap_interval(best - v, seed=seed),
                     "p_win": paired_bootstrap(best, v.astype(float), seed=seed)}
              for name, v in correct.items() if name != best_name}
    # variants of one listing repeat a (question, answer) pair under each asin, so one listing can weigh as much as
    # dozens of products: score each distinct pair once and resample listing groups, not rows
    key = (test["question"].str.lower().str.split().str.join(" ") + "\0"
           + test["answer"].str.lower().str.split().str.join(" ")).to_numpy()[labelled]
    distinct = ~pd.Series(key).duplicated().to_numpy()
    clusters = np.array([groups[p] for p in products[labelled]])[distinct]
    distinct_rows = {name: float(values[distinct].mean()) for name, values in correct.items()}
    distinct_deltas = {name: cluster_interval(best[distinct] - v[distinct].astype(float), clusters, seed)
                       for name, v in correct.items() if name != best_name}
    return {"questions": int(len(labelled)), "yes_share": float(truth.mean()), "accuracy": rows, "vs_best": deltas,
            "distinct": {"questions": int(distinct.sum()), "listing_groups": int(len(set(clusters))),
                         "yes_share": float(truth[distinct].mean()), "accuracy": distinct_rows,
                         "vs_best": distinct_deltas},
            "log_loss": {"question alone (combiner, no evidence)": log_loss(truth, alone),
                         best_name: log_loss(truth, with_evidence)},
            "evidence_signal": evidence_signal(labelled, truth, products),
            "answered_share": float(answered.mean()),
            "accuracy_when_answered": float(((with_evidence >= 0.5) == truth)[answered].mean()) if answered.any()
            else None, "band": list(model.band), "oof_report": model.report}


def log_loss(truth: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(truth, np.log(p), np.log(1 - p))))


def evidence_signal(labelled: np.ndarray, truth: np.ndarray, products: np.ndarray) -> dict:
    """How much a product's other answers say about this one, read from the true labels (no model): correlation of
    a question's Y/N with the share of Y among its product's other Y/N-answered questions, and that share's AUC.
    Near zero means the product's own Q&A cannot carry the answer, whatever model reads it."""
    from sklearn.metrics import roc_auc_score

    by_product: dict[str, list[int]] = {}
    for n, i in enumerate(labelled):
        by_product.setdefault(products[i], []).append(n)
    share, own = [], []
    for n, i in enumerate(labelled):
        others = [m for m in by_product[products[i]] if m != n]
        if others:
            share.append(float(truth[others].mean()))
            own.append(bool(truth[n]))
    if len(set(own)) < 2:
        return {"questions": len(own)}
    share_, own_ = np.asarray(share), np.asarray(own, float)
    return {"questions": len(own), "correlation": float(np.corrcoef(share_, own_)[0, 1]),
            "auc": float(roc_auc_score(own_, share_))}


def latency(answerer, test, n: int) -> dict:
    rows = test.head(n)
    times = []
    for row in rows.itertuples(index=False):
        start = time.perf_counter()
        answerer.answer(str(row.question), str(row.product_id), str(row.question_type), strict=False)
        times.append((time.perf_counter() - start) * 1000)
    return {"questions": len(times), "p50_ms": float(np.percentile(times, 50)),
            "p90_ms": float(np.percentile(times, 90))}


def leakage(questions, share: float, seed: int) -> float:
    """Share of held-out (question, answer) pairs seen verbatim in training under a plain split by asin."""
    from tuwen.service.qa.splits import hash_share

    products = questions["product_id"].astype(str)
    test = np.array([hash_share(p, seed) < share for p in products])
    key = (questions["question"].str.lower().str.split().str.join(" ") + "\0"
           + questions["answer"].str.lower().str.split().str.join(" "))
    seen = set(key[~test])
    return float(key[test].isin(seen).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.time()
    questions = load_preset("amazon-qa", args.data).questions
    questions = questions.assign(_n=questions["id"].astype(int)).sort_values("_n").reset_index(drop=True)
    products = questions["product_id"].astype(str).tolist()
    groups = listing_groups(products, questions["question"].tolist(), questions["answer"].tolist())
    test_mask = held_out(products, groups, args.test_share, args.seed)
    train, test = questions[~test_mask], questions[test_mask]
    lines = (args.data / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    with tempfile.TemporaryDirectory(prefix="tuwen-service-bench-") as tmp:
        folder = Path(tmp) / "shop-data"
        folder.mkdir()
        (folder / "qa.jsonl").write_text("\n".join(lines[int(i) - 1] for i in train["id"]) + "\n", encoding="utf-8")
        workspace = Workspace(Path(tmp) / "ws")
        workspace.ingest(preset="amazon-qa", path=folder)
        t = time.time()
        answerer = train_answerer(workspace, epochs=args.epochs, seed=args.seed, progress=True)
        train_seconds = time.time() - t
        report = {
            "data": str(args.data), "split": f"listing groups by seeded hash, {args.test_share:.0%} held out",
            "seed": args.seed, "train_rows": int(len(train)), "test_rows": int(len(test)),
            "train_products": int(train["product_id"].nunique()), "test_products": int(test["product_id"].nunique()),
            "plain_asin_split_leak": leakage(questions, args.test_share, args.seed),
            "train_seconds": round(train_seconds, 1), "matcher_log": answerer.matcher.log,
            "retrieval": retrieval(answerer, train, test, args.seed),
            "yes_no": yes_no(answerer, train, test, groups, args.seed),
            "latency": latency(answerer, test, args.latency),
        }
    report["seconds"] = round(time.time() - started, 1)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float), encoding="utf-8")


def print_report(report: dict) -> None:
    print(f"amazon-qa-clothing · {report['split']} · seed {report['seed']} · workspace {report['train_rows']:,} Q&A "
          f"of {report['train_products']:,} products · held out {report['test_rows']:,} questions of "
          f"{report['test_products']:,} products")
    print(f"(a plain split by asin would leak: {report['plain_asin_split_leak']:.0%} of held-out (question, answer) "
          "pairs appear verbatim under another asin)\n")
    r = report["retrieval"]
    print(f"answer retrieval, {r['questions']:,} held-out questions (fusion weights {r['weights']})")
    print(f"{'system':28s} {'across MRR':>10s} {'across R@10':>11s} {'within MRR':>10s} {'within R@1':>10s}")
    for name, row in r["systems"].items():
        print(f"{name:28s} {row['across_rr']:10.3f} {row['across_r10']:11.3f} {row['within_rr']:10.3f} "
              f"{row['within_r1']:10.3f}")
    for name, metrics in r["vs_tuwen"].items():
        shown = "  ".join(f"{m} {d['delta']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}]"
                          for m, d in metrics.items())
        print(f"  tuwen − {name}: {shown}")
    y = report["yes_no"]
    print(f"\nyes/no, {y['questions']:,} held-out yes/no questions answered Y or N (yes share {y['yes_share']:.3f})")
    for name, value in y["accuracy"].items():
        print(f"  {name:50s} {value:.3f}")
    for name, d in y["vs_best"].items():
        print(f"  best − {name}: {d['delta']:+.3f} [{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}], "
              f"P(win) {d['p_win']:.2f}")
    d = y["distinct"]
    print(f"  distinct (question, answer) pairs only: {d['questions']} of {d['listing_groups']} listing groups (yes "
          f"share {d['yes_share']:.3f}); intervals resample listing groups")
    for name, value in d["accuracy"].items():
        print(f"    {name:48s} {value:.3f}")
    for name, delta in d["vs_best"].items():
        print(f"    best − {name}: {delta['delta']:+.3f} [{delta['interval'][0]:+.3f}, {delta['interval'][1]:+.3f}]")
    print("  log loss: " + ", ".join(f"{k} {v:.4f}" for k, v in y["log_loss"].items()))
    signal = y["evidence_signal"]
    if "auc" in signal:
        print(f"  a product's other answers vs this one (true labels, {signal['questions']} questions with one or "
              f"more): correlation {signal['correlation']:+.3f}, AUC {signal['auc']:.3f}")
    answered = y["accuracy_when_answered"]
    print(f"  answered (not unsure, band {y['band']}): {y['answered_share']:.0%} of questions, accuracy "
          f"{answered if answered is None else round(answered, 3)}")
    lat = report["latency"]
    print(f"\nlatency per question ({lat['questions']} questions, one at a time): p50 {lat['p50_ms']:.1f} ms, "
          f"p90 {lat['p90_ms']:.1f} ms · training {report['train_seconds']:.0f} s · total {report['seconds']:.0f} s")


if __name__ == "__main__":
    main()
