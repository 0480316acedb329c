"""Every kind of bad input is rejected with file, row, field and reason — and good rows still go in."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.helpers import photo, write_csv
from tuwen import Workspace
from tuwen.ingest import ColumnMap, load_generic, load_toml
from tuwen.ingest.generic import MappingError, load_interactions, load_reviews
from tuwen.store.catalog import RejectedInput, check_image

HEADER = ["sku", "name", "img", "cost"]


def _catalog(tmp_path: Path, rows: list[list[str]]) -> Path:
    photo(tmp_path / "img" / "ok.png")
    return write_csv(tmp_path / "products.csv", HEADER, rows)


def _load(file: Path):
    mapping = ColumnMap.parse(["id=sku", "title=name", "image=img", "price=cost"], ("id", "title", "image", "price"))
    return load_generic(file, mapping)


def _reasons(batch) -> dict[int, tuple[str, str]]:
    return {r.row: (r.field, r.reason) for r in batch.rejects}


def test_each_bad_row_is_rejected_with_its_row_field_and_reason(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "notes.jpg").write_text("this is not a picture")
    buffer = io.BytesIO()
    Image.new("RGB", (200, 200), "blue").save(buffer, "JPEG")
    (tmp_path / "img" / "cut.jpg").write_bytes(buffer.getvalue()[:400])
    Image.new("1", (8000, 8000)).save(tmp_path / "img" / "bomb.png")
    file = _catalog(tmp_path, [
        ["a1", "Good shirt", "img/ok.png", "10.5"],
        ["", "No id", "img/ok.png", "1"],
        ["a1", "Duplicate", "img/ok.png", "1"],
        ["a3", "Bad price", "img/ok.png", "ten"],
        ["a4", "Negative", "img/ok.png", "-3"],
        ["a5", "Escapes", "../../etc/passwd", "1"],
        ["a6", "Not an image", "img/notes.jpg", "1"],
        ["a7", "Truncated", "img/cut.jpg", "1"],
        ["a8", "Bomb", "img/bomb.png", "1"],
        ["a9", "No photo file yet", "img/missing.png", ""],
        ["a10", "红色连衣裙", "img/ok.png", "99"],
    ])
    batch = _load(file)
    reasons = _reasons(batch)
    assert reasons[2] == ("id", "missing id")
    assert reasons[3][0] == "id" and "duplicate" in reasons[3][1]
    assert reasons[4][0] == "price" and "not a number" in reasons[4][1]
    assert reasons[5][0] == "price" and "negative" in reasons[5][1]
    assert reasons[6][0] == "image" and "escapes" in reasons[6][1]
    assert reasons[7][0] == "image" and "not an image" in reasons[7][1]
    assert reasons[8][0] == "image" and "broken" in reasons[8][1]
    assert reasons[9][0] == "image" and "bomb" in reasons[9][1]
    assert all(r.file == str(file) for r in batch.rejects)
    assert sorted(batch.products["id"]) == ["a1", "a10", "a9"]
    kept = batch.products.set_index("id")
    assert kept.loc["a1", "price"] == 10.5 and kept.loc["a1", "has_image"]
    assert not kept.loc["a9", "has_image"] and batch.missing_images == 1
    assert kept.loc["a10", "title"] == "红色连衣裙"


def test_undecodable_text_and_malformed_rows(tmp_path: Path) -> None:
    photo(tmp_path / "img" / "ok.png")
    file = tmp_path / "products.csv"
    file.write_bytes(b"sku,name,img,cost,note\n"
                     b"b1,Fine,img/ok.png,1,x\n"
                     b"b2,Bad \xff\xfe bytes,img/ok.png,2,x\n"
                     b"b3,too,many,fields,x,y\n"
                     b"b4,Fine title,img/ok.png,1,bad \xff note\n")
    batch = _load(file)
    reasons = _reasons(batch)
    assert reasons[2] == ("name", "undecodable text (not valid UTF-8)")  # the file's own column
    assert reasons[3][0] == "*" and "expected 5 fields, found 6" in reasons[3][1]
    assert reasons[4] == ("note", "undecodable text (not valid UTF-8)")
    assert list(batch.products["id"]) == ["b1"]


def test_unknown_mapping_column_is_a_clear_error(tmp_path: Path) -> None:
    file = _catalog(tmp_path, [["a1", "x", "img/ok.png", "1"]])
    with pytest.raises(MappingError, match="nope"):
        load_generic(file, ColumnMap.parse(["id=sku", "title=nope"], ("id", "title")))
    with pytest.raises(MappingError, match="unknown field 'colour'"):
        ColumnMap.parse(["colour=x"], ("id", "title"))


def test_interaction_rejects_and_repeat_purchases(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "events.csv", ["who", "what", "when", "kind"], [
        ["u1", "p1", "2024-01-02", "purchase"],
        ["u1", "p1", "2024-01-02", "purchase"],
        ["u2", "p2", "yesterday-ish", "purchase"],
        ["u3", "p3", "2024-01-05", "wishlist"],
        ["", "p3", "2024-01-05", "view"],
        ["u4", "unknown-product", "1704067200", "view"],
    ])
    mapping = ColumnMap.parse(["user_id=who", "product_id=what", "timestamp=when"], ("user_id", "product_id",
                                                                                      "timestamp"))
    frame, rejects = load_interactions(file, mapping)
    reasons = {r.row: (r.field, r.reason) for r in rejects}
    assert reasons[3][0] == "timestamp" and "bad timestamp" in reasons[3][1]
    assert reasons[4][0] == "kind" and "wishlist" in reasons[4][1]
    assert reasons[5] == ("user_id", "missing user id")
    assert len(frame) == 3 and frame["id"].nunique() == 3  # two units of p1 stay two purchases
    assert frame.iloc[2]["timestamp"] == pd.Timestamp("2024-01-01", tz="UTC")  # unix seconds


def test_reviews_rating_range_and_copies_share_a_group(tmp_path: Path) -> None:
    file = tmp_path / "reviews.jsonl"
    file.write_text("\n".join([
        '{"asin": "p1", "who": "u1", "stars": 5, "words": "Great!"}',
        '{"asin": "p2", "who": "u1", "stars": 5, "words": "Great!"}',
        '{"asin": "p1", "who": "u2", "stars": 9, "words": "??"}',
        '{"asin": "p1", "who": "u2", "stars": 2, "words": "meh"',
    ]) + "\n")
    mapping = ColumnMap.parse(["product_id=asin", "user_id=who", "rating=stars", "text=words"],
                              ("product_id", "user_id", "rating", "text"))
    frame, rejects = load_reviews(file, mapping)
    assert {r.row: r.field for r in rejects} == {3: "rating", 4: "*"}
    assert len(frame) == 2 and frame["group"].nunique() == 1


def test_jsonl_parquet_and_toml_catalogs(tmp_path: Path) -> None:
    photo(tmp_path / "a.png")
    frame = pd.DataFrame({"code": ["x1", "x2"], "label": ["Red mug", "蓝色 杯子"], "pic": ["a.png", "a.png"],
                          "colour": ["red", "blue"]})
    frame.to_json(tmp_path / "p.jsonl", orient="records", lines=True, force_ascii=False)
    frame.to_parquet(tmp_path / "p.parquet")
    mapping = ColumnMap.parse(["id=code", "title=label", "image=pic"], ("id", "title", "image"))
    for name in ("p.jsonl", "p.parquet"):
        batch = load_generic(tmp_path / name, mapping)
        assert list(batch.products["title"]) == ["Red mug", "蓝色 杯子"]
        assert '"colour": "blue"' in batch.products["attributes"][1]  # unmapped columns become attributes
    (tmp_path / "tuwen.toml").write_text('currency = "EUR"\n[products]\nfile = "p.jsonl"\n'
                                         'map = { id = "code", title = "label", image = "pic" }\n')
    batch = load_toml(tmp_path / "tuwen.toml")
    assert list(batch.products["currency"]) == ["EUR", "EUR"] and batch.products["has_image"].all()


def test_strict_mode_writes_nothing(tmp_path: Path) -> None:
    file = _catalog(tmp_path, [["a1", "ok", "img/ok.png", "1"], ["a2", "bad", "img/ok.png", "-1"]])
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(RejectedInput, match="row 2: price"):
        ws.ingest(catalog=file, mapping=["id=sku", "title=name", "image=img", "price=cost"], strict=True)
    assert ws.info()["products"] == 0
    ws.ingest(catalog=file, mapping=["id=sku", "title=name", "image=img", "price=cost"])
    assert ws.info()["products"] == 1 and ws.info()["rejects"] == 1


def test_check_image_accepts_a_real_photo(tmp_path: Path) -> None:
    assert check_image(photo(tmp_path / "fine.jpg", size=(640, 480))) is None
