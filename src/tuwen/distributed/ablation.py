"""The modality ablation with each variant as a Ray task, one process each.

Why processes: a network's fit holds the GIL (or pins one OpenMP pool) for most of its time, so threads cannot use the
second core of one machine, let alone a second machine. Each task gets the prepared features from Ray's object store,
fits with the same seed and thread count as the single-process run and returns its result row; the driver assembles
the same summary and writes the same report.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tuwen.distributed.cluster import actor_pool, ray_session
from tuwen.predict.fusion import FUSIONS
from tuwen.predict.tasks import Task, make_task
from tuwen.predict.training.ablation import ablation_variants
from tuwen.predict.training.config import MODALITIES, TrainConfig, resolve_quality
from tuwen.predict.training.crossfit import fit_crossfitted, plan
from tuwen.predict.training.members import fit_variant
from tuwen.predict.training.prepare import Prepared, labelled_rows, prepare
from tuwen.predict.training.report import write_report

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace


def fit_ablation_variant(prepared: Prepared, variant: tuple[str, list[str], str], config: TrainConfig,
                         quality: str, experts: dict[str, Any]) -> dict[str, Any]:
    """One variant of the modality ablation, as :func:`tuwen.predict.training.ablation.modality_ablation` fits it
    (a Ray task): the result row, the details for the report and, for a single modality, its network as an expert."""
    name, names, fusion = variant
    if quality == "best":
        variant_config = replace(config, fusion=fusion)
        model, outcome = fit_crossfitted(prepared, names, variant_config, plan(prepared, names, variant_config, fusion))
    else:
        model, outcome = fit_variant(prepared, names, replace(config, fusion=fusion),
                                     experts=experts if config.experts else None)
    row = {"variant": name, "fusion": fusion, "inputs": names,
           "metrics": {k: round(v, 4) for k, v in outcome["metrics"].items()},
           "seconds": outcome["seconds"], "best_epoch": outcome["best_epoch"], "experts": outcome["experts"]}
    return {"row": row, "outcome": outcome, "expert": (model.network, names) if name in MODALITIES else None}


def ablation_ray(workspace: Workspace, task: str | Task, target: str | None = None, *,
                 text_fields: tuple[str, ...] | None = None, modalities: tuple[str, ...] = MODALITIES,
                 tabular: tuple[str, ...] = (), encoders: tuple[str, ...] | None = None,
                 fusions: tuple[str, ...] = FUSIONS, seed: int = 0, config: TrainConfig | None = None,
                 report: bool = True, limit: int | None = None, address: str | None = None) -> dict[str, Any]:
    """The modality ablation with its variants as Ray tasks: each modality alone in parallel, then every fusion in
    parallel (they take the single-modality networks as experts). Same summary as the single-process ablation."""
    task_obj = make_task(task, target) if isinstance(task, str) else task
    config = replace(config or TrainConfig(), seed=seed)
    quality = resolve_quality(config, labelled_rows(workspace, task_obj, limit))
    prepared = prepare(workspace, task_obj, text_fields, modalities, tabular, encoders, seed=seed, limit=limit,
                       val_size=0.0 if quality == "best" else 0.1)
    variants = ablation_variants(prepared, fusions)
    singles = [v for v in variants if v[0] in MODALITIES]
    fused = [v for v in variants if v[0] not in MODALITIES]
    with ray_session(address) as ray:
        fit = ray.remote(num_cpus=actor_pool().cpus)(fit_ablation_variant)
        shared = ray.put(prepared)
        done = ray.get([fit.remote(shared, v, config, quality, {}) for v in singles])
        experts = {v[0]: d["expert"] for v, d in zip(singles, done, strict=True)}
        done += ray.get([fit.remote(shared, v, config, quality, experts) for v in fused])
    results = [d["row"] for d in done]
    details = {d["row"]["variant"]: d["outcome"] for d in done}
    summary = {"task": task_obj.name, "target": target or getattr(task_obj, "target", None), "quality": quality,
               "split": prepared.split_info, "primary": task_obj.primary, "results": results}
    if report:
        summary["report"] = str(write_report(workspace.artifacts / "reports", summary, prepared, details))
    return summary
