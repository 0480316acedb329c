"""CLI commands for recommendations and shoppers: ``recommend``, ``profile``, ``segments`` and ``forget``.

``tuwen.cli.main`` adds them to the main Typer app with :func:`register`.
Training and comparing recommenders go through the shared ``tuwen train WS --task recommend --model NAME``
and ``tuwen evaluate WS --task recommend --models A,B`` (``cli_models`` calls into ``rec_train`` /
``rec_evaluate`` here); ``rec-train`` and ``rec-evaluate`` remain as hidden aliases for old scripts.
User mistakes end with one red line, exit 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from tuwen.choices import RECOMMENDERS
from tuwen.cli.common import WorkspaceArg, err, friendly, open_workspace, out

ModelOpt = Annotated[str | None, typer.Option("--model", help="Recommender name (default: the workspace's default "
                                              "model; see `tuwen train --help`).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (one line per shopper for --users).")]


def _blas_single_thread() -> None:
    """Scoring one shopper is a few small matrix-vector products: extra BLAS threads only add wake-up
    latency (measured 15.9 ms vs 0.3 ms per ALS shopper on a busy 2-core machine)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, "blas")
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
        pass


@friendly
def recommend(
    workspace: WorkspaceArg,
    user: Annotated[str | None, typer.Option(help="One shopper id.")] = None,
    users: Annotated[Path | None, typer.Option(help="File with one shopper id per line ('-' = stdin).")] = None,
    k: Annotated[int, typer.Option(help="How many products.")] = 12,
    model: ModelOpt = None,
    explain: Annotated[bool, typer.Option(help="Name the closest history product and the signal behind each.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Recommend products for a shopper (or a file of shoppers) from a trained recommender."""
    from tuwen.recommend.store import Service

    if (user is None) == (users is None):
        raise ValueError("give exactly one of --user ID or --users FILE")
    if k < 1:
        raise ValueError("--k must be at least 1")
    _blas_single_thread()
    service = Service(open_workspace(workspace), model)
    if user is not None:
        served = service.recommend(user, k, explain)
        if as_json:
            typer.echo(json.dumps(served.to_dict(), ensure_ascii=False))
            return
        _print_served(served, service)
        return
    lines = sys.stdin if str(users) == "-" else _read_lines(users)
    for line in lines:
        shopper = line.strip()
        if not shopper:
            continue
        served = service.recommend(shopper, k, explain)
        if as_json:
            typer.echo(json.dumps(served.to_dict(), ensure_ascii=False))
        else:
            typer.echo(f"{shopper}\t{' '.join(served.items)}" + (f"\t# {served.note}" if served.note else ""))


def _read_lines(path: Path | None) -> list[str]:
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{path}: no such file of shopper ids")
    return path.read_text(encoding="utf-8").splitlines()


def _print_served(served: Any, service: Any) -> None:
    products = service.workspace.read("products", ["id", "title", "category"]).set_index("id")
    table = Table(title=f"{served.user[:24]} · {served.model}" + (f" · {served.note}" if served.note else ""))
    table.add_column("#", justify="right")
    table.add_column("product")
    table.add_column("title")
    table.add_column("category")
    if served.reasons:
        table.add_column("why")
    for rank, item in enumerate(served.items, start=1):
        row = products.loc[item] if item in products.index else None
        cells = [str(rank), item, "" if row is None else str(row["title"]),
                 "(not in catalog)" if row is None else str(row["category"])]
        if served.reasons:
            cells.append(served.reasons[rank - 1]["why"])
        table.add_row(*cells)
    out.print(table)


@friendly
def rec_train(
    workspace: WorkspaceArg,
    model: Annotated[str, typer.Option("--model", help="ranker, content, vbpr, two_tower, als, bpr, itemknn, "
                                       "repurchase or popularity.")] = "ranker",
    params: Annotated[str | None, typer.Option(help="Model parameters as JSON, e.g. '{\"epochs\": 10}'.")] = None,
    default: Annotated[bool, typer.Option(help="Make it the workspace's default recommender.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Train a recommender on all the workspace's events and save it in artifacts/recommend/.

    Hidden alias of ``tuwen train WS --task recommend --model NAME`` (which calls this).
    """
    from tuwen.recommend.store import model_folder, train

    ws = open_workspace(workspace)
    fitted = train(ws, model, json.loads(params) if params else None, default=default)
    facts = {"model": fitted.name, "folder": str(model_folder(ws, fitted.name)), **fitted.meta}
    if as_json:
        typer.echo(json.dumps(facts, ensure_ascii=False, default=str))
        return
    out.print(f"trained [bold]{fitted.name}[/] in {fitted.meta['fit_seconds']:.1f} s on {fitted.meta['n_events']:,} "
              f"events, {fitted.meta['n_users']:,} shoppers, {fitted.meta['n_items']:,} products → {facts['folder']}")


@friendly
def rec_evaluate(
    workspace: WorkspaceArg,
    models: Annotated[str, typer.Option("--models", help="Comma separated recommenders to compare.")]
    = ",".join(RECOMMENDERS),
    test_days: Annotated[int, typer.Option(help="The last N days are the test window.")] = 7,
    k: Annotated[int, typer.Option(help="Cut-off of the metrics.")] = 12,
    seed: Annotated[int, typer.Option(help="Seed of every model and of the bootstrap.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Temporal split (last N days = test), fit each model on the rest, MAP/Recall/NDCG/HR@k with 95% CIs.

    Hidden alias of ``tuwen evaluate WS --task recommend --models A,B`` (which calls this). The work is
    :func:`tuwen.recommend.compare.compare`; this only prints it (``--json``: exactly its dict).
    """
    from tuwen.recommend.compare import compare

    _blas_single_thread()
    report = compare(open_workspace(workspace), models, test_days=test_days, k=k, seed=seed)
    if as_json:
        typer.echo(json.dumps(report, default=str))
        return
    for skipped in report["skipped"]:
        err.print(f"[yellow]skipped {skipped['model']}: {skipped['reason']}[/]")
    facts = report["split"]
    view = Table(title=f"test {facts['cut']}..{facts['test_end']} · {facts['scored_users']} shoppers · "
                       f"{facts['truth_pairs']} purchases ({facts['cold_pairs']} of never-bought products) · "
                       f"seed {seed}")
    for column in ("model", f"MAP@{k}", f"Recall@{k}", f"NDCG@{k}", f"HR@{k}", "coverage", "cold recall", "fit s",
                   "ms/shopper"):
        view.add_column(column, justify="left" if column == "model" else "right")
    for row in report["results"]:
        view.add_row(row["model"], *(f"{row[m]:.4f} [{row[m + '_low']:.4f}, {row[m + '_high']:.4f}]"
                                     for m in ("map", "recall", "ndcg", "hr")),
                     f"{row['coverage']:.3f}", f"{row['cold_recall']:.3f} ({row['cold_hits']}/{row['cold_total']})",
                     f"{row['fit_seconds'] or 0:.1f}", f"{row['ms_per_user']:.1f}")
    out.print(view)


@friendly
def profile(
    workspace: WorkspaceArg,
    user: Annotated[str, typer.Option(help="Shopper id.")],
    as_json: JsonOpt = False,
) -> None:
    """A shopper's interest profile: product types, colours, departments, price band, recency."""
    from tuwen.recommend.profiles import profile as build

    p = build(open_workspace(workspace), user)
    if as_json:
        typer.echo(json.dumps(p.to_dict(), ensure_ascii=False))
        return
    out.print(p.summary, highlight=False)
    table = Table(show_header=True)
    for column in ("product types", "colours", "departments"):
        table.add_column(column)
    rows = max(len(p.top_types), len(p.top_colours), len(p.top_departments))
    cell = lambda values, i: f"{values[i][0]} ({values[i][1]:.0%})" if i < len(values) else ""  # noqa: E731
    for i in range(rows):
        table.add_row(cell(p.top_types, i), cell(p.top_colours, i), cell(p.top_departments, i))
    if rows:
        out.print(table)


@friendly
def segments(
    workspace: WorkspaceArg,
    k: Annotated[int | None, typer.Option("--k", help="Number of segments (default: chosen by silhouette, 3-8).")]
    = None,
    seed: Annotated[int, typer.Option(help="k-means seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Cluster shoppers into labelled segments; saves a chart and the `segments` table."""
    from tuwen.recommend.profiles import segments as cluster

    result = cluster(open_workspace(workspace), k, seed)
    table = result.table()
    if as_json:
        typer.echo(json.dumps({"k": result.k, "silhouette": result.silhouette, "chart": str(result.chart),
                               "segments": table.to_dict(orient="records")}, ensure_ascii=False))
        return
    view = Table(title=f"{result.k} segments (silhouette {result.silhouette:.2f})")
    for column in ("segment", "label", "shoppers"):
        view.add_column(column, justify="right" if column != "label" else "left")
    for row in table.itertuples():
        view.add_row(str(row.segment), row.label, f"{row.shoppers:,}")
    out.print(view)
    out.print(f"chart: {result.chart}")


@friendly
def forget(
    workspace: WorkspaceArg,
    user: Annotated[str, typer.Option(help="Shopper id (the pseudonym, if ids were pseudonymised).")],
    as_json: JsonOpt = False,
) -> None:
    """Remove a shopper's interactions, reviews, profile and segment; scrub them from saved recommenders."""
    from tuwen.recommend.profiles import forget as erase

    report = erase(open_workspace(workspace), user)
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    if not report["found"]:
        out.print(f"nothing of {user} in {workspace} (already forgotten?)")
        return
    removed = ", ".join(f"{n} {t}" for t, n in report["rows_removed"].items()) or "no table rows"
    out.print(f"forgot {user}: removed {removed}; old table versions deleted")
    if report["models_stale"]:
        out.print(f"scrubbed and marked stale (retrain with `tuwen train {workspace} --task recommend`): "
                  + ", ".join(report["models_stale"]))
    if report["other_artifacts_to_retrain"]:
        out.print("other trained artifacts that may have seen this shopper (retrain them): "
                  + ", ".join(report["other_artifacts_to_retrain"]))


def register(app: typer.Typer) -> None:
    """Add these commands to the main app; ``tuwen.cli.main`` calls it once (importing this module adds nothing)."""
    app.command()(recommend)
    app.command("rec-train", hidden=True)(rec_train)
    app.command("rec-evaluate", hidden=True)(rec_evaluate)
    app.command()(profile)
    app.command()(segments)
    app.command()(forget)
