"""Recommenders as a Predictor kind (``kind = "recommender"``, task ``recommend``): the same
``fit / predict / evaluate / save / load`` as the product models, so ``Workspace.train("recommend")``,
``tuwen train --task recommend`` and ``tuwen evaluate --task recommend`` dispatch through the one registry.

A recommender's own interface (:class:`tuwen.recommend.base.Recommender`: fit on events, ``recommend(user)``) stays
what the models implement; this kind wraps one for the workspace-level contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from tuwen.predict.predictor import Predictor
from tuwen.recommend.base import Recommender
from tuwen.recommend.compare import compare
from tuwen.recommend.store import DEFAULT_MODEL, Service, train

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace


class RecommenderModel(Predictor):
    """One trained recommender; ``predict`` answers the shoppers of a frame (its ``user_id`` column)."""

    kind = "recommender"

    def __init__(self, recommender: Recommender) -> None:
        self.model = recommender
        self.name = recommender.name
        self.info = {"name": recommender.name, **recommender.meta}

    @classmethod
    def accepts(cls, task: str, options: Mapping[str, Any]) -> bool:
        return task == "recommend"

    @classmethod
    def fit(cls, workspace: Workspace, task: Any = "recommend", target: str | None = None, *,
            model: str = DEFAULT_MODEL, params: dict[str, Any] | None = None, save: bool = True,
            default: bool = True) -> RecommenderModel:
        """Fit recommender ``model`` on every event of the workspace and save it (the default one unless told)."""
        return cls(train(workspace, model, params, save=save, default=default))

    @classmethod
    def ablation(cls, workspace: Workspace, task: Any = "recommend", target: str | None = None,
                 **options: Any) -> dict[str, Any]:
        """Recommenders side by side on a temporal split (``models=[...]``, ``test_days=7``)."""
        return compare(workspace, **options)

    def predict(self, frame: pd.DataFrame, workspace: Workspace | None = None, k: int = 12,
                explain: bool = False, **_: Any) -> list[dict[str, Any]]:
        """Top-``k`` products for each shopper of ``frame["user_id"]``, in input order."""
        if workspace is None:
            raise ValueError("a recommender answers from the workspace's events: give the workspace")
        service = Service(workspace, model=self.model)
        service.prefetch(frame["user_id"])  # new shoppers' events in a few filtered scans, not one scan each
        return [service.recommend(str(user), k, explain).to_dict() for user in frame["user_id"]]

    def evaluate(self, workspace: Workspace, frame: pd.DataFrame | None = None) -> dict[str, float]:
        """This recommender refitted on the events before the last week and scored on that week (MAP@12 etc.)."""
        if frame is not None:
            raise ValueError("a recommender is scored on a temporal split of the workspace's events; call "
                             "evaluate(workspace) without a frame")
        row = compare(workspace, models=[self.name])["results"][0]
        return {k: float(v) for k, v in row.items() if isinstance(v, int | float) and not isinstance(v, bool)}

    def save(self, folder: str | Path) -> Path:
        return self.model.save(folder)

    @classmethod
    def load(cls, folder: str | Path, device: str = "cpu") -> RecommenderModel:
        return cls(Recommender.load(folder))
