"""The modality ablation (``tuwen evaluate``): text alone, photo alone and every fusion, trained on one split and
scored on its test rows, with a Markdown report and charts."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tuwen.predict.fusion import FUSIONS
from tuwen.predict.tasks import Task, make_task
from tuwen.predict.training.config import MODALITIES, TrainConfig, resolve_quality
from tuwen.predict.training.crossfit import fit_crossfitted, plan
from tuwen.predict.training.members import Experts, fit_variant
from tuwen.predict.training.prepare import Prepared, labelled_rows, prepare
from tuwen.predict.training.report import write_report

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace


def ablation_variants(prepared: Prepared, fusions: tuple[str, ...] = FUSIONS) -> list[tuple[str, list[str], str]]:
    """(variant, input names, fusion) for: each modality alone, then every fusion over all inputs."""
    present = [m for m in MODALITIES if prepared.inputs((m,))]
    variants = [(m, prepared.inputs((m,)), "concat") for m in present]
    if len(present) > 1:
        variants += [(f"fusion:{f}", prepared.inputs(tuple(present)), f) for f in fusions]
    return variants


def modality_ablation(workspace: Workspace, task: str | Task, target: str | None = None, *,
                  text_fields: tuple[str, ...] | None = None, modalities: tuple[str, ...] = MODALITIES,
                  tabular: tuple[str, ...] = (), encoders: tuple[str, ...] | None = None,
                  fusions: tuple[str, ...] = FUSIONS, seed: int = 0, config: TrainConfig | None = None,
                  report: bool = True, limit: int | None = None) -> dict[str, Any]:
    """The modality ablation: on one split, train text-only, image-only and every fusion; score each on test.

    Returns ``{"task", "target", "split", "results": [{"variant", "metrics", ...}]}`` and (``report``)
    writes a Markdown report with charts into ``WS/artifacts/reports/``.
    """
    task_obj = make_task(task, target) if isinstance(task, str) else task
    config = replace(config or TrainConfig(), seed=seed)
    quality = resolve_quality(config, labelled_rows(workspace, task_obj, limit))
    prepared = prepare(workspace, task_obj, text_fields, modalities, tabular, encoders, seed=seed, limit=limit,
                       val_size=0.0 if quality == "best" else 0.1)
    results, details = [], {}
    experts: Experts = {}  # the single-modality variants, reused as the fused models' experts
    for variant, names, fusion in ablation_variants(prepared, fusions):
        if quality == "best":  # cross-fitted; members shared between variants through ``prepared.bagged``
            variant_config = replace(config, fusion=fusion)
            model, outcome = fit_crossfitted(prepared, names, variant_config,
                                             plan(prepared, names, variant_config, fusion, experts=True))
        else:
            model, outcome = fit_variant(prepared, names, replace(config, fusion=fusion),
                                         experts=experts if config.experts else None)
        if variant in MODALITIES:
            experts[variant] = (model.network, names)
        results.append({"variant": variant, "fusion": fusion, "inputs": names,
                        "metrics": {k: round(v, 4) for k, v in outcome["metrics"].items()},
                        "seconds": outcome["seconds"], "best_epoch": outcome["best_epoch"],
                        "experts": outcome["experts"]})
        details[variant] = outcome
    summary = {"task": task_obj.name, "target": target or getattr(task_obj, "target", None), "quality": quality,
               "split": prepared.split_info, "primary": task_obj.primary, "results": results}
    if report:
        summary["report"] = str(write_report(workspace.artifacts / "reports", summary, prepared, details))
    return summary
