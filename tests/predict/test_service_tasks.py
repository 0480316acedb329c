"""Message routing (``intent``) and the review targets beyond the rating, trained and used on slices of the real
data sets (the full-size measurements are in ``benchmarks/reviews.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import dataset_path
from tests.subsample import sample_csv
from tuwen.predict.tasks.intent import selective_threshold
from tuwen.predict.training.config import TrainConfig
from tuwen.shop import Shop

QUICK = TrainConfig(quality="fast", epochs=8, ensemble=1, experts=False, progress=False)


def test_the_threshold_keeps_the_longest_confident_prefix_at_the_target_precision() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.9, 0.6, 0.5, 0.4])
    correct = np.array([1, 1, 1, 0, 1, 0, 0], dtype=bool)
    # top 4 (ties at 0.9 kept together): 3/4 right; top 5: 4/5; top 2: 2/2
    assert selective_threshold(confidence, correct, 0.8) == (0.6, 5 / 7)
    assert selective_threshold(confidence, correct, 0.95) == (0.95, 2 / 7)
    threshold, coverage = selective_threshold(confidence, ~correct, 0.95)  # the most confident one is wrong
    assert coverage == 0.0 and threshold > 0.99


@pytest.mark.realdata
def test_intent_model_routes_messages_and_hands_unsure_ones_to_a_person(tmp_path: Path) -> None:
    source = dataset_path("customer-support-intents")
    rows = sample_csv(source / "utterances.csv", tmp_path / "intents" / "utterances.csv", 700)
    shop = Shop(tmp_path / "ws")
    shop.ingest("support-intents", tmp_path / "intents")
    model = shop.train("intent", name="route", encoders=(), config=QUICK)
    calibrated = model.info["needs_person"]
    assert calibrated["chosen_on"] == "validation predictions" and 0 < calibrated["threshold"] <= 1
    test = model.info["metrics"]["test"]
    assert test["accuracy"] > 0.6  # 27 intents: chance is under 5%
    assert 0 < test["coverage"] <= 1 and "coverage_at_95" in test
    loaded = shop.model("route")  # a fresh load keeps the threshold and the intent → category map
    assert loaded.task.threshold == pytest.approx(calibrated["threshold"])
    frame = shop.read("messages").head(40)
    predictions = loaded.predict(frame, shop, contributions=False, neighbours=0)
    categories = {row[2]: row[1] for row in rows}  # intent → category (utterance, category, intent, flags)
    assert [p["id"] for p in predictions] == list(frame["id"])
    for prediction in predictions:
        assert prediction["category"] == categories[prediction["prediction"]]
        assert prediction["needs_person"] == (prediction["confidence"] < calibrated["threshold"])
    by_category = shop.train("intent", "category", name="route-category", encoders=(), config=QUICK)
    assert by_category.info["metrics"]["test"]["accuracy"] > 0.6
    assert {p["prediction"] for p in by_category.predict(frame, shop, contributions=False, neighbours=0)} <= set(
        categories.values())


@pytest.mark.realdata
def test_recommends_it_is_binary_with_auc_split_by_product_and_reads_only_words(tmp_path: Path) -> None:
    source = dataset_path("womens-clothing-reviews")
    sample_csv(source / "reviews.csv", tmp_path / "womens" / "reviews.csv", 500, seed=1)
    shop = Shop(tmp_path / "ws")
    shop.ingest("womens-reviews", tmp_path / "womens")
    model = shop.train("review", "recommended", name="recommends", encoders=(), config=QUICK)
    assert model.task.is_binary and model.task.primary == "auc"
    assert set(model.info["inputs"]) <= {"text@tfidf_sparse", "title@tfidf_sparse"}  # never the rating
    assert model.info["metrics"]["test"]["auc"] > 0.75
    split = json.loads((Path(model.info["folder"]) / "split.json").read_text())
    products = shop.read("reviews").set_index("id")["product_id"]
    assert not set(products[split["train"]]) & set(products[split["test"]])  # a product is on one side only
    prediction = model.predict(shop.read("reviews").head(3), shop, contributions=False, neighbours=0)[0]
    assert prediction["prediction"] in {"0", "1"} and 0 <= prediction["probability"] <= 1
    rating = shop.train("review", name="stars", encoders=(), config=QUICK)
    assert rating.task.is_rating and rating.info["metrics"]["test"]["mae"] < 1.2


@pytest.mark.realdata
def test_chinese_sentiment_uses_jieba_words_and_the_multilingual_encoder(tmp_path: Path) -> None:
    source = dataset_path("chinese-shopping-reviews")
    sample_csv(source / "reviews.csv", tmp_path / "zh" / "reviews.csv", 400, seed=2)
    shop = Shop(tmp_path / "ws")
    shop.ingest("chinese-reviews", tmp_path / "zh")
    model = shop.train("review", "label", name="sentiment", config=QUICK)
    assert model.info["inputs"] == ["text@tfidf_sparse", "text@use_multilingual"]  # no titles in this set
    words = model.builder.text["text@tfidf_sparse"].vectorizers["word"].vocabulary_
    assert {"质量", "不错"} <= set(words)  # jieba's words, not whole clauses
    assert model.info["metrics"]["test"]["accuracy"] > 0.7
    prediction = model.predict(shop.read("reviews").head(2), shop, contributions=False, neighbours=0)[0]
    assert prediction["sentiment"] == {"1": "positive", "0": "negative"}[prediction["prediction"]]
