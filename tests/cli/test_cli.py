"""The CLI as a user meets it: readable errors (never a traceback), JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.helpers import photo, write_csv
from tuwen.cli.main import app

runner = CliRunner()


def _catalog(folder: Path) -> Path:
    photo(folder / "a.png")
    return write_csv(folder / "shop.csv", ["sku", "name", "pic", "price"],
                     [["s1", "Red mug", "a.png", "3"], ["s2", "红色 杯子", "a.png", "-1"]])


def test_ingest_then_info_json(tmp_path: Path) -> None:
    file = _catalog(tmp_path)
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["ingest", str(ws), "--catalog", str(file), "--map", "id=sku", "--map", "title=name",
                                 "--map", "image=pic"])
    assert result.exit_code == 0, result.output
    assert "row 2: price: negative price" in result.output
    result = runner.invoke(app, ["info", str(ws), "--json"])
    facts = json.loads(result.stdout)
    assert {k: facts[k] for k in ("products", "products_with_image", "interactions", "reviews", "rejects")} == {
        "products": 1, "products_with_image": 1, "interactions": 0, "reviews": 0, "rejects": 1}
    assert facts["vectors"] == {}


def test_strict_ingest_fails_with_the_reason_and_writes_nothing(tmp_path: Path) -> None:
    file = _catalog(tmp_path)
    ws = tmp_path / "ws"
    result = runner.invoke(app, ["ingest", str(ws), "--catalog", str(file), "--map", "id=sku", "--map", "title=name",
                                 "--strict"])
    assert result.exit_code == 2
    assert "row 2: price: negative price" in result.output and "Traceback" not in result.output
    assert json.loads(runner.invoke(app, ["info", str(ws), "--json"]).stdout)["products"] == 0


def test_user_mistakes_get_one_clear_line(tmp_path: Path) -> None:
    file = _catalog(tmp_path)
    cases = [
        (["ingest", str(tmp_path / "ws"), "--catalog", str(tmp_path / "nope.csv")], "no such file"),
        (["ingest", str(tmp_path / "ws"), "--catalog", str(file), "--map", "title=nope"], "does not have"),
        (["ingest", str(tmp_path / "ws"), "--catalog", str(file), "--map", "bogus"], "expected FIELD=COLUMN"),
        (["ingest", str(tmp_path / "ws"), "--preset", "nosuch", str(tmp_path)], "unknown preset"),
        (["ingest", str(tmp_path / "ws"), "--preset", "fashion"], "needs the data set folder"),
        (["ingest", str(tmp_path / "ws2"), "--preset", "fashion", str(tmp_path)], "expected products.csv"),
        (["info", str(tmp_path / "missing")], "not a tuwen workspace"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output
