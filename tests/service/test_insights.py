"""Review insights: aspects and their sentiment per clause (English, Chinese), aggregation per product and category,
the stored table, and the CLI, Python and HTTP entry points."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import dataset_path
from tuwen import Workspace
from tuwen.cli.main import app as cli_app
from tuwen.ingest.synthetic import generate_catalog
from tuwen.serve.app import create_app
from tuwen.service import insights as service
from tuwen.service.insights.aspects import clauses, seed_lexicon, words
from tuwen.service.insights.expand import expand
from tuwen.service.insights.sentiment import polarity
from tuwen.store.review_scores import review_scores


def _aspects(text: str, language: str) -> list[set[str]]:
    lexicon = seed_lexicon(language)
    return [set(lexicon.match(words(c, language == "zh"))) for c in clauses(text, language == "zh")]


# ------------------------------------------------------------------------------------------- extraction
def test_english_clauses_keep_contrasting_aspects_apart() -> None:
    assert _aspects("I love the colour but it runs small. Shipping took two weeks!", "en") == [
        {"colour"}, {"fit"}, {"delivery"}]
    assert _aspects("The fabric is itchy; great price though", "en") == [{"fabric"}, {"price"}]
    assert _aspects("True to size and well made.", "en") == [{"fit", "quality"}]


def test_chinese_clauses_are_cut_and_matched_on_jieba_words() -> None:
    assert _aspects("物流很快，但是质量不好。客服态度很差", "zh") == [{"物流"}, {"质量"}, {"服务"}]
    assert _aspects("尺码偏小", "zh") == [{"尺码"}]
    # 码 only as a word of its own: 密码 (password) and 号码 (number) name no size
    assert _aspects("密码忘了", "zh") == [set()] and _aspects("号码不对", "zh") == [set()]


def test_polarity_prefers_label_then_rating_then_recommended() -> None:
    frame = pd.DataFrame({"label": ["1", None, None, None], "rating": [1.0, 5.0, 3.0, np.nan],
                          "recommended": [0.0, 0.0, 1.0, 0.0]})
    assert polarity(frame).tolist()[:2] == [1.0, 1.0]
    assert np.isnan(polarity(frame).iloc[2]) and polarity(frame).iloc[3] == 0.0


def _constructed_reviews() -> pd.DataFrame:
    """Two products whose reviews praise one aspect and complain about another; the ratings say which review
    is happy, never which aspect."""
    rng = np.random.default_rng(0)
    rows = []
    happy = ["Lovely soft fabric, I adore it", "The fabric is soft and wonderful", "Gorgeous fabric, so happy"]
    sad = ["Sadly it runs small, awful fit", "The fit is terrible, way too tight", "Horrible fit, it runs small"]
    for i in range(80):
        product = "A" if i % 2 == 0 else "B"
        good = rng.random() < 0.5
        # A: fabric praised, fit complained about; B: the reverse (fit praised, fabric complained about)
        if product == "A":
            text, rating = (rng.choice(happy), 5) if good else (rng.choice(sad), 1)
        else:
            text, rating = (rng.choice(happy).replace("fabric", "fit"), 5) if good else \
                (rng.choice(sad).replace("fit", "fabric").replace("runs small", "feels cheap"), 1)
        rows.append({"id": f"r{i}", "product_id": product, "rating": float(rating), "title": "", "text": text,
                     "category": "Tops > Knits"})
    return pd.DataFrame(rows)


def test_aggregation_counts_each_products_praise_and_complaints() -> None:
    reviews = _constructed_reviews()
    result = service.analyse(reviews, expand_lexicon=False)
    rows = result["rows"].set_index(["scope", "key", "aspect"])
    a_fit, a_fabric = rows.loc[("product", "A", "fit")], rows.loc[("product", "A", "fabric")]
    assert a_fabric["net"] > 0.5 and a_fit["net"] < -0.5
    # the reverse for B, although the model met "fabric" mostly in happy reviews (A's) and "fit" in unhappy ones
    assert rows.loc[("product", "B", "fabric"), "net"] < 0 < rows.loc[("product", "B", "fit"), "net"]
    overall = rows.loc[("product", "A", "")]
    assert overall["reviews"] == (reviews["product_id"] == "A").sum()
    assert overall["mentions"] == overall["reviews"] and a_fit["mentions"] + a_fabric["mentions"] == overall["reviews"]
    assert a_fit["share"] == pytest.approx(a_fit["mentions"] / overall["reviews"])
    examples = json.loads(a_fit["examples"])
    assert examples["negative"] and all(e["p"] <= 0.4 for e in examples["negative"])
    assert all(e["review_id"] in set(reviews["id"]) for e in examples["negative"])
    # every level of the category path has its own rows, counting both products' reviews
    assert rows.loc[("category", "Tops", ""), "reviews"] == rows.loc[("category", "Tops > Knits", ""), "reviews"] == 80


def test_expansion_learns_aspect_words_from_contexts() -> None:
    """A made-up word used exactly where fabric words are used joins the fabric aspect."""
    rng = np.random.default_rng(1)
    sentences = []
    for _ in range(3000):
        noun = rng.choice(["fabric", "material", "zorblex", "fit", "size", "price", "cost"])
        fabric, fit, price = "soft itchy thin knit", "tight loose small large", "cheap expensive sale paid"
        context = {"fabric": fabric, "material": fabric, "zorblex": fabric, "fit": fit, "size": fit, "price": price,
                   "cost": price}[noun]
        sentences.append([noun, *rng.choice(context.split(), 3), "the", "was"])
    learnt = expand(seed_lexicon("en"), sentences, min_count=5)
    assert "zorblex" in learnt.get("fabric", [])
    assert not any("zorblex" in words_ for aspect, words_ in learnt.items() if aspect != "fabric")


# ------------------------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_reviews_aspects_follow_the_ratings() -> None:
    """A sample of the women's reviews: aspects are found, and clauses of 1-2 star reviews lean negative."""
    raw = pd.read_csv(dataset_path("womens-clothing-reviews") / "reviews.csv", dtype=str, keep_default_na=False)
    sample = raw.sample(1500, random_state=0).rename(columns={
        "review_id": "id", "Clothing ID": "product_id", "Title": "title", "Review Text": "text"})
    sample["rating"] = sample["Rating"].astype(float)
    sample = sample.reset_index(drop=True)
    result = service.analyse(sample, expand_lexicon=False)
    found = result["opinions"]
    assert {"fit", "fabric", "colour", "quality"} <= set(found["aspect"])
    rating = sample["rating"].to_numpy()[found["review"]]
    # clauses of unhappy reviews are not all complaints ("love the colour, but..."): their mean leans, not sits, low
    assert found["p"][rating <= 2].mean() < 0.5 < 0.65 < found["p"][rating == 5].mean()


@pytest.mark.realdata
def test_real_chinese_reviews_by_category() -> None:
    raw = pd.read_csv(dataset_path("chinese-shopping-reviews") / "reviews.csv", dtype=str, keep_default_na=False)
    sample = raw.sample(1500, random_state=0).rename(columns={"review": "text"}).reset_index(drop=True)
    sample["product_id"] = ""
    result = service.analyse(sample, expand_lexicon=False)
    found = result["opinions"]
    assert {"物流", "质量", "价格"} <= set(found["aspect"])
    label = sample["label"].to_numpy()[found["review"]]
    assert found["p"][label == "0"].mean() < 0.4 < 0.6 < found["p"][label == "1"].mean()
    rows = result["rows"]
    clothes = rows[(rows["scope"] == "category") & (rows["key"] == "衣服")]
    assert len(clothes) > 3 and (rows["scope"] == "product").sum() == 0  # no products: categories only


# ------------------------------------------------------------------------------------------- stored, CLI, HTTP
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("insights")
    catalog = generate_catalog(root / "catalog", n_products=40, n_users=80, seed=3, image_size=16)
    ws = Workspace(root / "ws")
    ws.ingest(preset="synthetic", path=catalog)
    return ws


def _reviewed(shop: Workspace) -> str:
    counts = shop.read("reviews")["product_id"].value_counts()
    return str(counts.index[0])


def test_stored_insights_and_staleness(shop: Workspace) -> None:
    assert service.state(shop)["stale"] and not service.state(shop)["computed"]
    product = _reviewed(shop)
    answer = shop.insights(product=product)  # computes and stores on first use
    assert not answer["state"]["stale"] and shop.has_table("insights")
    block = answer["product"]
    assert block["reviews"] == (shop.read("reviews")["product_id"] == product).sum()
    assert block["aspects"] and all(a["mentions"] <= block["reviews"] for a in block["aspects"])
    assert answer["category"]["key"] == shop.read("products").set_index("id").loc[product, "category"]
    lexicon = service.read(shop).query("scope == 'lexicon'")
    assert set(lexicon["key"]) >= {"en", "zh"}
    with pytest.raises(KeyError, match="no product"):
        shop.insights(product="no-such-product", refresh=False)


def test_cli_json_and_category(shop: Workspace) -> None:
    runner = CliRunner()
    product = _reviewed(shop)
    result = runner.invoke(cli_app, ["insights", str(shop.path), "--product", product, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["product"]["key"] == product and answer["product"]["aspects"]
    category = answer["category"]["key"]
    last = category.split(">")[-1].strip()
    result = runner.invoke(cli_app, ["insights", str(shop.path), "--category", last, "--json", "--no-auto"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["category"]["key"] == category
    result = runner.invoke(cli_app, ["insights", str(shop.path), "--category", "Nowhere > Never"])
    assert result.exit_code == 2 and "no insights for category" in result.output
    result = runner.invoke(cli_app, ["insights", str(shop.path), "--product", product])
    assert result.exit_code == 0 and "praised" in result.output


def test_api_routes(shop: Workspace) -> None:
    product = _reviewed(shop)
    shop.insights(product=product)
    client = TestClient(create_app(shop.path), base_url="http://localhost")
    response = client.get(f"/api/products/{product}/insights")
    assert response.status_code == 200
    body = response.json()
    assert body["product"]["reviews"] > 0 and body["product"]["aspects"][0]["examples"]
    assert client.get("/api/products/nope/insights").status_code == 404
    category = body["category"]["key"]
    response = client.get("/api/insights", params={"category": category})
    assert response.status_code == 200 and response.json()["category"]["key"] == category
    assert client.get("/api/insights", params={"category": "Nowhere"}).status_code == 404
    assert client.get("/api/insights").status_code == 422  # the category is required


def test_new_reviews_make_insights_stale(shop: Workspace, tmp_path: Path) -> None:
    shop.insights(product=_reviewed(shop))
    assert not service.state(shop)["stale"]
    extra = tmp_path / "more.csv"
    product = _reviewed(shop)
    extra.write_text(f"id,product_id,user_id,rating,text\nnew-1,{product},u-new,1,Awful quality and it runs small.\n",
                     encoding="utf-8")
    shop.ingest(reviews=extra)
    assert service.state(shop)["stale"]
    refreshed = shop.insights(product=product)
    assert not refreshed["state"]["stale"]
    ids = {e["review_id"] for a in refreshed["product"]["aspects"] for e in a["examples"]["negative"]}
    assert refreshed["product"]["reviews"] == (shop.read("reviews")["product_id"] == product).sum()
    assert "new-1" in ids or any(a["aspect"] == "quality" and a["negative"] for a in refreshed["product"]["aspects"])


# ------------------------------------------------------------------------------------------- reviews feed the rest
@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    from tests.helpers import synthetic_shop

    return synthetic_shop(tmp_path_factory.mktemp("scores"), n_products=80, n_users=70, seed=5, image_size=16)


def test_review_scores_count_only_earlier_reviews() -> None:
    reviews = pd.DataFrame({"product_id": ["a", "a", "a", "b", ""], "rating": [5.0, 1.0, 4.0, 3.0, 5.0],
                            "timestamp": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-01-01",
                                                         "2024-01-01"], utc=True)})
    everything = review_scores(reviews)
    assert everything.loc["a", "rating"] == pytest.approx(10 / 3) and everything.loc["a", "reviews"] == 3
    assert everything.loc["a", "positive_share"] == pytest.approx(2 / 3)
    assert np.isnan(everything.loc["b", "positive_share"]) and "" not in everything.index  # 3 stars: neither
    early = review_scores(reviews, before=pd.Timestamp("2024-01-15", tz="UTC"))
    assert early.loc["a", "reviews"] == 2 and early.loc["a", "rating"] == pytest.approx(4.5)  # undated counts


def test_search_filters_by_review_scores(embedded: Workspace) -> None:
    from tuwen.search import IndexSettings

    embedded.refresh_insights(progress=False)
    embedded.index(settings=IndexSettings(image_encoder="color_histogram"), progress=False, learn=False)
    scores = review_scores(embedded.read("reviews"))
    hits = embedded.search("cotton", mode="lexical", k=200, where="rating >= 4").hits
    assert hits and all(scores.loc[h.id, "rating"] >= 4 for h in hits)
    unreviewed = set(embedded.read("products")["id"]) - set(scores.index)
    none = embedded.search("cotton", mode="lexical", k=200, where="reviews = 0").hits
    assert {h.id for h in none} <= unreviewed
    assert embedded.search("cotton", mode="lexical", k=5, where="aspect_quality > -2").hits  # from the insights


def test_ranker_uses_review_scores_without_look_ahead(embedded: Workspace, tmp_path: Path) -> None:
    from tuwen.recommend import CandidateRanker
    from tuwen.recommend.base import Recommender
    from tuwen.recommend.evaluate import temporal_split
    from tuwen.recommend.ranker_features import REVIEW_FEATURES
    from tuwen.recommend.store import load_content

    split = temporal_split(embedded.read("interactions"), test_days=30)
    reviews = embedded.read("reviews")
    model = CandidateRanker(label_weeks=2, n_estimators=20).fit(
        split.train, embedded.read("products"), content=load_content(embedded), reviews=reviews)
    assert model.params["review_features"] and model.booster.feature_name()[-3:] == REVIEW_FEATURES
    counted = model.context.review_count
    later = reviews[pd.to_datetime(reviews["timestamp"], utc=True) >= split.cut]
    assert counted.sum() == len(reviews) - len(later) and len(later) > 0  # reviews after the training data: unseen
    user = split.users[0]
    loaded = Recommender.load(model.save(tmp_path / "ranker"))
    assert loaded.recommend(user, 12) == model.recommend(user, 12)
    plain = CandidateRanker(label_weeks=2, n_estimators=20).fit(split.train, embedded.read("products"),
                                                                content=load_content(embedded))
    assert not plain.params["review_features"] and REVIEW_FEATURES[0] not in plain.booster.feature_name()


def test_a_review_repeated_per_variant_counts_once() -> None:
    reviews = pd.DataFrame({"id": ["1", "2", "3", "4", "5"], "product_id": ["a", "a", "b", "a", "a"],
                            "user_id": ["u", "u", "u", "", ""], "rating": [5.0, 5.0, 5.0, 4.0, 4.0],
                            "title": [""] * 5, "text": ["Great fit.", "Great fit.", "Great fit.", "ok", "ok"]})
    kept = service.distinct(reviews)
    # the copy on the same product goes; the same words about another product stay; anonymous reviews all stay
    assert kept["id"].tolist() == ["1", "3", "4", "5"]
