"""tuwen's stages on a real Ray cluster of two nodes (a head and one worker, started on this machine by the test):
embedding, batch recommendations, a recommender comparison, the modality ablation and a product model's training
jobs give what the single-process run gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tuwen import Workspace
from tuwen.distributed.ablation import ablation_ray
from tuwen.distributed.embed import embed_workspace_ray
from tuwen.distributed.recommend import compare_ray, recommend_all_ray
from tuwen.distributed.train import close_pools, ray_config
from tuwen.encoders.cache import load_vectors, table_name
from tuwen.ingest.synthetic import generate_catalog
from tuwen.predict.registry import load_model, train_model
from tuwen.predict.tasks import make_task
from tuwen.predict.training.ablation import modality_ablation
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.fast import fit_fast
from tuwen.predict.training.prepare import prepare
from tuwen.recommend.batch import recommend_many
from tuwen.recommend.compare import compare
from tuwen.recommend.store import Service, train

ray = pytest.importorskip("ray")  # the `ray` extra; `make install` installs it, so CI runs these

ENCODERS = {"image_encoder": "color_histogram", "text_encoder": "tfidf"}
FAST = TrainConfig(hidden=32, epochs=8, patience=4, ensemble=1, quality="fast", linear=False, progress=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """Two Ray nodes of one CPU each on this machine; the test process is the driver."""
    from ray.cluster_utils import Cluster

    # no usage statistics, as tuwen's own entry points have it (tuwen.distributed.cluster.require_ray): else Ray
    # Data's collector polls Prometheus from a thread of this process every few seconds through every later test,
    # and formatting each failure's traceback parses Python beside the main thread (CPython 3.11's parser is not
    # safe for that: pytest's assertion rewriting of a module imported mid-test failed with a SystemError)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1}, connect=False)
    try:
        nodes.add_node(num_cpus=1)
        nodes.wait_for_nodes(timeout=60)
        ray.init(address=nodes.address, logging_level="ERROR")
        yield nodes.address
    finally:
        ray.shutdown()
        nodes.shutdown()


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_catalog(tmp_path_factory.mktemp("catalog"), n_products=120, n_users=30, seed=5, image_size=24)


def shop(root: Path, catalog: Path) -> Workspace:
    ws = Workspace(root)
    ws.ingest(preset="synthetic", path=catalog)
    return ws


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, catalog: Path) -> Workspace:
    """The single-process run everything on the cluster is compared with."""
    ws = shop(tmp_path_factory.mktemp("local") / "ws", catalog)
    ws.embed(**ENCODERS, progress=False)
    return ws


def vectors(ws: Workspace, encoder: str, field: str) -> dict[str, np.ndarray]:
    ids, matrix = load_vectors(ws, encoder, field)
    return dict(zip(ids, matrix, strict=True))


def test_the_cluster_has_two_nodes(cluster: str) -> None:
    alive = [node for node in ray.nodes() if node["Alive"]]
    assert len(alive) == 2 and ray.cluster_resources()["CPU"] == 2


def test_embed_on_ray_equals_the_local_run_and_shares_its_cache(cluster: str, local: Workspace, catalog: Path,
                                                                tmp_path: Path) -> None:
    folder = tmp_path / "ws"
    shop(folder, catalog)
    # the command line in a process of its own: it connects to the cluster, then opens the workspace
    result = subprocess.run([sys.executable, "-m", "tuwen.cli", "embed", str(folder), "--ray", cluster,
                             "--image-encoder", "color_histogram", "--text-encoder", "tfidf"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tfidf/description" in result.stdout
    remote = Workspace(folder, create=False)
    for encoder, field in (("color_histogram", "image"), ("tfidf", "title"), ("tfidf", "description")):
        mine, theirs = vectors(remote, encoder, field), vectors(local, encoder, field)
        assert mine.keys() == theirs.keys() and len(mine) == 120
        assert max(float(np.abs(mine[i] - theirs[i]).max()) for i in mine) <= 1e-5
        name = table_name(encoder, field)
        hashes = remote.read(name, ["id", "hash"]).sort_values("id").reset_index(drop=True)
        assert hashes.equals(local.read(name, ["id", "hash"]).sort_values("id").reset_index(drop=True))
        assert remote.manifest["meta"][name] == local.manifest["meta"][name]
    # resumable and shared with the local path: change three titles, and only they are embedded again
    products = remote.read("products")
    changed = products.head(3).assign(title=lambda f: f["title"] + " (new season)")
    with remote.transaction("retitle") as writer:
        writer.upsert("products", changed)
    report = embed_workspace_ray(remote, "color_histogram", "tfidf", progress=False)
    assert report == {"color_histogram/image": {"embedded": 0, "cached": 120},
                      "tfidf/title": {"embedded": 3, "cached": 117},
                      "tfidf/description": {"embedded": 0, "cached": 120}}
    assert remote.embed(**ENCODERS, progress=False)["tfidf/title"] == {"embedded": 0, "cached": 120}


def test_batch_recommendations_on_ray_equal_serving_each_shopper(cluster: str, local: Workspace) -> None:
    model = train(local, "itemknn")
    users = [*model.histories.users, "a-shopper-never-seen"]
    batch = recommend_all_ray(local, k=8, model="itemknn", users=users, progress=False)
    assert list(batch["user"]) == users
    service = Service(local, "itemknn")
    expected = [service.recommend(user, k=8) for user in users]
    assert [list(items) for items in batch["items"]] == [served.items for served in expected]
    assert list(batch["cold"]) == [served.cold for served in expected]
    assert batch["cold"].sum() == 1 and all(len(items) == 8 for items in batch["items"])
    # a factor model goes through the blocked matrix-product path of the single-process batch job
    als = train(local, "als", default=False)
    batch = recommend_all_ray(local, k=8, model="als", progress=False)
    assert list(batch["user"]) == list(als.histories.users)
    assert [list(items) for items in batch["items"]] == [items for _, items in recommend_many(als, list(batch["user"]),
                                                                                              8, progress=False)]


def metric_columns(results: list[dict[str, Any]]) -> pd.DataFrame:
    """A comparison's scores, less what depends on the clock (fit time, ms per shopper)."""
    frame = pd.DataFrame(results).drop(columns=["ms_per_user", "fit_seconds"])
    return frame.set_index("model").sort_index()


def test_recommender_comparison_on_ray_equals_the_local_one(cluster: str, local: Workspace) -> None:
    models = ["popularity", "repurchase", "itemknn", "ranker"]  # the ranker reads the workspace's reviews too
    assert local.count("reviews") > 0
    mine = compare_ray(local, models, test_days=30)
    theirs = compare(local, models, test_days=30)
    assert mine["split"] == theirs["split"] and mine["split"]["scored_users"] > 0
    pd.testing.assert_frame_equal(metric_columns(mine["results"]), metric_columns(theirs["results"]))


def test_modality_ablation_on_ray_equals_the_local_one(cluster: str, local: Workspace) -> None:
    options: dict[str, Any] = {"fusions": ("concat",), "config": FAST, "report": False}
    mine = ablation_ray(local, "classify", "category", **options)
    theirs = modality_ablation(local, "classify", "category", **options)
    assert [r["variant"] for r in mine["results"]] == ["text", "image", "fusion:concat"]
    assert mine["split"] == theirs["split"]
    for a, b in zip(mine["results"], theirs["results"], strict=True):
        assert a["variant"] == b["variant"] and a["metrics"] == b["metrics"], (a, b)


def pool_actors() -> dict[str, str]:
    """The workers of Ray's joblib pools that this cluster has started (ended ones included): actor id → node id.
    From Ray's global state: its state API needs the dashboard, which the test cluster does not run."""
    return {key: actor["Address"]["NodeID"] for key, actor in ray._private.state.actors().items()
            if actor["ActorClassName"] == "PoolActor"}


def category_scores(model: Any, ws: Workspace) -> np.ndarray:
    products = ws.read("products")
    return model.outputs(model.features(products, ws))["predictions"]["category"]


def test_cross_fitted_training_on_ray_equals_the_local_run(cluster: str, local: Workspace) -> None:
    from typer.testing import CliRunner

    import tuwen.cli.models  # noqa: F401  (registers the commands)
    from tuwen.cli.main import app
    from tuwen.cli.models import train_config

    # `tuwen train --ray ADDRESS`: every fold job of every member, then each kept member's refits (two bagging seeds
    # for a network), runs in Ray's joblib pool on the two nodes; the command joins the Ray this process runs
    flags = ["--target", "category", "--modalities", "text", "--quality", "best", "--folds", "2", "--epochs", "3",
             "--ensemble", "2", "--seed", "3"]
    before = pool_actors()
    done = CliRunner().invoke(app, ["train", str(local.path), cluster, "--ray", "--name", "on-ray", "--json", *flags])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    workers = {key: node for key, node in pool_actors().items() if key not in before}
    assert len(set(workers.values())) == 2  # the jobs ran in Ray actors on both nodes
    # ...of one warm pool of two: the refits ran on the actors the folds ran on, and it ended with the training
    assert len(workers) == 2 and close_pools() == 0
    remote = load_model(local, "on-ray")
    assert remote.info["train"]["backend"] == "ray" and remote.info["train"]["jobs"] == 2
    # the same options in this process alone
    config = train_config(3, 3, False, 2, None, "best", True, 2)
    mine = train_model(local, "classify", "category", modalities=("text",), seed=3, config=replace(config, jobs=1),
                       save=False)
    assert mine.info["train"]["backend"] == "loky" and summary["quality"] == "best"
    assert summary["metrics"] == mine.info["metrics"]  # the cross-fitted scores, to the last digit
    assert remote.info["members"].keys() == mine.info["members"].keys()
    assert {name: m["oof"] for name, m in remote.info["members"].items()} == \
        {name: m["oof"] for name, m in mine.info["members"].items()}
    assert remote.info["experts"]["weights"] == mine.info["experts"]["weights"]
    assert np.allclose(category_scores(remote, local), category_scores(mine, local), atol=1e-6)


def test_fast_training_fits_its_linear_member_on_ray_with_the_local_numbers(cluster: str, local: Workspace) -> None:
    quick = TrainConfig(hidden=32, epochs=4, patience=2, quality="fast", progress=False)
    # a validation part of 20+ rows, so the fast model fits its TF-IDF linear member beside the network
    prepared = prepare(local, make_task("classify", "category"), modalities=("text", "image"), seed=0, val_size=0.25)
    names = prepared.inputs(("text", "image"))
    here, here_outcome = fit_fast(prepared, names, replace(quick, jobs=1))
    on_ray = ray_config(quick)
    assert (on_ray.backend, on_ray.jobs) == ("ray", 2)
    before = pool_actors()
    there, there_outcome = fit_fast(prepared, names, on_ray)
    assert len(set(pool_actors()) - set(before)) == 2  # the linear member was fitted in a pool of two Ray actors
    assert close_pools() == 1  # which waited for another call until closed
    assert here.info["linear"] is not None and there.info["linear"]["setting"] == here.info["linear"]["setting"]
    assert there.info["linear"]["validation"] == here.info["linear"]["validation"]
    assert there.info["experts"] == here.info["experts"]
    for head, values in here_outcome["predictions"].items():
        assert np.allclose(values, there_outcome["predictions"][head], atol=1e-6)


def test_a_cluster_address_needs_ray() -> None:
    from typer.testing import CliRunner

    import tuwen.cli.models  # noqa: F401  (registers the commands)
    from tuwen.cli.main import app

    done = CliRunner().invoke(app, ["train", "nowhere", "10.0.0.1:6379", "--target", "category"])
    assert done.exit_code == 2 and "goes with --ray" in done.output
    done = CliRunner().invoke(app, ["train", "nowhere", "--ray", "--task", "recommend"])
    assert done.exit_code == 2 and "--ray trains product models" in done.output
