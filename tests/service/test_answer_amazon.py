"""Answering real shoppers' questions (Amazon clothing Q&A, a small slice): the answerer trained on the shop's Q&A
ranks evidence, answers yes / no / unsure, reloads the same, and ``tuwen ask --file`` keeps input order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import dataset_path
from tuwen import Workspace
from tuwen.cli.main import app as cli
from tuwen.service.qa import load_answerer, train_answerer
from tuwen.service.qa.splits import hash_share, listing_groups

pytestmark = pytest.mark.realdata
runner = CliRunner()


@pytest.fixture(scope="module")
def slice_(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, Path, list[dict]]:
    """A shop of ~500 Q&A rows and a held-out folder of other listings' questions (whole listing groups)."""
    lines = (dataset_path("amazon-qa-clothing") / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    groups = listing_groups([r["asin"] for r in rows], [r["question"] for r in rows], [r["answer"] for r in rows])
    share = np.array([hash_share(groups[r["asin"]], 7) for r in rows])
    root = tmp_path_factory.mktemp("amazon-qa")
    shop_dir, ask_dir = root / "shop", root / "asked"
    shop_dir.mkdir()
    ask_dir.mkdir()
    (shop_dir / "qa.jsonl").write_text("\n".join(x for x, s in zip(lines, share, strict=True) if s < 0.025) + "\n",
                                       encoding="utf-8")
    asked = [r for r, s in zip(rows, share, strict=True) if 0.5 <= s < 0.504]
    (ask_dir / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in asked) + "\n", encoding="utf-8")
    ws = Workspace(root / "ws")
    ws.ingest(preset="amazon-qa", path=shop_dir)
    train_answerer(ws, epochs=2, progress=False)
    return ws, ask_dir, asked


def test_a_known_question_finds_its_own_answer_first(slice_: tuple[Workspace, Path, list[dict]]) -> None:
    ws, _, _ = slice_
    answerer = load_answerer(ws, train=False)
    questions = ws.read("questions").sample(30, random_state=0)
    top = [answerer.answer(q.question, q.product_id, q.question_type)["evidence"][0] for q in questions.itertuples()]
    same = [t["source"] == "qa" and t["question"] == q.question for t, q in zip(top, questions.itertuples(),
                                                                                strict=True)]
    assert np.mean(same) >= 0.8


def test_held_out_answers_rank_above_chance(slice_: tuple[Workspace, Path, list[dict]]) -> None:
    """Unseen listings: each question's true answer among its product's answers, by the learnt matcher."""
    ws, _, asked = slice_
    answerer = load_answerer(ws, train=False)
    by_product: dict[str, list[dict]] = {}
    for row in asked:
        by_product.setdefault(row["asin"], []).append(row)
    reciprocal, chance = [], []
    for rows in by_product.values():
        if len(rows) < 3:
            continue
        answers, questions = [r["answer"] for r in rows], [r["question"] for r in rows]
        matrix = answerer.matcher.matrix(answerer.vectors(questions), questions, answerer.vectors(answers), answers)
        for i in range(len(rows)):
            reciprocal.append(1 / int((matrix[i] >= matrix[i, i]).sum()))
            chance.append(np.mean([1 / r for r in range(1, len(rows) + 1)]))
    assert len(reciprocal) >= 20
    assert np.mean(reciprocal) > np.mean(chance) + 0.15


def test_yes_no_answers_and_a_reload_answers_the_same(slice_: tuple[Workspace, Path, list[dict]]) -> None:
    ws, _, asked = slice_
    trained = load_answerer(ws, train=False)
    assert trained.trained and trained.yesno is not None
    reloaded = load_answerer(ws, train=False)
    for row in asked[:12]:
        first = trained.answer(row["question"], row["asin"], row["questionType"], strict=False)
        again = reloaded.answer(row["question"], row["asin"], row["questionType"], strict=False)
        first.pop("milliseconds"), again.pop("milliseconds")
        assert first == again
        if row["questionType"] == "yes/no":
            assert first["answer"] in ("yes", "no", "unsure") and 0 <= first["p_yes"] <= 1
            assert first["answer"] == "unsure" or (first["answer"] == "yes") == (first["p_yes"] > 0.5)
        else:
            assert first["answer"] is None and first["p_yes"] is None
    kinds = [trained.answer(r["question"], r["asin"], strict=False)["question_type"] for r in asked]
    assert np.mean([k == r["questionType"] for k, r in zip(kinds, asked, strict=True)]) >= 0.7  # type not given


def test_cli_ask_file_answers_every_question_in_input_order(slice_: tuple[Workspace, Path, list[dict]]) -> None:
    ws, folder, asked = slice_
    result = runner.invoke(cli, ["ask", str(ws.path), "--file", str(folder), "--preset", "amazon-qa", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert [line["id"] for line in lines] == [str(i) for i in range(1, len(asked) + 1)]
    assert [line["asin"] for line in lines] == [r["asin"] for r in asked]
    for line, row in zip(lines, asked, strict=True):
        assert (line["answer"] is None) == (row["questionType"] == "open-ended")
        assert line["answer"] in (None, "yes", "no", "unsure")
        assert all({"source", "id", "text"} <= set(e) for e in line["evidence"])
        assert all(e["source"] == "qa" and e["product_id"] != row["asin"] for e in line["evidence"])  # unseen products
