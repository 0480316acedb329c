"""Product tasks: what to predict (targets), how wrong a prediction is (loss) and how to score it (metrics).

A task knows nothing about modalities or fusion: it turns item rows into per-head targets, turns
the network's raw outputs into probabilities or catalog units, and computes its metrics with
scikit-learn. That is why one training loop (:mod:`tuwen.predict.training.loop`) serves every task.

Tasks by name: ``classify``, ``tag``, ``price``, ``review``, ``purchase``, ``intent`` (see :func:`make_task`).
"""

from __future__ import annotations

from typing import Any

from tuwen.choices import TASKS  # the task names live there, so `tuwen --help` lists them without torch
from tuwen.predict.tasks.base import Task
from tuwen.predict.tasks.classify import ClassifyTask
from tuwen.predict.tasks.intent import IntentTask
from tuwen.predict.tasks.price import PriceTask
from tuwen.predict.tasks.purchase import PurchaseTask
from tuwen.predict.tasks.reviews import ReviewTask
from tuwen.predict.tasks.tag import TagTask

KINDS: dict[str, Any] = {"classify": ClassifyTask, "tag": TagTask, "price": PriceTask, "review": ReviewTask,
                         "purchase": PurchaseTask, "intent": IntentTask}


def make_task(name: str, target: str | None = None, **options: Any) -> Task:
    """Build a task by name; ``target`` is the column/attribute (comma-separated for ``tag``)."""
    if name == "classify":
        if not target:
            raise ValueError("classify needs --target (a column or attribute, e.g. articleType or category:1)")
        return ClassifyTask(target, **options)
    if name == "tag":
        if not target:
            raise ValueError("tag needs --target with comma-separated attributes, e.g. baseColour,gender,usage")
        return TagTask([t.strip() for t in target.split(",") if t.strip()], **options)
    if name == "price":
        return PriceTask(target or "price", **options)
    if name == "review":
        return ReviewTask(target or "rating", **options)
    if name == "purchase":
        return PurchaseTask(**options)
    if name == "intent":
        return IntentTask(target or "intent", **options)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")


def task_from_state(state: dict[str, Any]) -> Task:
    """A saved task (its label encoders) back from ``Task.state()``."""
    return KINDS[state["name"]].from_state(state)


__all__ = ["KINDS", "TASKS", "Task", "make_task", "task_from_state"]
