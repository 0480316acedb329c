"""Integration: recommendations, profiles and forget on the real H&M sample (``../shared/datasets/hm``).

Small on purpose: the catalog is loaded once, product text is vectorised with a quick TF-IDF +
SVD here (the benchmark uses the MobileNetV2 + USE vectors of a full workspace), and only
cheap models are fitted. The split facts pin the protocol the benchmark and the README quote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tuwen import Workspace
from tuwen.ingest import load_preset
from tuwen.recommend import ContentProfile, Recommender, Repurchase, Service, evaluate_model, profiles, temporal_split
from tuwen.recommend.base import ItemContent

pytestmark = pytest.mark.realdata


_CACHE: dict[str, object] = {}  # hm_dir is function-scoped; load the catalog once per test session anyway


def _once(key: str, build):  # noqa: ANN001, ANN202
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


@pytest.fixture
def hm(hm_dir: Path):
    return _once(f"hm:{hm_dir}", lambda: load_preset("hm", hm_dir))


@pytest.fixture
def split(hm):
    return _once("split", lambda: temporal_split(hm.interactions, test_days=7))


@pytest.fixture
def text_content(hm) -> ItemContent:
    return _once("text", lambda: _text_vectors(hm.products))


def _text_vectors(products: pd.DataFrame) -> ItemContent:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = (products["title"].fillna("") + " " + products["description"].fillna("")).tolist()
    matrix = TfidfVectorizer(min_df=2, sublinear_tf=True).fit_transform(texts)
    vectors = TruncatedSVD(96, random_state=0).fit_transform(matrix)
    return ItemContent.from_arrays(list(products["id"]), None, vectors, dim=None)


def test_the_h_and_m_test_week_is_the_documented_one(split) -> None:
    facts = split.describe()
    assert (facts["cut"], facts["test_end"]) == ("2020-08-25", "2020-08-31")
    assert (facts["scored_users"], facts["truth_pairs"], facts["cold_pairs"]) == (78, 243, 169)
    assert len(split.train) == 30516


def test_repurchase_baseline_reproduces_the_reference_figure(hm, split) -> None:
    # issue 5 quotes MAP@12 0.0187 / Recall@12 0.046 for "own past purchases by recency"; same recall here.
    # MAP is higher (0.0221) because ties inside a same-day basket are broken by popularity, not file order.
    model = Repurchase(halflife=None).fit(split.train, hm.products)
    summary = evaluate_model(model, split).summary(n_boot=200)
    assert summary["recall"] == pytest.approx(0.0459, abs=0.0005)
    assert summary["map"] == pytest.approx(0.0221, abs=0.0005)
    assert summary["cold_recall"] == 0.0  # it cannot name a product nobody bought


def test_content_recommends_never_bought_articles_and_reloads(hm, split, text_content: ItemContent,
                                                              tmp_path: Path) -> None:
    model = ContentProfile(halflife=14.0).fit(split.train, hm.products, content=text_content)
    bought = set(split.train["product_id"])
    recommended = {u: model.recommend(u, 12) for u in split.users}
    never_bought = [sum(i not in bought for i in items) for items in recommended.values()]
    assert np.mean(never_bought) > 3  # content reaches the catalog's new arrivals
    result = evaluate_model(model, split)
    assert result.per_user["map"].mean() > 0.005
    model.save(tmp_path / "content")
    again = Recommender.load(tmp_path / "content")
    assert {u: again.recommend(u, 12) for u in split.users} == recommended


def test_profile_of_a_real_shopper_names_hm_types_and_colours(hm) -> None:
    events = hm.interactions
    facts = profiles.product_facts(hm.products)
    user = events[events["product_id"].isin(facts.index)]["user_id"].value_counts().index[0]
    p = profiles.build_profile(user, events, facts, pd.Timestamp("2020-09-01", tz="UTC"))
    types = set(facts["type"])
    assert p.top_types and all(name in types for name, _ in p.top_types)
    assert p.top_colours and p.top_colours[0][0] in set(facts["colour"])
    assert p.with_catalog_info < p.purchases  # most H&M purchases are of articles without catalog rows
    assert "with catalog details" in p.summary


def test_forget_a_real_shopper_from_a_small_workspace(hm, split, text_content: ItemContent, tmp_path: Path) -> None:
    active = split.train["user_id"].value_counts().index[:40]
    events = hm.interactions[hm.interactions["user_id"].isin(active)]
    users = hm.users[hm.users["id"].isin(active)]
    ws = Workspace(tmp_path / "ws")
    with ws.transaction("slice") as writer:
        writer.upsert("products", hm.products)
        writer.upsert("interactions", events)
        writer.upsert("users", users)
    model = ContentProfile().fit(events, hm.products, content=text_content)
    model.save(ws.artifacts / "recommend" / "content")
    user = active[0]
    report = profiles.forget(ws, user)
    assert report["rows_removed"]["interactions"] == int((events["user_id"] == user).sum())
    assert report["rows_removed"]["users"] == 1
    assert not (ws.read("interactions")["user_id"] == user).any()
    assert not (ws.read("users")["id"] == user).any()
    assert len(ws.table("interactions").list_versions()) == 1
    assert Service(ws, "content").recommend(user, 12).cold
