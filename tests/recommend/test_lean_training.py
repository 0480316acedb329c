"""What keeps recommender training and serving lean at a shop's size gives the answers of the plain versions: the
events kept once (histories plus their order, 32-bit), ItemKNN's co-purchase blocks cut in place, one copy of the
histories in a saved ranker, one shopper's history read with a filter, and the comparison's split from arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tuwen import Workspace
from tuwen.recommend import ALS, CandidateRanker, ItemKNN, Repurchase, baselines, item_content
from tuwen.recommend.base import DAY, KIND_WEIGHTS, ItemContent, Recommender, history_from_frame, prepare
from tuwen.recommend.evaluate import temporal_split
from tuwen.recommend.store import Service, read_events
from tuwen.store.events import EventArrays, read_event_arrays
from tuwen.util.vectors import l2


def test_prepared_data_keeps_the_events_once_in_event_order(workspace: Workspace) -> None:
    events = read_events(workspace)
    data = prepare(events, ["extra-1"])
    assert data.histories.items.dtype == np.int32 and data.order.dtype == np.int32
    assert data.n_events == len(events)
    assert all(not (isinstance(v, np.ndarray) and len(v) == len(events)) for k, v in vars(data).items() if k != "order")
    # the per-event arrays rebuilt from the histories are the ones computed from the events directly, in their order
    now_us = int(events.time.max()) + int(DAY * 1_000_000)
    kind_weight = np.array([KIND_WEIGHTS[k] for k in events.kinds] + [0.0], np.float32)[events.kind]
    weight = (kind_weight * np.minimum(np.nan_to_num(events.value, nan=1.0).clip(min=0.0), 3.0)).astype(np.float32)
    np.testing.assert_array_equal(data.user, events.user)
    np.testing.assert_array_equal(data.item, events.item)
    np.testing.assert_array_equal(data.age, ((now_us - events.time) / 1e6 / DAY).astype(np.float32))
    np.testing.assert_array_equal(data.weight, weight)
    # the matrix adds repeated cells in event order: bit for bit the one built from 64-bit per-event arrays
    values = (data.weight * 0.5 ** (data.age / 30.0)).astype(np.float32)
    reference = sp.csr_matrix((values, (events.user.astype(np.int64), events.item.astype(np.int64))),
                              shape=(data.n_users, data.n_items))
    built = data.matrix(30.0)
    np.testing.assert_array_equal(built.indptr, reference.indptr)
    np.testing.assert_array_equal(built.indices, reference.indices)
    np.testing.assert_array_equal(built.data, reference.data)


def _triplet_block(self: ItemKNN, transposed: sp.csr_matrix, by_user: sp.csr_matrix, norms: np.ndarray, lo: int,
                   hi: int) -> sp.csr_matrix:
    """ItemKNN's co-purchase block as it was built before, through COO triplets: the reference."""
    co = (transposed[lo:hi] @ by_user).tocoo()
    rows, cols, values = co.row + lo, co.col, co.data
    off_diagonal = rows != cols
    rows, cols, values = rows[off_diagonal], cols[off_diagonal], values[off_diagonal]
    values = values / (norms[rows] * norms[cols] + self.params["shrink"])
    sim = sp.csr_matrix((values.astype(np.float32), (rows - lo, cols)), shape=(co.shape[0], by_user.shape[1]))
    return baselines._top_per_row(sim, self.params["neighbours"])


def test_itemknn_blocks_cut_in_place_equal_the_triplet_path(workspace: Workspace,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    events = read_events(workspace)
    monkeypatch.setattr(baselines, "CO_BLOCK_NNZ", 2_000)  # several blocks
    lean = ItemKNN(neighbours=10).fit(events).similarity
    monkeypatch.setattr(ItemKNN, "_block", _triplet_block)
    reference = ItemKNN(neighbours=10).fit(events).similarity
    assert lean.nnz == reference.nnz > 0
    for name in ("indptr", "indices", "data"):  # same neighbours, same order, same bits
        np.testing.assert_array_equal(getattr(lean, name), getattr(reference, name), err_msg=name)


def test_a_saved_ranker_keeps_one_copy_of_the_histories(workspace: Workspace, content: ItemContent,
                                                        tmp_path: Path) -> None:
    products = workspace.read("products")
    model = CandidateRanker(label_weeks=1, n_estimators=10).fit(read_events(workspace), products, content=content)
    assert all(part.histories is model.histories for part in model.parts.values())
    users = list(model.histories.users[:40])
    lists = [model.recommend(u, 12) for u in users]
    folder = model.save(tmp_path / "ranker")
    for part in model.parts:
        with np.load(folder / "parts" / part / "arrays.npz") as arrays:
            assert "hist_users" not in arrays.files and "hist_items" not in arrays.files
    with np.load(folder / "arrays.npz") as arrays:
        assert "hist_items" in arrays.files
    loaded = Recommender.load(folder)
    assert all(part.histories is loaded.histories for part in loaded.parts.values())
    assert loaded.context.histories is loaded.histories
    assert [loaded.recommend(u, 12) for u in users] == lists
    # forget: the shopper leaves the one shared copy, and ALS's factor row goes with them
    victim, rows = users[0], len(loaded.parts["als"].user_factors)
    assert loaded.forget_user(victim)
    assert all(part.histories is loaded.histories for part in loaded.parts.values())
    assert victim not in loaded.histories and len(loaded.parts["als"].user_factors) == rows - 1
    again = Recommender.load(loaded.save(tmp_path / "forgotten"))
    assert victim not in again.histories and all(victim not in p.histories for p in again.parts.values())
    assert [again.recommend(u, 12) for u in users[1:]] == lists[1:]


def test_a_new_shoppers_history_is_read_with_a_filter(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = workspace.read("interactions")
    newcomers = sorted(frame["user_id"].unique())[:15]
    model = Repurchase().fit(frame[~frame["user_id"].isin(newcomers)])  # they bought only after training
    service = Service(workspace, model=model)
    reads: list[tuple[str, str | None]] = []
    original = workspace.read_arrow

    def recording(name: str, columns: list[str] | None = None, where: str | None = None) -> object:
        reads.append((name, where))
        return original(name, columns, where)

    monkeypatch.setattr(workspace, "read_arrow", recording)
    expected = {user: history_from_frame(frame[frame["user_id"] == user], model.item_index, model.now)
                for user in newcomers}
    for user in newcomers[:5]:
        got = service._history_from_workspace(user)
        assert got is not None and len(got[0]) > 0
        for a, b in zip(got, expected[user], strict=True):  # the whole table's rows of that shopper, bit for bit
            np.testing.assert_array_equal(a, b)
        assert service.recommend(user, 12).items == model.recommend(user, 12, history=expected[user])
    assert len(reads) == 5 and all(name == "interactions" and where and "IN (" in where for name, where in reads)
    # many at once: one filtered read, the same histories; an unknown (and oddly quoted) id reads as none
    reads.clear()
    fresh = Service(workspace, model=model)
    fresh.prefetch([*newcomers, "it's nobody", model.histories.users[0]])
    for user in newcomers:
        for a, b in zip(fresh._history_from_workspace(user), expected[user], strict=True):
            np.testing.assert_array_equal(a, b)
    assert fresh._history_from_workspace("it's nobody") is None and len(reads) == 1
    assert model.histories.users[0] not in fresh._histories  # a shopper the model knows is never read


def test_the_split_of_arrays_equals_the_split_of_the_frame(workspace: Workspace) -> None:
    frame_split = temporal_split(workspace.read("interactions"), test_days=7)
    array_split = temporal_split(read_event_arrays(workspace.table("interactions")), test_days=7)
    assert isinstance(array_split.train, EventArrays) and array_split.truth
    assert array_split.describe() == frame_split.describe() and array_split.truth == frame_split.truth
    assert array_split.cold_items == frame_split.cold_items and array_split.cut == frame_split.cut
    expected = EventArrays.from_frame(frame_split.train)
    for name in ("users", "items", "user", "item", "time", "kind", "value"):
        np.testing.assert_array_equal(getattr(array_split.train, name), getattr(expected, name), err_msg=name)
    columns = ["user_id", "product_id", "kind"]
    pd.testing.assert_frame_equal(array_split.test[columns].reset_index(drop=True),
                                  frame_split.test[columns].reset_index(drop=True), check_dtype=False)
    a = ALS(factors=8, iterations=3).fit(array_split.train)
    b = ALS(factors=8, iterations=3).fit(frame_split.train)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    assert [a.recommend(u, 12) for u in array_split.users] == [b.recommend(u, 12) for u in frame_split.users]


def _copying_content(matrix: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """ItemContent's reduction of one modality as it was written before, a whole-matrix copy per step: the
    reference."""
    from sklearn.decomposition import PCA

    matrix = np.nan_to_num(np.asarray(matrix, dtype=np.float32))
    mask = np.linalg.norm(matrix, axis=1) > 0
    rows = l2(matrix[mask].astype(np.float32))
    rows -= rows.mean(axis=0, keepdims=True)
    rows = PCA(n_components=dim, random_state=0, svd_solver="randomized").fit_transform(rows)
    out = np.zeros((len(matrix), rows.shape[1]), dtype=np.float32)
    out[mask] = l2(rows)
    return out, mask


def test_content_reduced_in_place_equals_the_copying_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(item_content, "ROW_BLOCK", 7)  # many blocks
    rng = np.random.default_rng(3)
    image, text = rng.standard_normal((90, 12)).astype(np.float32), rng.standard_normal((90, 10))
    image[[2, 40]] = 0.0  # no photo
    text[5] = np.nan  # no text
    given = (image.copy(), text.copy())
    content = ItemContent.from_arrays([f"p{i}" for i in range(90)], image, text, dim=4)
    np.testing.assert_array_equal(image, given[0])  # the caller's arrays are left alone
    np.testing.assert_array_equal(text, given[1])
    for got, mask, matrix in ((content.image, content.has_image, image), (content.text, content.has_text, text)):
        expected, expected_mask = _copying_content(matrix, 4)
        np.testing.assert_array_equal(mask, expected_mask)
        np.testing.assert_array_equal(got, expected)  # bit for bit
    assert not content.has_image[[2, 40]].any() and not content.has_text[5]
