"""``--task recommend`` through the shared ``train`` / ``evaluate`` commands and ``ws.train`` / ``ws.evaluate``."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import tuwen.cli.models  # noqa: F401  (registers train / evaluate)
import tuwen.cli.recommend  # noqa: F401  (registers recommend)
from tests.helpers import synthetic_shop
from tuwen import Workspace
from tuwen.cli.main import app


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("task-rec")
    return synthetic_shop(root, n_products=160, n_users=100, seed=5, image_size=32)


def test_python_train_and_compare_recommenders(shop: Workspace) -> None:
    fitted = shop.train("recommend", model="content")
    assert fitted.name == "content"
    served = shop.recommend(str(shop.read("interactions")["user_id"].iloc[0]), k=5)
    assert len(served.items) == 5
    report = shop.evaluate("recommend", models=["popularity", "content"], test_days=30)
    assert report["task"] == "recommend" and report["split"]["scored_users"] > 0
    by_model = {row["model"]: row for row in report["results"]}
    assert set(by_model) == {"popularity", "content"}
    for row in by_model.values():
        assert 0.0 <= row["map"] <= 1.0 and row["map_low"] <= row["map"] <= row["map_high"]


def test_cli_train_and_evaluate_task_recommend(shop: Workspace) -> None:
    runner = CliRunner()
    trained = runner.invoke(app, ["train", str(shop.path), "--task", "recommend", "--model", "repurchase", "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["model"] == "repurchase"
    user = str(shop.read("interactions")["user_id"].iloc[0])
    served = runner.invoke(app, ["recommend", str(shop.path), "--user", user, "--k", "4", "--json"])
    assert served.exit_code == 0, served.output
    assert len(json.loads(served.output)["items"]) == 4
    compared = runner.invoke(app, ["evaluate", str(shop.path), "--task", "recommend", "--models",
                                   "popularity,repurchase", "--test-days", "30", "--json"])
    assert compared.exit_code == 0, compared.output
    report = json.loads(compared.output)
    assert report["task"] == "recommend" and report["skipped"] == []  # recommend.compare's dict, printed as is
    assert [r["model"] for r in report["results"]] == ["popularity", "repurchase"]


def test_recommender_option_without_task_recommend_is_refused(shop: Workspace) -> None:
    result = CliRunner().invoke(app, ["train", str(shop.path), "--task", "classify", "--model", "ranker"])
    assert result.exit_code == 2
    assert "--task recommend" in result.output
