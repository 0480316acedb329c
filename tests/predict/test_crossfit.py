"""Cross-fitted ("best" quality) models on the tiny SYNTHETIC workspace of test_train: repeatable (same seed, same
numbers, in one process or in several), refitted on every labelled row (and saying so in the model folder), and
never below the plain TF-IDF baseline that is one of their members."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from tests.predict.test_train import workspace  # noqa: F401  (the fixture, and it registers the photo encoder)
from tuwen import Workspace
from tuwen.predict.networks import network_outputs
from tuwen.predict.registry import load_model, train_model
from tuwen.predict.training.config import BEST_BELOW, TrainConfig, resolve_quality
from tuwen.predict.training.crossfit import ensemble_selection
from tuwen.predict.training.splits import fold_of

BEST = TrainConfig(hidden=32, epochs=6, patience=3, folds=3, jobs=1, progress=False, quality="best")


def test_auto_quality_cross_fits_small_training_sets_only() -> None:
    assert resolve_quality(TrainConfig(), BEST_BELOW - 1) == "best"
    assert resolve_quality(TrainConfig(), BEST_BELOW) == "fast"
    assert resolve_quality(TrainConfig(quality="fast"), 10) == "fast"
    with pytest.raises(ValueError, match="unknown quality 'great'"):
        resolve_quality(TrainConfig(quality="great"), 10)


def test_folds_are_stratified_grouped_and_cover_every_row() -> None:
    strata = np.array(["a", "b"] * 30)
    groups = np.repeat(np.arange(20), 3)
    fold = fold_of(strata, groups, 3, seed=0)
    assert sorted(set(fold)) == [0, 1, 2]
    for g in range(20):  # a group's rows stay in one fold
        assert len(set(fold[groups == g])) == 1
    assert np.array_equal(fold, fold_of(strata, groups, 3, seed=0))


def test_same_seed_same_numbers_in_one_process_or_two(workspace: Workspace) -> None:  # noqa: F811
    one = train_model(workspace, "classify", "category", save=False, config=BEST, limit=160)
    two = train_model(workspace, "classify", "category", save=False, config=replace(BEST, jobs=2), limit=160)
    assert one.info["quality"] == "best" and one.info["folds"] == 3
    assert one.info["metrics"] == two.info["metrics"]  # cross-fitted and test scores, to the last digit
    assert one.info["experts"]["weights"] == two.info["experts"]["weights"]
    frame = workspace.read("products").head(30)
    first = one.outputs(one.features(frame, workspace))["predictions"]["category"]
    second = two.outputs(two.features(frame, workspace))["predictions"]["category"]
    assert np.allclose(first, second, atol=1e-6)
    members = one.info["members"]
    assert {"fused", "linear:tfidf", "linear:all"} <= set(members)
    assert "epoch" in members["fused"] and "C" in members["linear:tfidf"]["setting"]
    # the linear members weigh classes as the task does, and carry the temperature their OOF log loss chose
    assert members["linear:tfidf"]["setting"]["class_weight"] == one.task.class_weight  # type: ignore[attr-defined]
    assert members["linear:all"]["temperature"] > 0
    # the stack is weighed on the class-balanced log loss of the out-of-fold rows, scored by macro-F1
    assert one.info["experts"]["stack"]["objective"] == "class-balanced log loss"
    assert 0 < one.info["experts"]["validation"]["blend"] <= 1


def test_stack_picks_the_linear_baseline_when_the_network_cannot_learn(workspace: Workspace) -> None:  # noqa: F811
    # Titles name the colour in words that logistic regression on TF-IDF reads off; the network here barely
    # moves from its random start (one epoch at a tiny learning rate): the OOF choice must see that, and the
    # saved model must then answer as the baseline does on the test rows.
    crippled = replace(BEST, epochs=1, lr=1e-6)
    model = train_model(workspace, "classify", "colour", save=False, modalities=("text",), config=crippled)
    weights = model.info["experts"]["weights"]["colour"]
    members = model.info["members"]
    assert members["linear:tfidf"]["oof"] > members["text"]["oof"] + 0.2
    assert weights["linear:tfidf"] > 0.5 > weights["fused"]  # "fused": the model's own (here text) network
    # weighed on the balanced log loss, the blend's OOF macro-F1 stays within a row or two of the baseline's
    assert model.info["experts"]["validation"]["blend"] >= members["linear:tfidf"]["oof"] - 0.02
    test = workspace.read("products")
    test = test[test["id"].isin(set(model.neighbours["ids"])) == False]  # noqa: E712  (rows it never learnt from)
    features = model.features(test, workspace)
    target = model.task.targets(test)["colour"]
    accuracy = (model.outputs(features)["predictions"]["colour"].argmax(1) == target).mean()
    network_alone = network_outputs(model.network.fused, model.task, features)["predictions"]["colour"]
    assert accuracy == pytest.approx(model.info["metrics"]["test"]["accuracy"])
    assert accuracy > (network_alone.argmax(1) == target).mean() + 0.2


def test_ensemble_selection_never_scores_below_its_best_member() -> None:
    from tuwen.predict.tasks.classify import ClassifyTask

    task = ClassifyTask("c")
    task.label.classes = ["a", "b", "c"]
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    good = np.eye(3)[y] * 3 + rng.normal(0, 1.5, (300, 3))  # informative logits
    noise = rng.normal(0, 1, (300, 3))
    outputs = [{"c": noise.astype(np.float32)}, {"c": good.astype(np.float32)}]
    present = np.ones((300, 2), dtype=bool)
    weights, value = ensemble_selection(task, outputs, present, {"c": y})
    assert weights[1] > weights[0] and weights.sum() == pytest.approx(1.0)
    from sklearn.metrics import f1_score

    assert value >= f1_score(y, good.argmax(1), average="macro") - 1e-9


def test_cli_train_refits_on_every_row_and_evaluate_reports_cross_fitted_scores(workspace: Workspace  # noqa: F811
                                                                               ) -> None:
    import tuwen.cli.models  # noqa: F401  (registers the commands)
    from tuwen.cli.main import app

    runner = CliRunner()
    ws = str(workspace.path)
    done = runner.invoke(app, ["train", ws, "--target", "colour", "--name", "colour-best", "--quality", "best",
                               "--modalities", "text", "--epochs", "3", "--folds", "3", "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["quality"] == "best" and summary["split"]["test"] == 0
    assert summary["metrics"]["crossfit"]["accuracy"] > 0.35 and not summary["metrics"]["test"]  # 6 colours
    products = workspace.read("products")
    assert summary["fitted_rows"] == len(products)
    folder = workspace.artifacts / "models" / "colour-best"
    split = json.loads((folder / "split.json").read_text())
    assert sorted(split["fitted"]) == sorted(products["id"].astype(str)) and split["test"] == []
    done = runner.invoke(app, ["evaluate", ws, "--model", "colour-best", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["scored_on"].startswith("out-of-fold")
    assert result["results"][0]["metrics"]["accuracy"] == round(summary["metrics"]["crossfit"]["accuracy"], 4)
    loaded = load_model(workspace, "colour-best")
    [prediction] = loaded.predict(products.head(1), workspace)
    assert prediction["prediction"] in loaded.task.label.classes  # type: ignore[attr-defined]
    assert "neighbours" in prediction and "contributions" in prediction

    done = runner.invoke(app, ["train", ws, "--target", "colour", "--name", "colour-fast", "--quality", "fast",
                               "--modalities", "text", "--epochs", "3", "--ensemble", "1", "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["quality"] == "fast" and summary["metrics"]["val"]["accuracy"] > 0.3
    # fast: the network learns from the training part; its TF-IDF linear member from training + validation rows
    part = summary["split"]
    assert part["test"] == 0 and summary["fitted_rows"] == part["train"] + part["val"]
    fitted = json.loads((workspace.artifacts / "models" / "colour-fast" / "split.json").read_text())["fitted"]
    assert len(fitted) == summary["fitted_rows"]



def _task(classes: int = 3):  # a bare classification task over ``classes`` labels, for stack tests
    from tuwen.predict.tasks.classify import ClassifyTask

    task = ClassifyTask("c")
    task.label.classes = [str(c) for c in range(classes)]
    return task


def test_balanced_log_loss_is_scikit_learns_with_balanced_sample_weights() -> None:
    from sklearn.metrics import log_loss

    from tuwen.predict.training.crossfit import balanced_nll

    rng = np.random.default_rng(1)
    y = np.array([0] * 50 + [1] * 8 + [2] * 2)
    logits = rng.normal(0, 2, (60, 3))
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    weights = 1.0 / np.bincount(y)[y]
    expected = -log_loss(y, p, sample_weight=weights, labels=[0, 1, 2])
    assert balanced_nll(_task(), {"c": logits.astype(np.float32)}, {"c": y}) == pytest.approx(expected, rel=1e-5)


def test_stack_weighs_members_by_balanced_log_loss_and_reports_the_main_metric() -> None:
    from sklearn.metrics import f1_score

    from tuwen.predict.training.crossfit import choose_stack

    task, rng = _task(), np.random.default_rng(0)
    y = np.array([0] * 500 + [1] * 60 + [2] * 40)
    good = np.where(rng.random(600) < 0.85, y, rng.integers(0, 3, 600))
    informative = {"c": (np.eye(3)[good] * 2 + rng.normal(0, 0.3, (600, 3))).astype(np.float32)}
    # an overconfident member that always says the majority class: its log loss is huge, it must get no weight
    majority = {"c": np.tile(np.array([20.0, 0.0, 0.0], dtype=np.float32), (600, 1))}
    present = np.ones((600, 2), dtype=bool)
    weights, value, rule = choose_stack(task, [majority, informative], present, {"c": y})
    assert weights.tolist() == [0.0, 1.0] and rule["objective"] == "class-balanced log loss"
    assert value == pytest.approx(f1_score(y, informative["c"].argmax(1), average="macro"))


def test_linear_members_weigh_classes_as_their_task_and_sqrt_is_scikit_learns_dictionary() -> None:
    from sklearn.linear_model import LogisticRegression

    from tuwen.predict.training.plain import class_weights, fit_heads, settings

    y = np.array([0] * 30 + [1] * 10 + [2] * 5)
    assert {s["class_weight"] for s in settings({"c": y})} == {None, "balanced"}  # no task weighting: both tried
    assert [s["class_weight"] for s in settings({"c": y}, "balanced")] == ["balanced"] * 3
    assert [s["class_weight"] for s in settings({"c": y}, "none")] == [None] * 3
    assert settings({"p": np.array([1.0, 2.0])}, "balanced")[0].keys() == {"alpha"}
    weights = class_weights(y, "sqrt")
    assert weights == pytest.approx({0: np.sqrt(45 / 90), 1: np.sqrt(45 / 30), 2: np.sqrt(45 / 15)})
    rng = np.random.default_rng(0)
    x = sp.csr_matrix(np.eye(3)[y] + rng.normal(0, 1.0, (45, 3)))
    [(coef, bias)] = fit_heads(_task(), x, {"c": y}, {"C": 1.0, "class_weight": "sqrt"}).values()
    expected = LogisticRegression(C=1.0, class_weight=weights, max_iter=300, tol=1e-3).fit(x, y)
    assert np.allclose(coef, expected.coef_.T) and np.allclose(bias, expected.intercept_)


def test_temperature_undoes_over_confidence_and_keeps_every_class() -> None:
    from tuwen.predict.training.crossfit import balanced_nll, temperature

    task, rng = _task(), np.random.default_rng(2)
    y = rng.integers(0, 3, 2000)
    calibrated = np.log(np.full((2000, 3), 0.15))  # the true class has probability 0.7
    calibrated[np.arange(2000), y] = np.log(0.7)
    flipped = rng.random(2000) < 0.3  # ...and is wrong as often as that says
    calibrated[flipped] = calibrated[flipped][:, [1, 2, 0]]
    confident = {"c": (calibrated * 4).astype(np.float32)}  # the same ranking, four times too sure
    scale = temperature(task, confident, {"c": y})
    assert 3.0 < scale < 5.5
    scaled = {"c": confident["c"] / scale}
    assert balanced_nll(task, scaled, {"c": y}) > balanced_nll(task, confident, {"c": y}) + 0.5
    assert (scaled["c"].argmax(1) == confident["c"].argmax(1)).all()
    assert temperature(task, {"p": np.zeros((5, 1), dtype=np.float32)}, {"p": np.arange(5.0)}) == 1.0
