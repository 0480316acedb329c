"""The default model above BEST_BELOW rows (predict.training.fast): one fused network plus the plain TF-IDF
logistic regression, combined on the validation part; on the synthetic workspace of test_train."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tuwen import Workspace
from tuwen.ingest.synthetic import generate_catalog
from tuwen.predict.networks import ExpertBlend
from tuwen.predict.registry import train_model
from tuwen.predict.tasks import make_task
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.fast import FAST_EPOCHS, FAST_PATIENCE, fast_grid, fast_schedule, fit_fast
from tuwen.predict.training.prepare import prepare

from .test_train import FAST  # also registers test_train's photo encoder, "test_oracle_photo"

QUICK = replace(FAST, epochs=8, patience=3)


@pytest.fixture(scope="module")
def synthetic_workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """test_train's synthetic catalog: the category hides in the material (text) and the shape (photo)."""
    root = tmp_path_factory.mktemp("fast")
    catalog = generate_catalog(root / "catalog", n_products=480, n_users=40, seed=0, image_size=24)
    ws = Workspace(root / "ws")
    ws.ingest(preset="synthetic", path=catalog)
    ws.embed(image_encoder="test_oracle_photo", text_encoder=None, progress=False)
    return ws


def test_fast_model_is_never_below_its_plain_baseline_on_validation_and_repeats_itself(
        synthetic_workspace: Workspace) -> None:
    prepared = prepare(synthetic_workspace, make_task("classify", "category"), modalities=("text", "image"), seed=0)
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
        synthetic_workspace: Workspace) -> None:
    short = fast_schedule(TrainConfig())
    assert (short.epochs, short.patience) == (FAST_EPOCHS, FAST_PATIENCE)
    assert fast_schedule(TrainConfig(epochs=25, patience=8)).epochs == 25  # an explicit --epochs stays
    model = train_model(synthetic_workspace, "classify", "category", name="fast-refit",
                        config=replace(QUICK, refit=True))
    folder = synthetic_workspace.artifacts / "models" / "fast-refit"
    split = json.loads((folder / "split.json").read_text())
    assert not split["test"] and model.info["quality"] == "fast"
    labelled = len(split["train"]) + len(split["val"])
    assert len(split["fitted"]) == labelled == model.info["fitted_rows"]  # the linear member saw validation too
