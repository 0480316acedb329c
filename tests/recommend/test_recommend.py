"""Recommenders, evaluation, explanations, profiles, segments and forget on SYNTHETIC shoppers.

The synthetic shoppers prefer some (category, colour) pairs; colour is visible in the photo and
named in about half of the titles, so a recommender that reads product content must beat
global popularity there. Cheap encoders (colour histogram, TF-IDF) keep the whole file fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import tuwen.cli.models  # noqa: F401  (registers train / evaluate)
import tuwen.cli.recommend  # noqa: F401  (registers the commands on the app)
from tests.helpers import synthetic_shop
from tuwen import Workspace
from tuwen.cli.main import app
from tuwen.ingest.synthetic import generate_catalog
from tuwen.metrics.intervals import bootstrap_interval
from tuwen.metrics.ranking import average_precision, ndcg_at
from tuwen.recommend import (
    ALS,
    BPR,
    VBPR,
    CandidateRanker,
    ContentProfile,
    ItemKNN,
    Popularity,
    Recommender,
    RecommendError,
    Repurchase,
    Service,
    TwoTower,
    evaluate_model,
    explain,
    profiles,
    temporal_split,
    train,
)
from tuwen.recommend.base import ItemContent
from tuwen.recommend.evaluate import evaluate_rankings, user_metrics
from tuwen.recommend.ranker_features import catalog_codes, neighbour_popularity
from tuwen.recommend.store import load_content

FAST = {
    "popularity": lambda: Popularity(),
    "repurchase": lambda: Repurchase(),
    "itemknn": lambda: ItemKNN(),
    "als": lambda: ALS(factors=16, iterations=5),
    "bpr": lambda: BPR(factors=16, iterations=20),
    "content": lambda: ContentProfile(),
    "vbpr": lambda: VBPR(epochs=5),
    "two_tower": lambda: TwoTower(epochs=2, hidden=64, dim=32),
    "ranker": lambda: CandidateRanker(label_weeks=2, n_estimators=40),
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A synthetic workspace with 240 products, 150 shoppers and cheap image + text vectors."""
    root = tmp_path_factory.mktemp("rec")
    return synthetic_shop(root, n_products=240, n_users=150, seed=3, image_size=32)


@pytest.fixture(scope="module")
def content(shop: Workspace) -> ItemContent:
    loaded = load_content(shop)
    assert loaded is not None
    return loaded


@pytest.fixture(scope="module")
def split(shop: Workspace):
    return temporal_split(shop.read("interactions"), test_days=30)


# ------------------------------------------------------------------------------------------- metrics


def test_kaggle_map_and_friends_by_hand() -> None:
    # hits at ranks 2 and 4 of two wanted items: (1/2 + 2/4) / min(2, 12)
    assert average_precision(["x", "a", "y", "b"], {"a", "b"}) == pytest.approx(0.5)
    # a repeated recommendation is not a second hit
    assert average_precision(["a", "a"], {"a"}) == pytest.approx(1.0)
    # more truth than k: divided by k
    assert average_precision(["0"], {str(i) for i in range(20)}, k=12) == pytest.approx(1 / 12)
    assert ndcg_at(["a"], {"a"}) == pytest.approx(1.0)
    assert ndcg_at(["x", "a"], {"a", "b"}) == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    # a repeated id earns its gain once
    assert ndcg_at(["a", "a"], {"a", "b"}) == pytest.approx(ndcg_at(["a"], {"a", "b"}))
    expected = {"map": 0.5, "recall": 0.5, "ndcg": pytest.approx(1 / (1 + 1 / np.log2(3))), "hr": 1.0}
    assert user_metrics(["a", "b"], ["a", "z"]) == expected
    low, high = bootstrap_interval(np.array([0.0, 1.0] * 50))
    assert low < 0.5 < high


def test_temporal_split_scores_only_shoppers_with_history(split) -> None:
    train_end = split.train["timestamp"].max()
    assert train_end < split.cut <= split.test["timestamp"].min()
    buyers = set(split.train.loc[split.train["kind"] == "purchase", "user_id"])
    assert split.truth and set(split.truth) <= buyers
    assert all(len(items) == len(set(items)) for items in split.truth.values())
    result = evaluate_rankings("perfect", {u: list(t) for u, t in split.truth.items()}, split)
    expected = [min(1.0, 12 / len(truth)) for truth in split.truth.values()]
    assert result.per_user["recall"].tolist() == pytest.approx(expected)  # a perfect ranking, cut at 12
    assert result.per_user["map"].min() > 0 and result.cold_hits <= result.cold_total


# ---------------------------------------------------------------------------------------- the models


def test_content_model_beats_popularity_on_synthetic_shoppers(shop: Workspace, content: ItemContent, split) -> None:
    products = shop.read("products")
    scores = {}
    for name, model in (("popularity", Popularity()), ("content", ContentProfile(halflife=60.0))):
        model.fit(split.train, products, content=content if model.uses_content else None)
        scores[name] = evaluate_model(model, split).summary(n_boot=200)
    assert scores["content"]["map"] > 1.5 * scores["popularity"]["map"]
    assert scores["content"]["recall"] > scores["popularity"]["recall"]


@pytest.mark.parametrize("name", list(FAST))
def test_every_model_fits_recommends_and_reloads_identically(name: str, shop: Workspace, content: ItemContent, split,
                                                             tmp_path: Path) -> None:
    model = FAST[name]()
    model.fit(split.train, shop.read("products"), content=content if model.uses_content else None)
    users = split.users[:25]
    before = {u: model.recommend(u, 12) for u in users}
    assert all(len(items) == 12 and len(set(items)) == 12 for items in before.values())
    scores = model.score(users[0], before[users[0]][:3])
    assert scores.shape == (3,)
    excluded = before[users[0]][:2]
    assert not set(excluded) & set(model.recommend(users[0], 12, exclude=excluded))
    model.save(tmp_path / name)
    again = Recommender.load(tmp_path / name)
    assert type(again) is type(model)
    assert {u: again.recommend(u, 12) for u in users} == before
    np.testing.assert_array_equal(again.score(users[0]), model.score(users[0]))
    info = json.loads((tmp_path / name / "model.json").read_text(encoding="utf-8"))
    info["format_version"] = 3  # the format before rankers kept their generators' histories once: still read
    (tmp_path / name / "model.json").write_text(json.dumps(info), encoding="utf-8")
    assert {u: Recommender.load(tmp_path / name).recommend(u, 12) for u in users} == before
    for version in (2, 5):  # arrays this tuwen would misread, or a newer tuwen's folder
        info["format_version"] = version
        (tmp_path / name / "model.json").write_text(json.dumps(info), encoding="utf-8")
        with pytest.raises(RecommendError, match="retrain"):
            Recommender.load(tmp_path / name)


def test_a_never_bought_product_is_recommended_through_content(shop: Workspace, content: ItemContent, split) -> None:
    train = split.train
    bought = train[train["kind"] == "purchase"]
    user = bought["user_id"].value_counts().index[0]
    favourite = bought[bought["user_id"] == user]["product_id"].value_counts().index[0]
    # every event on the favourite product disappears: it is now a product nobody ever touched
    cold_train = train[train["product_id"] != favourite]
    model = ContentProfile().fit(cold_train, shop.read("products"), content=content)
    assert favourite in model.item_index and model.item_index[favourite] >= model.n_trained_items
    assert np.isfinite(model.score(user, [favourite])[0])
    assert favourite in model.recommend(user, 40)
    als = ALS(factors=8, iterations=3).fit(cold_train, shop.read("products"), content=content)
    assert not np.isfinite(als.score(user, [favourite])[0])  # ids only: no opinion on it


def test_vbpr_starts_from_its_id_only_bpr_and_scores_new_products_by_content(shop: Workspace, content: ItemContent,
                                                                             split) -> None:
    bought = split.train[split.train["kind"] == "purchase"]
    user = bought["user_id"].value_counts().index[0]
    favourite = bought[bought["user_id"] == user]["product_id"].value_counts().index[0]
    cold_train = split.train[split.train["product_id"] != favourite]
    products = shop.read("products")
    fit = lambda **kw: VBPR(epochs=3, **kw).fit(cold_train, products, content=content)  # noqa: E731
    # phase 1 is the very same BPR with or without content: the ablation sees the same updates
    plain, warm = fit(content=False, content_epochs=0), fit(content_epochs=0)
    np.testing.assert_array_equal(plain.item_id_f, warm.item_id_f)
    vbpr, bpr = fit(content_epochs=2), fit(content=False, content_epochs=2)
    assert not np.array_equal(vbpr.item_id_f, plain.item_id_f)  # phase 2 went on training the ids
    # the 32 learnt content factors, the direct match profile . f and beta . f are all linear in the
    # [image | text] features f: one feature-width vector per shopper holds them (not [theta | alpha profile])
    dim = content.image.shape[1] + content.text.shape[1]
    assert vbpr.user_content_w.shape == (len(vbpr.histories), dim) and bpr.user_content_w.shape[1] == 0
    assert vbpr.item_features.shape == (len(vbpr.item_ids), dim) and not hasattr(vbpr, "content_bias")
    assert np.isfinite(vbpr.score(user, [favourite])[0])  # never bought, scored through its photo + text
    assert not np.isfinite(bpr.score(user, [favourite])[0])


def test_vbpr_content_term_reaches_the_scores_of_bought_products(shop: Workspace, content: ItemContent,
                                                                  split) -> None:
    """Guards the H&M test-week tie (VBPR and its BPR had equal MAP and recall): the content phase must
    change the served scores of *bought* products too, not only make never-bought ones scorable."""
    products = shop.read("products")
    vbpr = VBPR(epochs=3, content_epochs=2).fit(split.train, products, content=content)
    bpr = VBPR(epochs=3, content_epochs=2, content=False).fit(split.train, products)
    n = vbpr.n_trained_items
    assert bpr.item_ids == vbpr.item_ids[:n]  # same trained universe, same order
    changed = 0
    for user in list(split.truth)[:10]:
        k = vbpr.histories.index[user]
        id_part = vbpr.item_bias + vbpr.item_id_f @ vbpr.user_id_f[k]
        content_part = (vbpr.item_features @ vbpr.user_content_w[k])[:n]
        np.testing.assert_allclose(vbpr.score(user)[:n], id_part + content_part, rtol=1e-5, atol=1e-5)
        assert content_part.std() > 1e-3  # the content term is there and not flat
        changed += vbpr.recommend(user, 12) != bpr.recommend(user, 12)
    assert changed >= 5  # and it moves the top 12 for most shoppers


def test_ranker_regularises_its_trees(shop: Workspace, content: ItemContent, split) -> None:
    model = CandidateRanker(label_weeks=2, n_estimators=20).fit(split.train, shop.read("products"), content=content)
    assert model.booster is not None and float(model.booster.params["reg_lambda"]) == 10.0


def test_a_never_bought_product_inherits_the_recent_sales_of_its_look_alike() -> None:
    vectors = np.array([[1.0, 0.0], [0.96, 0.28], [0.0, 1.0], [0.0, 0.0]], np.float32)  # 1 looks like 0
    sales = np.array([3.0, 0.0, 0.0, 0.0])
    trend = neighbour_popularity(vectors, sales)
    assert trend[1] == pytest.approx(3 * 0.96 ** 4, rel=1e-4) and trend[2] == 0.0
    assert trend[0] == 0.0  # its own sales do not count: the feature is about the neighbourhood
    assert np.isnan(trend[3])  # no vector, no opinion


def test_ranker_reads_type_colour_and_department_from_any_catalog() -> None:
    products = pd.DataFrame({"id": ["a", "b", "c"], "category": ["Women > Dresses", "Women > Dresses", "Men > Socks"],
                             "attributes": [json.dumps({"baseColour": "Red"}), json.dumps({"colour": "Red"}), ""],
                             "price": [10.0, 12.0, 3.0]})
    codes = catalog_codes(products, variant_key=None)
    assert codes.loc["a", "key0"] == codes.loc["b", "key0"] != codes.loc["c", "key0"]  # type from the category path
    assert codes.loc["a", "key1"] == codes.loc["b", "key1"] >= 0 and codes.loc["c", "key1"] == -1  # colour
    assert (codes["variant"] == -1).all()


def test_ranker_parses_each_products_attributes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    products = pd.DataFrame({"id": ["a", "b", "c"], "category": ["Dresses", "Dresses", "Socks"], "price": [1.0, 2, 3],
                             "attributes": [json.dumps({"colour": "Red", "product_code": "7"}),
                                            json.dumps({"colour": "Blue", "product_code": "7"}), ""]})
    real, parsed = json.loads, []
    monkeypatch.setattr(json, "loads", lambda text, *a, **kw: parsed.append(text) or real(text, *a, **kw))
    codes = catalog_codes(products, variant_key="product_code")
    assert len(parsed) == 2  # the two products with attributes, once each (type/colour facts + variant key)
    assert codes.loc["a", "variant"] == codes.loc["b", "variant"] >= 0 and codes.loc["c", "variant"] == -1
    assert codes.loc["a", "key1"] != codes.loc["b", "key1"]  # the colours were read from the same parse


def test_unknown_shopper_gets_popular_products_and_a_late_shopper_is_folded_in(shop: Workspace,
                                                                                content: ItemContent) -> None:
    events = shop.read("interactions")
    late = events["user_id"].value_counts().index[-1]
    model = ContentProfile().fit(events[events["user_id"] != late], shop.read("products"), content=content)
    service = Service(shop, model=model)
    cold = service.recommend("nobody-at-all", 5)
    assert cold.cold and cold.items == model.popular(5) and "popular" in cold.note
    folded = service.recommend(late, 5)
    assert not folded.cold and "folded in" in folded.note
    assert folded.items != model.popular(5)  # the folded-in history, not the cold-start fallback, ranked these


def test_explanations_name_the_closest_history_product(shop: Workspace, content: ItemContent, split) -> None:
    model = CandidateRanker(label_weeks=2, n_estimators=30).fit(split.train, shop.read("products"), content=content)
    user = split.users[0]
    items = model.recommend(user, 12)
    reasons = explain(model, user, items)
    own = set(split.train.loc[split.train["user_id"] == user, "product_id"])
    for reason in reasons:
        assert reason.carried_by in {"bought before", "image", "text", "co-purchase", "popular"}
        if reason.carried_by == "bought before":
            assert reason.item in own
        elif reason.carried_by != "popular":
            assert reason.closest in own
    assert any(r.carried_by in {"image", "text", "co-purchase"} for r in reasons)


# ------------------------------------------------------------------------------- profiles & segments


def test_profile_reads_types_colours_and_recency(shop: Workspace) -> None:
    events = shop.read("interactions")
    user = events["user_id"].value_counts().index[0]
    p = profiles.profile(shop, user)
    purchases = events[(events["user_id"] == user) & (events["kind"] == "purchase")]
    facts = profiles.product_facts(shop.read("products")).loc[purchases["product_id"]]
    assert p.purchases == len(purchases)
    assert p.top_types[0][0] == facts["type"].value_counts().index[0]
    assert p.top_colours[0][0] == facts["colour"].value_counts().index[0]
    assert p.top_colours[0][1] == pytest.approx(facts["colour"].value_counts().iloc[0] / len(facts))
    assert p.price_band in profiles.PRICE_BANDS
    assert user[:16] in p.summary and "buys mostly" in p.summary
    # the filtered reads give what the whole tables give
    whole = profiles.build_profile(user, events, profiles.product_facts(shop.read("products")),
                                   pd.to_datetime(events["timestamp"], utc=True).max())
    assert p == whole
    with pytest.raises(KeyError):
        profiles.profile(shop, "nobody")


def test_segments_cover_every_shopper_with_labels_and_a_chart(tmp_path: Path, shop: Workspace) -> None:
    result = profiles.segments(shop, k=4, seed=0)
    shoppers = shop.read("interactions")["user_id"].nunique()
    assert result.k == 4 and sum(result.sizes.values()) == shoppers
    assert all(label for label in result.labels.values()) and len(set(result.labels.values())) == 4
    assert result.chart is not None and result.chart.stat().st_size > 10_000
    stored = shop.read("segments")
    assert len(stored) == shoppers and set(stored["segment"]) == set(range(4))


# ------------------------------------------------------------------------------------------- forget


def _copy_workspace(shop: Workspace, tmp_path: Path) -> Workspace:
    import shutil

    shutil.copytree(shop.path, tmp_path / "ws")
    return Workspace(tmp_path / "ws", create=False)


def test_forget_leaves_nothing_of_the_shopper(shop: Workspace, tmp_path: Path) -> None:
    ws = _copy_workspace(shop, tmp_path)
    train(ws, "content")
    train(ws, "als", {"factors": 8, "iterations": 3}, default=False)
    profiles.segments(ws, k=3, chart=False)
    events = ws.read("interactions")
    user = events["user_id"].value_counts().index[0]
    assert (ws.read("reviews")["user_id"] == user).any()

    report = profiles.forget(ws, user)

    assert report["found"] and report["rows_removed"]["interactions"] == (events["user_id"] == user).sum()
    assert {"artifacts/recommend/content", "artifacts/recommend/als"} <= set(report["models_stale"])
    fresh = Workspace(ws.path, create=False)  # a new process sees the same
    for name, column in profiles.USER_TABLES.items():
        if fresh.has_table(name):
            table = fresh.table(name)
            assert len(table.list_versions()) == 1, f"{name}: old versions (with the shopper) remain"
            assert not (table.to_arrow().to_pandas()[column] == user).any()
    assert fresh.count("interactions") == len(events) - report["rows_removed"]["interactions"]
    for folder in ("content", "als"):
        model = Recommender.load(ws.artifacts / "recommend" / folder)
        assert not model.knows(user) and model.meta["stale"]
        assert f"artifacts/recommend/{folder}" in fresh.manifest["meta"]["stale_models"]
    assert user not in json.dumps(fresh.manifest)
    served = Service(fresh).recommend(user, 5)
    assert served.cold
    with pytest.raises(KeyError):
        profiles.profile(fresh, user)
    again = profiles.forget(fresh, user)  # safe to re-run
    assert not again["found"] and again["rows_removed"] == {}
    retrained = train(fresh, "content")  # retraining clears the stale mark
    assert retrained.name == "content"
    assert "artifacts/recommend/content" not in fresh.manifest["meta"]["stale_models"]


def test_pseudonymise_is_stable_and_salted() -> None:
    assert profiles.pseudonymise("c1", "s") == profiles.pseudonymise("c1", "s")
    assert profiles.pseudonymise("c1", "s") != profiles.pseudonymise("c1", "t")
    assert len(profiles.pseudonymise("c1", "s")) == 64


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_train_recommend_batch_profile_segments_forget(shop: Workspace, tmp_path: Path) -> None:
    ws = _copy_workspace(shop, tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["train", str(ws.path), "--task", "recommend", "--model", "content", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model"] == "content"
    user = ws.read("interactions")["user_id"].iloc[0]

    single = runner.invoke(app, ["recommend", str(ws.path), "--user", user, "--k", "5", "--json", "--explain"])
    assert single.exit_code == 0, single.output
    answer = json.loads(single.output)
    assert answer["user"] == user and len(answer["items"]) == 5 and not answer["cold"]
    assert len(answer["reasons"]) == 5

    ids = tmp_path / "users.txt"
    ids.write_text(f"{user}\nnew-shopper\n\n", encoding="utf-8")
    batch = runner.invoke(app, ["recommend", str(ws.path), "--users", str(ids), "--k", "12", "--json"])
    assert batch.exit_code == 0, batch.output
    lines = [json.loads(line) for line in batch.output.splitlines()]
    assert [line["user"] for line in lines] == [user, "new-shopper"]
    assert lines[1]["cold"] and "popular" in lines[1]["note"] and len(lines[1]["items"]) == 12

    prof = runner.invoke(app, ["profile", str(ws.path), "--user", user, "--json"])
    assert prof.exit_code == 0 and json.loads(prof.output)["user"] == user
    seg = runner.invoke(app, ["segments", str(ws.path), "--k", "3", "--json"])
    assert seg.exit_code == 0, seg.output
    assert len(json.loads(seg.output)["segments"]) == 3
    assert (ws.artifacts / "segments.png").exists()
    gone = runner.invoke(app, ["forget", str(ws.path), "--user", user, "--json"])
    assert gone.exit_code == 0 and json.loads(gone.output)["found"]
    assert not (ws.artifacts / "segments.png").exists()  # it plotted the shopper; redrawn by `tuwen segments`
    again = runner.invoke(app, ["recommend", str(ws.path), "--user", user, "--json"])
    assert json.loads(again.output)["cold"]


def test_cli_user_errors_are_one_line_and_exit_2(shop: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    for args in (["train", str(shop.path), "--task", "recommend", "--model", "nope"],
                 ["recommend", str(shop.path)],
                 ["recommend", str(shop.path), "--users", str(tmp_path / "missing.txt")],
                 ["profile", str(shop.path), "--user", "nobody"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert "error:" in result.output and "Traceback" not in result.output


def test_evaluate_command_prints_intervals(shop: Workspace) -> None:
    result = CliRunner().invoke(app, ["evaluate", str(shop.path), "--task", "recommend", "--models",
                                      "popularity,content", "--test-days", "30", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"task", "split", "k", "seed", "results", "skipped"}  # recommend.compare's dict
    assert data["task"] == "recommend" and data["skipped"] == [] and data["k"] == 12
    rows = {r["model"]: r for r in data["results"]}
    assert rows["content"]["map_low"] <= rows["content"]["map"] <= rows["content"]["map_high"]
    assert data["split"]["scored_users"] > 50
    table = CliRunner().invoke(app, ["evaluate", str(shop.path), "--task", "recommend", "--models", "popularity",
                                     "--test-days", "30"])
    assert table.exit_code == 0, table.output
    assert f"{data['split']['scored_users']} shoppers" in table.output and "┏" in table.output  # title + table


def test_rec_train_and_rec_evaluate_remain_as_hidden_aliases(shop: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["--help"])
    assert listed.exit_code == 0 and "rec-train" not in listed.output and "rec-evaluate" not in listed.output
    ws = _copy_workspace(shop, tmp_path)
    trained = runner.invoke(app, ["rec-train", str(ws.path), "--model", "repurchase", "--json"])
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.output)["model"] == "repurchase"
    compared = runner.invoke(app, ["rec-evaluate", str(ws.path), "--models", "popularity,repurchase",
                                   "--test-days", "30", "--json"])
    assert compared.exit_code == 0, compared.output
    alias = json.loads(compared.output)
    shared = json.loads(runner.invoke(app, ["evaluate", str(ws.path), "--task", "recommend", "--models",
                                            "popularity,repurchase", "--test-days", "30", "--json"]).output)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("fit_seconds", "ms_per_user")}  # noqa: E731
                          for r in rows]
    assert strip(alias["results"]) == strip(shared["results"]) and alias["split"] == shared["split"]


def test_missing_recommender_names_the_new_train_command(tmp_path: Path) -> None:
    with pytest.raises(RecommendError, match="tuwen train WS --task recommend"):
        Recommender.load(tmp_path / "nothing")


def test_models_without_vectors_say_so(tmp_path: Path) -> None:
    catalog = generate_catalog(tmp_path / "c", n_products=30, n_users=10, seed=1, image_size=16)
    ws = Workspace(tmp_path / "ws")
    ws.ingest("synthetic", catalog)
    with pytest.raises(RecommendError, match="tuwen embed"):
        train(ws, "content")
    assert train(ws, "repurchase").name == "repurchase"
    frame = pd.DataFrame(columns=["user_id", "product_id", "timestamp", "kind", "value"])
    with pytest.raises(RecommendError):
        Repurchase().fit(frame)
