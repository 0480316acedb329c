"""A task's items, split and fitted features, built once per run and shared by every model or variant of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tuwen.encoders.cache import vector_tables
from tuwen.predict.features import FeatureBuilder, FeatureSet, canonical_fields, default_specs
from tuwen.predict.tasks.base import Task, group_values
from tuwen.predict.training.config import MODALITIES, REVIEW_ENCODERS
from tuwen.predict.training.splits import split_items
from tuwen.predict.vectors import workspace_vectors
from tuwen.store.workspace import Workspace


@dataclass
class Prepared:
    """A task's items, split and features, built once and shared by every model/variant of one run."""

    task: Task
    frame: pd.DataFrame
    split: np.ndarray
    builder: FeatureBuilder
    features: FeatureSet
    split_info: dict[str, Any]
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    # Linear members' fits (futures) by (inputs, class weights, device): an ablation's fusions all hold the same
    # one, which would otherwise be fitted once per fusion.
    linears: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    # Cross-fitted members (predict.training.crossfit) by what they are (inputs, fusion, weighting): an ablation's
    # variants share their single-modality networks and linear baselines, which would otherwise be cross-fitted
    # once per variant.
    bagged: dict[Any, Any] = field(default_factory=dict)

    def rows(self, part: str) -> np.ndarray:
        return np.flatnonzero(self.split == part)

    def part(self, part: str, names: list[str] | None = None) -> tuple[FeatureSet, dict[str, np.ndarray]]:
        rows = self.rows(part)
        features = self.features.subset(rows)
        if names is not None:
            features = features.select(names)
        return features, {h: v[rows] for h, v in self.targets.items()}

    def inputs(self, modalities: tuple[str, ...]) -> list[str]:
        return [s.name for s in self.features.specs if s.modality in modalities]


def load_items(workspace: Workspace, task: Task) -> pd.DataFrame:
    if not workspace.has_table(task.items):
        raise KeyError(f"{workspace.path}: no {task.items} in this workspace; run `tuwen ingest` first")
    return workspace.read(task.items)


def labelled_rows(workspace: Workspace, task: Task, limit: int | None = None) -> int:
    """How many rows the task can learn from (what ``TrainConfig(quality="auto")`` decides by)."""
    rows = len(task.prepare(load_items(workspace, task)))
    return min(rows, limit) if limit is not None else rows


def available_vectors(workspace: Workspace) -> list[tuple[str, str]]:
    return sorted({(m["encoder"], m["field"]) for m in vector_tables(workspace).values()})


def photo_encoders(workspace: Workspace, frame: pd.DataFrame,
                   encoders: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
    """(encoder, "image") for the photos of items other than products (a review's photo): the workspace's product
    photo encoders, when any item has a photo; embedded on demand like the texts."""
    if "image_paths" not in frame or not frame["image_paths"].map(lambda p: p is not None and len(p) > 0).any():
        return []
    return [(e, f) for e, f in available_vectors(workspace) if f == "image" and (encoders is None or e in encoders)]


def prepare(workspace: Workspace, task: Task, text_fields: tuple[str, ...] | None = None,
            modalities: tuple[str, ...] = MODALITIES, tabular: tuple[str, ...] = (),
            encoders: tuple[str, ...] | None = None, tfidf: bool = True, seed: int = 0, test_size: float = 0.2,
            val_size: float = 0.1, limit: int | None = None, test_fold: int = 0) -> Prepared:
    """Items → prepared rows → split → fitted features, for one task on one workspace.

    ``encoders`` limits which cached encoders are used (default: every cached one); ``limit``
    takes a seeded random sample of items first (tests, quick looks); ``test_fold`` picks which of the seed's
    folds is the test part (:func:`~tuwen.predict.training.splits.split_items`).
    """
    frame, split, info = split_frame(workspace, task, seed, test_size, val_size, limit, test_fold)
    fields = canonical_fields(text_fields or task.default_text_fields)
    text_encoders = [(e, f) for e, f in available_vectors(workspace) if encoders is None or e in encoders]
    if task.items != "products":  # review / message texts are embedded on demand (cached in the workspace on first use)
        names = sorted({e for e, f in text_encoders if f != "image"}) or list(REVIEW_ENCODERS if encoders is None
                                                                               else encoders)
        text_encoders = [(e, f) for e in names for f in fields] + photo_encoders(workspace, frame, encoders)
    specs = default_specs(text_encoders, fields, modalities, tabular, tfidf)
    task.fit(frame[split == "train"])
    builder = FeatureBuilder(specs).fit(frame[split == "train"])
    features = builder.build(frame, workspace_vectors(workspace, compute_missing=task.items != "products",
                                                      items=task.items))
    return Prepared(task, frame, split, builder, features, info, task.targets(frame))


def split_frame(workspace: Workspace, task: Task, seed: int = 0, test_size: float = 0.2, val_size: float = 0.1,
                limit: int | None = None, test_fold: int = 0) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """A task's usable items, their train/val/test labels and the split's description (rule, seed, sizes).

    Every model of a task (frozen features or end-to-end encoders) splits through here, so one seed gives one split.
    """
    frame = load_items(workspace, task)
    if limit is not None and len(frame) > limit:
        frame = frame.sample(limit, random_state=seed).reset_index(drop=True)
    frame = task.prepare(frame)
    group_column = task.group_column(frame)
    groups = group_values(frame, group_column) if group_column else None
    split = split_items(task.strata(frame), groups, seed, test_size, val_size, test_fold)
    parts = ([f"test {test_size:.0%}"] if test_size > 0 else ["no test part"]) + \
        ([f"validation {val_size:.0%} (early stopping)"] if val_size > 0 else [])
    info = {"rule": "stratified by target" + (f", grouped by {group_column}" if group_column else "")
            + f"; {', '.join(parts)}, rest train",
            "seed": seed, **({"test_fold": test_fold} if test_fold else {}),
            "train": int((split == "train").sum()), "val": int((split == "val").sum()),
            "test": int((split == "test").sum()), "items": len(frame), "notes": list(task.notes)}
    return frame, split, info
