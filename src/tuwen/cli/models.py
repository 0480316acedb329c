"""CLI commands for models: ``tuwen train``, ``tuwen evaluate`` (modality ablation) and ``tuwen predict``.

``tuwen.cli.main`` adds them to the main Typer app with :func:`register`.
User mistakes end with one red line and exit code 2, through :func:`tuwen.cli.common.friendly`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tuwen.choices import FUSIONS, RECOMMENDERS, TASKS
from tuwen.cli.common import WorkspaceArg, friendly, open_workspace, out

if TYPE_CHECKING:
    import pandas as pd

TaskOpt = Annotated[str, typer.Option("--task", help=f"One of: {', '.join(TASKS)}, recommend.")]
RecommenderOpt = Annotated[str | None, typer.Option("--model", help="--task recommend: the recommender (ranker, "
                                                   "content, vbpr, two_tower, als, bpr, itemknn, repurchase, "
                                                   "popularity); default ranker.")]
RecommendersOpt = Annotated[str | None, typer.Option("--models", help="--task recommend: recommenders to compare, "
                                                     "comma separated.")]
TargetOpt = Annotated[str | None, typer.Option(help="Column or attribute to predict (classify: e.g. articleType, "
                                               "category:1; tag: comma separated; price: price; review: rating).")]
TextFieldsOpt = Annotated[str | None, typer.Option(help="Text fields, comma separated (title, description, ocr, or a "
                                                   "source column such as prod_name,detail_desc).")]
ModalitiesOpt = Annotated[str, typer.Option(help="Modalities to use, comma separated: text, image, tabular.")]
TabularOpt = Annotated[str, typer.Option(help="Tabular columns (price or attributes such as brand), comma separated; "
                                         "used when --modalities includes tabular.")]
EncodersOpt = Annotated[str | None, typer.Option(help="Only these cached encoders (default: all cached ones). "
                                                 "train: 'trainable' (or trainable:cnn) trains a text GRU (CNN) and "
                                                 "a 64 px image CNN from scratch; 'finetune' (finetune:N) trains "
                                                 "MobileNetV2's last N=3 blocks.")]


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


EnsembleOpt = Annotated[int | None, typer.Option(help="Networks averaged per model (0: 5 for small catalogs, 3 "
                                                 "for medium, 1 from 4,000 training items; end-to-end: 1).")]


QualityOpt = Annotated[str, typer.Option(help="best: every choice (members, epochs, L2 strength, the stack) made on "
                                         "5-fold out-of-fold predictions; fast: one validation part decides; auto: "
                                         "best below 4,000 labelled rows.")]


def train_config(epochs: int | None, seed: int, progress: bool = True, ensemble: int | None = None,
            encoders: str | None = None, quality: str | None = None, refit: bool | None = None,
            folds: int | None = None) -> Any:
    """The TrainConfig of a command: its mode's defaults (end-to-end ones for ``--encoders trainable`` /
    ``finetune``), then only the options the user gave, so an explicit ``--epochs 40`` stays 40."""
    from tuwen.predict.endtoend import parse_mode
    from tuwen.predict.training.config import TrainConfig

    given = {k: v for k, v in {"epochs": epochs or None, "ensemble": ensemble, "quality": quality,
                               "refit": refit, "folds": folds}.items() if v is not None}
    endtoend = parse_mode(_split(encoders))
    if endtoend is None:
        return TrainConfig(seed=seed, progress=progress, **given)
    from tuwen.predict.endtoend.model import endtoend_config

    return endtoend_config(endtoend["mode"], seed=seed, progress=progress, **given)


@friendly
def train(
    workspace: WorkspaceArg,
    address: Annotated[str | None, typer.Argument(
        help="With --ray: the Ray cluster's address (auto, HOST:PORT, ray://HOST:PORT); none starts Ray here.",
        show_default=False)] = None,
    task: TaskOpt = "classify",
    target: TargetOpt = None,
    text_fields: TextFieldsOpt = None,
    modalities: ModalitiesOpt = "text,image",
    tabular: TabularOpt = "",
    encoders: EncodersOpt = None,
    fusion: Annotated[str, typer.Option(help=f"One of: {', '.join(FUSIONS)}.")] = "gated",
    name: Annotated[str | None, typer.Option(help="Model name (folder under WS/artifacts/models).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the split and the training.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Most epochs (early stopping usually ends sooner).")] = None,
    ensemble: EnsembleOpt = None,
    quality: QualityOpt = "auto",
    refit: Annotated[bool, typer.Option(help="Learn from every labelled row once the choices are made (no test part "
                                        "is held back; `tuwen evaluate --model` then reports the cross-fitted "
                                        "scores).")] = True,
    folds: Annotated[int, typer.Option(help="Cross-fitting folds (--quality best).")] = 5,
    recommender: RecommenderOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the model's summary as JSON.")] = False,
    ray: Annotated[bool, typer.Option(help="Run the training jobs (folds, members, refits) as Ray tasks (`tuwen "
                                      "train WS --ray [ADDRESS]`); needs the `ray` extra.")] = False,
) -> None:
    """Train a model on the workspace's stored features and save it (weights, config, label encoders).

    ``--task recommend`` trains a recommender on all purchases instead (``--model`` names it).
    """
    if address is not None and not ray:
        raise ValueError(f"{address!r}: a cluster address goes with --ray (tuwen train WS --ray [ADDRESS])")
    if ray and task == "recommend":
        raise ValueError("--ray trains product models (classify, tag, price, review); a recommender trains here")
    if task == "recommend":
        from tuwen.cli.recommend import rec_train

        rec_train(workspace, model=recommender or "ranker", params=None, default=True, as_json=as_json)
        return
    if recommender:
        raise ValueError("--model names a recommender: it goes with --task recommend (use --name for a model name)")
    if fusion not in FUSIONS and not fusion.startswith("late:"):
        raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
    options: dict[str, Any] = {"name": name, "text_fields": _split(text_fields) or None,
                               "modalities": _split(modalities), "tabular": _split(tabular),
                               "encoders": _split(encoders) or None, "fusion": fusion, "seed": seed,
                               "config": train_config(epochs, seed, not as_json, ensemble, encoders, quality, refit,
                                                      folds)}
    if not ray:
        from tuwen.predict.registry import train_model

        model = train_model(open_workspace(workspace), task, target, **options)
    else:
        from tuwen.distributed.cluster import ray_session  # Ray: loaded only when asked for

        try:  # Ray's processes first, LanceDB after (imported, then opened): its state must not cross a fork
            with ray_session(address):
                from tuwen.distributed.train import train_ray

                model = train_ray(open_workspace(workspace), task, target, **options)
        except ImportError as error:  # the optional extra is missing: say which
            raise ValueError(str(error)) from error
    summary = {k: model.info.get(k) for k in ("name", "folder", "split", "inputs", "best_epoch", "seconds", "metrics",
                                              "quality", "fitted_rows", "wall_seconds")}
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    table = Table(title=f"model {summary['name']} ({task}, {fusion})")
    table.add_column("part")
    parts = [p for p in ("crossfit", "val", "test") if summary["metrics"].get(p)]
    keys = [k for k in summary["metrics"][parts[0]] if k != "n" and "/" not in k] if parts else []
    for key in keys:
        table.add_column(key, justify="right")
    for part in parts:
        table.add_row(part, *(f"{summary['metrics'][part].get(k, float('nan')):.4f}" for k in keys))
    out.print(table)
    split = summary["split"]
    seconds = summary["wall_seconds"] or summary["seconds"] or 0.0
    learnt = f"the saved model learnt from {summary['fitted_rows']} rows; " if summary["fitted_rows"] else ""
    out.print(f"quality {summary['quality'] or 'fast'}; split: {split['rule']}, seed {split['seed']}: {split['train']} "
              f"train / {split['val']} val / {split['test']} test; {learnt}inputs: {', '.join(summary['inputs'])}; "
              f"{seconds:.1f}s; saved to {summary['folder']}")


@friendly
def evaluate(
    workspace: WorkspaceArg,
    task: TaskOpt = "classify",
    target: TargetOpt = None,
    ablation: Annotated[bool, typer.Option(help="Train and score text-only, image-only and every fusion.")] = False,
    model: Annotated[str | None, typer.Option(help="Score this saved model on its own test split instead.")] = None,
    text_fields: TextFieldsOpt = None,
    modalities: ModalitiesOpt = "text,image",
    tabular: TabularOpt = "",
    encoders: EncodersOpt = None,
    fusions: Annotated[str, typer.Option(help="Fusion strategies for --ablation.")] = ",".join(FUSIONS),
    seed: Annotated[int, typer.Option(help="Seed of the split and the training.")] = 0,
    epochs: Annotated[int | None, typer.Option(help="Most epochs per variant.")] = None,
    ensemble: EnsembleOpt = None,
    quality: QualityOpt = "auto",
    recommenders: RecommendersOpt = None,
    test_days: Annotated[int, typer.Option(help="--task recommend: the last N days are the test window.")] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON for scripts.")] = False,
) -> None:
    """Modality ablation (text vs image vs each fusion, one split) with a Markdown report, or score a saved model.

    ``--task recommend`` compares recommenders on a temporal split instead (``--models``, ``--test-days``).
    """
    from tuwen.predict.registry import evaluate_saved, run_ablation
    from tuwen.predict.training.report import metric_table

    if task == "recommend":
        from tuwen.cli.recommend import rec_evaluate

        rec_evaluate(workspace, models=recommenders or model or ",".join(RECOMMENDERS), test_days=test_days, k=12,
                     seed=seed, as_json=as_json)
        return
    ws = open_workspace(workspace)
    if model:
        summary = evaluate_saved(ws, model)
    elif ablation:
        summary = run_ablation(ws, task, target, text_fields=_split(text_fields) or None,
                                modalities=_split(modalities), tabular=_split(tabular),
                                encoders=_split(encoders) or None, fusions=_split(fusions), seed=seed,
                                config=train_config(epochs, seed, not as_json, ensemble, quality=quality))
    else:
        raise ValueError("say what to evaluate: --ablation (train and compare every variant) or --model NAME")
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    table = Table(title=f"{summary['task']} · {summary['target']} (test)")
    lines = metric_table(summary["results"]).splitlines()
    for column in lines[0].strip("|").split("|"):
        name = column.strip()
        table.add_column(name, justify="left" if name == "variant" else "right", no_wrap=name == "variant")
    for line in lines[2:]:
        table.add_row(*(cell.strip() for cell in line.strip("|").split("|")))
    out.print(table)
    split = summary["split"]
    out.print(f"split: {split['rule']}, seed {split['seed']}: {split['train']} train / {split['val']} val / "
              f"{split['test']} test" + "".join(f"\n  {n}" for n in split.get("notes", [])))
    if summary.get("report"):
        out.print(f"report: {summary['report']}")


def _items_from_file(file: Path, preset: str | None, mapping: list[str] | None, items: str) -> pd.DataFrame:
    """Read the items a model predicts (products, reviews or messages) exactly as ``ingest`` would, without
    storing anything; ``items`` is the workspace table the model's task reads."""
    from tuwen.ingest import ColumnMap, load_generic, load_preset
    from tuwen.ingest.generic import MESSAGE_FIELDS, PRODUCT_FIELDS, REVIEW_FIELDS, load_messages

    if preset:
        batch = load_preset(preset, file)
        frame, rejects = getattr(batch, items, None), batch.rejects
        if frame is None or frame.empty:
            raise ValueError(f"{file}: the {preset} data holds no {items}, which this model predicts")
    elif items == "messages":
        frame, rejects = load_messages(file, ColumnMap.parse(mapping or [], MESSAGE_FIELDS))
    elif items == "reviews":
        batch = load_generic(None, ColumnMap.parse([], PRODUCT_FIELDS), None, ColumnMap(), file,
                             ColumnMap.parse(mapping or [], REVIEW_FIELDS), None, "")
        frame, rejects = batch.reviews, batch.rejects
    else:
        batch = load_generic(file, ColumnMap.parse(mapping or [], PRODUCT_FIELDS), None, ColumnMap(), None,
                             ColumnMap(), None, "")
        frame, rejects = batch.products, batch.rejects
    for reject in rejects[:20]:
        typer.echo(f"rejected: {reject}", err=True)
    return frame


@friendly
def predict(
    workspace: WorkspaceArg,
    model: Annotated[str, typer.Option(help="Model name (under WS/artifacts/models) or a model folder.")],
    title: Annotated[str | None, typer.Option(help="The new product's title (or a review's / message's text).")]
    = None,
    description: Annotated[str | None, typer.Option(help="The new product's description.")] = None,
    image: Annotated[Path | None, typer.Option(help="The new product's photo.")] = None,
    file: Annotated[Path | None, typer.Option(help="Predict every product (review, message) of a file or preset "
                                              "folder: one line per row, in input order, with the row's id.")]
    = None,
    preset: Annotated[str | None, typer.Option(help="Read --file as this preset's folder.")] = None,
    map_: Annotated[list[str] | None, typer.Option("--map", help="Field=column mappings for --file.")] = None,
    user: Annotated[str | None, typer.Option(help="Purchase models: the shopper whose purchases are the history.")]
    = None,
    neighbours: Annotated[int, typer.Option(help="Nearest training products to show.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per item, in input order.")] = False,
) -> None:
    """Predict for a new product (or a file of them): prediction, scores, modality contributions, neighbours."""
    import pandas as pd  # loaded only by the commands that build frames

    from tuwen.predict.registry import load_model

    ws = open_workspace(workspace)
    loaded = load_model(ws, model)
    items = loaded.task.items
    is_review = items == "reviews"
    given_ids: list[str] | None = None
    if file is not None:
        if not file.exists():
            raise FileNotFoundError(f"{file}: no such file or folder")
        frame = _items_from_file(file, preset, map_, items)
        if items != "products":
            # Reviews and messages are identified by their row (or the file's own id), which the workspace's rows
            # may share without being the same text: a file's row is scored on its own words, never on vectors
            # cached for a stored row with that id (ingest refuses NUL, so no stored id starts with one).
            given_ids = [str(i) for i in frame["id"]]
            frame = frame.assign(id=[f"\0file-{n}" for n in range(len(frame))])
    elif title is not None or image is not None or description is not None:
        if image is not None and not image.is_file():
            raise FileNotFoundError(f"{image}: no such photo")
        item: dict[str, Any] = {"id": "new-1", "title": title or "", "description": description or "",
                                "image_paths": [str(image.resolve())] if image else [], "has_image": image is not None}
        if items != "products":
            item.update({"text": title or "", "title": description or "", "product_id": ""})
        frame = pd.DataFrame([item])
    else:
        raise ValueError("give a new product (--title, --description, --image) or --file PATH")
    if frame.empty:
        raise ValueError("nothing to predict: the input has no usable rows")
    if loaded.task.name == "purchase":
        predictions = loaded.predict(frame, ws, user_id=user)
    else:
        predictions = loaded.predict(frame, workspace=ws, neighbours=neighbours)
    if given_ids is not None:
        for prediction, given in zip(predictions, given_ids, strict=True):
            prediction["id"] = given
        frame = frame.assign(id=given_ids)
    if as_json:
        for prediction in predictions:
            typer.echo(json.dumps(prediction, ensure_ascii=False))
        return
    for prediction in predictions[:50]:
        _print_prediction(prediction)
    if len(predictions) > 50:
        out.print(f"… {len(predictions) - 50} more (use --json for all)")
    if is_review and "product_id" in frame and getattr(loaded.task, "is_rating", False):
        ratings = [prediction["prediction"] for prediction in predictions]
        aggregate = loaded.task.aggregate(frame, ratings)  # type: ignore[attr-defined]
        table = Table(title="per product: mean predicted rating")
        for column in ("product_id", "score", "positive_share", "count"):
            table.add_column(column)
        for row in aggregate.head(30).itertuples(index=False):
            table.add_row(str(row.product_id), f"{row.score:.2f}", f"{row.positive_share:.2f}", str(row.count))
        out.print(table)


def _print_prediction(prediction: dict[str, Any]) -> None:
    out.print(f"[bold]{prediction['id']}[/]: [green]{prediction['prediction']}[/]")
    scores = prediction["scores"]
    flat = scores if all(not isinstance(v, dict) for v in scores.values()) else \
        {f"{h}={k}": v for h, s in scores.items() for k, v in s.items()}
    out.print("  scores: " + ", ".join(f"{k} {v:.3f}" for k, v in list(flat.items())[:8]), highlight=False)
    contributions = prediction.get("contributions", {})
    deltas = {k: v for k, v in contributions.items() if k != "weights"}
    if deltas:
        out.print("  leave-one-modality-out (drop when hidden): " + ", ".join(
            f"{k} {v:+.3f}" if v is not None else f"{k} absent" for k, v in deltas.items()), highlight=False)
    if contributions.get("weights"):
        out.print("  fusion weights: " + ", ".join(f"{k} {v:.2f}" for k, v in contributions["weights"].items()),
                  highlight=False)
    for near in prediction.get("neighbours", [])[:5]:
        out.print(f"  near: {near['id']} {near['label']!r} ({near['similarity']:.3f})", highlight=False)


def register(app: typer.Typer) -> None:
    """Add these commands to the main app; ``tuwen.cli.main`` calls it once (importing this module adds nothing)."""
    app.command()(train)
    app.command()(evaluate)
    app.command()(predict)
