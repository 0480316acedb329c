"""Side-by-side comparison of recommenders on one temporal split: ``ws.evaluate("recommend")``.

The CLI (``tuwen evaluate --task recommend``) and the Python API share this, so a script reading the JSON gets
exactly the numbers the table shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuwen.choices import RECOMMENDERS
from tuwen.recommend.evaluate import Split, evaluate_model, results_table, temporal_split
from tuwen.recommend.store import PRODUCT_COLUMNS, load_content, make_model
from tuwen.store.events import EventArrays, read_event_arrays
from tuwen.store.workspace import Workspace

COMPARED = RECOMMENDERS  # every recommender, in the order the comparison prints them


class NothingToScore(ValueError):
    """The test window holds no purchase by a shopper who also bought before it."""


def workspace_split(workspace: Workspace, test_days: int = 7) -> Split:
    """The temporal split of the workspace's events, read in Arrow batches into coded arrays (every kind, as the
    events table holds them) rather than as one frame of every event; :class:`NothingToScore` when empty."""
    events = read_event_arrays(workspace.table("interactions")) if workspace.has_table("interactions") else \
        EventArrays.from_frame(workspace.read("interactions"))
    split = temporal_split(events, test_days) if not events.empty else None
    if split is None or not split.truth:
        raise NothingToScore(f"no shopper bought in the last {test_days} days after buying before: nothing to score")
    return split


def compare(workspace: Workspace, models: Sequence[str] | str = COMPARED, test_days: int = 7, k: int = 12,
            seed: int = 0) -> dict[str, Any]:
    """Fit every model on the events before the last ``test_days`` days and score it on those days.

    Models that need product vectors are skipped (and listed under ``skipped``) when the workspace has none,
    rather than failing the whole comparison.
    """
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    split = workspace_split(workspace, test_days)
    products, content = workspace.read("products", list(PRODUCT_COLUMNS)), None
    results, skipped = [], []
    for name in models:
        model = make_model(name, seed=seed)
        if model.uses_content and content is None:
            content = load_content(workspace)
            if content is None:
                skipped.append({"model": name, "reason": "no product vectors (run `tuwen embed`)"})
                continue
        # reviews: the ranker counts only those written before each moment it describes (no look-ahead)
        reviews = {"reviews": workspace.read("reviews")} if getattr(model, "uses_reviews", False) else {}
        model.fit(split.train, products, content=content if model.uses_content else None, **reviews)
        results.append(evaluate_model(model, split, k, name))
    table = results_table(results, seed=seed)
    return {"task": "recommend", "split": split.describe(), "k": k, "seed": seed,
            "results": table.to_dict(orient="records"), "skipped": skipped}
