"""Recommenders on Ray: batch recommendations for every shopper through Ray Data (the saved recommender in a pool of
actors), and a comparison of recommenders with each one fitted and scored in its own Ray task.

Why the model travels through Ray's object store rather than as a folder path: in a cluster the driver's disk is
not the workers' (an ``s3://`` workspace keeps its artefacts on the machine that trained them), and one copy in the
object store serves every actor of a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from tuwen.distributed.cluster import actor_pool, quiet_data_context, ray_session
from tuwen.recommend.base import ItemContent, Recommender
from tuwen.recommend.batch import recommend_many
from tuwen.recommend.compare import COMPARED, workspace_split
from tuwen.recommend.evaluate import Result, Split, evaluate_model, results_table
from tuwen.recommend.store import PRODUCT_COLUMNS, load, load_content, make_model
from tuwen.store.workspace import Workspace
from tuwen.util.progress import progress_bar

BATCH = 1024  # shoppers per actor call


def recommend_batch(model: Recommender, users: Sequence[str], k: int) -> pa.Table:
    """Top ``k`` for each shopper by the single-process batch job (:func:`tuwen.recommend.batch.recommend_many`);
    a shopper the model does not know gets its popular products, flagged ``cold``."""
    items = [ranked for _, ranked in recommend_many(model, users, k, progress=False)]
    return pa.table({"user": pa.array(list(users), pa.string()), "items": pa.array(items, pa.list_(pa.string())),
                     "cold": pa.array([not model.knows(user) for user in users], pa.bool_())})


class RecommendBatch:
    """A Ray Data actor: takes the model from the object store once, then ranks batches of shoppers."""

    def __init__(self, model: list[Any], k: int) -> None:
        import ray

        self.model = ray.get(model[0])  # wrapped in a list: Ray passes a bare reference through unresolved here
        self.k = k

    def __call__(self, batch: pa.Table) -> pa.Table:
        return recommend_batch(self.model, batch.column("user").to_pylist(), self.k)


def recommend_all_ray(workspace: Workspace, k: int = 12, model: str | None = None,
                      users: Sequence[str] | None = None, address: str | None = None, actors: int | None = None,
                      progress: bool = True) -> pd.DataFrame:
    """``user, items, cold`` for every shopper the model was trained on (or ``users``), in that order.

    ``model``: a saved recommender's name (default: the workspace's default one). Rows come back in the order asked.
    """
    recommender = load(workspace, model)
    wanted = list(users) if users is not None else list(recommender.histories.users if recommender.histories else [])
    with ray_session(address) as ray:
        quiet_data_context()
        pool = actor_pool(actors)
        frame = pd.DataFrame({"user": wanted, "order": range(len(wanted))})
        blocks = [frame.iloc[lo:lo + BATCH].reset_index(drop=True) for lo in range(0, max(len(frame), 1), BATCH)]
        stream = ray.data.from_pandas(blocks).map_batches(
            RecommendBatch, fn_constructor_kwargs={"model": [ray.put(recommender)], "k": k}, batch_size=BATCH,
            batch_format="pyarrow", num_cpus=pool.cpus,
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool.actors))
        parts = []
        with progress_bar(len(wanted), "recommend · ray", progress) as advance:
            for done in stream.iter_batches(batch_size=None, batch_format="pandas"):
                parts.append(done)
                advance(len(done))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"user": [], "items": [], "cold": []})
    order = {user: i for i, user in enumerate(wanted)}
    return out.sort_values("user", key=lambda s: s.map(order)).reset_index(drop=True)


def fit_and_score(name: str, split: Split, products: pd.DataFrame, content: ItemContent | None, k: int,
                  seed: int, reviews: pd.DataFrame | None = None) -> Result:
    """One recommender of a comparison, fitted and scored (a Ray task); a model that reads reviews gets them, as
    in :func:`tuwen.recommend.compare.compare`."""
    model = make_model(name, seed=seed)
    extra = {"reviews": reviews} if getattr(model, "uses_reviews", False) and reviews is not None else {}
    model.fit(split.train, products, content=content if model.uses_content else None, **extra)
    return evaluate_model(model, split, k, name)


def compare_ray(workspace: Workspace, models: Sequence[str] | str = COMPARED, test_days: int = 7, k: int = 12,
                seed: int = 0, address: str | None = None) -> dict[str, Any]:
    """:func:`tuwen.recommend.compare.compare` with each recommender fitted and scored in its own Ray task."""
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    # the events as coded arrays and only the product columns models read: what travels to every task
    split = workspace_split(workspace, test_days)
    products = workspace.read("products", list(PRODUCT_COLUMNS))
    made = {name: make_model(name, seed=seed) for name in models}
    content = load_content(workspace) if any(m.uses_content for m in made.values()) else None
    skipped = [{"model": name, "reason": "no product vectors (run `tuwen embed`)"}
               for name, m in made.items() if m.uses_content and content is None]
    run = [name for name, m in made.items() if not (m.uses_content and content is None)]
    reviews = workspace.read("reviews") if any(getattr(made[n], "uses_reviews", False) for n in run) else None
    with ray_session(address) as ray:
        task = ray.remote(num_cpus=actor_pool().cpus)(fit_and_score)
        shared = [ray.put(split), ray.put(products), ray.put(content)]
        review_rows = ray.put(reviews)
        results = ray.get([task.remote(name, *shared, k, seed, review_rows) for name in run])
    table = results_table(results, seed=seed)
    return {"task": "recommend", "split": split.describe(), "k": k, "seed": seed,
            "results": table.to_dict(orient="records"), "skipped": skipped}
