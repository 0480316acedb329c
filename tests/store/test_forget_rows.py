"""Forgetting a shopper rewrites only the data files that held them, and removes exactly the rows a whole-table
rewrite removed: from the events, reviews and users, and from the per-shopper vector and score tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tuwen import Workspace
from tuwen.recommend import profiles
from tuwen.store.catalog import INTERACTION_SCHEMA, REVIEW_SCHEMA, USER_SCHEMA

PROFILE_SCHEMA = pa.schema([("user_id", pa.string()), ("vector", pa.list_(pa.float32(), 4))])


def _events(users: list[str | None], start: int) -> pa.Table:
    n = len(users)
    return pa.table({"id": [f"e{start + i}" for i in range(n)], "user_id": users,
                     "product_id": [f"p{i % 5}" for i in range(n)],
                     "timestamp": pd.to_datetime(np.arange(n) + start, unit="s", utc=True),
                     "kind": ["purchase"] * n, "value": np.ones(n)}, schema=INTERACTION_SCHEMA)


def _data_files(ws: Workspace, name: str) -> set[str]:
    return {p.name for p in (ws.path / "db" / f"{name}.lance" / "data").iterdir()}


def _shop(tmp_path: Path) -> Workspace:
    """Events in four data files (one per commit); shopper u1 in the first and third only, a null shopper too."""
    ws = Workspace(tmp_path / "ws")
    chunks = [["u1", "u2", "u3", None], ["u2", "u3", "u4"], ["u3", "u1", "u1", "u5"], ["u5", "u6"]]
    start = 0
    for chunk in chunks:
        with ws.transaction("events") as writer:
            writer.append("interactions", _events(chunk, start))
        start += len(chunk)
    rng = np.random.default_rng(0)
    with ws.transaction("the rest") as writer:
        writer.upsert("reviews", pd.DataFrame({
            "id": ["r1", "r2", "r3"], "product_id": ["p1", "p2", "p3"], "user_id": ["u1", "u2", "u1"],
            "rating": [5.0, 4.0, 1.0], "title": ["", "", ""], "text": ["fine", "ok", "bad"],
            "image_paths": [[], [], []], "timestamp": pd.to_datetime([1, 2, 3], unit="s", utc=True),
            "group": ["a", "b", "c"], "recommended": [None] * 3, "label": [None] * 3, "category": [None] * 3,
            "attributes": [None] * 3}), schema=REVIEW_SCHEMA)
        writer.upsert("users", pd.DataFrame({"id": ["u1", "u2", "u9"], "attributes": ["{}"] * 3}), schema=USER_SCHEMA)
        writer.upsert("segments", pd.DataFrame({"user_id": ["u1", "u2", "u3"], "segment": [0, 1, 0],
                                                "label": ["a", "b", "a"]}), key="user_id",
                      schema=profiles.SEGMENT_SCHEMA)
        writer.upsert("profiles", pa.table({"user_id": ["u1", "u3", "u4"], "vector": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.standard_normal(12).astype(np.float32)), 4)}), key="user_id", schema=PROFILE_SCHEMA)
    return ws


def _sorted(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    frame = frame.copy()
    for column in frame:
        if frame[column].map(lambda v: isinstance(v, np.ndarray)).any():
            frame[column] = frame[column].map(lambda v: None if v is None else list(v))
    return frame.sort_values(key).reset_index(drop=True)


def test_forget_removes_the_rows_a_whole_rewrite_removed_and_touches_only_their_files(tmp_path: Path) -> None:
    ws = _shop(tmp_path)
    tables = {name: ws.read_arrow(name).to_pandas() for name in profiles.USER_TABLES}
    assert len(_data_files(ws, "interactions")) == 4

    report = profiles.forget(ws, "u1")

    fresh = Workspace(ws.path, create=False)
    for name, column in profiles.USER_TABLES.items():
        before = tables[name]
        key = "id" if "id" in before else "user_id"
        expected = before[before[column] != "u1"]  # a row without a shopper (null) is nobody's: kept
        after = fresh.read_arrow(name).to_pandas()
        pd.testing.assert_frame_equal(_sorted(after, key), _sorted(expected, key), check_dtype=False)
        assert report["rows_removed"][name] == len(before) - len(expected) > 0
        live = fresh.table(name)
        assert len(live.list_versions()) == 1, f"{name}: an old version still holds the shopper's rows"
        deletions = ws.path / "db" / f"{name}.lance" / "_deletions"
        assert not deletions.exists() or not any(deletions.iterdir()), f"{name}: rows hidden, not removed"
    assert fresh.count("interactions", "user_id IS NULL") == 1
    again = profiles.forget(fresh, "u1")  # re-runnable: nothing left to remove, the tombstone stays once
    assert again["rows_removed"] == {} and len(fresh.forgotten_hashes()) == 1


def _addresses(ws: Workspace) -> dict[str, int]:
    rows = ws.db.open_table("interactions").search().select(["id", "_rowaddr"]).limit(None).to_arrow()
    return dict(zip(rows.column("id").to_pylist(), rows.column("_rowaddr").to_pylist(), strict=True))


def test_erase_rewrites_only_the_files_holding_the_rows_and_rolls_back(tmp_path: Path) -> None:
    ws = _shop(tmp_path)
    before = ws.count("interactions")
    addresses = _addresses(ws)
    try:
        with ws.transaction("forget, then fail") as writer:
            assert writer.erase("interactions", "user_id = 'u1'") == 3
            after = _addresses(ws)
            # a row address is (data file << 32 | row): rows of the 2nd and 4th files did not move, the others did
            assert {k: after[k] for k in ("e4", "e5", "e6", "e11", "e12")} == \
                {k: addresses[k] for k in ("e4", "e5", "e6", "e11", "e12")}
            assert all(after[k] != addresses[k] for k in ("e1", "e2", "e3", "e7", "e10"))
            assert set(after) == set(addresses) - {"e0", "e8", "e9"}
            raise RuntimeError("crash mid-commit")
    except RuntimeError:
        pass
    fresh = Workspace(ws.path, create=False)
    assert fresh.count("interactions") == before and fresh.count("interactions", "user_id = 'u1'") == 3


def test_reading_some_columns_and_scanning_in_slices(tmp_path: Path) -> None:
    ws = _shop(tmp_path)
    whole = ws.read("interactions")
    assert list(ws.read("interactions", ["user_id", "id"]).columns) == ["user_id", "id"]
    slices = list(ws.scan("interactions", ["id", "user_id"], batch_rows=5))
    assert [len(s) for s in slices] == [5, 5, 3] and slices[0].column_names == ["id", "user_id"]
    assert pa.concat_tables(slices).column("id").to_pylist() == whole["id"].tolist()
    assert list(ws.scan("no_such_table")) == []
