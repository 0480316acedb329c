"""`tuwen demo`: the whole pipeline on a SYNTHETIC catalog (or a real one), narrated step by step.

It runs every stage — ingest, embed, the text vs photo vs fusion ablation, search in English and
Chinese, recommendations with their reasons — so a newcomer sees in one command what tuwen does
and where its outputs land. Each step uses the public Python API, the same calls a user would make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console

from tuwen.shared import l2
from tuwen.workspace import Workspace


def _nearest(ws: Workspace, encoder: str, field: str, product_id: str, k: int = 3) -> list[str]:
    ids, vectors = ws.vectors(encoder, field)
    unit = l2(vectors)
    row = ids.index(product_id)
    order = np.argsort(-(unit @ unit[row]))
    return [ids[i] for i in order if ids[i] != product_id][:k]


def run_demo(workspace: Path, preset: str | None, path: Path | None, products: int, console: Console) -> Workspace:
    if preset is None:
        from tuwen.datasets.synthetic import generate_catalog

        catalog = generate_catalog(workspace.parent / f"{workspace.name}-SYNTHETIC-catalog", n_products=products)
        preset, path = "synthetic", catalog
        console.print(f"[bold]1. Generated a SYNTHETIC catalog[/] of {products} products with drawn photos, English "
                      f"and Chinese titles and simulated shoppers → {catalog}")
    elif path is None:
        raise ValueError(f"--preset {preset} needs --path with the data set folder")
    ws = Workspace(workspace)
    batch = ws.ingest(preset=preset, path=path)
    summary = batch.summary()
    console.print(f"[bold]2. Ingested[/] {summary['products']:,} products, {summary['interactions']:,} interactions, "
                  f"{summary['reviews']:,} reviews into the LanceDB workspace {workspace} "
                  f"({summary['rejects']} rows rejected)")
    report = ws.embed()
    done = ", ".join(f"{key}: {v.get('embedded', 0)} new, {v['cached']} cached" for key, v in report.items())
    console.print(f"[bold]3. Embedded[/] photos with MobileNetV2 and titles with multilingual USE ({done})")
    info = ws.info()
    console.print(f"[bold]4. Workspace now holds[/] {info['products']:,} products ({info['products_with_image']:,} "
                  f"with a photo) and vectors {info['vectors']}")
    products_frame = ws.read("products", ["id", "title"])
    titles = dict(zip(products_frame["id"], products_frame["title"], strict=True))
    probe = products_frame["id"].iloc[0]
    console.print(f"[bold]5. Nearest products[/] to {probe} “{titles[probe]}”:")
    for label, encoder, field in (("by photo", "mobilenet_v2", "image"), ("by title", "use_multilingual", "title")):
        try:
            near = _nearest(ws, encoder, field, probe)
        except (KeyError, ValueError):
            continue
        console.print(f"   {label}: " + "; ".join(f"{i} “{titles.get(i, '')}”" for i in near))
    _ablation(ws, console)
    _search(ws, console)
    _recommend(ws, titles, console)
    console.print(f"Done. Inspect it with `tuwen info {workspace}`; browse it with `tuwen serve {workspace}` "
                  "(web page at http://127.0.0.1:8000/).")
    return ws


def _ablation(ws: Workspace, console: Console) -> None:
    """Does fusing photo and text beat either alone? On the catalog's category, one split."""
    from tuwen.predict.training.config import TrainConfig

    summary = ws.evaluate("classify", "category", fusions=("concat", "gated", "late"), modalities=("text", "image"),
                          config=TrainConfig(progress=False, ensemble=1))
    console.print(f"[bold]6. Text vs photo vs fusion[/] predicting {summary['target']} "
                  f"({summary['split']['train']} train / {summary['split']['test']} test products), macro-F1:")
    for row in summary["results"]:
        console.print(f"   {row['variant']:<16} {row['metrics'].get('macro_f1', float('nan')):.3f}")
    if summary.get("report"):
        console.print(f"   report with charts: {summary['report']}")


def _search(ws: Workspace, console: Console) -> None:
    """Cross-modal search needs the text↔photo alignment learned from the catalog's own pairs."""
    ws.align(progress=False)
    ws.index(progress=False)
    console.print("[bold]7. Search[/] (hybrid: BM25 + multilingual text vectors + text→photo alignment):")
    for query in ("red dress", "红色连衣裙"):
        hits = ws.search(query, k=3).hits
        console.print(f"   “{query}”: " + "; ".join(f"{h.id} “{h.title}” ({'+'.join(h.signals)})" for h in hits))


def _recommend(ws: Workspace, titles: dict[str, str], console: Console) -> None:
    events = ws.read("interactions")
    if events.empty:
        return
    fitted = ws.train("recommend", model="content")
    shopper = str(events["user_id"].value_counts().index[0])
    from tuwen.recommend.store import Service

    served = Service(ws, fitted.name).recommend(shopper, k=3, explain=True)
    console.print(f"[bold]8. Recommendations[/] for shopper {shopper} ({fitted.name} model, from photos + titles of "
                  "what they bought):")
    for reason in served.reasons:
        console.print(f"   {reason['item']} “{titles.get(reason['item'], '')}” — {reason['why']}")
    console.print(f"   profile: {ws.profile(shopper).summary}")
