"""`tuwen demo`: the whole pipeline on a SYNTHETIC catalog (or a real one), narrated step by step.

It runs every stage — ingest, embed, the text vs photo vs fusion ablation, search in English and
Chinese, recommendations with their reasons — so a newcomer sees in one command what tuwen does
and where its outputs land. Each step uses the public Python API, the same calls a user would make,
says what its output shows, and says so when it is skipped (and why) instead of staying silent.

A real data set gets its own workspace (``demo-PRESET``), and a workspace that already holds another
catalog is refused: the demo upserts, so running it into another catalog's workspace would mix the two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape

from tuwen.choices import DEFAULT_TEXT_ENCODER, SEARCH_IMAGE_ENCODER
from tuwen.ingest.synthetic import COLOURS
from tuwen.shop import Shop
from tuwen.store.workspace import WorkspaceError
from tuwen.util.vectors import l2

# Queries the SYNTHETIC catalog can answer: titles name a material (ceramic, glass, cotton) and, half the time,
# a colour; the photo always shows the colour. Each query names both, so the words find the material and the
# photo signal finds the colour even where the title does not say it.
SYNTHETIC_QUERIES = (("red glass", "red", "glass"), ("蓝色纯棉", "blue", "cotton"))
SYNTHETIC_WHY_FUSION = ("the catalog is built so that the category depends on the shape, visible only in the "
                        "photo, and on the material, named only in the text: each alone can tell at most half "
                        "of the categories apart, both together tell all of them")


def default_workspace(preset: str | None) -> Path:
    """``demo-workspace`` for the synthetic catalog, ``demo-PRESET`` for a real one: never the same folder."""
    return Path("demo-workspace") if preset in (None, "synthetic") else Path(f"demo-{preset}")


def check_same_catalog(workspace: Path, source: str) -> None:
    """Refuse a workspace whose products come from another catalog than the one this demo ingests."""
    if not (workspace / "tuwen.json").exists():
        return
    ws = Shop(workspace, create=False)
    sources = ws.read("products", ["source"])["source"].value_counts()
    others = {str(name): int(n) for name, n in sources.items() if name != source}
    if others:
        held = ", ".join(f"{n:,} {name} products" for name, n in others.items())
        raise WorkspaceError(f"{workspace} already holds another catalog ({held}); the {source} demo would mix "
                             f"the two. Use --workspace {default_workspace(source)} or an empty folder.")


def run_demo(workspace: Path, preset: str | None, path: Path | None, products: int, console: Console) -> Shop:
    """Every stage in order, each with one narrated line (or a 'skipped: why' line)."""
    synthetic = preset in (None, "synthetic")
    if preset is not None and path is None:
        raise ValueError(f"--preset {preset} needs --path with the data set folder")
    check_same_catalog(workspace, preset or "synthetic")
    if preset is None:
        from tuwen.ingest.synthetic import generate_catalog

        catalog = generate_catalog(workspace.parent / f"{workspace.name}-SYNTHETIC-catalog", n_products=products)
        preset, path = "synthetic", catalog
        say(console, f"[bold]1. Generated a SYNTHETIC catalog[/] of {products} products → {catalog}",
            "drawn photos (a shape in a colour, with a pattern), noisy English and Chinese titles naming the "
            "material (ceramic, glass, cotton) and sometimes the colour, and simulated shoppers with tastes")
    else:
        say(console, f"[bold]1. Reading the {preset} data set[/] at {path}", "a real catalog: no generation step")
    ws = Shop(workspace)
    batch = ws.ingest(preset=preset, path=path)
    summary = batch.summary()
    say(console, f"[bold]2. Ingested[/] {summary['products']:,} products, {summary['interactions']:,} interactions, "
        f"{summary['reviews']:,} reviews into the LanceDB workspace {workspace} ({summary['rejects']} rows rejected)",
        "one folder holds every table; re-running upserts by id, so nothing is duplicated")
    report = ws.embed()
    done = ", ".join(f"{key}: {v.get('embedded', 0)} new, {v['cached']} cached" for key, v in report.items())
    say(console, f"[bold]3. Embedded[/] photos (MobileNetV2 + colour histogram) and texts (multilingual USE): {done}",
        "one vector per product, encoder and field, cached by content: a second run embeds nothing")
    info = ws.info()
    say(console, f"[bold]4. Workspace now holds[/] {info['products']:,} products ({info['products_with_image']:,} "
        f"with a photo), {info['shoppers']:,} shoppers with events, and vectors {info['vectors']}")
    frame = ws.read("products", ["id", "title", "attributes"])
    titles = dict(zip(frame["id"], frame["title"], strict=True))
    attributes = dict(zip(frame["id"], frame["attributes"], strict=True))
    _nearest_step(ws, titles, console)
    _ablation(ws, synthetic, console)
    _search(ws, synthetic, attributes, console)
    recommend_step(ws, titles, console)
    console.print(f"Done. Inspect it with `tuwen info {workspace}`; browse it with `tuwen serve {workspace}` "
                  "(web page at http://127.0.0.1:8000/).")
    return ws


def say(console: Console, line: str, shows: str | None = None) -> None:
    """One step's result, and (dimmed, below it) what that result shows."""
    console.print(line, highlight=False)
    if shows:
        console.print(f"   [dim]what it shows: {escape(shows)}[/]", highlight=False)


def skipped(console: Console, step: str, why: str) -> None:
    console.print(f"[bold]{step}[/] [yellow]skipped:[/] {escape(why)}", highlight=False)


def _nearest(ws: Shop, encoder: str, field: str, product_id: str, k: int = 3) -> list[str]:
    ids, vectors = ws.vectors(encoder, field)
    unit = l2(vectors)
    row = ids.index(product_id)
    order = np.argsort(-(unit @ unit[row]))
    return [ids[i] for i in order if ids[i] != product_id][:k]


def _nearest_step(ws: Shop, titles: dict[str, str], console: Console) -> None:
    probe = next(iter(titles))
    say(console, f"[bold]5. Nearest products[/] to {probe} “{escape(titles[probe])}”:",
        "the photo's neighbours share what the picture shows (shape, colour); the title's share its words "
        "(material, brand) — two different views of one product")
    for label, encoder, field in (("by photo", SEARCH_IMAGE_ENCODER, "image"),
                                  ("by title", DEFAULT_TEXT_ENCODER, "title")):
        try:
            near = _nearest(ws, encoder, field, probe)
        except (KeyError, ValueError) as error:
            console.print(f"   {label}: [yellow]skipped:[/] {escape(str(error))}", highlight=False)
            continue
        console.print(f"   {label}: " + "; ".join(f"{i} “{escape(titles.get(i, ''))}”" for i in near),
                      highlight=False)


def _ablation(ws: Shop, synthetic: bool, console: Console) -> None:
    """Does fusing photo and text beat either alone? On the catalog's category, one split."""
    from tuwen.predict.training.config import TrainConfig

    step = "6. Text vs photo vs fusion"
    try:
        summary = ws.evaluate("classify", "category", fusions=("concat", "gated", "late"),
                              modalities=("text", "image"), config=TrainConfig(progress=False, ensemble=1))
    except (KeyError, ValueError) as error:
        skipped(console, step, f"cannot train a category classifier on this catalog ({error})")
        return
    scores = {row["variant"]: row["metrics"].get("macro_f1", float("nan")) for row in summary["results"]}
    console.print(f"[bold]{step}[/] predicting {summary['target']} ({summary['split']['train']} train / "
                  f"{summary['split']['test']} test products), macro-F1 on the test part:")
    for variant, score in scores.items():
        console.print(f"   {variant:<16} {score:.3f}")
    verdict, fusion_wins = _fusion_verdict(scores)
    say(console, "   " + verdict, (SYNTHETIC_WHY_FUSION if synthetic else "fusion pays where the photo shows what "
                                   "the titles do not say (and the reverse)") if fusion_wins else
        "the best single modality already carries the category on this split")
    if summary.get("report"):
        console.print(f"   report with charts: {summary['report']}")


def _fusion_verdict(scores: dict[str, float]) -> tuple[str, bool]:
    """One sentence comparing the best fusion with the best single modality, from the numbers printed, and whether
    fusion won."""
    singles = {k: v for k, v in scores.items() if not k.startswith("fusion") and np.isfinite(v)}
    fused = {k: v for k, v in scores.items() if k.startswith("fusion") and np.isfinite(v)}
    if not singles or not fused:
        return "no fusion to compare with a single modality", False
    single, fusion = max(singles, key=singles.__getitem__), max(fused, key=fused.__getitem__)
    if fused[fusion] > singles[single]:
        return (f"{fusion} {fused[fusion]:.3f} vs {single} alone {singles[single]:.3f}: fusing photo and text "
                f"beats the best single modality by {fused[fusion] - singles[single]:+.3f}"), True
    return (f"{fusion} {fused[fusion]:.3f} does not beat {single} alone {singles[single]:.3f} here: "
            "one modality already carries the category"), False


def _search(ws: Shop, synthetic: bool, attributes: dict[str, str], console: Console) -> None:
    """Cross-modal search needs the text↔photo alignment learned from the catalog's own pairs."""
    step = "7. Search"
    try:
        ws.align(progress=False)
        ws.index(progress=False)
    except (KeyError, ValueError, FileNotFoundError) as error:
        skipped(console, step, f"no search index ({error})")
        return
    say(console, f"[bold]{step}[/] (hybrid: BM25 words + multilingual text vectors + text→photo alignment):",
        "signals name what found each product: lexical = the title's words, semantic = the text's meaning, "
        "crossmodal = the photo matched the words; [colour/material] is the product's true attributes")
    queries = SYNTHETIC_QUERIES if synthetic else ((_real_query(ws), None, None),)
    for query, colour, material in queries:
        hits = ws.search(query, k=5).hits
        console.print(f"   “{query}”:", highlight=False)
        for hit in hits:
            facts = _facts(attributes.get(hit.id, ""))
            truth = f" [{facts.get('colour', '?')}/{facts.get('material', '?')}]" if synthetic else ""
            console.print(f"     {hit.id} “{escape(hit.title)}”{escape(truth)} ({'+'.join(hit.signals)})",
                          highlight=False)
        if colour is not None:
            right = sum(_facts(attributes.get(h.id, "")).get("colour") == colour for h in hits)
            words = (colour, COLOURS[colour][1])  # the colour's English and Chinese names
            by_photo = [h.id for h in hits if _facts(attributes.get(h.id, "")).get("colour") == colour
                        and not any(w in h.title.lower() for w in words) and "crossmodal" in h.signals]
            console.print(f"     {right} of {len(hits)} are {colour} ({material} asked too)"
                          + (f"; {', '.join(by_photo)} found by the photo: the title does not say {colour}"
                             if by_photo else ""), highlight=False)


def _real_query(ws: Shop) -> str:
    """A query a real catalog can answer: the last level of its most common category."""
    categories = ws.read("products", ["category"])["category"]
    common = categories[categories != ""].value_counts()
    return str(common.index[0]).split(">")[-1].strip().lower() if len(common) else "black"


def _facts(attributes: str) -> dict[str, Any]:
    try:
        value = json.loads(attributes) if attributes else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def recommend_step(ws: Shop, titles: dict[str, str], console: Console, k: int = 20, shown: int = 3) -> None:
    """Recommendations with reasons, showing products carried by content (photos, titles), not only re-buys."""
    step = "8. Recommendations"
    events = ws.read("interactions", ["user_id", "kind"])
    if events.empty:
        skipped(console, step, "this catalog has no shopper events (purchases, views) to learn tastes from")
        return
    fitted = ws.train("recommend", model="content")
    from tuwen.recommend.store import Service

    service = Service(ws, fitted.name)
    busiest = [str(user) for user in events["user_id"].value_counts().index[:10]]
    for shopper in busiest:  # the first busy shopper with a recommendation carried by photo or text
        served = service.recommend(shopper, k=k, explain=True)
        if any(r["carried_by"] in ("image", "text") for r in served.reasons):
            break
    say(console, f"[bold]{step}[/] for shopper {shopper} ({fitted.name} model: a taste profile built from the "
        "photos and titles of what they bought and viewed):",
        "each product's reason names the product in their history it is closest to, and by which signal")
    repeats = [r for r in served.reasons if r["carried_by"] == "bought before"]
    fresh = [r for r in served.reasons if r["carried_by"] != "bought before"][:shown]
    console.print(f"   of the top {len(served.reasons)}, {len(repeats)} were bought before (repeat purchases); "
                  f"the first {len(fresh)} new to them:", highlight=False)
    for reason in fresh:
        console.print(f"   {reason['item']} “{escape(titles.get(reason['item'], ''))}” — {escape(reason['why'])}",
                      highlight=False)
    if not any(r["carried_by"] in ("image", "text") for r in fresh):
        console.print("   [yellow]none of these is carried by photo or text similarity[/] for this shopper")
    console.print(f"   profile: {escape(ws.profile(shopper).summary)}", highlight=False)
