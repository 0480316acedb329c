"""Train, compare, load and score models through the Predictor registry: no if-chains on task names.

Importing this module registers the kinds this package defines (fused, end-to-end, purchase); kinds defined higher
up (the recommenders, :mod:`tuwen.recommend.predictor`) register when their module is imported, and the façade
(:mod:`tuwen.shop`) imports them all.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuwen.predict.endtoend.model import EndToEndModel
from tuwen.predict.intent import IntentModel
from tuwen.predict.model import TuwenModel
from tuwen.predict.predictor import Predictor, predictor_for, saved_kind
from tuwen.predict.purchase import PurchaseModel
from tuwen.predict.tasks import Task

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace

KINDS = (TuwenModel, EndToEndModel, PurchaseModel, IntentModel)  # this package's kinds, registered by importing them


def _task_name(task: str | Task) -> str:
    return task if isinstance(task, str) else task.name


def train_model(workspace: Workspace, task: str | Task, target: str | None = None, **options: Any) -> Predictor:
    """Train (and save) a model of the kind that trains ``task`` with these options."""
    return predictor_for(_task_name(task), options).fit(workspace, task, target, **options)


def run_ablation(workspace: Workspace, task: str | Task, target: str | None = None,
                  **options: Any) -> dict[str, Any]:
    """The kind's comparison of variants on one split (for product models: the modality ablation)."""
    return predictor_for(_task_name(task), options).ablation(workspace, task, target, **options)


def model_folder(workspace: Workspace | None, name: str | Path) -> Path:
    """A saved model's folder: by name under ``WS/artifacts/models`` first, else a folder path (a name never reaches
    a folder of the current directory when the workspace holds a model of that name)."""
    if workspace is not None and (workspace.artifacts / "models" / str(name) / "config.json").exists():
        return workspace.artifacts / "models" / str(name)
    folder = Path(name)
    if not (folder / "config.json").exists():
        known = ", ".join(saved_models(workspace)) if workspace is not None else ""
        raise FileNotFoundError(f"no model {str(name)!r} in this workspace; saved models: {known or 'none'} "
                                "(train one with `tuwen train`)")
    return folder


def saved_models(workspace: Workspace) -> list[str]:
    models = workspace.artifacts / "models"
    return sorted(p.name for p in models.glob("*") if (p / "config.json").exists()) if models.exists() else []


def load_model(workspace: Workspace | None, name: str | Path, device: str = "cpu") -> Predictor:
    """A saved model, loaded by the kind that wrote it."""
    folder = model_folder(workspace, name)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    kind = Predictor.registry.get(saved_kind(config))
    if kind is None:
        raise ValueError(f"{folder.name}: a {saved_kind(config)!r} model, which this tuwen does not know")
    return kind.load(folder, device)


def evaluate_saved(workspace: Workspace, name: str) -> dict[str, Any]:
    """Score a saved model on the held-out rows of its own split, rebuilt from the same rule and seed."""
    model = load_model(workspace, name)
    info = model.info
    metrics = model.evaluate(workspace)
    # A model refitted on every labelled row has no held-out rows: its scores are the cross-fitted (out-of-fold) ones
    crossfitted = info.get("refit") and info.get("metrics", {}).get("crossfit") == metrics
    return {"task": model.task.name, "target": info.get("target"), "split": info["split"],  # type: ignore[attr-defined]
            "primary": model.task.primary,  # type: ignore[attr-defined]
            "scored_on": "out-of-fold predictions (cross-fitted)" if crossfitted else "test part",
            "results": [{"variant": f"model:{info.get('name', name)}" + (" (cross-fitted)" if crossfitted else ""),
                         "fusion": model.network.fusion_name,  # type: ignore[attr-defined]
                         "inputs": info.get("inputs", []), "metrics": {k: round(v, 4) for k, v in metrics.items()},
                         "seconds": float(info.get("wall_seconds") or info.get("seconds") or 0.0),
                         "best_epoch": info.get("best_epoch")}]}
