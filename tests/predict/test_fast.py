"""The default model above BEST_BELOW rows (predict.training.fast): one fused network plus the plain TF-IDF
logistic regression, combined on the validation part; on the synthetic workspace of test_train."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np

from tuwen import Workspace
from tuwen.predict.networks import ExpertBlend
from tuwen.predict.registry import train_model
from tuwen.predict.tasks import make_task
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.fast import FAST_EPOCHS, FAST_PATIENCE, fast_grid, fast_schedule, fit_fast
from tuwen.predict.training.prepare import prepare

from .test_train import FAST, workspace  # noqa: F401 (a fixture); registers the photo encoder "test_oracle_photo"

QUICK = replace(FAST, epochs=8, patience=3)




def test_fast_model_is_never_below_its_plain_baseline_on_validation_and_repeats_itself(
        workspace: Workspace) -> None:  # noqa: F811 (the fixture imported above)
    prepared = prepare(workspace, make_task("classify", "category"), modalities=("text", "image"), seed=0)
    names = prepared.inputs(("text", "image"))
    model, outcome = fit_fast(prepared, names, replace(QUICK, jobs=1))
    info = model.info
    validation = info["experts"]["validation"]
    assert set(validation) == {"blend", "fused", "linear:tfidf"}
    assert validation["blend"] >= max(validation["fused"], validation["linear:tfidf"]) - 1e-9
    assert info["linear"]["setting"] in fast_grid(prepared.targets)
    assert len(info["linear"]["validation"]) == len(fast_grid(prepared.targets))
    if info["experts"]["choice"] != "fused":  # the linear member is inside the saved network
        assert isinstance(model.network, ExpertBlend) and model.network.expert_names == ["linear:tfidf"]
    # the same seed gives the same numbers, with the linear member fitted here or in a worker process
    again, repeated = fit_fast(prepared, names, replace(QUICK, jobs=2))
    for head, values in outcome["predictions"].items():
        assert np.allclose(values, repeated["predictions"][head], atol=1e-6)
    assert again.info["experts"] == info["experts"]


def test_fast_schedule_shortens_only_the_default_epochs_and_refit_records_every_row(
        workspace: Workspace) -> None:  # noqa: F811 (the fixture imported above)
    short = fast_schedule(TrainConfig())
    assert (short.epochs, short.patience) == (FAST_EPOCHS, FAST_PATIENCE)
    assert fast_schedule(TrainConfig(epochs=25, patience=8)).epochs == 25  # an explicit --epochs stays
    model = train_model(workspace, "classify", "category", name="fast-refit",
                        config=replace(QUICK, refit=True))
    folder = workspace.artifacts / "models" / "fast-refit"
    split = json.loads((folder / "split.json").read_text())
    assert not split["test"] and model.info["quality"] == "fast"
    labelled = len(split["train"]) + len(split["val"])
    assert len(split["fitted"]) == labelled == model.info["fitted_rows"]  # the linear member saw validation too
