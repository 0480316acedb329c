"""Saved folders: written atomically, and a folder of another format version refused in words."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuwen.util.folders import FormatError, atomic_folder, read_info, write_info


def test_a_failed_save_leaves_the_old_folder_whole(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    with atomic_folder(folder) as temp:
        write_info(temp / "config.json", "model", 1, {"n": 1})
    with pytest.raises(RuntimeError), atomic_folder(folder) as temp:
        write_info(temp / "config.json", "model", 1, {"n": 2})
        raise RuntimeError("crash mid-save")
    assert read_info(folder / "config.json", "model", 1)["n"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folder left behind


def test_a_save_carries_the_training_logs_already_in_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("{}\n")
    (folder / "stale.bin").write_text("x")
    with atomic_folder(folder, carry=("metrics.jsonl",)) as temp:
        write_info(temp / "config.json", "model", 1, {})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.jsonl"]


@pytest.mark.parametrize(("saved", "age"), [(0, "an older"), (None, "an older"), (7, "a newer")])
def test_another_format_version_is_refused_with_retrain(tmp_path: Path, saved: int | None, age: str) -> None:
    info = tmp_path / "config.json"
    info.write_text(json.dumps({"format_version": saved}))
    with pytest.raises(FormatError, match=f"saved by {age} tuwen .*retrain it"):
        read_info(info, "model", 1)


def test_an_older_readable_format_loads_and_others_are_refused(tmp_path: Path) -> None:
    info = tmp_path / "model.json"
    for saved in (3, 4):
        info.write_text(json.dumps({"format_version": saved, "n": saved}))
        assert read_info(info, "recommender", 4, older=(3,))["n"] == saved
    info.write_text(json.dumps({"format_version": 2}))
    with pytest.raises(FormatError, match="older tuwen"):
        read_info(info, "recommender", 4, older=(3,))


def test_a_missing_folder_says_what_makes_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no saved recommender here .*tuwen train"):
        read_info(tmp_path / "model.json", "recommender", 3, "run `tuwen train WS --task recommend`")
