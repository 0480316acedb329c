"""``tuwen insights``: what shoppers praise and complain about, per product and per category.

Insights are computed once from the workspace's reviews and stored (the ``insights`` table); this command refreshes
them when the reviews changed since the last run (or with ``--refresh``) and prints the stored rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuwen.cli.common import WorkspaceArg, err, friendly, open_workspace, out


def _example(block: dict[str, Any], side: str) -> str:
    examples = block.get("examples", {}).get(side) or []
    return f"“{examples[0]['text']}”" if examples else ""


def _print_block(block: dict[str, Any] | None, title: str) -> None:
    if block is None:
        out.print(f"{title}: no reviews")
        return
    summary = block.get("summary") or {}
    stars = f", mean rating {summary['rating']:.2f}" if summary.get("rating") is not None else ""
    recommends = f", {summary['recommended']:.0%} recommend" if summary.get("recommended") is not None else ""
    out.print(f"[bold]{title}[/]: {block['reviews']:,} reviews{stars}{recommends}; praised: "
              f"{', '.join(block['praised']) or '—'}; complaints: {', '.join(block['complaints']) or '—'}",
              highlight=False)
    if not block["aspects"]:
        return
    table = Table(show_header=True)
    for name, justify in (("aspect", "left"), ("reviews naming it", "right"), ("share", "right"),
                          ("praise", "right"), ("complaints", "right"), ("net", "right"), ("praise, e.g.", "left"),
                          ("complaint, e.g.", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for aspect in block["aspects"]:
        table.add_row(aspect["aspect"], f"{aspect['mentions']:,}", f"{aspect['share']:.0%}", f"{aspect['positive']:,}",
                      f"{aspect['negative']:,}", f"{aspect['net']:+.2f}", _example(aspect, "positive"),
                      _example(aspect, "negative"))
    out.print(table)


@friendly
def insights(
    workspace: WorkspaceArg,
    product: Annotated[str | None, typer.Option(help="A product id: its aspects, counts and example sentences.")]
    = None,
    category: Annotated[str | None, typer.Option(help="A category (a full path, or its last part when that is "
                                                 "unique); default with --product: the product's own category.")]
    = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Recompute from the reviews now (otherwise only when "
                                          "the reviews changed since the last run).")] = False,
    auto: Annotated[bool, typer.Option("--auto/--no-auto", help="Recompute when the reviews changed since the last "
                                       "run (--no-auto: show what is stored).")] = True,
    expand: Annotated[bool, typer.Option("--expand/--seeds-only", help="With --refresh: add the aspect words "
                                         "learnt from the reviews' word vectors to the seed words (measured: no "
                                         "better on the women's reviews; off by default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Aspect opinions (fit, fabric, colour, quality, price, delivery …; 质量, 尺码, 物流 …) from review clauses, with
    their sentiment, per product and per category; computed once and stored in the workspace."""
    from tuwen.service import insights as service

    if product is None and category is None and not refresh:
        raise ValueError("say what to show: --product ID and/or --category C (or --refresh to recompute only)")
    ws = open_workspace(Path(workspace))
    state = service.state(ws)
    report = None
    if refresh or (auto and state["stale"]):
        if not refresh:
            err.print("insights are older than the reviews (or not computed yet): computing them now…")
        report = service.refresh(ws, expand_lexicon=expand, progress=not as_json)
    if product is None and category is None:
        assert report is not None
        shown = {k: v for k, v in report.items() if k != "learnt_words"}
        if as_json:
            typer.echo(json.dumps(report, ensure_ascii=False))
        else:
            out.print(f"insights refreshed: {json.dumps(shown, ensure_ascii=False)}", highlight=False)
        return
    answer = ws.insights(product=product, category=category, refresh=False)
    if as_json:
        typer.echo(json.dumps(answer, ensure_ascii=False))
        return
    if answer["state"].get("stale"):
        err.print("[yellow]note:[/] the reviews changed since these insights were computed (--refresh)")
    if "product" in answer:
        _print_block(answer["product"], f"product {product}")
    if answer.get("category"):
        _print_block(answer["category"], f"category {answer['category']['key']}")


def register(app: typer.Typer) -> None:
    """Add the command to the main app; ``tuwen.cli.main`` calls it once."""
    app.command()(insights)
