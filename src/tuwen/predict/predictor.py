"""The one contract every trained model keeps — ``fit / predict / evaluate / save / load`` — and its registry.

Why a registry: ``tuwen train``, ``tuwen evaluate``, ``Workspace.model`` and the HTTP API ask "which kind of model
is this?" once, here, instead of each carrying its own if-chain on task names and config keys. A kind registers by
subclassing :class:`Predictor` with a ``kind`` name (Cornac's ``Recommender`` and AutoGluon's predictors work the
same way); :func:`predictor_for` picks the kind that trains a task with given options, and :func:`load_predictor`
the kind that wrote a saved folder (its ``config.json`` names it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd

if TYPE_CHECKING:  # annotations only: the store sits below this layer and is never imported at run time here
    from tuwen.store.workspace import Workspace


class Predictor(ABC):
    """A trained model: ``Kind.fit(workspace, task, target, **options)`` trains one (and saves it under
    ``WS/artifacts/models/NAME`` unless ``save=False``); ``predict(frame, workspace)`` answers one JSON-ready dict
    per row in input order; ``evaluate(workspace)`` scores it on its own held-out rows (or on ``frame``);
    ``save(folder)`` writes it atomically; ``Kind.load(folder)`` reads it back in a fresh process."""

    kind: ClassVar[str] = ""
    registry: ClassVar[dict[str, type[Predictor]]] = {}
    info: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            Predictor.registry[cls.kind] = cls

    @classmethod
    @abstractmethod
    def accepts(cls, task: str, options: Mapping[str, Any]) -> bool:
        """Whether this kind trains ``task`` with these options (exactly one kind answers yes)."""

    @classmethod
    @abstractmethod
    def fit(cls, workspace: Workspace, task: Any, target: str | None = None, **options: Any) -> Predictor:
        """Train on the workspace's items; returns the trained model (saved unless ``save=False``)."""

    @classmethod
    def ablation(cls, workspace: Workspace, task: Any, target: str | None = None, **options: Any) -> dict[str, Any]:
        """Variants of this kind compared on one split (``tuwen evaluate``); kinds without variants refuse."""
        raise ValueError(f"{cls.kind} models have no ablation to run; train one with `tuwen train` and "
                         "`tuwen evaluate --model NAME` scores it")

    @abstractmethod
    def predict(self, frame: pd.DataFrame, workspace: Workspace | None = None, **options: Any) -> list[dict[str, Any]]:
        """One JSON-ready dict per row of ``frame``, in input order."""

    @abstractmethod
    def evaluate(self, workspace: Workspace, frame: pd.DataFrame | None = None) -> dict[str, float]:
        """Metrics on ``frame``, or (``None``) on the held-out rows of the model's own split, rebuilt by its rule."""

    @abstractmethod
    def save(self, folder: str | Path) -> Path:
        """Write the model folder atomically (:func:`tuwen.util.folders.atomic_folder`)."""

    @classmethod
    @abstractmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> Predictor:
        """A saved folder of this kind, ready to ``predict``."""


def predictor_for(task: str, options: Mapping[str, Any]) -> type[Predictor]:
    """The kind that trains ``task`` with ``options`` (e.g. ``encoders="trainable"`` picks the end-to-end kind)."""
    kinds = [kind for kind in Predictor.registry.values() if kind.accepts(task, options)]
    if len(kinds) != 1:
        raise ValueError(f"task {task!r}: " + ("no model trains it" if not kinds else
                                                f"ambiguous between {', '.join(k.kind for k in kinds)}"))
    return kinds[0]


def saved_kind(config: Mapping[str, Any]) -> str:
    """The kind that wrote a model's ``config.json``; folders from before kinds were recorded say it in other keys."""
    if config.get("predictor"):
        return str(config["predictor"])
    if config.get("task", {}).get("name") == "purchase":
        return "purchase"
    return "endtoend" if config.get("endtoend") else "fused"
