"""Draw the fusion ablation as one chart per case from ``benchmarks/fusion.py --json`` files.

Why a picture: the README's ablation table has seven cases x six variants; where fusing pays (H&M names,
Flipkart) and where it only ties (fashion colour) is quicker to see than to read. Per case it draws the best
scikit-learn baseline, tuwen's text-only and photo-only networks, and the range of tuwen's fusions (bar to the
best, a mark at the worst), on the case's main metric.

    python benchmarks/plot_fusion.py runs/a.json runs/b.json --out docs/fusion-ablation.png
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap
from pathlib import Path
from typing import Any

LOWER_IS_BETTER = {"mae_log", "mae"}


def main_metric(rows: list[dict[str, Any]]) -> str:
    """Macro-F1 for classifiers and reviews, log-price MAE for price (the metrics the benchmark's verdict uses)."""
    return "mae_log" if "mae_log" in rows[0]["metrics"] else "macro_f1"


def summary(case: dict[str, Any]) -> dict[str, Any]:
    """Best baseline, tuwen text, tuwen photo and the fusions' range of one case, on its main metric."""
    rows, metric = case["rows"], main_metric(case["rows"])
    better = min if metric in LOWER_IS_BETTER else max
    score = {r["variant"]: r["metrics"][metric] for r in rows if metric in r["metrics"]}
    baselines = [v for v in score if not v.startswith("tuwen:")]
    fusions = [score[v] for v in score if v.startswith("tuwen: fusion:")]
    return {"title": case["title"], "metric": metric,
            "baseline": score[better(baselines, key=lambda v: score[v])] if baselines else math.nan,
            "text": score.get("tuwen: text", math.nan), "photo": score.get("tuwen: image", math.nan),
            "fused best": better(fusions) if fusions else math.nan,
            "fused worst": (max if better is min else min)(fusions) if fusions else math.nan}


def draw(cases: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 4
    rows = math.ceil(len(cases) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.9 * rows), squeeze=False)
    labels = ["best LR/Ridge", "tuwen text", "tuwen photo", "tuwen fused"]
    colours = ["#a0aec0", "#718096", "#718096", "#2b6cb0"]
    for ax, case in zip(axes.flat, cases, strict=False):
        s = summary(case)
        values = [s["baseline"], s["text"], s["photo"], s["fused best"]]
        bars = ax.bar(range(4), values, color=colours)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
        if math.isfinite(s["fused worst"]):  # the weakest fusion: how much the choice of fusion matters
            ax.hlines(s["fused worst"], 2.65, 3.35, colors="#1a365d", linewidth=1.5)
        finite = [v for v in values if math.isfinite(v)]
        if finite and s["metric"] == "macro_f1":
            ax.set_ylim(max(0.0, min(finite) - 0.08), min(1.0, max(finite) + 0.04))
        ax.set_xticks(range(4), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(textwrap.fill(s["title"], 38) + ("\n(log-price MAE, lower is better)"
                                                       if s["metric"] == "mae_log" else ""), fontsize=8)
    for ax in list(axes.flat)[len(cases):]:
        ax.axis("off")
    fig.suptitle("tuwen fusion benchmark: test macro-F1 per case (blue: best fusion; dark line: weakest fusion)",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", type=Path, help="JSON files written by fusion.py --json")
    parser.add_argument("--out", type=Path, default=Path("docs/fusion-ablation.png"))
    args = parser.parse_args(argv)
    order = ["hm-name", "hm-name-desc", "fashion-articleType", "fashion-baseColour", "flipkart-category",
             "flipkart-price", "amazon-review"]
    cases = {c["case"]: c for path in args.results for c in json.loads(path.read_text(encoding="utf-8"))["results"]}
    ordered = [cases[n] for n in order if n in cases] + [c for n, c in cases.items() if n not in order]
    print(draw(ordered, args.out))


if __name__ == "__main__":
    main()
