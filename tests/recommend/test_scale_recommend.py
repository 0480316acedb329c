"""Recommenders at a shop's size, in miniature: batch recommendations equal one-at-a-time ones, the ranker's
label sample bounds its training lists, long training says where it is, and forget rewrites without pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuwen import Workspace
from tuwen.ingest.synthetic.scale import generate_scale_catalog
from tuwen.recommend import ALS, CandidateRanker, Popularity
from tuwen.recommend.base import ItemContent
from tuwen.recommend.batch import recommend_many
from tuwen.util.progress import stage


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    folder = generate_scale_catalog(tmp_path_factory.mktemp("rec") / "catalog", 400, 300, 12_000, seed=1)
    frame = pd.read_csv(folder / "interactions.csv")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def test_batch_recommendations_equal_one_at_a_time(events: pd.DataFrame) -> None:
    model = ALS(factors=8, iterations=3).fit(events)
    users = list(model.histories.users[:150]) + ["never-seen"]
    batch = dict(recommend_many(model, users, k=12, progress=False))
    assert list(batch) == users
    same = sum(batch[u] == model.recommend(u, 12) for u in users)
    assert same >= len(users) - 2  # float summation order may swap an exact near-tie, nothing more
    assert batch["never-seen"] == model.popular(12)
    other = Popularity().fit(events)  # not a factor model: one shopper at a time, same interface
    assert dict(recommend_many(other, users[:5], k=3, progress=False)) == {u: other.recommend(u, 3)
                                                                            for u in users[:5]}
    with pytest.raises(ValueError, match="k must be"):
        list(recommend_many(model, users, k=0))


def test_ranker_label_sample_bounds_the_training_lists(events: pd.DataFrame) -> None:
    ids = sorted(events["product_id"].unique())
    rng = np.random.default_rng(0)
    content = ItemContent.from_arrays(ids, None, rng.standard_normal((len(ids), 8)).astype(np.float32))
    products = pd.DataFrame({"id": ids, "title": ids, "category": "A > B", "attributes": "{}", "price": 1.0})
    full = CandidateRanker(label_weeks=2, n_estimators=5, label_users=None).fit(events, products, content=content)
    small = CandidateRanker(label_weeks=2, n_estimators=5, label_users=10).fit(events, products, content=content)
    assert small.meta["label_lists"] <= 20 < full.meta["label_lists"]
    assert len(small.recommend(events["user_id"].iloc[0], 5)) == 5  # still a working model


def test_stage_lines_name_the_step(capsys: pytest.CaptureFixture) -> None:
    stage("ranker · label week 1/2", True)
    stage("hidden", False)
    err = capsys.readouterr().err
    assert "ranker · label week 1/2" in err and "hidden" not in err


def test_forget_removes_only_that_shopper(tmp_path: Path) -> None:
    folder = generate_scale_catalog(tmp_path / "catalog", 100, 30, 900, seed=2)
    ws = Workspace(tmp_path / "ws")
    ws.ingest("synthetic", folder)
    before = ws.read("interactions")
    user = before["user_id"].iloc[0]
    report = ws.forget(user)
    after = ws.read("interactions")
    assert report["rows_removed"]["interactions"] == int((before["user_id"] == user).sum()) > 0
    assert len(after) == len(before) - report["rows_removed"]["interactions"]
    assert user not in set(after["user_id"])
    pd.testing.assert_frame_equal(after.sort_values("id").reset_index(drop=True),
                                  before[before["user_id"] != user].sort_values("id").reset_index(drop=True))
