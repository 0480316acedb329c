"""End-to-end trainable encoders (tuwen.predict.endtoend) on a tiny catalog whose labels live in one modality.

The catalog: 150 products with a 16 px photo and a bilingual title. ``photo_colour`` is visible only
in the photo (titles never name it); ``kind`` (mug / vase / lamp) is named only in the title, in
Chinese or English (photos are random colours). A model that learns either from scratch proves
its encoder for that modality works through the shared fusion, heads and training loop.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tuwen import Workspace
from tuwen.predict.endtoend import parse_mode
from tuwen.predict.endtoend.data import cache_folder, thumbnails
from tuwen.predict.endtoend.model import ENDTOEND_DEFAULTS, EndToEndModel, endtoend_config, train_endtoend
from tuwen.predict.endtoend.tokenizer import UNK, Tokenizer, words
from tuwen.predict.registry import load_model
from tuwen.predict.training.config import TrainConfig

torch.set_num_threads(1)
FAST = endtoend_config("trainable", hidden=32, epochs=6, patience=2, progress=False)
FAST_FT = endtoend_config("finetune", hidden=32, epochs=6, patience=2, progress=False)
COLOURS = {"red": (200, 30, 30), "green": (30, 170, 40), "blue": (30, 50, 200)}
KINDS = {"mug": ("陶瓷马克杯", "ceramic mug"), "vase": ("玻璃花瓶", "glass vase"), "lamp": ("台灯", "desk lamp")}
FILLER = ("新款", "classic", "家居", "home", "精选", "gift", "简约", "modern")


def write_catalog(root: Path, n: int = 150, seed: int = 0) -> Path:
    """Photo colour and kind vary independently: ``photo_colour`` only in the photo, ``kind`` only in the title."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour, kind = list(COLOURS)[i % 3], list(KINDS)[(i // 3) % 3]
        base = np.array(COLOURS[colour]) + rng.normal(0, 25, 3)
        pixels = np.clip(base + rng.normal(0, 20, (16, 16, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"p{i}.png")
        title = [*rng.choice(FILLER, 2), KINDS[kind][i % 2]]
        rng.shuffle(title)
        rows.append([f"p{i}", " ".join(title), f"img/p{i}.png", colour, kind])
    with (root / "products.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title", "image", "photo_colour", "kind"])
        writer.writerows(rows)
    return root / "products.csv"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("e2e")
    ws = Workspace(root / "ws")
    ws.ingest(catalog=write_catalog(root / "catalog"))
    return ws


@pytest.fixture(scope="module")
def colour_model(workspace: Workspace) -> EndToEndModel:
    """Trained once: GRU text + 16 px CNN image, on a label only the photo carries; saved as "colour"."""
    return train_endtoend(workspace, "classify", "photo_colour", name="colour", text_fields=("title",),
                          image_size=16, config=FAST)


def test_tokenizer_cuts_chinese_lowercases_english_and_learns_only_from_training_texts() -> None:
    assert words("红色连衣裙 Women's T-Shirt ＵＮＩＱＬＯ") == ["红色", "连衣裙", "women", "s", "t", "shirt", "uniqlo"]
    tokenizer = Tokenizer().fit(["红色连衣裙", "蓝色连衣裙 cotton", "red dress"])
    assert "连衣裙" in tokenizer.vocab and "裙" in tokenizer.vocab  # words, and characters of Chinese words
    ids = tokenizer.encode(["红裙 dress", "", "velvet"])
    assert ids.shape == (3, tokenizer.max_len)
    red, skirt = tokenizer.index["红"], tokenizer.index["裙"]
    assert ids[0, :3].tolist() == [red, skirt, tokenizer.index["dress"]]  # unseen 红裙 → its known characters
    assert not ids[1].any()  # an empty text is all padding (an absent input)
    assert ids[2, 0] == UNK  # "velvet" was never in the training texts
    again = Tokenizer.from_state(json.loads(json.dumps(tokenizer.state(), ensure_ascii=False)))
    assert np.array_equal(again.encode(["红裙 dress", "velvet"]), tokenizer.encode(["红裙 dress", "velvet"]))


def test_parse_mode_names_the_end_to_end_options() -> None:
    assert parse_mode(("trainable",)) == {"mode": "trainable", "text_encoder": "gru"}
    assert parse_mode("trainable:cnn") == {"mode": "trainable", "text_encoder": "cnn"}
    assert parse_mode(["finetune:2"]) == {"mode": "finetune", "finetune_blocks": 2}
    assert parse_mode(("use_multilingual",)) is None and parse_mode(None) is None
    with pytest.raises(ValueError, match="trainable text encoder"):
        parse_mode("trainable:lstm9")
    assert parse_mode(("use_multilingual", "tfidf")) is None


@pytest.mark.parametrize("encoders", [("trainable", "use_multilingual"), "trainable,use_multilingual",
                                      ("tfidf", "finetune:2")])
def test_an_end_to_end_mode_beside_cached_encoders_is_refused_not_dropped(encoders: object) -> None:
    # It used to parse as "no mode" and train the frozen-feature model on the cached encoders instead.
    with pytest.raises(ValueError, match=r"encoders (trainable,use_multilingual|tfidf,finetune:2): .*goes alone"):
        parse_mode(encoders)


def test_the_ablation_refuses_end_to_end_encoders_from_python_too(workspace: Workspace) -> None:
    # The CLI had its own guard; the Python API ran a TF-IDF-only ablation (no cached encoder is called "trainable").
    with pytest.raises(ValueError, match="encoders trainable: end-to-end encoders .*Workspace.train"):
        workspace.evaluate("classify", "kind", encoders=("trainable",), report=False)
    with pytest.raises(ValueError, match="goes alone"):
        workspace.train("classify", "kind", encoders=("trainable", "use_multilingual"), save=False)


def test_an_explicit_setting_is_kept_even_when_it_equals_the_frozen_default(workspace: Workspace) -> None:
    # 40 epochs is TrainConfig's default: the old guess ("unchanged from the default, so not meant") made it 12.
    given = TrainConfig(epochs=40, patience=1, hidden=16, progress=False)
    model = train_endtoend(workspace, "classify", "kind", text_fields=("title",), modalities=("text",),
                           config=given, save=False)
    assert model.info["train"]["epochs"] == 40 and model.info["train"]["batch_size"] == given.batch_size
    assert endtoend_config("trainable").epochs == ENDTOEND_DEFAULTS["trainable"]["epochs"] == 12
    assert endtoend_config("finetune", epochs=40, lr=5e-4).epochs == 40  # the mode's defaults, then the caller's


def test_cli_passes_end_to_end_defaults_only_where_the_user_set_nothing() -> None:
    from tuwen.cli.models import train_config

    assert train_config(40, 0, encoders="trainable").epochs == 40  # asked for, so kept (was silently 12)
    chosen = train_config(None, 3, False, encoders="finetune:2")
    assert (chosen.epochs, chosen.lr, chosen.ensemble, chosen.seed) == (8, 1e-3, 1, 3)
    assert train_config(None, 0, ensemble=3, encoders="trainable").ensemble == 3
    assert train_config(None, 0) == TrainConfig(seed=0)  # the frozen-feature path keeps TrainConfig's defaults
    assert train_config(7, 0, encoders="use_multilingual").epochs == 7


def test_learns_a_label_that_only_the_photo_shows(workspace: Workspace, colour_model: EndToEndModel) -> None:
    assert colour_model.info["inputs"] == ["title@text_gru", "image@image_cnn"]
    assert colour_model.info["metrics"]["test"]["macro_f1"] >= 0.9
    text_only = train_endtoend(workspace, "classify", "photo_colour", text_fields=("title",), modalities=("text",),
                               config=FAST, save=False)
    assert text_only.info["metrics"]["test"]["macro_f1"] < 0.6  # the titles really carry no colour
    assert text_only.info["split"] == colour_model.info["split"]  # one split rule and seed: same rows
    # the fusion leans on the photo: gate weight of the image input on test-like rows
    frame = workspace.read("products").head(30)
    weights = [p["contributions"]["weights"] for p in colour_model.predict(frame, workspace, neighbours=0)]
    assert np.mean([w["image@image_cnn"] for w in weights]) > 0.5


def test_learns_a_label_that_only_the_title_names_in_chinese_or_english(workspace: Workspace) -> None:
    model = train_endtoend(workspace, "classify", "kind", text_encoder="cnn", text_fields=("title",),
                           image_size=16, config=FAST, save=False)
    assert model.info["metrics"]["test"]["macro_f1"] >= 0.9
    new = pd.DataFrame([{"id": "n1", "title": "北欧 玻璃花瓶", "image_paths": [], "has_image": False},
                        {"id": "n2", "title": "modern desk lamp", "image_paths": [], "has_image": False}])
    predictions = model.predict(new, None, neighbours=0)  # no photo: predicted from the title alone
    assert [p["prediction"] for p in predictions] == ["vase", "lamp"]
    assert predictions[0]["contributions"]["image"] is None


# By folder, without the workspace (and its thumbnail cache): photos are decoded live, which must give the
# same pixels as the cache the training process filled.
PREDICT_SCRIPT = """
import json, sys
import pandas as pd
from tuwen.predict.registry import load_model
model = load_model(None, sys.argv[1])
frame = pd.read_json(sys.argv[2], orient="records")
outputs = model.outputs(model.features(frame, None))["predictions"]
print(json.dumps({k: v.tolist() for k, v in outputs.items()}))
"""


def test_saved_model_reloads_in_a_fresh_process_and_predicts_identically(workspace: Workspace,
                                                                       colour_model: EndToEndModel,
                                                                       tmp_path: Path) -> None:
    folder = workspace.artifacts / "models" / "colour"
    for name in ("config.json", "features.json", "weights.pt", "neighbours.npz", "metrics.jsonl", "split.json"):
        assert (folder / name).exists(), name
    assert "连衣裙" not in json.loads((folder / "features.json").read_text())["endtoend"]["tokenizer"]["vocab"]
    stored = workspace.read("products").head(20)
    photo = stored["image_paths"].iloc[0][0]
    new = pd.DataFrame([{"id": "x1", "title": "全新 陶瓷马克杯", "image_paths": [photo], "has_image": True},
                        {"id": "x2", "title": "", "image_paths": [photo], "has_image": True},
                        {"id": "x3", "title": "glass vase", "image_paths": [], "has_image": False}])
    frame = pd.concat([stored[["id", "title", "image_paths", "has_image"]], new], ignore_index=True)
    here = colour_model.outputs(colour_model.features(frame, workspace))["predictions"]
    items = tmp_path / "items.json"
    frame.assign(image_paths=frame["image_paths"].map(list)).to_json(items, orient="records", force_ascii=False)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", PREDICT_SCRIPT, str(folder), str(items)],
                          capture_output=True, text=True, cwd=root, check=True, timeout=120)
    there = json.loads(done.stdout.strip().splitlines()[-1])
    for head, values in here.items():
        assert np.allclose(np.asarray(there[head]), values, atol=1e-6)
    reloaded = load_model(workspace, "colour")
    assert isinstance(reloaded, EndToEndModel)
    assert reloaded.predict(frame.tail(3), workspace, neighbours=2)[0]["neighbours"]


def test_cli_train_and_predict_with_trainable_encoders(workspace: Workspace, tmp_path: Path) -> None:
    from tuwen.cli.main import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", str(workspace.path), "--task", "classify", "--target", "kind",
                                 "--encoders", "trainable:cnn", "--text-fields", "title", "--name", "kind-e2e",
                                 "--epochs", "5", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["inputs"] == ["title@text_cnn", "image@image_cnn"]
    assert summary["metrics"]["test"]["macro_f1"] >= 0.8
    photo = workspace.read("products")["image_paths"].iloc[0][0]
    result = runner.invoke(app, ["predict", str(workspace.path), "--model", "kind-e2e", "--title", "简约 台灯",
                                 "--image", photo, "--json"])
    assert result.exit_code == 0, result.output
    prediction = json.loads(result.output.strip().splitlines()[-1])
    assert prediction["prediction"] == "lamp" and set(prediction["contributions"]) >= {"text", "image"}
    refused = runner.invoke(app, ["evaluate", str(workspace.path), "--task", "classify", "--target", "kind",
                                  "--ablation", "--encoders", "trainable"])
    assert refused.exit_code == 2 and "tuwen train" in refused.output  # never a silent fall-back to stored features
    mixed = runner.invoke(app, ["train", str(workspace.path), "--target", "kind", "--encoders",
                                "trainable,use_multilingual"])
    assert mixed.exit_code == 2 and "trainable,use_multilingual" in mixed.output and "goes alone" in mixed.output


def test_thumbnails_are_cached_in_the_workspace_and_bad_photos_are_absent(workspace: Workspace,
                                                                         tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    paths = [*workspace.read("products")["image_paths"].head(3).map(lambda p: p[0]), str(broken), ""]
    pixels, present = thumbnails(paths, 8, cache_folder(workspace))
    assert pixels.shape == (5, 8, 8, 3) and present.tolist() == [True, True, True, False, False]
    assert list(cache_folder(workspace).glob("thumbnails-8-*.npz"))
    Path(paths[0]).rename(tmp_path / "moved.png")  # the cached copy answers without the file
    try:
        again, present_again = thumbnails(paths, 8, cache_folder(workspace))
    finally:
        (tmp_path / "moved.png").rename(paths[0])
    assert np.array_equal(again, pixels) and np.array_equal(present_again, present)


def test_finetune_trains_mobilenet_tail_on_top_of_the_frozen_trunk(workspace: Workspace) -> None:
    from tuwen.encoders.image_mobilenet import load_pretrained
    from tuwen.predict.endtoend.image_encoders import MobileNetTail, MobileNetTrunk

    # At initialisation, frozen trunk + trainable tail compute exactly the pretrained network's features.
    tail, trunk = MobileNetTail(32, blocks=2).eval(), MobileNetTrunk(blocks=2)
    pixels = torch.randint(0, 255, (2, 64, 64, 3), dtype=torch.uint8)
    with torch.no_grad():
        whole = load_pretrained().features(pixels.permute(0, 3, 1, 2).float() * trunk.scale + trunk.shift)
        assert torch.allclose(tail.tail(trunk(pixels)), whole, atol=1e-4)
    model = train_endtoend(workspace, "classify", "photo_colour", mode="finetune", finetune_blocks=2, image_size=64,
                           text_fields=("title",), modalities=("image",), config=FAST_FT, name="colour-ft")
    assert model.info["inputs"] == ["image@mobilenet_v2_ft"]
    assert model.info["metrics"]["test"]["macro_f1"] >= 0.8
    weights = torch.load(workspace.artifacts / "models" / "colour-ft" / "weights.pt", weights_only=True)
    assert sum(v.numel() for k, v in weights.items() if "tail" in k) < 2_000_000  # only the last blocks are saved
    frame = workspace.read("products").head(10)
    reloaded = load_model(workspace, "colour-ft")
    assert np.allclose(reloaded.outputs(reloaded.features(frame, workspace))["predictions"]["photo_colour"],
                       model.outputs(model.features(frame, workspace))["predictions"]["photo_colour"], atol=1e-6)
