"""Recommenders inside a workspace: train and save, load, serve one shopper, scrub one shopper.

Trained models live in ``WS/artifacts/recommend/<model>/`` (``model.json`` + arrays). The
workspace manifest's ``meta.recommend`` names the default model; ``meta.stale_models`` lists
models trained before a ``forget`` (they no longer hold the shopper's own state, but their
item-side parameters were learnt with the shopper's events until retrained).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tuwen.recommend.base import (
    KIND_WEIGHTS,
    ItemContent,
    Recommender,
    RecommendError,
    content_sources,
    history_from_frame,
)
from tuwen.recommend.explain import Explainer
from tuwen.store.events import EventArrays, read_event_arrays
from tuwen.store.workspace import Workspace
from tuwen.util.progress import progress_bar

MODELS_DIR = "recommend"
DEFAULT_MODEL = "ranker"
# What models that read the catalog use (attributes, prices, categories): not the long texts.
PRODUCT_COLUMNS = ("id", "title", "category", "attributes", "price")
HISTORY_COLUMNS = ["user_id", "product_id", "timestamp", "kind"]  # what a folded-in history reads of an event
SHOPPERS_KEPT = 10_000  # folded-in histories a Service keeps (the oldest go first)


def model_names() -> list[str]:
    """Every model name ``train`` accepts."""
    import tuwen.recommend  # noqa: F401  (registers every model class)

    return sorted(n for n in Recommender.registry if not n.startswith("_"))


def make_model(name: str, **params: Any) -> Recommender:
    names = model_names()
    if name not in names:
        raise RecommendError(f"unknown recommender {name!r}; choose one of: {', '.join(names)}")
    return Recommender.registry[name](**params)


def model_folder(workspace: Workspace, name: str) -> Path:
    return workspace.artifacts / MODELS_DIR / name


def model_folders(workspace: Workspace) -> list[Path]:
    root = workspace.artifacts / MODELS_DIR
    return sorted(p for p in root.iterdir() if (p / "model.json").exists()) if root.exists() else []


def load_content(workspace: Workspace, dim: int | None = 128) -> ItemContent | None:
    """The workspace's image + text vectors, or ``None`` when ``tuwen embed`` has not run."""
    if not content_sources(workspace):
        return None
    return ItemContent.from_workspace(workspace, dim=dim)


def train(workspace: Workspace, name: str = DEFAULT_MODEL, params: dict[str, Any] | None = None, save: bool = True,
          default: bool = True) -> Recommender:
    """Fit one recommender on all the workspace's events and save it (clears its stale mark).

    Events are read in Arrow batches into coded arrays (:func:`read_events`), never as one whole-table frame:
    at thirty million purchases the frame alone outgrew the machine.
    """
    model = make_model(name, **(params or {}))
    content = load_content(workspace) if model.uses_content else None
    if model.uses_content and content is None and model.needs_content():
        raise RecommendError(f"{name} reads product photos and text: run `tuwen embed {workspace.path}` first")
    events = read_events(workspace, model.params.get("kind_weights") or KIND_WEIGHTS)
    if events.empty:
        raise RecommendError(f"{workspace.path}: no interactions to learn from; ingest purchases first")
    reviews = {"reviews": workspace.read("reviews")} if getattr(model, "uses_reviews", False) else {}
    products = workspace.read("products", list(PRODUCT_COLUMNS)) if model.uses_products else None
    model.fit(events, products, content=content, **reviews)
    if save:
        folder = model.save(model_folder(workspace, name))
        with workspace.transaction(f"train recommender {name}") as writer:
            meta = dict(workspace.manifest.get("meta", {}).get("recommend", {}))
            if default or "default" not in meta:
                meta["default"] = name
            meta.setdefault("models", {})[name] = {"trained_at": time.time(), **model.meta}
            writer.meta["recommend"] = meta
            stale = dict(workspace.manifest.get("meta", {}).get("stale_models", {}))
            stale.pop(str(folder.relative_to(workspace.path)), None)
            writer.meta["stale_models"] = stale
    return model


def read_events(workspace: Workspace, kind_weights: dict[str, float] | None = None,
                progress: bool | None = None) -> EventArrays:
    """The workspace's events of the kinds models learn from, read in batches into coded arrays.

    A bar shows the rows read when there are more than a million (``progress=None``).
    """
    if not workspace.has_table("interactions"):
        return EventArrays.from_frame(workspace.read("interactions"))
    table = workspace.table("interactions")
    total = table.count_rows()
    show = total > 1_000_000 if progress is None else progress
    with progress_bar(total, "recommend · reading events", show) as advance:
        return read_event_arrays(table, list(kind_weights or KIND_WEIGHTS), progress=advance)


def default_model_name(workspace: Workspace) -> str | None:
    name = workspace.manifest.get("meta", {}).get("recommend", {}).get("default")
    if name and (model_folder(workspace, name) / "model.json").exists():
        return name
    folders = model_folders(workspace)
    return folders[0].name if folders else None


def load(workspace: Workspace, name: str | None = None) -> Recommender:
    """A saved recommender of this workspace (default: the one trained last with ``default=True``)."""
    name = name or default_model_name(workspace)
    if name is None:
        raise RecommendError(f"{workspace.path}: no trained recommender; "
                             f"run `tuwen train {workspace.path} --task recommend`")
    return Recommender.load(model_folder(workspace, name))


def scrub_model(folder: Path, user: str) -> bool:
    """Remove one shopper's per-shopper state from a saved model and mark it stale (saved atomically).

    Every model keeps the histories it was trained on, so "the shopper is in them" is exactly
    "the model saw the shopper"; a model that never saw them is left untouched.
    """
    model = Recommender.load(folder)
    if not model.forget_user(user):
        return False
    model.meta["stale"] = {"reason": "trained before a shopper was forgotten; retrain to forget completely",
                           "time": time.time()}
    model.save(folder)
    return True


@dataclass
class Served:
    """One shopper's answer: products in rank order and how they were chosen."""
    user: str
    items: list[str]
    model: str
    cold: bool
    note: str = ""
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "items": self.items, "model": self.model, "cold": self.cold}
        if self.note:
            out["note"] = self.note
        if self.reasons:
            out["reasons"] = self.reasons
        return out


def shopper_events(workspace: Workspace, users: Any, columns: list[str] | None = None) -> pd.DataFrame:
    """The events of some shoppers, read with filters: a shopper's history costs their own rows in memory, not the
    events table (gigabytes at a shop's size)."""
    return workspace.read_keys("interactions", "user_id", users, columns or HISTORY_COLUMNS)


class Service:
    """A loaded model plus the workspace's latest events, for fast repeated ``recommend`` calls.

    Shoppers the model was trained on are served from the model alone (no table read). A
    shopper who appeared after training is folded in from their events in the workspace (read with a filter, and
    kept for the next call); one with no events gets the model's popular products and is told so.
    """

    def __init__(self, workspace: Workspace, name: str | None = None, model: Recommender | None = None):
        self.workspace = workspace
        self.model = model or load(workspace, name)
        self._histories: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}  # folded-in shoppers
        self._explainer: Any = None

    def prefetch(self, users: Any) -> None:
        """Read the events of every shopper in ``users`` the model does not know in one filtered scan per
        slice of shoppers: many new shoppers at once (``predict``) cost a few scans, not one each."""
        wanted = [u for u in dict.fromkeys(str(u) for u in users)
                  if u not in self._histories and not self.model.knows(u)]
        if not wanted:
            return
        events = shopper_events(self.workspace, wanted)
        rows_of = events.groupby("user_id").indices if len(events) else {}
        for user in wanted:
            positions = rows_of.get(user)
            history = None
            if positions is not None:
                history = history_from_frame(events.iloc[positions], self.model.item_index, self.model.now)
                history = history if len(history[0]) else None
            self._histories[user] = history
        while len(self._histories) > SHOPPERS_KEPT:
            self._histories.pop(next(iter(self._histories)))

    def _history_from_workspace(self, user: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        if user not in self._histories:
            self.prefetch([user])
        return self._histories.get(user)

    def recommend(self, user: str, k: int = 12, explain: bool = False) -> Served:
        model = self.model
        history = None
        if not model.knows(user):
            history = self._history_from_workspace(user)
        if not model.knows(user) and history is None:
            items = model.popular(k)
            note = "no purchase history: popular products"
            return Served(user, items, model.name, True, note, self._reasons(user, items, None) if explain else [])
        items = model.recommend(user, k, history=history)
        note = "" if model.knows(user) else "history since training folded in"
        return Served(user, items, model.name, False, note, self._reasons(user, items, history) if explain else [])

    def _reasons(self, user: str, items: list[str], history: Any) -> list[dict[str, Any]]:
        if self._explainer is None:
            needs_vectors = not hasattr(self.model, "image") and "content" not in getattr(self.model, "parts", {})
            self._explainer = Explainer(self.model, load_content(self.workspace) if needs_vectors else None)
        reasons = self._explainer.explain(user, items, history)
        # reasons name products by title: read the titles of the few named, not the catalog's
        titles = product_titles(self.workspace, [r.closest for r in reasons if r.closest is not None])
        for reason in reasons:
            reason.closest_title = titles.get(reason.closest) if reason.closest is not None else None
        return [r.to_dict() | {"why": r.sentence()} for r in reasons]


def product_titles(workspace: Workspace, ids: list[str]) -> dict[str, str]:
    """``{id: title}`` of some products, read with a filter (a million titles are not read to name twelve)."""
    rows = workspace.read_keys("products", "id", ids, ["id", "title"])
    return dict(zip(rows["id"], rows["title"], strict=True))
