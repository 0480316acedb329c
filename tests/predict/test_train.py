"""Training, evaluation (modality ablation), saving, reloading and predicting, on a tiny SYNTHETIC workspace.

The synthetic catalog hides the category in (shape, material): the material is named only in the
text, the shape is visible only in the photo. The image encoder here is a test fixture that reads
the photo's ground truth (shape and colour, with noise) from the catalog's own files, so the tests
check tuwen's fusion and training logic, not an image network, and run in seconds.
"""

from __future__ import annotations

import csv
import json
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from tuwen import Workspace
from tuwen.encoders import register
from tuwen.ingest.synthetic import COLOURS, SHAPES, generate_catalog
from tuwen.predict.features import TABULAR, TFIDF, FeatureBuilder, InputSpec
from tuwen.predict.registry import load_model, run_ablation, train_model
from tuwen.predict.training.config import TrainConfig
from tuwen.predict.training.report import describe_choice
from tuwen.predict.training.splits import split_items
from tuwen.util.folders import FormatError

torch.set_num_threads(1)
# quality="fast": these tests check the single-split pipeline (tests/predict/test_crossfit.py the cross-fitted one)
FAST = TrainConfig(hidden=64, epochs=25, patience=8, ensemble=1, progress=False, quality="fast")


@register("test_oracle_photo")
class OraclePhoto:
    """Shape and colour of the product in the photo (one-hot, plus noise), looked up from the catalog files."""

    name = "test_oracle_photo"
    modality = "image"
    dim = len(SHAPES) + len(COLOURS) + 4
    version = "1"

    def __init__(self, **_: object) -> None:
        self.truth: dict[str, tuple[str, str]] = {}

    def _lookup(self, image: Path) -> tuple[str, str]:
        catalog = image.parent.parent / "products.csv"
        if image.stem not in self.truth:
            with catalog.open(encoding="utf-8") as handle:
                for row in csv.DictReader(handle):
                    self.truth[row["id"]] = (row["shape"], row["colour"])
        return self.truth[image.stem]

    def encode(self, batch: list[str]) -> np.ndarray:
        rows = []
        for path in batch:
            shape, colour = self._lookup(Path(path))
            vector = np.zeros(self.dim, dtype=np.float32)
            vector[SHAPES.index(shape)] = 1.0
            vector[len(SHAPES) + list(COLOURS).index(colour)] = 1.0
            seed = int.from_bytes(Path(path).stem.encode()[-4:], "little")
            vector += np.random.default_rng(seed).normal(0, 0.3, self.dim).astype(np.float32)
            rows.append(vector)
        return np.stack(rows)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("train")
    catalog = generate_catalog(root / "catalog", n_products=480, n_users=40, seed=0, image_size=24)
    ws = Workspace(root / "ws")
    ws.ingest(preset="synthetic", path=catalog)
    ws.embed(image_encoder="test_oracle_photo", text_encoder=None, progress=False)
    return ws


def test_features_tfidf_and_tabular_roundtrip_and_presence_masks() -> None:
    frame = pd.DataFrame({
        "id": ["a", "b", "c", "d"], "title": ["红色 陶瓷 杯", "Blue glass vase", "", "blue glass lamp"],
        "price": [10.0, None, 30.0, 40.0],
        "attributes": [json.dumps({"brand": "lu"}), json.dumps({"brand": "lu"}), json.dumps({}),
                       json.dumps({"brand": "zen"})]})
    specs = [InputSpec("title", TFIDF, "text"), InputSpec(TABULAR, TABULAR, "tabular", ("price", "brand"))]
    builder = FeatureBuilder(specs).fit(frame)
    features = builder.build(frame, vector_source=None)
    assert features.mask[:, 0].tolist() == [True, True, False, True]  # an empty title is absent
    assert features.mask[:, 1].tolist() == [True, True, True, True]  # price or brand known
    tabular = features.dense["tabular"]
    assert tabular[1, 1] == 0.0 and tabular[0, 0] == pytest.approx(np.log1p(10.0))  # [log price, has price, ...]
    rebuilt = FeatureBuilder.from_state(json.loads(json.dumps(builder.state())))
    again = rebuilt.build(frame, vector_source=None)
    assert (again.sparse["title@tfidf_sparse"] != features.sparse["title@tfidf_sparse"]).nnz == 0
    assert np.array_equal(again.dense["tabular"], tabular)
    unseen = rebuilt.build(pd.DataFrame({"id": ["e"], "title": ["glass"], "price": [5.0],
                                         "attributes": [json.dumps({"brand": "new brand"})]}), None)
    assert unseen.dense["tabular"][0, -1] == 1.0  # an unseen brand falls into the "other" slot


def test_split_is_stratified_grouped_and_reproducible() -> None:
    rng = np.random.default_rng(0)
    strata = rng.choice(["a", "b", "c"], size=600, p=[0.5, 0.3, 0.2])
    groups = np.array([f"g{i // 3}" for i in range(600)])  # three colour variants per garment
    split = split_items(strata, groups, seed=0)
    assert np.array_equal(split, split_items(strata, groups, seed=0))
    assert not np.array_equal(split, split_items(strata, groups, seed=1))
    for group in np.unique(groups):
        assert len(set(split[groups == group])) == 1  # variants never straddle train and test
    shares = pd.Series(split).value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.2, abs=0.03)
    assert shares["val"] == pytest.approx(0.1, abs=0.03)
    for label in "abc":  # each class keeps its share in test
        assert (strata[split == "test"] == label).mean() == pytest.approx((strata == label).mean(), abs=0.06)


def test_test_folds_of_one_seed_cover_every_row_once() -> None:
    rng = np.random.default_rng(1)
    strata = rng.choice(["a", "b"], size=300, p=[0.7, 0.3])
    groups = np.array([f"g{i // 2}" for i in range(300)])
    parts = [split_items(strata, groups, seed=3, val_size=0.0, test_fold=k) == "test" for k in range(5)]
    assert np.array_equal(np.sum(parts, axis=0), np.ones(300))  # repeated CV: each row tested exactly once
    assert np.array_equal(parts[0], split_items(strata, groups, seed=3, val_size=0.0) == "test")  # fold 0: as before
    for part in parts:
        assert set(groups[part]).isdisjoint(groups[~part])


def test_ablation_fusion_beats_each_modality_and_writes_report(workspace: Workspace) -> None:
    summary = run_ablation(workspace, "classify", "category", fusions=("concat", "late"), config=FAST)
    scores = {r["variant"]: r["metrics"] for r in summary["results"]}
    assert list(scores) == ["text", "image", "fusion:concat", "fusion:late"]
    best_single = max(scores["text"]["accuracy"], scores["image"]["accuracy"])
    assert best_single < 0.5  # neither the words nor the photo alone determine the category
    # Both fusions beat both modalities; early fusion, which can learn the (shape, material) conjunction,
    # by a wide margin (late fusion only adds per-modality scores, so it gains less).
    assert scores["fusion:late"]["accuracy"] > best_single + 0.05
    assert scores["fusion:concat"]["accuracy"] > best_single + 0.15
    assert set(scores["fusion:concat"]) >= {"accuracy", "macro_f1", "top3"}
    split = summary["split"]
    assert split["seed"] == 0 and split["train"] + split["val"] + split["test"] == split["items"]
    json.dumps(summary)  # the --json output is plain JSON
    report = Path(summary["report"])
    text = report.read_text(encoding="utf-8")
    assert "| fusion:late |" in text and "stratified by target" in text
    assert "validation pick" in text  # each fused model says which member(s) its validation blend kept
    picks = {r["variant"]: describe_choice(r["experts"]) for r in summary["results"]}
    assert picks["text"].startswith("blend")  # the text network blends with logistic regression on its text
    assert picks["fusion:concat"].split(":")[0] in {"blend", "text", "image"}
    for variant in ("fusion:concat", "fusion:late"):  # each fused model also holds the linear member
        experts = next(r["experts"] for r in summary["results"] if r["variant"] == variant)
        assert set(experts["validation"]) == {"blend", "text", "image", "linear"}
    for chart in ("ablation.png", "confusion.png", "per_class_f1.png"):
        assert (report.with_suffix("") / chart).stat().st_size > 1000


PREDICT_SCRIPT = """
import json, sys
import numpy as np
import tests.predict.test_train  # registers the fixture encoder, as the training process did
from tuwen.predict.registry import load_model
from tuwen.util.folders import FormatError
from tuwen import Workspace
ws = Workspace(sys.argv[1], create=False)
model = load_model(ws, "cat")
frame = ws.read("products").head(40)
features = model.features(frame, ws)
print(json.dumps({k: v.tolist() for k, v in model.outputs(features)["predictions"].items()}))
"""


def tensorboard_scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Scalars of a TensorBoard run folder, read the way TensorBoard does (TFRecord framing + Event protos)."""
    from tensorboardX.proto.event_pb2 import Event

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(run.glob("events.out.tfevents.*")):
        data, position = path.read_bytes(), 0
        while position < len(data):
            (length,) = struct.unpack("<Q", data[position:position + 8])
            event = Event.FromString(data[position + 12:position + 12 + length])
            position += 12 + length + 4  # length, its CRC, the record, its CRC
            for value in event.summary.value:
                scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def test_saved_model_reloads_in_a_fresh_process_and_predicts_identically(workspace: Workspace) -> None:
    model = train_model(workspace, "classify", "category", name="cat", fusion="gated", config=FAST)
    folder = workspace.artifacts / "models" / "cat"
    for name in ("config.json", "features.json", "weights.pt", "neighbours.npz", "metrics.jsonl", "split.json"):
        assert (folder / name).exists(), name
    log = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert log and {"epoch", "train_loss", "val_macro_f1"} <= set(log[0])
    scalars = tensorboard_scalars(folder / "tensorboard" / "member-0")
    assert [step for step, _ in scalars["val/macro_f1"]] == [entry["epoch"] for entry in log]
    assert [value for _, value in scalars["train/loss"]] == pytest.approx([entry["train_loss"] for entry in log])
    frame = workspace.read("products").head(40)
    here = model.outputs(model.features(frame, workspace))["predictions"]
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", PREDICT_SCRIPT, str(workspace.path)], capture_output=True,
                          text=True, cwd=root, check=True, timeout=120)
    there = json.loads(done.stdout.strip().splitlines()[-1])
    for head, values in here.items():
        assert np.allclose(np.asarray(there[head]), values, atol=1e-6)
    config = json.loads((folder / "config.json").read_text())
    assert config["task"]["label"]["classes"] == sorted(set(workspace.read("products")["category"]))
    assert config["predictor"] == "fused" and config["format_version"] == 1
    old = copy_model(folder, workspace, "cat-old")
    config["format_version"] = 0  # a folder an older tuwen wrote
    (old / "config.json").write_text(json.dumps(config))
    with pytest.raises(FormatError, match="saved by an older tuwen .*retrain it"):
        load_model(workspace, "cat-old")
    shutil.rmtree(old)  # the module's other tests see only the models they trained


def copy_model(folder: Path, workspace: Workspace, name: str) -> Path:
    """A copy of a saved model folder under another name in the same workspace."""
    copy = workspace.artifacts / "models" / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    return copy


def test_new_product_without_photo_still_gets_prediction_contributions_and_neighbours(workspace: Workspace) -> None:
    if not (workspace.artifacts / "models" / "cat").exists():
        train_model(workspace, "classify", "category", name="cat", fusion="gated", config=FAST)
    model = load_model(workspace, "cat")
    frame = pd.DataFrame([{"id": "new-1", "title": "Handmade Glass Collection", "description": "Made of glass.",
                           "image_paths": [], "has_image": False}])
    [prediction] = model.predict(frame, workspace)
    assert prediction["id"] == "new-1"
    assert prediction["prediction"] in model.task.label.classes  # type: ignore[attr-defined]
    assert sum(prediction["scores"].values()) <= 1.0 + 1e-6
    assert prediction["contributions"]["image"] is None  # absent, so it contributed nothing
    assert isinstance(prediction["contributions"]["text"], float)
    assert prediction["contributions"]["weights"]["image@test_oracle_photo"] == 0.0
    assert len(prediction["neighbours"]) == 5 and prediction["neighbours"][0]["id"].startswith("syn-")


def test_price_tag_and_review_tasks_train_and_score(workspace: Workspace) -> None:
    price = train_model(workspace, "price", save=False, config=replace(FAST, epochs=30))
    metrics = price.info["metrics"]["test"]
    assert metrics["r2"] > 0.3 and 0 < metrics["mdape"] < 0.5  # material (text) and size drive the price
    products = workspace.read("products")
    predicted = price.predict(products.head(3), workspace, contributions=False, neighbours=0)
    assert all(20 < p["prediction"] < 1000 for p in predicted)  # CNY, not log units

    tag = train_model(workspace, "tag", "colour,shape", save=False, config=FAST)
    scores = tag.info["metrics"]["test"]
    assert scores["colour/accuracy"] > 0.8 and scores["shape/accuracy"] > 0.8  # both visible in the photo
    assert {"accuracy", "macro_f1", "micro_f1"} <= set(scores)

    review = train_model(workspace, "review", save=False, encoders=(), config=FAST)
    scores = review.info["metrics"]["test"]
    assert scores["accuracy"] > 0.4 and scores["mae"] < 1.0  # five classes: chance is about 0.2
    assert review.info["split"]["rule"].endswith("rest train")


def test_cli_train_evaluate_predict_and_user_errors(workspace: Workspace, tmp_path: Path) -> None:
    import tuwen.cli.models  # noqa: F401  (registers the commands)
    from tuwen.cli.main import app

    runner = CliRunner()
    ws = str(workspace.path)
    done = runner.invoke(app, ["train", ws, "--task", "classify", "--target", "colour", "--name", "colour",
                               "--fusion", "late", "--epochs", "10", "--ensemble", "1", "--quality", "fast",
                               "--no-refit", "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["name"] == "colour" and summary["metrics"]["test"]["accuracy"] > 0.8

    done = runner.invoke(app, ["evaluate", ws, "--model", "colour", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["results"][0]["metrics"]["accuracy"] > 0.8

    photo = next((Path(ws).parent / "catalog" / "images").glob("*.png"))
    done = runner.invoke(app, ["predict", ws, "--model", "colour", "--title", "Lumo Red Ceramic Piece",
                               "--image", str(photo), "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.strip().splitlines()[0])
    assert {"id", "prediction", "scores", "contributions", "neighbours"} <= set(result)

    done = runner.invoke(app, ["predict", ws, "--model", "colour", "--file", str(Path(ws).parent / "catalog"),
                               "--preset", "synthetic", "--json"])
    assert done.exit_code == 0, done.output
    assert len(done.stdout.strip().splitlines()) == 480

    for args, message in ((["train", ws, "--fusion", "sum", "--target", "colour"], "unknown fusion"),
                          (["predict", ws, "--model", "nope", "--title", "x"], "no model 'nope'"),
                          (["train", ws, "--task", "classify", "--target", "nonexistent"], "no column or attribute"),
                          (["evaluate", ws, "--task", "classify"], "say what to evaluate")):
        done = runner.invoke(app, args)
        assert done.exit_code == 2, (args, done.output)
        assert message in done.stderr and "Traceback" not in done.output


def test_purchase_model_learns_shopper_taste_and_scores_a_shopper_from_the_cli(workspace: Workspace) -> None:
    """Synthetic shoppers prefer some (category, colour) pairs: history × product must beat chance."""
    import tuwen.cli.models  # noqa: F401
    from tuwen.cli.main import app

    model = train_model(workspace, "purchase", name="buy", config=replace(FAST, epochs=15))
    split, metrics = model.info["split"], model.info["metrics"]["test"]
    assert split["rule"].startswith("temporal") and split["test"] > 0
    assert metrics["positives"] * 5 == metrics["n"]  # four sampled negatives per purchase
    assert metrics["auc"] > 0.55 and metrics["log_loss"] < 0.6
    runner = CliRunner()
    done = runner.invoke(app, ["evaluate", str(workspace.path), "--model", "buy", "--json"])
    assert done.exit_code == 0, done.output
    reloaded = json.loads(done.stdout)["results"][0]["metrics"]
    assert reloaded["auc"] == pytest.approx(metrics["auc"], abs=1e-4)
    # Platt scaling fitted on the validation pairs travels with the saved model (log-loss, not only AUC, agrees)
    assert model.info["calibration"]["scale"] > 0
    assert reloaded["log_loss"] == pytest.approx(metrics["log_loss"], abs=1e-4)
    shopper = workspace.read("interactions").query("kind == 'purchase'")["user_id"].iloc[-1]
    done = runner.invoke(app, ["predict", str(workspace.path), "--model", "buy", "--user", shopper, "--title",
                               "Lumo Red Ceramic Piece", "--json"])
    assert done.exit_code == 0, done.output
    scored = json.loads(done.stdout)
    assert scored["user_id"] == shopper and 0 < scored["prediction"] < 1 and scored["history"] > 0
    done = runner.invoke(app, ["predict", str(workspace.path), "--model", "buy", "--title", "x"])
    assert done.exit_code == 2 and "--user" in done.stderr


def test_review_loss_charges_far_ratings_more_and_reuses_classify_metrics() -> None:
    """A 5-star review called 1-star costs more than one called 4-star (the ordinal term), and the metrics are
    classify's plus the rating MAE of the most probable class."""
    from tuwen.predict.tasks.reviews import ReviewTask

    task = ReviewTask(class_weight="none", smoothing=0.0)
    task.fit(pd.DataFrame({"rating": [1, 2, 3, 4, 5]}))
    confident = torch.full((2, 5), -8.0)
    confident[0, 3] = confident[1, 0] = 8.0  # row 0 says 4 stars, row 1 says 1 star
    target = torch.tensor([4, 4])  # both are 5-star reviews
    losses, valid = task.head_loss("rating", confident, target)
    plain, _ = ReviewTask(class_weight="none", smoothing=0.0, ordinal=0.0).head_loss("rating", confident, target)
    assert bool(valid.all()) and torch.allclose(plain[0], plain[1])  # cross-entropy alone: equally wrong
    assert float(losses[1] - losses[0]) == pytest.approx(3.0, abs=1e-3)  # 4 points away instead of 1
    metrics = task.metrics({"rating": torch.softmax(confident, 1).numpy()}, {"rating": target.numpy()})
    assert metrics["mae"] == pytest.approx(2.5) and metrics["accuracy"] == 0.0 and "macro_f1" in metrics
    assert ReviewTask.from_state(task.state()).ordinal == task.ordinal


def test_single_modality_classifier_picks_class_weighting_on_validation(workspace: Workspace) -> None:
    from tuwen.predict.tasks import make_task
    from tuwen.predict.training.members import fit_variant
    from tuwen.predict.training.prepare import prepare

    prepared = prepare(workspace, make_task("classify", "category"), modalities=("text",))
    before = list(prepared.task.label.weights)
    names = prepared.inputs(("text",))
    _, outcome = fit_variant(prepared, names, replace(FAST, class_weights=("none",)))
    picked = outcome["class_weight"]
    assert picked["choice"] in ("sqrt", "none") and set(picked["validation"]) == {"sqrt", "none"}
    best = max(picked["validation"].values())
    assert picked["validation"][picked["choice"]] == best  # the validation winner (ties keep the task's own)
    assert prepared.task.label.weights == before  # the task's weights are left as they were
    _, once = fit_variant(prepared, names, replace(FAST, class_weights=()))
    assert once["class_weight"] is None


def test_fused_network_trains_with_its_best_experts_class_weighting(workspace: Workspace) -> None:
    """Text picked no weighting and validates best: the fused network trains with none, even though the
    photo expert kept "sqrt" (the old rule needed the experts to agree and fell back to the task's own)."""
    from tuwen.predict.tasks import make_task
    from tuwen.predict.training.members import fit_variant
    from tuwen.predict.training.prepare import prepare

    prepared = prepare(workspace, make_task("classify", "category"), modalities=("text", "image"))
    experts = {}
    for modality in ("text", "image"):
        names = prepared.inputs((modality,))
        model, _ = fit_variant(prepared, names, replace(FAST, class_weights=()))
        experts[modality] = (model.network, names)
    everything = prepared.inputs(("text", "image"))
    picks = {"text": "none", "image": "sqrt"}
    for best, other, expected in (("text", "image", "none"), ("image", "text", None)):
        experts[best][0].class_weight, experts[best][0].class_weight_score = picks[best], 0.9
        experts[other][0].class_weight, experts[other][0].class_weight_score = picks[other], 0.5
        _, outcome = fit_variant(prepared, everything, FAST, experts=experts)
        assert (outcome["class_weight"] or {}).get("choice") == expected  # None: the task's own "sqrt"


def test_a_failing_class_weight_candidate_leaves_nothing_behind(workspace: Workspace, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The second candidate crashes: the task keeps its own class weights and no candidate folder is left."""
    import tuwen.predict.training.members as train_module
    from tuwen.predict.tasks import make_task
    from tuwen.predict.training.members import fit_variant
    from tuwen.predict.training.prepare import prepare

    real, calls = train_module.fit_members, []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory")
        return real(*args, **kwargs)

    monkeypatch.setattr(train_module, "fit_members", second_fails)
    prepared = prepare(workspace, make_task("classify", "category"), modalities=("text",))
    before = list(prepared.task.label.weights)
    folder = tmp_path / "model"
    with pytest.raises(RuntimeError, match="out of memory"):
        fit_variant(prepared, prepared.inputs(("text",)), replace(FAST, class_weights=("none",)), folder)
    assert prepared.task.label.weights == before and len(calls) == 2
    assert not list(folder.glob(".class-weight-*"))


def test_class_weight_choice_keeps_the_chosen_candidates_logs_and_checkpoint(workspace: Workspace, tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The first candidate is made to win: the old loop left the *last* candidate's metrics.jsonl and
    TensorBoard run in the model folder, beside the first one's weights."""
    import tuwen.predict.training.members as train_module
    from tuwen.predict.tasks import make_task
    from tuwen.predict.training.members import fit_variant
    from tuwen.predict.training.prepare import prepare

    real, written = train_module.fit_members, []

    def first_wins(*args, **kwargs):  # the real training; its validation score rigged, what it wrote recorded
        network, fit = real(*args, **kwargs)
        folder = args[8] if len(args) > 8 else kwargs["folder"]
        written.append({"log": (folder / "metrics.jsonl").read_text(),
                        "events": [p.read_bytes() for p in sorted((folder / "tensorboard").rglob("events.*"))]})
        fit["val"] = {**fit["val"], "macro_f1": 1.0 if len(written) == 1 else 0.0}
        return network, fit

    monkeypatch.setattr(train_module, "fit_members", first_wins)
    prepared = prepare(workspace, make_task("classify", "category"), modalities=("text",))
    folder = tmp_path / "model"
    _, outcome = fit_variant(prepared, prepared.inputs(("text",)), replace(FAST, class_weights=("none",)), folder)
    assert outcome["class_weight"]["choice"] == prepared.task.class_weight and len(written) == 2
    assert written[0]["log"] != written[1]["log"]  # the candidates' logs differ, so the check below means something
    assert (folder / "metrics.jsonl").read_text() == written[0]["log"]
    assert [p.read_bytes() for p in sorted((folder / "tensorboard").rglob("events.*"))] == written[0]["events"]
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "metrics.jsonl", "tensorboard"]
    saved = torch.load(folder / "checkpoint.pt", weights_only=True)
    network = outcome["network"].fused  # the text network, inside its blend with the linear member
    for key, value in network.state_dict().items():
        assert torch.equal(saved[key], value), key


def test_variants_of_one_run_share_one_linear_member_per_inputs_and_weighting(workspace: Workspace) -> None:
    """An ablation fits the linear member once, not once per fusion; another class weighting gets its own."""
    from tuwen.predict.tasks import make_task
    from tuwen.predict.training.members import fit_variant
    from tuwen.predict.training.prepare import prepare

    prepared = prepare(workspace, make_task("classify", "category"), modalities=("text",))
    names = prepared.inputs(("text",))
    config = replace(FAST, class_weights=())
    first, _ = fit_variant(prepared, names, replace(config, fusion="concat"))
    second, _ = fit_variant(prepared, names, replace(config, fusion="mean"))
    assert first.network.expert_names == ["linear"] and first.network.experts[0] is second.network.experts[0]
    assert len(prepared.linears) == 1
    prepared.task.label.fit(prepared.frame[prepared.split == "train"], "none")  # another weighting
    try:
        third, _ = fit_variant(prepared, names, replace(config, fusion="concat"))
    finally:
        prepared.task.label.fit(prepared.frame[prepared.split == "train"], prepared.task.class_weight)
    assert third.network.experts[0] is not first.network.experts[0] and len(prepared.linears) == 2
