"""Training from coded event arrays read in batches: the same data, models and lists as from a whole-table frame;
and the pieces that make training and batch recommendations scale give the answers of the plain versions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tuwen import Workspace
from tuwen.recommend import ALS, CandidateRanker, ItemKNN, baselines
from tuwen.recommend.base import ItemContent, prepare
from tuwen.recommend.batch import FactorTopK
from tuwen.recommend.ranker_features import neighbour_popularity
from tuwen.recommend.store import read_events, train
from tuwen.store.events import EventArrays, read_event_arrays


def test_batches_read_the_same_events_as_the_frame(workspace: Workspace) -> None:
    frame = workspace.read("interactions")
    whole = EventArrays.from_frame(frame)
    batched = read_event_arrays(workspace.table("interactions"), batch_rows=997)  # many batches, odd size
    for name in ("user", "item", "time", "kind"):
        np.testing.assert_array_equal(getattr(batched, name), getattr(whole, name), err_msg=name)
    np.testing.assert_array_equal(batched.users, whole.users)
    np.testing.assert_array_equal(batched.items, whole.items)
    np.testing.assert_array_equal(batched.value, whole.value)
    assert batched.kinds == whole.kinds and len(batched) == len(frame)
    assert list(batched.user_ids()) == list(frame["user_id"])
    # a kind filter keeps only those events, numbered as the filtered frame would be
    only = read_event_arrays(workspace.table("interactions"), kinds=["purchase"], batch_rows=500)
    purchases = frame[frame["kind"] == "purchase"]
    assert len(only) == len(purchases) and list(only.item_ids()) == list(purchases["product_id"])


def test_prepared_data_equals_the_frame_path(workspace: Workspace) -> None:
    frame = workspace.read("interactions")
    a, b = prepare(frame, ["extra-1"]), prepare(read_events(workspace), ["extra-1"])
    assert a.item_ids == b.item_ids and a.users == b.users and a.item_ids[-1] == "extra-1"
    assert a.now == b.now == pd.to_datetime(frame["timestamp"], utc=True).max() + pd.Timedelta(days=1)
    for name in ("user", "item", "age", "weight"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    expected_age = ((a.now - pd.to_datetime(frame["timestamp"], utc=True)).dt.total_seconds() / 86400.0)
    np.testing.assert_allclose(a.age, expected_age.to_numpy(np.float32), rtol=1e-6)


def test_trained_models_equal_the_frame_path(workspace: Workspace, content: ItemContent) -> None:
    frame = workspace.read("interactions")
    saved = train(workspace, "als", {"factors": 8, "iterations": 3}, default=True)  # reads arrays in batches
    direct = ALS(factors=8, iterations=3).fit(frame)
    np.testing.assert_array_equal(saved.user_factors, direct.user_factors)
    np.testing.assert_array_equal(saved.item_factors, direct.item_factors)
    users = list(direct.histories.users[:40])
    products = workspace.read("products")
    params = {"label_weeks": 2, "n_estimators": 10}
    from_frame = CandidateRanker(**params).fit(frame, products, content=content)
    from_arrays = CandidateRanker(**params).fit(read_events(workspace), products, content=content)
    assert from_frame.meta["label_lists"] == from_arrays.meta["label_lists"] > 0
    assert [from_frame.recommend(u, 12) for u in users] == [from_arrays.recommend(u, 12) for u in users]


def test_ranker_without_vectors_trains_id_only(workspace: Workspace) -> None:
    model = train(workspace, "ranker", {"content_features": False, "label_weeks": 1, "n_estimators": 5},
                  default=False)
    user = model.histories.users[0]
    assert len(model.recommend(user, 12)) == 12
    assert model.context.image.shape[1] == 0  # no vectors anywhere


def test_feature_blocks_equal_one_shopper_at_a_time(workspace: Workspace, content: ItemContent) -> None:
    model = CandidateRanker(label_weeks=1, n_estimators=5).fit(workspace.read("interactions"),
                                                                workspace.read("products"), content=content)
    context = model.context
    users = list(model.histories.users[:30])
    block = context.features_block(users, [context.histories.get(u) for u in users])
    for user, (items, x) in zip(users, block, strict=True):
        one_items, one_x = context.features(user, context.histories.get(user))
        np.testing.assert_array_equal(items, one_items)
        np.testing.assert_allclose(x, one_x, rtol=1e-5, atol=1e-6)


def test_itemknn_blocks_equal_one_block(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = workspace.read("interactions")
    whole = ItemKNN().fit(frame).similarity
    monkeypatch.setattr(baselines, "CO_BLOCK_NNZ", 500)  # dozens of blocks
    blocked = ItemKNN().fit(frame).similarity
    assert (whole != blocked).nnz == 0 and whole.nnz > 0


def test_norm_ordered_top_k_is_exact() -> None:
    rng = np.random.default_rng(1)
    # a few long item vectors (best sellers), many short ones: most shoppers stop after the first slice
    items = rng.standard_normal((5_000, 8)).astype(np.float32) * rng.pareto(1.5, (5_000, 1)).astype(np.float32)
    users = rng.standard_normal((300, 8)).astype(np.float32)
    top = FactorTopK(items, first=64).top(users, 12)
    scores = users @ items.T
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(top, expected)


def test_neighbour_popularity_cap_keeps_the_best_sellers() -> None:
    rng = np.random.default_rng(2)
    matrix = rng.standard_normal((400, 5)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    sales = rng.pareto(1.0, 400).astype(np.float32) * (rng.random(400) < 0.5)
    uncapped = neighbour_popularity(matrix, sales, max_sellers=None)
    np.testing.assert_array_equal(neighbour_popularity(matrix, sales, max_sellers=400), uncapped)
    capped = neighbour_popularity(matrix, sales, max_sellers=20)
    best = np.argsort(-sales)[:20]
    kept = np.zeros(400, np.float32)
    kept[best] = sales[best]
    np.testing.assert_allclose(capped, neighbour_popularity(matrix, kept, max_sellers=None), rtol=1e-6)
    assert (capped <= uncapped + 1e-6).all()


def test_frame_and_arrays_fit_the_same_itemknn() -> None:
    events = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"], "product_id": ["x", "y", "x", "y", "z"],
                           "timestamp": pd.to_datetime(["2020-01-01"] * 5, utc=True), "kind": "purchase"})
    a = ItemKNN().fit(events)
    b = ItemKNN().fit(EventArrays.from_frame(events))
    assert a.recommend("a", 2) == b.recommend("a", 2) and a.item_ids == b.item_ids


def test_ranker_batch_equals_one_at_a_time(workspace: Workspace, content: ItemContent) -> None:
    from tuwen.recommend.batch import recommend_many

    model = CandidateRanker(label_weeks=1, n_estimators=10).fit(workspace.read("interactions"),
                                                                 workspace.read("products"), content=content)
    users = list(model.histories.users[:70]) + ["never-seen"]
    batch = dict(recommend_many(model, users, k=12, progress=False))
    assert list(batch) == users and batch["never-seen"] == model.popular(12)
    same = sum(batch[u] == model.recommend(u, 12) for u in users)
    assert same >= len(users) - 2  # float summation order may swap an exact near-tie, nothing more
