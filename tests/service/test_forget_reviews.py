"""Forgetting a shopper takes their reviews' derived copies too: the cached review vectors and the review sentences
quoted in stored insights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tuwen import Workspace
from tuwen.encoders.cache import embed_items, load_vectors, table_name
from tuwen.ingest.synthetic import generate_catalog
from tuwen.predict.vectors import cache_key
from tuwen.service.insights import store as insight_store


class _Lengths:
    """A tiny text encoder: the vectors' values do not matter here, only which rows hold them."""

    name = "test_lengths"
    modality = "text"
    dim = 4
    version = "1"

    def encode(self, batch: Sequence[str]) -> np.ndarray:
        return np.array([[len(t), t.count(" "), 1.0, 0.0] for t in batch], dtype=np.float32)


def _quoted_review_ids(ws: Workspace) -> set[str]:
    ids: set[str] = set()
    rows = insight_store.read(ws)
    for text in rows.loc[rows["scope"] != "lexicon", "examples"]:  # lexicon rows hold words, not quotes
        examples = json.loads(text or "{}")
        if isinstance(examples, dict):
            ids |= {e["review_id"] for side in examples.values() if isinstance(side, list) for e in side}
    return ids


@pytest.fixture()
def ws(tmp_path: Path) -> Workspace:
    catalog = generate_catalog(tmp_path / "catalog", n_products=40, n_users=60, seed=4, image_size=16)
    shop = Workspace(tmp_path / "ws")
    shop.ingest(preset="synthetic", path=catalog)
    return shop


def test_forget_removes_review_vectors_and_quotes(ws: Workspace) -> None:
    reviews = ws.read("reviews")
    key = cache_key("reviews")
    embed_items(ws, _Lengths(), "text", [key(i) for i in reviews["id"]], reviews["text"].fillna("").tolist(),
                reviews["text"].fillna("").tolist(), progress=False)
    ws.refresh_insights(progress=False)
    quoted = _quoted_review_ids(ws)
    by_user = reviews[reviews["id"].astype(str).isin(quoted)]["user_id"].value_counts()
    user = str(by_user.index[0])  # a shopper whose words are quoted
    theirs = set(reviews.loc[reviews["user_id"] == user, "id"].astype(str))
    others = len(reviews) - len(theirs)

    report = ws.forget(user)

    vectors = table_name("test_lengths", "text")
    assert report["rows_removed"][vectors] == len(theirs)
    assert report["rows_removed"]["insights"] >= 1
    fresh = Workspace(ws.path, create=False)
    kept, _ = load_vectors(fresh, "test_lengths", "text")
    assert len(kept) == others and not {key(i) for i in theirs} & set(kept)
    assert not theirs & _quoted_review_ids(fresh) and _quoted_review_ids(fresh)  # others' quotes stay
    for name in (vectors, "insights"):
        assert len(fresh.table(name).list_versions()) == 1, f"{name}: an old version still holds the shopper"
    again = ws.forget(user)  # re-running finds nothing more to remove
    assert "insights" not in again["rows_removed"] and vectors not in again["rows_removed"]
