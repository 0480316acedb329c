"""``tuwen predict WS --model N --file DIR --preset P --json``: one line per row of another folder, in input order,
with the id the preset gives the row, each scored on its own words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import dataset_path
from tests.helpers import write_csv
from tests.subsample import csv_rows, sample_csv
from tuwen.cli.main import app
from tuwen.ingest import load_preset
from tuwen.predict.training.config import TrainConfig
from tuwen.shop import Shop

runner = CliRunner()
QUICK = TrainConfig(quality="fast", epochs=8, ensemble=1, experts=False, progress=False)


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.mark.realdata
def test_predict_a_folder_of_messages_in_order_by_row_number(tmp_path: Path) -> None:
    source = dataset_path("customer-support-intents") / "utterances.csv"
    header, rows = csv_rows(source)
    sample_csv(source, tmp_path / "train" / "utterances.csv", 0, keep=list(range(0, len(rows), 25)))
    # another folder whose rows 1..20 are other messages than the workspace's rows 1..20, in shuffled order
    other = [rows[i] for i in range(7, len(rows), 371)][:20][::-1]
    write_csv(tmp_path / "new" / "utterances.csv", header, other)
    shop = Shop(tmp_path / "ws")
    shop.ingest("support-intents", tmp_path / "train")
    shop.train("intent", name="route", config=QUICK)  # the multilingual encoder's vectors are cached by row id
    result = runner.invoke(app, ["predict", str(tmp_path / "ws"), "--model", "route", "--file", str(tmp_path / "new"),
                                 "--preset", "support-intents", "--json"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert [line["id"] for line in lines] == [str(n) for n in range(1, 21)]
    fresh = load_preset("support-intents", tmp_path / "new").messages
    alone = shop.model("route").predict(fresh.assign(id=[f"x{n}" for n in range(20)]), None, contributions=False,
                                        neighbours=0)  # no workspace: every vector computed from the text itself
    for line, expected in zip(lines, alone, strict=True):
        assert line["prediction"] == expected["prediction"]
        assert line["confidence"] == pytest.approx(expected["confidence"], abs=1e-4)
        assert isinstance(line["needs_person"], bool)


@pytest.mark.realdata
def test_predict_a_folder_of_chinese_reviews_keeps_their_id_column(tmp_path: Path) -> None:
    source = dataset_path("chinese-shopping-reviews") / "reviews.csv"
    sample_csv(source, tmp_path / "train" / "reviews.csv", 200, seed=3)
    picked = sample_csv(source, tmp_path / "new" / "reviews.csv", 12, seed=4)
    shop = Shop(tmp_path / "ws")
    shop.ingest("chinese-reviews", tmp_path / "train")
    shop.train("review", "label", name="sentiment", encoders=(), config=QUICK)
    result = runner.invoke(app, ["predict", str(tmp_path / "ws"), "--model", "sentiment", "--file",
                                 str(tmp_path / "new"), "--preset", "chinese-reviews", "--json"])
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert [line["id"] for line in lines] == [row[0] for row in picked]  # the file's own id column, file order
    assert all(line["prediction"] in {"0", "1"} and 0 <= line["probability"] <= 1 for line in lines)
    wrong = runner.invoke(app, ["predict", str(tmp_path / "ws"), "--model", "sentiment", "--file",
                                str(tmp_path / "new"), "--preset", "support-intents", "--json"])
    assert wrong.exit_code == 2 and "utterances.csv" in wrong.output
