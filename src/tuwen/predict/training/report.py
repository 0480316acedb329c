"""The ablation report: a Markdown table of every variant plus three charts, written into the workspace.

Charts (PNG, matplotlib's non-interactive Agg backend, so it works on a server):

* ``ablation.png``: the task's main metric (and accuracy / R²) per variant: text only, image only,
  each fusion. The question the report answers is "does combining beat either alone, and by how much?".
* ``confusion.png``: the confusion matrix (row-normalised) of the best variant, for class targets;
  for price, predicted against true price on log axes.
* ``per_class_f1.png``: per-class F1 of the text-only model against the image-only model: which
  classes the photo decides and which the words decide, the "where" of fusion's gain.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

SKIP = {"n"}


def _classes(task: Any, head: str) -> list[str] | None:
    if hasattr(task, "labels"):
        return list(task.labels[head].classes)
    if hasattr(task, "label"):
        return list(task.label.classes)
    return None


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text).strip("-") or "report"


def describe_choice(experts: dict[str, Any] | None) -> str:
    """What a model's validation blend settled on: one member's name, or the blend's main shares
    ("blend: fused 0.65, linear 0.33"; "fused" is the model's own network). Why shown: a fusion that falls
    back to its text expert scores exactly as text alone, and the reader should see that it chose to."""
    if not experts:
        return ""
    if experts["choice"] != "blend":
        return str(experts["choice"])
    shares = next(iter(experts["weights"].values()))
    return "blend: " + ", ".join(f"{k} {v:.2f}" for k, v in shares.items() if v >= 0.05)


def metric_table(results: list[dict[str, Any]], markdown: bool = True) -> str:
    """Variants as rows, metrics as columns (the same table the CLI prints), and each fused model's
    validation pick."""
    keys = [k for k in results[0]["metrics"] if k not in SKIP and "/" not in k] if results else []
    picks = [describe_choice(r.get("experts")) for r in results]
    header = ["variant", *keys, "seconds", "best epoch", *(["validation pick"] if any(picks) else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r, pick in zip(results, picks, strict=True):
        cells = [r["variant"], *(f"{r['metrics'].get(k, float('nan')):.4f}" for k in keys), f"{r['seconds']:.1f}",
                 str(r.get("best_epoch", "")), *([pick] if any(picks) else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) if markdown else "\n".join(line.replace("|", " ") for line in lines)


def write_report(folder: Path, summary: dict[str, Any], prepared: Any, details: dict[str, Any]) -> Path:
    """Write ``<task>-<target>.md`` with its charts next to it; returns the Markdown file's path."""
    import matplotlib

    matplotlib.use("Agg")
    name = _slug(f"{summary['task']}-{summary['target'] or ''}")
    out = folder / name
    out.mkdir(parents=True, exist_ok=True)
    results, primary = summary["results"], summary["primary"]
    higher = prepared.task.higher_is_better if prepared is not None else primary not in {"mae", "mae_log", "log_loss"}
    charts = [ablation_chart(out / "ablation.png", results, primary)]
    best = _best(results, primary, higher)
    task = prepared.task if prepared is not None else None
    head = next(iter(task.heads())) if task is not None else ""
    classes = _classes(task, head) if task is not None else None
    if best not in details:
        pass  # no per-item predictions kept (purchase): the ablation chart only
    elif classes is not None:
        charts.append(confusion_chart(out / "confusion.png", details[best]["y"][head],
                                      details[best]["predictions"][head], classes, f"{best} (test)"))
    elif task is not None and task.name == "price":
        charts.append(price_chart(out / "confusion.png", details[best]["y"][head], details[best]["predictions"][head],
                                  best))
    wins = ""
    if classes is not None and "text" in details and "image" in details:
        chart, wins = per_class_chart(out / "per_class_f1.png", details["text"], details["image"], head, classes)
        charts.append(chart)
    lines = [
        f"# Modality ablation: {summary['task']} · {summary['target']}",
        "",
        f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `tuwen evaluate --ablation`.",
        "",
        f"**Split**: {summary['split']['rule']}; seed {summary['split']['seed']}; "
        f"{summary['split']['train']} train / {summary['split']['val']} validation / {summary['split']['test']} test "
        f"items (of {summary['split']['items']}).",
        *[f"- {note}" for note in summary["split"].get("notes", [])],
        "",
        f"Scores are on the test part. Main metric: `{primary}` "
        f"({'higher' if higher else 'lower'} is better); best variant: **{best}**.",
        "",
        metric_table(results),
        "",
        *[f"![{c.stem}]({name}/{c.name})\n" for c in charts],
        wins,
    ]
    path = folder / f"{name}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    (folder / f"{name}.json").write_text(json.dumps({k: v for k, v in summary.items() if k != "report"}, indent=2),
                                         encoding="utf-8")
    return path


def _best(results: list[dict[str, Any]], primary: str, higher: bool) -> str | None:
    scored = [(r["metrics"].get(primary), r["variant"]) for r in results if r["metrics"].get(primary) is not None]
    if not scored:
        return None
    return (max(scored) if higher else min(scored))[1]


def ablation_chart(path: Path, results: list[dict[str, Any]], primary: str) -> Path:
    import matplotlib.pyplot as plt

    second = "accuracy" if primary != "accuracy" and "accuracy" in results[0]["metrics"] else \
        "r2" if "r2" in results[0]["metrics"] else None
    names = [r["variant"] for r in results]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4))
    width = 0.4 if second else 0.7
    bars = ax.bar(x - (width / 2 if second else 0), [r["metrics"].get(primary, np.nan) for r in results], width,
                  label=primary, color=["#8c8c8c" if "fusion" not in n else "#2b6cb0" for n in names])
    ax.bar_label(bars, fmt="%.3f", fontsize=7)
    if second:
        bars = ax.bar(x + width / 2, [r["metrics"].get(second, np.nan) for r in results], width, label=second,
                      color="#90cdf4")
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(x, names, rotation=30, ha="right")
    values = [r["metrics"].get(k, np.nan) for r in results for k in (primary, second) if k]
    finite = [v for v in values if np.isfinite(v)]
    if finite and max(finite) <= 1.0 and min(finite) >= 0:
        ax.set_ylim(max(0.0, min(finite) - 0.1), min(1.0, max(finite) + 0.05))
    ax.set_title("test scores per variant (grey: one modality, blue: fused)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_chart(path: Path, y: np.ndarray, probabilities: np.ndarray, classes: list[str], title: str) -> Path:
    import matplotlib.pyplot as plt
    from sklearn.metrics import confusion_matrix

    known = y >= 0
    matrix = confusion_matrix(y[known], probabilities[known].argmax(axis=1), labels=np.arange(len(classes)))
    matrix = matrix / matrix.sum(axis=1, keepdims=True).clip(min=1)
    size = min(16, max(5, 0.28 * len(classes) + 3))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    font = 8 if len(classes) <= 20 else 5
    ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=font)
    ax.set_yticks(range(len(classes)), classes, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix, row-normalised: {title}")
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def price_chart(path: Path, log_true: np.ndarray, predicted: np.ndarray, title: str) -> Path:
    import matplotlib.pyplot as plt

    known = np.isfinite(log_true)
    true = np.exp(log_true[known])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true, predicted[known], s=6, alpha=0.5)
    low, high = float(min(true.min(), predicted[known].min())), float(max(true.max(), predicted[known].max()))
    ax.plot([low, high], [low, high], color="grey", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("true price")
    ax.set_ylabel("predicted price")
    ax.set_title(f"price, test: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def per_class_chart(path: Path, text: dict[str, Any], image: dict[str, Any], head: str,
                    classes: list[str]) -> tuple[Path, str]:
    """Per-class F1, text-only vs image-only; returns the chart and a Markdown list of the biggest wins."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import f1_score

    y = text["y"][head]
    known = y >= 0
    labels = np.arange(len(classes))
    f1_text = f1_score(y[known], text["predictions"][head][known].argmax(1), labels=labels, average=None,
                       zero_division=0)
    f1_image = f1_score(y[known], image["predictions"][head][known].argmax(1), labels=labels, average=None,
                        zero_division=0)
    support = np.bincount(y[known], minlength=len(classes))
    shown = np.flatnonzero(support > 0)
    order = shown[np.argsort(f1_text[shown] - f1_image[shown])]
    fig, ax = plt.subplots(figsize=(7, max(3, 0.22 * len(order) + 1)))
    positions = np.arange(len(order))
    ax.barh(positions - 0.2, f1_image[order], 0.4, label="image only", color="#dd6b20")
    ax.barh(positions + 0.2, f1_text[order], 0.4, label="text only", color="#2b6cb0")
    ax.set_yticks(positions, [classes[i] for i in order], fontsize=6 if len(order) > 25 else 8)
    ax.set_xlabel("F1 on test")
    ax.set_title("per-class F1: where the photo wins (top) and where the words win (bottom)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    gaps = [(float(f1_image[i] - f1_text[i]), classes[i], int(support[i])) for i in shown]
    image_wins = sorted((g for g in gaps if g[0] > 0), reverse=True)[:5]
    text_wins = sorted(g for g in gaps if g[0] < 0)[:5]
    lines = ["## Where each modality wins (per-class F1, test)", ""]
    lines += ["Image beats text on: " + (", ".join(f"{c} (+{d:.2f}, n={n})" for d, c, n in image_wins) or "none")]
    lines += ["", "Text beats image on: " + (", ".join(f"{c} (+{-d:.2f}, n={n})" for d, c, n in text_wins) or "none")]
    return path, "\n".join(lines) + "\n"
