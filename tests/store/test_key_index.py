"""The workspace indexes ``interactions.user_id`` (and ``reviews.user_id``) once a table is big enough, so a read by
shopper is a lookup; reads stay exact whatever the index covers, a forget leaves no trace of the shopper in the
index, and a crash before the index is committed leaves the committed version as it was."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tuwen import Workspace
from tuwen.recommend import profiles
from tuwen.store import workspace as workspace_module

THRESHOLD = 200  # rows before an index is built, instead of a shop's size: keeps the tables small


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workspace_module, "KEY_INDEX_MIN_ROWS", THRESHOLD)


def _events(path: Path, rows: int, users: int, day: int = 1, prefix: str = "u") -> Path:
    """Purchase events of ``users`` shoppers; ``day`` makes the events of two files distinct (other ids)."""
    lines = ["user_id,product_id,timestamp,kind,value"]
    lines += [f"{prefix}{i % users},p{i % 53},2024-{day:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00,purchase,1"
              for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _index(ws: Workspace, name: str = "interactions") -> object | None:
    """The committed table's index on ``user_id`` (None when it has none)."""
    return next((i for i in ws.table(name).list_indices() if list(i.columns) == ["user_id"]), None)


def _by_user(ws: Workspace, users: list[str]) -> None:
    """Every read by shopper returns exactly the rows a whole-table read holds for them."""
    whole = ws.read("interactions")
    for user in users:
        got = ws.read_keys("interactions", "user_id", [user]).sort_values("id").reset_index(drop=True)
        expected = whole[whole["user_id"] == user].sort_values("id").reset_index(drop=True)
        assert len(expected) > 0
        pd.testing.assert_frame_equal(got, expected)


def _index_bytes(ws: Workspace, name: str = "interactions") -> bytes:
    return b"".join(f.read_bytes() for f in (ws.path / "db" / f"{name}.lance" / "_indices").rglob("*") if f.is_file())


def test_index_appears_at_the_threshold_is_used_and_survives_a_reingest(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ingest(interactions=_events(tmp_path / "few.csv", THRESHOLD - 50, users=7))
    assert _index(ws) is None  # a small table is scanned: no index files, no extra version

    events = _events(tmp_path / "more.csv", THRESHOLD, users=7, day=2)
    ws.ingest(interactions=events)
    fresh = Workspace(ws.path, create=False)
    index = _index(fresh)
    assert index is not None and index.index_type == "BTree"
    assert index.num_indexed_rows == 2 * THRESHOLD - 50 and index.num_unindexed_rows == 0
    plan = fresh.table("interactions").search().where("`user_id` IN ('u1')").limit(None).explain_plan(True)
    assert "ScalarIndexQuery" in plan
    _by_user(fresh, ["u0", "u3", "u6"])

    versions = fresh.manifest["tables"]["interactions"]
    fresh.ingest(interactions=events)  # the same file again: upserted, nothing doubles, the index stays whole
    assert fresh.count("interactions") == 2 * THRESHOLD - 50
    assert fresh.manifest["tables"]["interactions"] > versions and _index(fresh) is not None
    _by_user(Workspace(ws.path, create=False), ["u0", "u3", "u6"])


def test_reviews_are_indexed_by_the_same_commit_path(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    n = THRESHOLD
    reviews = pd.DataFrame({
        "id": [f"r{i}" for i in range(n)], "product_id": [f"p{i % 9}" for i in range(n)],
        "user_id": [f"u{i % 13}" for i in range(n)], "rating": [4.0] * n, "title": [""] * n, "text": ["ok"] * n,
        "image_paths": [[]] * n, "timestamp": pd.to_datetime(range(n), unit="s", utc=True), "group": ["g"] * n,
        "recommended": [None] * n, "label": [None] * n, "category": [None] * n, "attributes": [None] * n})
    with ws.transaction("reviews") as writer:
        writer.upsert("reviews", reviews)
    assert _index(Workspace(ws.path, create=False), "reviews") is not None
    assert len(ws.read_keys("reviews", "user_id", ["u5"])) == len(reviews[reviews["user_id"] == "u5"])


def test_rows_added_after_the_index_are_found_then_folded_in(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ingest(interactions=_events(tmp_path / "a.csv", THRESHOLD, users=5))
    ws.ingest(interactions=_events(tmp_path / "b.csv", THRESHOLD // 2, users=5, day=2))  # fewer than the threshold
    index = _index(ws)
    assert index is not None and index.num_unindexed_rows == THRESHOLD // 2  # scanned, not yet in the index
    _by_user(ws, [f"u{i}" for i in range(5)])

    ws.ingest(interactions=_events(tmp_path / "c.csv", THRESHOLD, users=5, day=3))  # the tail reaches the threshold
    index = _index(ws)
    assert index is not None and index.num_unindexed_rows == 0 and index.num_indexed_rows == 2.5 * THRESHOLD
    _by_user(Workspace(ws.path, create=False), [f"u{i}" for i in range(5)])


def test_forget_leaves_no_row_nor_index_entry_and_the_index_answers_for_the_rest(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    # the shopper's own data file, holding nobody else: erasing it merges nothing new into the index
    ws.ingest(interactions=_events(tmp_path / "gone.csv", 30, users=1, day=4, prefix="forget-me-"))
    ws.ingest(interactions=_events(tmp_path / "a.csv", THRESHOLD, users=6))
    index = _index(ws)
    assert index is not None and index.num_unindexed_rows == 0 and b"forget-me-0" in _index_bytes(ws)

    report = profiles.forget(ws, "forget-me-0")

    assert report["rows_removed"]["interactions"] == 30
    fresh = Workspace(ws.path, create=False)
    assert fresh.read_keys("interactions", "user_id", ["forget-me-0"]).empty
    assert fresh.count("interactions", "user_id = 'forget-me-0'") == 0 and fresh.count("interactions") == THRESHOLD
    index = _index(fresh)
    assert index is not None and index.num_indexed_rows == THRESHOLD and index.num_unindexed_rows == 0
    assert b"forget-me-0" not in _index_bytes(fresh), "the old index still names the forgotten shopper"
    assert len(fresh.table("interactions").list_versions()) == 1
    _by_user(fresh, [f"u{i}" for i in range(6)])


class _Crash(BaseException):
    """A kill between the index build and its commit."""


def test_a_crash_before_the_index_is_committed_leaves_the_committed_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.ingest(interactions=_events(tmp_path / "a.csv", THRESHOLD - 1, users=4))
    events = _events(tmp_path / "b.csv", 50, users=4, day=2)

    def crash(self: Workspace, versions: dict[str, int]) -> None:
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(workspace_module.Workspace, "_commit_versions", crash)
        with pytest.raises(_Crash):
            ws.ingest(interactions=events)
    fresh = Workspace(ws.path, create=False)
    live = fresh.db.open_table("interactions")
    assert live.list_indices() and live.version > fresh.manifest["tables"]["interactions"]  # built, not committed
    assert _index(fresh) is None  # readers see the committed version: the ingest's rows, no index
    assert fresh.count("interactions") == THRESHOLD + 49
    _by_user(fresh, ["u0", "u1", "u2", "u3"])

    fresh.ingest(interactions=events)  # the next writer restores the committed version, then indexes it again
    assert _index(fresh) is not None and fresh.count("interactions") == THRESHOLD + 49
    _by_user(Workspace(ws.path, create=False), ["u0", "u1", "u2", "u3"])
