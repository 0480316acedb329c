"""The `tuwen` command line: a thin Typer layer over :class:`tuwen.Workspace`.

User mistakes (a missing file, a bad mapping, rejected rows under --strict, an unknown
encoder) end with one readable red line and exit code 2 — never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from tuwen.choices import DEFAULT_IMAGE_ENCODERS, DEFAULT_TEXT_ENCODER, PRESET_NAMES
from tuwen.cli import insights as cli_insights
from tuwen.cli import models as cli_models
from tuwen.cli import recommend as cli_recommend
from tuwen.cli import search as cli_search
from tuwen.cli import serve as cli_serve
from tuwen.cli import service as cli_service
from tuwen.cli.common import WorkspaceArg, err, friendly, open_workspace, out

if TYPE_CHECKING:
    from tuwen.store.catalog import Batch

__all__ = ["WorkspaceArg", "app", "err", "friendly", "main", "out"]

app = typer.Typer(help="tuwen (图文): image + text learning for e-commerce catalogs.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)


def _print_batch(batch: Batch, shown: int = 20) -> None:
    table = Table(title="ingested", show_header=True)
    summary = batch.summary()
    keys = [k for k in ("products", "interactions", "reviews", "questions", "messages", "rejects", "missing_images")
            if k in summary]
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    table.add_row(*(f"{summary[k]:,}" for k in keys))
    out.print(table)
    if batch.rejects:
        err.print(f"[yellow]{len(batch.rejects)} row(s) rejected[/] (good rows went in; --strict makes this fatal):")
        for reject in batch.rejects[:shown]:
            err.print(f"  {reject}", highlight=False, markup=False)
        if len(batch.rejects) > shown:
            err.print(f"  … {len(batch.rejects) - shown} more; all are in the workspace's rejects table")
    if batch.missing_images:
        err.print(f"{batch.missing_images} referenced photo file(s) do not exist: those products went in without "
                  "a photo")
    if batch.forgotten:
        err.print(f"{batch.forgotten} row(s) of forgotten shoppers dropped (`tuwen forget` keeps them out)",
                  highlight=False, markup=False)


@app.command()
@friendly
def ingest(
    workspace: WorkspaceArg,
    path: Annotated[Path | None, typer.Argument(help="The data set folder for --preset.")] = None,
    preset: Annotated[str | None, typer.Option(help=f"One of: {', '.join(PRESET_NAMES)}.")] = None,
    catalog: Annotated[Path | None, typer.Option(help="Your products file (CSV, TSV, JSONL, JSON, Parquet).")] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help="Product field=column[,column] (id, title, "
                                                   "description, image, category, price, currency, attributes).")]
    = None,
    interactions: Annotated[Path | None, typer.Option(help="Shopper events file.")] = None,
    interaction_map: Annotated[list[str] | None, typer.Option(help="Event field=column (user_id, product_id, "
                                                              "timestamp, kind, value).")] = None,
    reviews: Annotated[Path | None, typer.Option(help="Reviews file.")] = None,
    review_map: Annotated[list[str] | None, typer.Option(help="Review field=column (id, product_id, user_id, "
                                                         "rating, title, text, timestamp, image).")] = None,
    config: Annotated[Path | None, typer.Option(help="A tuwen.toml describing files and mappings.")] = None,
    image_root: Annotated[Path | None, typer.Option(help="Folder image paths are relative to "
                                                    "(default: the catalog file's folder).")] = None,
    currency: Annotated[str, typer.Option(help="Currency of the prices, when the file has no column for it.")] = "",
    strict: Annotated[bool, typer.Option(help="Any rejected row aborts the ingest; nothing is written.")] = False,
    products: Annotated[int | None, typer.Option(help="--preset synthetic: generate (or reuse) a catalog at this "
                                                 "scale into PATH first (vectorised; see --shoppers, --purchases).")]
    = None,
    shoppers: Annotated[int, typer.Option(help="--products: how many shoppers.")] = 1000,
    purchases: Annotated[int, typer.Option(help="--products: how many purchases.")] = 10_000,
    seed: Annotated[int, typer.Option(help="--products: the generator's seed.")] = 0,
) -> None:
    """Load a catalog into the workspace: upsert by id, atomically, with row-level rejects."""
    from tuwen.ingest.readers import InputFileError  # pandas: loaded only when a command runs

    if products is not None:
        if preset != "synthetic":
            raise InputFileError("--products generates a catalog for --preset synthetic only")
        from tuwen.ingest.synthetic.scale import generate_scale_catalog

        path = path or Path(workspace).parent / f"synthetic-{products}-{shoppers}-{purchases}-s{seed}"
        err.print(f"synthetic catalog: {path} (generated once, then reused)")
        generate_scale_catalog(path, products, shoppers, purchases, seed=seed)

    if preset is None and catalog is None and interactions is None and reviews is None and config is None:
        raise InputFileError("say what to ingest: --preset NAME PATH, --catalog FILE, --interactions, --reviews "
                             "or --config tuwen.toml")
    if preset is not None and path is None:
        raise InputFileError(f"--preset {preset} needs the data set folder: tuwen ingest WS --preset {preset} PATH")
    ws = open_workspace(workspace, create=True)
    batch = ws.ingest(preset, path, catalog=catalog, mapping=map_, interactions=interactions,
                      interaction_mapping=interaction_map, reviews=reviews, review_mapping=review_map, config=config,
                      image_root=image_root, currency=currency, strict=strict)
    _print_batch(batch)


@app.command()
@friendly
def vectors(
    workspace: WorkspaceArg,
    file: Annotated[Path, typer.Argument(help="Vectors keyed by product id: .parquet (id + vector columns), .npz "
                                         "(arrays id, vector) or .npy (with --ids).")],
    name: Annotated[str, typer.Option(help="Name the vectors go under, as an encoder's (vec__NAME__FIELD).")],
    field: Annotated[str, typer.Option(help="image, title or description: what the vectors describe.")] = "image",
    ids: Annotated[Path | None, typer.Option(help="With a .npy file: product ids, one per line, in row order.")]
    = None,
    id_column: Annotated[str, typer.Option(help="Parquet: the product id column.")] = "id",
    vector_column: Annotated[str, typer.Option(help="Parquet: the vector column.")] = "vector",
    strict: Annotated[bool, typer.Option(help="Any rejected row aborts; nothing is written.")] = False,
) -> None:
    """Bring your own vectors: ingest precomputed photo/text vectors into the tables embed writes."""
    from tuwen.encoders.byo import ingest_vectors

    report = ingest_vectors(open_workspace(workspace), file, name, field, ids=ids, id_column=id_column,
                            vector_column=vector_column, strict=strict)
    out.print(f"{report['written']:,} vectors of dimension {report['dim']} → {report['table']}")
    rejects = report["rejects"]
    if rejects:
        err.print(f"[yellow]{len(rejects)} row(s) rejected[/] (good rows went in; --strict makes this fatal):")
        for reject in rejects[:20]:
            err.print(f"  {reject}", highlight=False, markup=False)


@app.command()
@friendly
def embed(
    workspace: WorkspaceArg,
    address: Annotated[str | None, typer.Argument(
        help="With --ray: the Ray cluster's address (auto, HOST:PORT, ray://HOST:PORT); none starts Ray here.",
        show_default=False)] = None,
    image_encoder: Annotated[str, typer.Option(
        help="Image encoder name, several joined by +, CLIP folder, or 'none'.")] = DEFAULT_IMAGE_ENCODERS,
    text_encoder: Annotated[str, typer.Option(help="Text encoder name, CLIP folder, or 'none'.")]
    = DEFAULT_TEXT_ENCODER,
    ocr: Annotated[bool, typer.Option(help="Also read text printed on photos (OCR) and embed it.")] = False,
    fields: Annotated[str, typer.Option(help="Product text fields to embed, comma separated.")] = "title,description",
    ray: Annotated[bool, typer.Option(help="Run the encoders as Ray actors (`tuwen embed WS --ray [ADDRESS]`); "
                                      "needs the `ray` extra.")] = False,
) -> None:
    """Compute feature vectors; only new or changed products are embedded (cached by content)."""
    image = None if image_encoder == "none" else image_encoder
    text = None if text_encoder == "none" else text_encoder
    field_names = tuple(f.strip() for f in fields.split(",") if f.strip())
    if address is not None and not ray:
        raise ValueError(f"{address!r}: a cluster address goes with --ray (tuwen embed WS --ray [ADDRESS])")
    if not ray:
        report = open_workspace(workspace).embed(image, text, ocr, field_names)
    else:
        from tuwen.distributed.cluster import ray_session  # Ray: loaded only when asked for
        from tuwen.distributed.embed import embed_workspace_ray

        try:  # Ray first, the workspace (LanceDB) after: its handles must not cross a fork
            with ray_session(address):
                report = embed_workspace_ray(open_workspace(workspace), image, text, field_names, ocr=ocr)
        except ImportError as error:  # the optional extra is missing: say which
            raise ValueError(str(error)) from error
    table = Table(title="embedded")
    table.add_column("encoder / field")
    table.add_column("embedded now", justify="right")
    table.add_column("from cache", justify="right")
    for key, counts in report.items():
        done = counts.get("embedded", counts.get("read", 0))
        table.add_row(key, f"{done:,}", f"{counts['cached']:,}")
    out.print(table)


@app.command()
@friendly
def info(
    workspace: WorkspaceArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Counts of products, photos, events, reviews, rejects and vectors per encoder."""
    facts = open_workspace(workspace).info()
    if as_json:
        typer.echo(json.dumps(facts, ensure_ascii=False))
        return
    table = Table(title=str(workspace), show_header=False)
    for key, value in facts.items():
        if isinstance(value, dict):
            for sub, n in value.items():
                table.add_row(f"{key}: {sub}", f"{n:,}")
        elif key not in {"workspace"}:
            table.add_row(key.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    out.print(table)


@app.command()
@friendly
def demo(
    preset: Annotated[str | None, typer.Option(help="Use a real data set instead of the synthetic one.")] = None,
    path: Annotated[Path | None, typer.Option(help="The real data set's folder (with --preset).")] = None,
    workspace: Annotated[Path | None, typer.Option(help="Where the demo workspace goes (default: demo-workspace "
                                                   "for the synthetic catalog, demo-PRESET for a real one); a "
                                                   "workspace holding another catalog is refused.")] = None,
    products: Annotated[int, typer.Option(help="Synthetic products to generate.")] = 300,
) -> None:
    """Run everything tuwen can do so far, end to end, and say what it did."""
    from tuwen.cli.demo import default_workspace, run_demo

    run_demo(workspace or default_workspace(preset), preset, path, products, out)


# The command groups that live in their own modules, added explicitly (importing them registers nothing).
for _module in (cli_insights, cli_models, cli_recommend, cli_search, cli_serve, cli_service):
    _module.register(app)


def main() -> None:
    """``python -m tuwen.cli``: the same as the ``tuwen`` script."""
    app(prog_name="tuwen")


if __name__ == "__main__":
    main()
