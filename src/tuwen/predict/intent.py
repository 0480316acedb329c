"""The message-routing model (``kind = "intent"``): the fused model over frozen features, plus the calibrated
"needs a person" threshold of :class:`tuwen.predict.tasks.intent.IntentTask`.

Why a kind of its own: the threshold must be chosen on predictions the saved model did not learn from, which
exist only once training is done — the cross-fitted model's out-of-fold predictions (``quality="best"``) or
the single-split model's validation predictions (``"fast"``). Training, saving, loading and predicting are the
fused model's; this class only reads the threshold the task's metrics computed on those predictions, stores it
in the task (so every later prediction applies it) and scores the held-out test part with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuwen.predict.endtoend import parse_mode
from tuwen.predict.model import TuwenModel
from tuwen.predict.tasks.intent import IntentTask

if TYPE_CHECKING:  # annotations only
    from tuwen.store.workspace import Workspace


class IntentModel(TuwenModel):
    """A fused intent classifier whose task carries the calibrated "needs a person" threshold."""

    kind = "intent"

    @classmethod
    def accepts(cls, task: str, options: Mapping[str, Any]) -> bool:
        return task == "intent" and parse_mode(options.get("encoders")) is None

    @classmethod
    def fit(cls, workspace: Workspace, task: Any, target: str | None = None, **options: Any) -> IntentModel:
        model = super().fit(workspace, task, target, **options)
        assert isinstance(model, IntentModel) and isinstance(model.task, IntentTask)
        model.calibrate()
        if options.get("save", True):
            if model.info.get("split", {}).get("test"):
                model.info["metrics"]["test"] = model.evaluate(workspace)
            model.save(Path(model.info["folder"]))
        return model

    def calibrate(self) -> dict[str, Any]:
        """Set the task's threshold from the held-out predictions training scored: out-of-fold ones when the
        model was cross-fitted, else the validation part's; without either, no message is handed over."""
        task = self.task
        assert isinstance(task, IntentTask)
        metrics = self.info.get("metrics", {})
        source, scores = next(((name, metrics[name]) for name in ("crossfit", "val") if metrics.get(name)),
                              ("none", {}))
        key = f"threshold_at_{task.tag}"
        task.threshold = float(scores[key]) if key in scores else None
        self.info["needs_person"] = {"precision": task.precision, "threshold": task.threshold,
                                     "chosen_on": {"crossfit": "out-of-fold predictions",
                                                   "val": "validation predictions"}.get(source, "nothing"),
                                     "coverage_there": scores.get(f"coverage_at_{task.tag}")}
        return self.info["needs_person"]
