"""Review insights validated without hand labels: do a product's aspect opinions predict its held-out reviews?

Claim under test (issue 15): a product's aspect-level sentiment predicts its held-out mean rating and "recommends"
share better than its overall review sentiment alone.

Protocol, women's clothing reviews (``womens-reviews`` preset; every product with at least ``--min-reviews``):

1. The clause sentiment model is cross-fitted: products are cut into 5 folds (seeded); the reviews of a fold's
   products are scored by a model fitted on the other folds' reviews, so no score saw its own product's labels.
   The aspect lexicon's learnt words come from all review texts (unsupervised: no label is read).
2. Each product's reviews are shuffled (seeded) and cut in two halves, A and B.
3. Features from half A only: ``overall`` = mean P(positive) of A's whole reviews; ``aspects`` = per aspect, the net
   opinion ((praising - complaining reviews) / reviews naming it, 0 when none) and the share of A's reviews naming it.
4. Targets from half B only: mean star rating, share recommending.
5. Ridge regression (alpha chosen by inner CV), out-of-fold predictions over products (10-fold). R² and Spearman of
   the predictions against B; 95% paired bootstrap interval of the difference (resampling products, 2,000 times).
   Repeated over ``--splits`` half-splits to show the split's own noise, and pooled over them (R² of all splits'
   predictions at once; interval from resampling products, each product's errors averaged over the splits).
6. The same claim with ~20 times the rows (leave one review out): every review of a product with at least 5 is
   predicted from its product's other reviews, ridge fitted on reviews (10 folds by product), R² over reviews.
Aspect variants: net opinion + share (specified first), nets, shrunk nets, aspect clause mean, complaining/praising
shares, aspect scores shrunk toward the overall sentiment (empirical Bayes, ``SHRINK`` pseudo-reviews), per-aspect
complaint rates. Reference rows (not the claim): half A's observed mean stars instead of the model's sentiment.

Chinese reviews (``chinese-reviews``) name no product, and 9 categories are too few to regress on, so the
per-product check is not measurable there. Measured instead: the sentiment model on held-out reviews (5-fold by
review text, de-duplicated) and on one-clause reviews, and the split-half agreement of category x aspect opinion
(net) between halves A and B (Spearman over the cells with at least 20 mentions in each half).

    python benchmarks/insights.py                      # both data sets; --json FILE keeps every number
    python benchmarks/insights.py --sets womens --splits 3   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
DATASETS = Path(os.environ.get("TUWEN_DATASETS", ROOT.parent / "shared" / "datasets"))

from tuwen.ingest.presets import load_preset  # noqa: E402
from tuwen.service.insights.aspects import Lexicon, seed_lexicon  # noqa: E402
from tuwen.service.insights.expand import expand  # noqa: E402
from tuwen.service.insights.extract import Clauses, cut_clauses, languages, opinions, review_texts  # noqa: E402
from tuwen.service.insights.sentiment import NEGATIVE_AT, POSITIVE_AT, ClauseSentiment, polarity  # noqa: E402

FOLDS = 5


# ------------------------------------------------------------------------------------------------ shared parts
def crossfit(reviews: pd.DataFrame, texts: pd.Series, langs: pd.Series, cut: Clauses, fold: np.ndarray,
             lexicons: dict[str, dict[str, Lexicon]], seed: int) -> tuple[np.ndarray, dict[str, pd.DataFrame]]:
    """Out-of-fold review P(positive) and opinion rows per lexicon variant (each review scored by a model that
    never saw its fold)."""
    labels = polarity(reviews)
    review_p = np.full(len(reviews), np.nan)
    found: dict[str, list[pd.DataFrame]] = {name: [] for name in lexicons}
    for k in range(FOLDS):
        inside = fold == k
        model = ClauseSentiment(seed=seed).fit(texts[~inside], labels[~inside], langs[~inside])
        rows = np.flatnonzero(inside)
        review_p[rows] = model.score([texts.iat[i] for i in rows], [langs.iat[i] for i in rows])
        part = Clauses(cut.frame[np.isin(cut.frame["review"].to_numpy(), rows)])
        for name, lexicon in lexicons.items():
            found[name].append(opinions(part, lexicon, model))
    return review_p, {name: pd.concat(parts, ignore_index=True) for name, parts in found.items()}


def auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    ok = np.isfinite(y) & np.isfinite(p)
    return float(roc_auc_score(y[ok], p[ok])) if len(np.unique(y[ok])) == 2 else float("nan")


def sentiment_checks(reviews: pd.DataFrame, review_p: np.ndarray, cut: Clauses, texts: pd.Series) -> dict[str, Any]:
    """The out-of-fold sentiment model on whole reviews, and on reviews that are one clause (clause = review)."""
    y = polarity(reviews).to_numpy()
    clauses_per_review = np.bincount(cut.frame["review"], minlength=len(reviews))
    one = clauses_per_review == 1
    known = np.isfinite(y)
    return {"reviews_labelled": int(known.sum()), "auc_reviews": auc(y, review_p),
            "accuracy_reviews": float(((review_p[known] >= 0.5) == (y[known] == 1)).mean()),
            "one_clause_reviews": int((one & known).sum()), "auc_one_clause": auc(y[one], review_p[one])}


def oof_predictions(x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Out-of-fold ridge predictions over products (10 folds; alpha by inner CV, features standardised)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    out = np.zeros(len(y))
    for train, test in KFold(10, shuffle=True, random_state=seed).split(x):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 4, 25)))
        out[test] = model.fit(x[train], y[train]).predict(x[test])
    return out


def r2(y: np.ndarray, p: np.ndarray) -> float:
    return float(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def spearman(y: np.ndarray, p: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(y, p).statistic)


def paired(y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: Any, seed: int, n: int = 2000) -> tuple[float, ...]:
    """(metric(b) - metric(a), 95% interval low, high), products resampled with replacement."""
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        diffs.append(metric(y[idx], b[idx]) - metric(y[idx], a[idx]))
    return metric(y, b) - metric(y, a), float(np.quantile(diffs, 0.025)), float(np.quantile(diffs, 0.975))


# ------------------------------------------------------------------------------------------------ women's
def half_features(rows: np.ndarray, review_p: np.ndarray, ratings: np.ndarray, by_review: dict[int, dict[str, float]],
                  aspects: list[str]) -> dict[str, float]:
    """One half's features of one product (see the module docstring, step 3, and VARIANTS)."""
    out = {"overall": float(np.nanmean(review_p[rows])) if np.isfinite(review_p[rows]).any() else 0.5,
           "stars": float(np.nanmean(ratings[rows]))}
    opinions_ = [by_review.get(int(r), {}) for r in rows]
    every = [p for found in opinions_ for p in found.values()]
    out["aspect_mean"] = float(np.mean(every)) if every else out["overall"]
    out["complaining"] = float(np.mean([any(p <= NEGATIVE_AT for p in f.values()) for f in opinions_]))
    out["praising"] = float(np.mean([any(p >= POSITIVE_AT for p in f.values()) for f in opinions_]))
    for aspect in aspects:
        p = np.array([f[aspect] for f in opinions_ if aspect in f])
        balance = float((p >= POSITIVE_AT).sum() - (p <= NEGATIVE_AT).sum())
        out[f"net_{aspect}"] = balance / len(p) if len(p) else 0.0
        out[f"share_{aspect}"] = len(p) / len(rows)
        out[f"shrunk_{aspect}"] = balance / (len(p) + 2)  # toward 0 when few reviews name it
        # empirical Bayes: the aspect's mean clause P(positive), pulled toward the half's overall sentiment by
        # SHRINK pseudo-reviews, minus the overall (so a sparse aspect reads as "nothing beyond overall")
        out[f"eb_{aspect}"] = (p.sum() + SHRINK * out["overall"]) / (len(p) + SHRINK) - out["overall"]
        out[f"complaints_{aspect}"] = float((p <= NEGATIVE_AT).sum()) / len(rows)  # complaint rate per review
    return out


SHRINK = 5.0  # pseudo-reviews at the overall sentiment that every aspect score starts from


# Feature sets of half A tried against ``overall`` alone, all listed in the output (the first is the one specified
# before looking at results; the others were tried after it failed: sparser or shrunk aspect scores, complaint
# rates).
VARIANTS: dict[str, Any] = {
    "overall+aspects (net+share x9)": lambda a: ["overall", *[f"net_{x}" for x in a], *[f"share_{x}" for x in a]],
    "overall+nets x9": lambda a: ["overall", *[f"net_{x}" for x in a]],
    "overall+shrunk nets x9": lambda a: ["overall", *[f"shrunk_{x}" for x in a]],
    "overall+aspect clause mean": lambda a: ["overall", "aspect_mean"],
    "overall+complaining+praising": lambda a: ["overall", "complaining", "praising"],
    "overall+aspects shrunk (EB) x9": lambda a: ["overall", *[f"eb_{x}" for x in a]],
    "overall+complaint rates x9": lambda a: ["overall", *[f"complaints_{x}" for x in a]],
}


def partial_spearman(a: np.ndarray, b: np.ndarray, controls: np.ndarray) -> float:
    """Spearman correlation of ``a`` and ``b`` once the ranks of ``controls`` (columns) are regressed out of both."""
    from scipy.stats import rankdata

    z = np.column_stack([np.ones(len(a)), *[rankdata(c) for c in controls.T]])

    def resid(x: np.ndarray) -> np.ndarray:
        ranks = rankdata(x)
        return ranks - z @ np.linalg.lstsq(z, ranks, rcond=None)[0]

    return float(np.corrcoef(resid(a), resid(b))[0, 1])


def womens(folder: Path, min_reviews: int, splits: int, seed: int) -> dict[str, Any]:
    batch = load_preset("womens-reviews", folder)
    reviews = batch.reviews.reset_index(drop=True)
    texts = review_texts(reviews)
    langs = languages(texts)
    t0 = time.perf_counter()
    cut = cut_clauses(texts, langs, progress=True)
    seeds = seed_lexicon("en")
    learnt = expand(seeds, cut.frame["tokens"], seed=seed)
    lexicons = {"seeds": {"en": seeds}, "expanded": {"en": seeds.extended(learnt)}}
    products = reviews["product_id"].astype(str)
    ids = products.unique()
    fold_of = dict(zip(ids, np.random.default_rng(seed).integers(0, FOLDS, len(ids)), strict=True))
    fold = products.map(fold_of).to_numpy()
    review_p, found = crossfit(reviews, texts, langs, cut, fold, lexicons, seed)
    result: dict[str, Any] = {"reviews": len(reviews), "learnt_words": learnt,
                              "sentiment": sentiment_checks(reviews, review_p, cut, texts),
                              "seconds_extract_and_crossfit": round(time.perf_counter() - t0, 1)}
    counts = products.value_counts()
    chosen = sorted(counts[counts >= min_reviews].index.tolist())
    result["products"] = len(chosen)
    aspects = seeds.names
    ratings = reviews["rating"].to_numpy(float)
    recommended = pd.to_numeric(reviews["recommended"], errors="coerce").to_numpy(float)
    by_product = {pid: np.flatnonzero(products.to_numpy() == pid) for pid in chosen}
    prediction: list[dict[str, Any]] = []
    specificity: list[dict[str, Any]] = []
    pooled: dict[tuple[str, str, str], list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for lexicon_name, rows_found in found.items():
        by_review: dict[int, dict[str, float]] = {}
        for review, aspect, p in rows_found.groupby(["review", "aspect"]).p.mean().reset_index().itertuples(
                index=False):
            by_review.setdefault(int(review), {})[aspect] = float(p)
        for split in range(splits):
            rng = np.random.default_rng(seed + 1000 * (split + 1))
            half_a, half_b, targets = [], [], {"rating": [], "recommended": []}
            for pid in chosen:
                rows_ = rng.permutation(by_product[pid])
                a, b = rows_[:len(rows_) // 2], rows_[len(rows_) // 2:]
                half_a.append(half_features(a, review_p, ratings, by_review, aspects))
                half_b.append(half_features(b, review_p, ratings, by_review, aspects))
                targets["rating"].append(float(np.nanmean(ratings[b])))
                targets["recommended"].append(float(np.nanmean(recommended[b])))
            fa, fb = pd.DataFrame(half_a), pd.DataFrame(half_b)
            controls = np.column_stack([fa["overall"], fb["overall"]])
            for aspect in aspects:
                specificity.append({"lexicon": lexicon_name, "split": split, "aspect": aspect,
                                    "spearman": spearman(fa[f"shrunk_{aspect}"].to_numpy(),
                                                         fb[f"shrunk_{aspect}"].to_numpy()),
                                    "partial": partial_spearman(fa[f"shrunk_{aspect}"].to_numpy(),
                                                                fb[f"shrunk_{aspect}"].to_numpy(), controls)})
            for target, values in targets.items():
                y = np.asarray(values)
                base = oof_predictions(fa[["overall"]].to_numpy(), y, seed)
                stars = oof_predictions(fa[["stars"]].to_numpy(), y, seed)
                rows_out = [("overall", base, None), ("stars (reference)", stars, None)]
                rows_out += [(name, oof_predictions(fa[cols(aspects)].to_numpy(), y, seed), base)
                             for name, cols in VARIANTS.items()]
                for name, p, against in rows_out:
                    if lexicon_name == "expanded" and against is None:
                        continue  # the baselines do not depend on the lexicon
                    row = {"lexicon": lexicon_name if against is not None else "-", "split": split, "target": target,
                           "features": name, "r2": r2(y, p), "spearman": spearman(y, p)}
                    if against is not None and split == 0:
                        for metric, fn in (("r2", r2), ("spearman", spearman)):
                            d, lo, hi = paired(y, against, p, fn, seed)
                            row.update({f"d_{metric}": d, f"d_{metric}_lo": lo, f"d_{metric}_hi": hi})
                    if against is not None:
                        pooled.setdefault((lexicon_name, target, name), []).append((y, against, p))
                    prediction.append(row)
    result["prediction"] = prediction
    result["pooled"] = [{"lexicon": lexicon, "target": target, "features": name, **pooled_r2(parts, seed)}
                        for (lexicon, target, name), parts in pooled.items()]
    result["specificity"] = specificity
    result["leave_one_out"] = leave_one_review_out(reviews, review_p, found["seeds"], aspects, min_reviews=5,
                                                   seed=seed)
    return result


def pooled_r2(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]], seed: int, n: int = 2000) -> dict[str, float]:
    """R² of the variant and of ``overall`` over every half-split at once, and their difference with a 95% interval
    from resampling products (each product's squared errors averaged over the splits first): every split's noise
    in one interval, instead of split 0's alone."""
    y = np.stack([part[0] for part in parts])  # splits x products
    spread = ((y - y.mean(axis=1, keepdims=True)) ** 2).mean(axis=0)
    base = ((y - np.stack([part[1] for part in parts])) ** 2).mean(axis=0)
    ours = ((y - np.stack([part[2] for part in parts])) ** 2).mean(axis=0)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n):
        idx = rng.integers(0, len(spread), len(spread))
        boots.append((base[idx].sum() - ours[idx].sum()) / spread[idx].sum())
    return {"splits": len(parts), "r2_overall": float(1 - base.sum() / spread.sum()),
            "r2": float(1 - ours.sum() / spread.sum()), "d_r2": float((base.sum() - ours.sum()) / spread.sum()),
            "d_r2_lo": float(np.quantile(boots, 0.025)), "d_r2_hi": float(np.quantile(boots, 0.975))}


def leave_one_review_out(reviews: pd.DataFrame, review_p: np.ndarray, rows_found: pd.DataFrame, aspects: list[str],
                         min_reviews: int, seed: int, n_boot: int = 1000) -> dict[str, Any]:
    """The same claim with ~20 times the rows: every review of a product with ``min_reviews`` or more is held out in
    turn and predicted from its product's *other* reviews (overall sentiment, and the aspect variants below); ridge
    (alpha by inner CV) fitted on reviews, out-of-fold over products (10 group folds), so coefficients are learnt
    from thousands of reviews rather than a few hundred products. R² over reviews; 95% interval of the difference
    from resampling products."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    products = reviews["product_id"].astype(str).to_numpy()
    counts = pd.Series(products).value_counts()
    keep = np.flatnonzero(np.isin(products, counts[counts >= min_reviews].index) & np.isfinite(review_p))
    codes, unique = pd.factorize(products[keep])
    groups = len(unique)

    def others(values: np.ndarray) -> np.ndarray:
        """Sum over the review's product minus the review itself."""
        total = np.zeros((groups, *values.shape[1:]))
        np.add.at(total, codes, values)
        return total[codes] - values

    n = others(np.ones(len(keep)))
    overall = others(review_p[keep]) / n
    index = {a: j for j, a in enumerate(aspects)}
    grouped = rows_found.groupby(["review", "aspect"]).p.mean().reset_index()
    clause_p = np.full((len(reviews), len(aspects)), np.nan)
    clause_p[grouped["review"].to_numpy(int), grouped["aspect"].map(index).to_numpy(int)] = grouped["p"].to_numpy()
    named = np.isfinite(clause_p[keep])
    p = np.where(named, clause_p[keep], 0.0)
    count, total = others(named.astype(float)), others(p)
    complaints = others((named & (p <= NEGATIVE_AT)).astype(float)) / n[:, None]
    praise = others((named & (p >= POSITIVE_AT)).astype(float)) / n[:, None]
    shrunk = (total + SHRINK * overall[:, None]) / (count + SHRINK) - overall[:, None]
    net = np.where(count > 0, (praise - complaints) * n[:, None] / np.maximum(count, 1), 0.0)
    variants = {"overall": overall[:, None],
                "overall+aspects (net+share x9)": np.column_stack([overall, net, count / n[:, None]]),
                "overall+aspects shrunk (EB) x9": np.column_stack([overall, shrunk]),
                "overall+complaint rates x9": np.column_stack([overall, complaints]),
                "overall+complaint+praise rates x18": np.column_stack([overall, complaints, praise])}
    targets = {"rating": reviews["rating"].to_numpy(float)[keep],
               "recommended": pd.to_numeric(reviews["recommended"], errors="coerce").to_numpy(float)[keep]}
    rng = np.random.default_rng(seed)
    boots = [rng.integers(0, groups, groups) for _ in range(n_boot)]
    out: dict[str, Any] = {"reviews": len(keep), "products": groups, "min_reviews": min_reviews, "rows": []}
    for target, y in targets.items():
        known = np.isfinite(y)
        errors = {}
        for name, x in variants.items():
            predicted = np.zeros(len(y))
            for train, test in GroupKFold(10).split(x, y, codes):
                train = train[known[train]]
                model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 29)))
                predicted[test] = model.fit(x[train], y[train]).predict(x[test])
            errors[name] = np.bincount(codes[known], (y[known] - predicted[known]) ** 2, groups)
        spread = np.bincount(codes[known], (y[known] - y[known].mean()) ** 2, groups)
        base = errors["overall"]
        for name, error in errors.items():
            row = {"target": target, "features": name, "r2": float(1 - error.sum() / spread.sum())}
            if name != "overall":
                diffs = [(base[i].sum() - error[i].sum()) / spread[i].sum() for i in boots]
                row.update({"d_r2": float((base.sum() - error.sum()) / spread.sum()),
                            "d_r2_lo": float(np.quantile(diffs, 0.025)), "d_r2_hi": float(np.quantile(diffs, 0.975))})
            out["rows"].append(row)
    return out


# ------------------------------------------------------------------------------------------------ Chinese
def chinese(folder: Path, seed: int) -> dict[str, Any]:
    batch = load_preset("chinese-reviews", folder)
    reviews = batch.reviews.drop_duplicates("text").reset_index(drop=True)
    texts = review_texts(reviews)
    langs = languages(texts)
    t0 = time.perf_counter()
    cut = cut_clauses(texts, langs, progress=True)
    seeds = seed_lexicon("zh")
    zh = cut.frame["language"] == "zh"
    learnt = expand(seeds, cut.frame.loc[zh, "tokens"], seed=seed)
    variants = {"seeds": {"zh": seeds, "en": seed_lexicon("en")},
                "expanded": {"zh": seeds.extended(learnt), "en": seed_lexicon("en")}}
    fold = np.random.default_rng(seed).integers(0, FOLDS, len(reviews))
    review_p, found = crossfit(reviews, texts, langs, cut, fold, variants, seed)
    result: dict[str, Any] = {"reviews": len(reviews), "learnt_words": learnt,
                              "sentiment": sentiment_checks(reviews, review_p, cut, texts),
                              "seconds_extract_and_crossfit": round(time.perf_counter() - t0, 1)}
    half = np.random.default_rng(seed + 1).integers(0, 2, len(reviews))
    result["split_half"] = {}
    for name, rows in found.items():
        rows = rows.assign(category=reviews["category"].to_numpy()[rows["review"]], half=half[rows["review"]])
        per_review = rows.groupby(["review", "category", "aspect", "half"]).p.mean().reset_index()
        per_review["lean"] = np.where(per_review.p >= POSITIVE_AT, 1, np.where(per_review.p <= NEGATIVE_AT, -1, 0))
        cells = per_review.groupby(["category", "aspect", "half"]).agg(n=("lean", "size"), net=("lean", "mean"))
        cells = cells.unstack()
        cells = cells[(cells[("n", 0)] >= 20) & (cells[("n", 1)] >= 20)]
        a, b = cells[("net", 0)].to_numpy(), cells[("net", 1)].to_numpy()
        rng = np.random.default_rng(seed)
        boots = [spearman(a[i], b[i]) for i in (rng.integers(0, len(a), len(a)) for _ in range(2000))]
        result["split_half"][name] = {"cells": len(a), "spearman": spearman(a, b),
                                      "lo": float(np.quantile(boots, 0.025)), "hi": float(np.quantile(boots, 0.975))}
        result.setdefault("mentions_by_aspect", {})[name] = per_review.groupby("aspect").size().sort_values(
            ascending=False).to_dict()
    return result


# ------------------------------------------------------------------------------------------------ report
def print_womens(result: dict[str, Any]) -> None:
    s = result["sentiment"]
    print(f"\nWomen's clothing reviews: {result['reviews']:,} reviews, {result['products']} products with enough "
          f"reviews. Clause sentiment (TF-IDF + logistic regression, out-of-fold by product): AUC "
          f"{s['auc_reviews']:.3f} on {s['reviews_labelled']:,} labelled reviews, {s['auc_one_clause']:.3f} on "
          f"{s['one_clause_reviews']:,} one-clause reviews")
    table = pd.DataFrame(result["prediction"])
    splits = table["split"].nunique()
    mean = table.groupby(["target", "lexicon", "features"], sort=False)[["r2", "spearman"]].mean()
    first = table[table["split"] == 0].set_index(["target", "lexicon", "features"])
    print(f"\nHeld-out half B predicted from half A (10-fold CV over products; R², Spearman ρ; split 0 and the mean "
          f"of {splits} half-splits; Δ = variant - overall on split 0, 95% paired bootstrap over products)")
    print(f"{'target':<12} {'lexicon':<9} {'features of half A':<32} {'R²':>6} {'ρ':>6} {'R² avg':>7} {'ρ avg':>6}  "
          f"{'ΔR² [95% CI]':<26} Δρ [95% CI]")
    for (target, lexicon, features), row in first.iterrows():
        extra = ""
        if pd.notna(row.get("d_r2")):
            extra = (f"{row['d_r2']:+.3f} [{row['d_r2_lo']:+.3f}, {row['d_r2_hi']:+.3f}]".ljust(27) +
                                f"{row['d_spearman']:+.3f} [{row['d_spearman_lo']:+.3f}, {row['d_spearman_hi']:+.3f}]")
        m = mean.loc[(target, lexicon, features)]
        print(f"{target:<12} {lexicon:<9} {features:<32} {row['r2']:>6.3f} {row['spearman']:>6.3f} {m['r2']:>7.3f} "
              f"{m['spearman']:>6.3f}  {extra}")
    print(f"\nPooled over all {splits} half-splits (R² of every split's predictions together; ΔR² = variant - overall, "
          "95% interval from resampling products, each product's errors averaged over the splits)")
    print(f"{'target':<12} {'lexicon':<9} {'features of half A':<34} {'R² overall':>10} {'R²':>6}  ΔR² [95% CI]")
    for row in result["pooled"]:
        print(f"{row['target']:<12} {row['lexicon']:<9} {row['features']:<34} {row['r2_overall']:>10.3f} "
              f"{row['r2']:>6.3f}  {row['d_r2']:+.4f} [{row['d_r2_lo']:+.4f}, {row['d_r2_hi']:+.4f}]")
    loo = result["leave_one_out"]
    print(f"\nLeave one review out: {loo['reviews']:,} reviews of {loo['products']} products with ≥ "
          f"{loo['min_reviews']} reviews, each predicted from its product's other reviews (ridge fitted on reviews, "
          "10 folds by product; R² over reviews; ΔR² 95% interval from resampling products)")
    for row in loo["rows"]:
        extra = f"  ΔR² {row['d_r2']:+.4f} [{row['d_r2_lo']:+.4f}, {row['d_r2_hi']:+.4f}]" if "d_r2" in row else ""
        print(f"{row['target']:<12} {row['features']:<36} R² {row['r2']:.4f}{extra}")
    spec = pd.DataFrame(result["specificity"])
    agg = spec.groupby(["aspect", "lexicon"])[["spearman", "partial"]].agg(["mean", "min", "max"]).unstack("lexicon")
    print(f"\nAspect opinions as product properties: Spearman of a product's aspect opinion (shrunk net) in half A vs "
          f"half B, raw and partial (both halves' overall sentiment regressed out); mean [min, max] over {splits} "
          "splits")
    print(f"{'aspect':<10} " + "  ".join(f"{lex + ' ' + kind:<26}" for lex in ("seeds", "expanded")
                                         for kind in ("raw", "partial")))
    for aspect in agg.index:
        cells = []
        for lexicon in ("seeds", "expanded"):
            for kind in ("spearman", "partial"):
                mean_, lo, hi = (agg.loc[aspect, (kind, stat, lexicon)] for stat in ("mean", "min", "max"))
                cells.append(f"{mean_:+.3f} [{lo:+.3f}, {hi:+.3f}]".ljust(26))
        print(f"{aspect:<10} " + "  ".join(cells))
    print("learnt words:", json.dumps(result["learnt_words"], ensure_ascii=False))


def print_chinese(result: dict[str, Any]) -> None:
    s = result["sentiment"]
    print(f"\nChinese reviews: {result['reviews']:,} distinct reviews; sentiment (out-of-fold, 5 folds by review) "
          f"AUC {s['auc_reviews']:.3f}, accuracy {s['accuracy_reviews']:.3f}; one-clause reviews "
          f"({s['one_clause_reviews']:,}) AUC {s['auc_one_clause']:.3f}")
    for name, h in result["split_half"].items():
        print(f"split-half agreement of category x aspect opinion (net), {name} lexicon: Spearman {h['spearman']:.3f} "
              f"[{h['lo']:.3f}, {h['hi']:.3f}] over {h['cells']} cells")
        print("  reviews naming each aspect:", result["mentions_by_aspect"][name])
    print("per-product check: not measurable (the Chinese reviews name no product; 9 categories are too few to "
          "regress on)")
    print("learnt words:", json.dumps(result["learnt_words"], ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATASETS)
    parser.add_argument("--sets", default="womens,chinese")
    parser.add_argument("--min-reviews", type=int, default=10)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    results: dict[str, Any] = {"seed": args.seed, "min_reviews": args.min_reviews, "splits": args.splits}
    if "womens" in args.sets:
        results["womens"] = womens(args.data / "womens-clothing-reviews", args.min_reviews, args.splits, args.seed)
        print_womens(results["womens"])
    if "chinese" in args.sets:
        results["chinese"] = chinese(args.data / "chinese-shopping-reviews", args.seed)
        print_chinese(results["chinese"])
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=1, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
