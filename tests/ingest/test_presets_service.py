"""The four customer-service / review presets on the real data sets, the questions and messages tables, and the
new review columns (including workspaces written before they existed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from tests.conftest import dataset_path
from tests.helpers import write_csv
from tests.subsample import csv_rows, sample_csv, sample_lines
from tuwen.ingest import load_preset
from tuwen.shop import Shop
from tuwen.store.catalog import REVIEW_SCHEMA, clean_text


@pytest.fixture
def intents_dir() -> Path:
    return dataset_path("customer-support-intents")


@pytest.fixture
def qa_dir() -> Path:
    return dataset_path("amazon-qa-clothing")


@pytest.fixture
def womens_dir() -> Path:
    return dataset_path("womens-clothing-reviews")


@pytest.fixture
def chinese_dir() -> Path:
    return dataset_path("chinese-shopping-reviews")


@pytest.mark.realdata
def test_support_intents_become_messages_numbered_by_row(intents_dir: Path) -> None:
    batch = load_preset("support-intents", intents_dir)
    header, rows = csv_rows(intents_dir / "utterances.csv")
    messages = batch.messages
    assert batch.rejects == [] and len(messages) == len(rows) == 7532
    assert list(messages["id"]) == [str(n) for n in range(1, len(rows) + 1)]
    first = dict(zip(header, rows[0], strict=True))
    assert messages.iloc[0][["text", "intent", "category", "flags"]].tolist() == [
        clean_text(first["utterance"]), first["intent"], first["category"], first["flags"]]
    assert messages["intent"].nunique() == 27 and messages["category"].nunique() == 11
    assert messages.groupby("intent")["category"].nunique().max() == 1  # each intent in exactly one category
    assert batch.products.empty and batch.reviews.empty and batch.questions is None


@pytest.mark.realdata
def test_amazon_qa_becomes_questions_and_bare_products(qa_dir: Path) -> None:
    batch = load_preset("amazon-qa", qa_dir)
    questions = batch.questions
    assert batch.rejects == [] and len(questions) == 19898
    assert set(batch.products["id"]) == set(questions["product_id"]) and len(batch.products) == 2616
    assert (batch.products["title"] == "").all() and not batch.products["has_image"].any()
    with (qa_dir / "qa.jsonl").open(encoding="utf-8") as handle:
        lines = [json.loads(next(handle)) for _ in range(3)]
    for number, line in enumerate(lines, start=1):  # the id is the line number
        row = questions[questions["id"] == str(number)].iloc[0]
        assert (row["product_id"], row["question"]) == (line["asin"], clean_text(line["question"]))
    counts = questions.groupby("question_type")["answer_type"].value_counts().to_dict()
    assert counts == {("open-ended", ""): 12484, ("yes/no", "?"): 3947, ("yes/no", "Y"): 2289, ("yes/no", "N"): 1178}
    assert int(questions["timestamp"].isna().sum()) == 772  # the relative answer times ("25 days ago")


@pytest.mark.realdata
def test_womens_reviews_keep_every_multiline_review_and_group_by_product(womens_dir: Path) -> None:
    batch = load_preset("womens-reviews", womens_dir)
    header, rows = csv_rows(womens_dir / "reviews.csv")
    reviews = batch.reviews.set_index("id")
    assert batch.rejects == [] and len(reviews) == len(rows) == 20782 and len(batch.products) == 1072
    column = {name: k for k, name in enumerate(header)}
    multiline = [r for r in rows if "\n" in r[column["Review Text"]]]
    assert len(multiline) > 1000
    for row in multiline:
        assert reviews.loc[row[column["review_id"]], "text"] == clean_text(row[column["Review Text"]])
    one = reviews.loc["1"]
    assert (one["product_id"], one["rating"], one["recommended"], one["group"]) == ("1080", 5.0, 1.0, "product 1080")
    assert one["category"] == "General > Dresses > Dresses" and json.loads(one["attributes"]) == {
        "age": 34, "positive_feedback": 4}
    assert reviews["recommended"].mean() == pytest.approx(0.825, abs=0.005)
    products = batch.products.set_index("id")
    assert (products.loc["1080", "title"], products.loc["1080", "category"]) == ("Dresses 1080", "Dresses > Dresses")


@pytest.mark.realdata
def test_chinese_reviews_have_labels_categories_and_text_groups(chinese_dir: Path) -> None:
    batch = load_preset("chinese-reviews", chinese_dir)
    reviews = batch.reviews
    assert batch.rejects == [] and len(reviews) == 47395 and batch.products.empty
    assert reviews["label"].value_counts().to_dict() == {"1": 23972, "0": 23423}
    assert reviews["category"].nunique() == 9 and (reviews["product_id"] == "").all()
    assert reviews["rating"].isna().all() and reviews["recommended"].isna().all()
    assert reviews["group"].nunique() == reviews["text"].str.lower().nunique() == 47351  # copies share a group


@pytest.mark.realdata
def test_service_tables_land_in_one_workspace_and_reingest_is_idempotent(tmp_path: Path, intents_dir: Path,
                                                                        qa_dir: Path, chinese_dir: Path) -> None:
    sample_csv(intents_dir / "utterances.csv", tmp_path / "intents" / "utterances.csv", 200)
    sample_lines(qa_dir / "qa.jsonl", tmp_path / "qa" / "qa.jsonl", 150)
    sample_csv(chinese_dir / "reviews.csv", tmp_path / "zh" / "reviews.csv", 100)
    shop = Shop(tmp_path / "ws")
    for preset, folder in (("support-intents", "intents"), ("amazon-qa", "qa"), ("chinese-reviews", "zh")):
        shop.ingest(preset, tmp_path / folder)
    facts = shop.info()
    assert (facts["messages"], facts["questions"], facts["reviews"]) == (200, 150, 100)
    products = facts["products"]
    shop.ingest("support-intents", tmp_path / "intents")
    shop.ingest("amazon-qa", tmp_path / "qa")
    again = Shop(tmp_path / "ws", create=False)
    assert (again.count("messages"), again.count("questions"), again.count("products")) == (200, 150, products)
    questions = again.read("questions")
    assert set(questions["question_type"]) <= {"yes/no", "open-ended"}
    assert (questions.loc[questions["question_type"] == "open-ended", "answer_type"] == "").all()


def test_bad_rows_of_the_new_tables_are_rejected_by_file_row_and_field(tmp_path: Path) -> None:
    write_csv(tmp_path / "intents" / "utterances.csv", ["utterance", "category", "intent", "flags"],
               [["cancel my order", "ORDER", "cancel_order", "B"], ["", "ORDER", "cancel_order", "B"]])
    batch = load_preset("support-intents", tmp_path / "intents")
    assert len(batch.messages) == 1 and [(r.row, r.field, r.reason) for r in batch.rejects] == [(2, "text",
                                                                                                 "missing text")]
    (tmp_path / "qa").mkdir()
    (tmp_path / "qa" / "qa.jsonl").write_text("\n".join(json.dumps(line) for line in [
        {"asin": "A1", "questionType": "yes/no", "answerType": "maybe", "question": "Is it red?", "answer": "no"},
        {"asin": "A1", "questionType": "open-ended", "question": "What size?", "answer": "M"},
        {"asin": "", "questionType": "open-ended", "question": "Who?", "answer": "me"}]) + "\n", encoding="utf-8")
    batch = load_preset("amazon-qa", tmp_path / "qa")
    assert list(batch.questions["id"]) == ["2"] and list(batch.products["id"]) == ["A1"]
    assert [(r.row, r.field) for r in batch.rejects] == [(1, "answer_type"), (3, "product_id")]
    assert str(batch.rejects[0]).startswith(str(tmp_path / "qa" / "qa.jsonl") + ": row 1: answer_type:")
    write_csv(tmp_path / "zh" / "reviews.csv", ["id", "category", "label", "review"],
               [["1", "水果", "1", "很甜"], ["2", "水果", "2", "还行"]])
    batch = load_preset("chinese-reviews", tmp_path / "zh")
    assert list(batch.reviews["id"]) == ["1"] and [(r.row, r.field) for r in batch.rejects] == [(2, "label")]


def test_a_reviews_table_from_before_the_new_columns_still_reads_and_takes_new_rows(tmp_path: Path) -> None:
    old_schema = pa.schema([f for f in REVIEW_SCHEMA if f.name not in {"recommended", "label", "category",
                                                                        "attributes"}])
    old = pd.DataFrame({"id": ["r1"], "product_id": ["p1"], "user_id": ["u1"], "rating": [4.0], "title": [""],
                        "text": ["fine"], "image_paths": [[]],
                        "timestamp": pd.Series([pd.NaT], dtype="datetime64[us, UTC]"), "group": ["g1"]})
    shop = Shop(tmp_path / "ws")
    with shop.transaction("an old ingest") as writer:
        writer.upsert("reviews", old, schema=old_schema)
    read = shop.read("reviews")
    assert list(read.columns) == REVIEW_SCHEMA.names and math.isnan(read.loc[0, "recommended"])
    assert pd.isna(read.loc[0, "label"])
    write_csv(tmp_path / "zh" / "reviews.csv", ["id", "category", "label", "review"], [["7", "水果", "0", "不甜"]])
    shop.ingest("chinese-reviews", tmp_path / "zh")
    rows = Shop(tmp_path / "ws", create=False).read("reviews").set_index("id")
    assert rows.loc["7", "label"] == "0" and rows.loc["7", "category"] == "水果" and pd.isna(rows.loc["r1", "label"])


def test_questions_and_messages_files_name_a_missing_column_and_number_rows_without_ids(tmp_path: Path) -> None:
    from tuwen.ingest.generic import MESSAGE_FIELDS, QUESTION_FIELDS, load_messages, load_questions
    from tuwen.ingest.mapping import ColumnMap, MappingError

    write_csv(tmp_path / "messages.csv", ["body"], [["where is my parcel"]])
    with pytest.raises(MappingError, match=r"messages\.csv: no column for 'text'; map text=COLUMN"):
        load_messages(tmp_path / "messages.csv", ColumnMap.parse([], MESSAGE_FIELDS))
    frame, rejects = load_messages(tmp_path / "messages.csv", ColumnMap.parse(["text=body"], MESSAGE_FIELDS))
    assert list(frame["id"]) == ["1"] and list(frame["text"]) == ["where is my parcel"] and not rejects
    write_csv(tmp_path / "questions.csv", ["sku", "question"], [["P1", "Does it shrink?"]])
    with pytest.raises(MappingError, match="no column for 'product_id'"):
        load_questions(tmp_path / "questions.csv", ColumnMap.parse([], QUESTION_FIELDS))
    # a mapped optional column the file lacks (no answers yet) is dropped, not an error
    frame, rejects = load_questions(tmp_path / "questions.csv",
                                    ColumnMap.parse(["product_id=sku", "answer=reply"], QUESTION_FIELDS))
    assert list(frame["id"]) == ["1"] and list(frame["product_id"]) == ["P1"] and not rejects
