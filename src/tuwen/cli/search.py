"""`tuwen align`, `tuwen index`, `tuwen search` and `tuwen similar`; :func:`register` adds them to the app.

They are thin: argument parsing and printing only; :mod:`tuwen.search` and :mod:`tuwen.search.align` do the work,
so the Python API and the command line give the same answers. ``--json`` output is one JSON object per
query (one line each in batch mode) for scripts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tuwen.choices import DEFAULT_IMAGE_ENCODERS, DEFAULT_TEXT_ENCODER, SEARCH_IMAGE_ENCODER
from tuwen.cli.common import WorkspaceArg, err, friendly, open_workspace, out

if TYPE_CHECKING:
    from tuwen.shop import Shop


def _open(workspace: Path) -> Shop:
    return open_workspace(workspace)


@friendly
def align(
    workspace: WorkspaceArg,
    text_encoder: Annotated[str, typer.Option(help="Text features to align (must be embedded).")] \
    = DEFAULT_TEXT_ENCODER,
    image_encoder: Annotated[str, typer.Option(help="Photo features to align; a+b joins several (a CNN must be "
                                               "embedded first; the colour histogram is computed if missing).")]
    = DEFAULT_IMAGE_ENCODERS,
    fields: Annotated[str, typer.Option(help="Text fields used as views of each photo, comma separated.")]
    = "title,description",
    epochs: Annotated[int, typer.Option(min=1, max=1000, help="Training epochs.")] = 30,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    clip: Annotated[Path | None, typer.Option(help="A local CLIP checkpoint folder: use its towers zero-shot "
                                              "instead of training.")] = None,
    also: Annotated[list[Path] | None, typer.Option("--also", help="Another workspace whose (text, photo) pairs "
                                                    "join the training (repeatable); helps when this catalog's "
                                                    "names rarely say colour or type.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Learn the text↔photo alignment that cross-modal search uses (contrastive InfoNCE + CCA on stored vectors)."""
    from tuwen.search.align import AlignConfig, align_workspace

    ws = _open(workspace)
    config = AlignConfig(epochs=epochs, seed=seed)
    report = align_workspace(ws, text_encoder, image_encoder, tuple(f.strip() for f in fields.split(",") if f.strip()),
                             config, clip=clip, progress=not as_json, also=[_open(p) for p in also or []])
    _print_report(report, "alignment", as_json)
    if not as_json:
        err.print("next: `tuwen index WS` to put the aligned photo vectors into the search index")


@friendly
def index(
    workspace: WorkspaceArg,
    text_encoder: Annotated[str, typer.Option(help="Text vectors for semantic search.")] = DEFAULT_TEXT_ENCODER,
    image_encoder: Annotated[str, typer.Option(help="Photo vectors for image search.")] = SEARCH_IMAGE_ENCODER,
    fields: Annotated[str, typer.Option(help="Text fields for full-text (BM25) search, comma separated.")]
    = "title,description,ocr",
    ann: Annotated[str, typer.Option(help="ANN vector indexes: auto (from --ann-threshold products on), on, off.")]
    = "auto",
    ann_threshold: Annotated[int, typer.Option(min=1, help="Catalog size from which 'auto' builds ANN indexes.")]
    = 50_000,
    learn_weights: Annotated[bool, typer.Option(help="Fit the hybrid fusion weights on pseudo-queries from the "
                                                "catalog's category names.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Build or update the search index (BM25 words, vectors, ANN); only changed products are rewritten."""
    from tuwen.search import IndexSettings, build_index

    if ann not in ("auto", "on", "off"):
        raise ValueError(f"--ann must be auto, on or off, not {ann!r}")
    settings = IndexSettings(text_encoder=text_encoder, image_encoder=image_encoder,
                             fields=tuple(f.strip() for f in fields.split(",") if f.strip()), ann=ann,
                             ann_threshold=ann_threshold)
    report = build_index(_open(workspace), settings, progress=not as_json, learn=learn_weights)
    _print_report(report, "search index", as_json)


def _print_report(report: dict[str, Any], title: str, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False, default=str))
        return
    table = Table(title=title, show_header=False)
    for key, value in report.items():
        table.add_row(key.replace("_", " "), json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list)
                      else str(value))
    out.print(table)


def _print_result(result: Any, shown_facets: int = 8) -> None:
    header = result.query or result.image or ""
    table = Table(title=f"{header} · {result.mode}{' · ' + result.fusion if result.fusion else ''}", show_lines=False)
    for column, justify in (("#", "right"), ("id", "left"), ("score", "right"), ("title", "left"),
                            ("price", "right"), ("category", "left"), ("signals", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for rank, hit in enumerate(result.hits, 1):
        signals = " ".join(f"{name}#{info['rank']}" if "rank" in info else name for name, info in hit.signals.items())
        terms = hit.signals.get("lexical", {}).get("terms")
        if terms:
            signals += f" [{' '.join(terms)}]"
        table.add_row(str(rank), hit.id, f"{hit.score:.4f}", hit.title, "" if hit.price is None else f"{hit.price:g}",
                      hit.category, signals)
    out.print(table)
    if not result.hits:
        err.print("no products matched")
    for name, counts in result.facets.items():
        if counts:
            items = list(counts.items())[:shown_facets]
            out.print(f"[bold]{name}[/]: " + ", ".join(f"{value} ({n})" for value, n in items), highlight=False)
    out.print(f"[dim]{result.timings.get('total', 0):.1f} ms[/]")


def _facet_list(facets: str | None) -> list[str] | None:
    return None if facets is None else [f.strip() for f in facets.split(",") if f.strip()]


@friendly
def search(
    workspace: WorkspaceArg,
    query: Annotated[str | None, typer.Argument(help="What to look for, in any language.")] = None,
    image: Annotated[Path | None, typer.Option(help="A photo to search by (alone or with words).")] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="How many products to return.")] = 10,
    where: Annotated[str | None, typer.Option(help="SQL filter, e.g. \"price < 500 AND category LIKE 'Apparel%'\"; "
                                              "attribute keys are columns (colour_group_name = 'Black').")] = None,
    mode: Annotated[str, typer.Option(help="hybrid, lexical, semantic, crossmodal or image.")] = "hybrid",
    fusion: Annotated[str, typer.Option(help="How hybrid combines signals: auto (learnt weights when fitted, "
                                        "else rrf), rrf or weighted.")] = "auto",
    facets: Annotated[str | None, typer.Option(help="Facet counts to show, comma separated (category, price, "
                                               "attribute keys).")] = None,
    queries: Annotated[Path | None, typer.Option(help="Batch: a file with one query per line (text, or JSON with "
                                                 "a \"query\" field).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (one line per query).")] = False,
) -> None:
    """Find products by words (English, 中文), by photo, or both."""
    from tuwen.search import engine_for, iter_query_file

    ws = _open(workspace)
    engine = engine_for(ws)
    facet_names = _facet_list(facets)
    if queries is not None:
        if query is not None or image is not None:
            raise ValueError("give either a QUERY / --image or --queries FILE, not both")
        for item in iter_query_file(queries):
            result = engine.search(item.get("query"), image=item.get("image"), mode=item.get("mode", mode),
                                   k=int(item.get("k", k)), where=item.get("where", where), fusion=fusion,
                                   facets=facet_names)
            if as_json:
                typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
            else:
                _print_result(result)
        return
    if image is not None and mode == "hybrid" and not query:
        mode = "image"
    result = engine.search(query, image=image, mode=mode, k=k, where=where, fusion=fusion, facets=facet_names)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_result(result)


@friendly
def similar(
    workspace: WorkspaceArg,
    product_id: Annotated[str, typer.Argument(help="The product to find look-alikes of.")],
    k: Annotated[int, typer.Option("--k", "-k", help="How many products to return.")] = 10,
    where: Annotated[str | None, typer.Option(help="SQL filter on the results.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """"More like this": products nearest to one product's fused text + photo embedding."""
    from tuwen.search import engine_for

    result = engine_for(_open(workspace)).similar(product_id, k=k, where=where)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False))
    else:
        _print_result(result)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app; ``tuwen.cli.main`` calls it once (importing this module adds nothing)."""
    app.command()(align)
    app.command()(index)
    app.command()(search)
    app.command()(similar)
