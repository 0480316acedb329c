"""``tuwen ask``: answer a shopper's question from what the shop knows, or find the products it asks for.

Thin like the other command modules: parsing and printing here, the work in :mod:`tuwen.service.ask` (the Python
``Shop.ask`` and ``POST /api/ask`` call the same function, so all three give the same answer).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuwen.cli.common import WorkspaceArg, err, friendly, open_workspace, out


def _print_answer(answer: dict[str, Any]) -> None:
    if answer.get("route") == "search":
        result = answer["search"]
        implied = ", ".join(f"{k}: {v}" for k, v in result.get("implied", {}).items()) or "none"
        out.print(f"[bold]no product named[/]: searched for {result.get('words') or '(the photo)'!r} with filters "
                  f"{implied}{' (relaxed: nothing matched them all)' if result.get('relaxed') else ''}",
                  highlight=False)
        table = Table()
        for column in ("#", "id", "title", "price", "category"):
            table.add_column(column)
        for rank, hit in enumerate(result["hits"], 1):
            table.add_row(str(rank), hit["id"], hit.get("title") or "", "" if hit.get("price") is None
                          else f"{hit['price']:g}", hit.get("category") or "")
        out.print(table)
    else:
        verdict = answer.get("answer")
        shown = verdict.upper() if verdict else "(open question: see the evidence)"
        p_yes = f" · P(yes) {answer['p_yes']:.2f}" if answer.get("p_yes") is not None else ""
        out.print(f"[bold]{answer['product']}[/] · {answer['question_type']} · answer: [bold]{shown}[/]{p_yes}",
                  highlight=False)
        table = Table(title="evidence")
        for column in ("#", "source", "id", "score", "text"):
            table.add_column(column)
        for rank, item in enumerate(answer["evidence"], 1):
            text = (f"Q: {item['question']} A: " if item.get("question") else "") + item["text"]
            other = "" if item.get("product_id") == answer["product"] else f" ({item.get('product_id')})"
            table.add_row(str(rank), item["source"] + other, item["id"], f"{item['score']:.3f}", text)
        out.print(table)
    if answer.get("intent"):
        routed = answer["intent"]
        out.print(f"routed: {routed.get('prediction')} · needs a person: {routed.get('needs_person')}",
                  highlight=False)


@friendly
def ask(
    workspace: WorkspaceArg,
    question: Annotated[str | None, typer.Argument(help="The shopper's question, in any language.")] = None,
    product: Annotated[str | None, typer.Option(help="The product it is about (else: a product id named in the "
                                                "question, or product search).")] = None,
    image: Annotated[Path | None, typer.Option(help="A photo: \"this one but in blue?\" searches by it.")] = None,
    file: Annotated[Path | None, typer.Option(help="Answer every question of this folder (laid out like --preset's "
                                              "data set), one JSON line each, in input order.")] = None,
    preset: Annotated[str, typer.Option(help="The folder's layout, with --file.")] = "amazon-qa",
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=50, help="Pieces of evidence to quote.")] = 5,
    retrain: Annotated[bool, typer.Option("--retrain", help="Retrain the answerer on the workspace's Q&A first "
                                          "(it trains by itself the first time).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one line per question).")] = False,
) -> None:
    """Answer a product question (yes / no / unsure, with the evidence quoted), or search for what it asks for."""
    from tuwen.service.ask import answerer_for, ask_file

    ws = open_workspace(workspace)
    if retrain:
        answerer_for(ws, retrain=True, progress=True)
    if file is not None:
        if question is not None or image is not None or product is not None:
            raise ValueError("give either a QUESTION (with --product / --image) or --file DIR, not both")
        for answered in ask_file(ws, file, preset, k, progress=not as_json):
            if as_json:
                typer.echo(json.dumps(answered, ensure_ascii=False))
            else:
                out.print(f"{answered['id']} · {answered['asin']} · {answered['answer']} · {answered['question']}",
                          highlight=False, markup=False)
        return
    if question is None and image is None:
        if retrain:
            return
        raise ValueError("ask something: tuwen ask WS \"QUESTION\" [--product ID] [--image PATH], or --file DIR")
    if image is not None and not image.is_file():
        raise FileNotFoundError(f"{image}: image file not found")
    answerer_for(ws, progress=not as_json)  # trains now, with a progress bar, if the shop has Q&A and none is saved
    answer = ws.ask(question or "", product=product, image=image, k=k)
    if as_json:
        typer.echo(json.dumps(answer, ensure_ascii=False, default=str))
    else:
        _print_answer(answer)
        if answer.get("route") == "search" and not answer["search"]["hits"]:
            err.print("no products matched")


def register(app: typer.Typer) -> None:
    """Add this command to the main app; ``tuwen.cli.main`` calls it once (importing this module adds nothing)."""
    app.command()(ask)
