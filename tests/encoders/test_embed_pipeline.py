"""The embedding pipeline through a workspace: Chinese titles, fitted TF-IDF, OCR text as a field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.helpers import photo, write_csv
from tuwen import Workspace


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_chinese_and_english_titles_meet_in_one_space(tmp_path: Path) -> None:
    photo(tmp_path / "a.png")
    file = write_csv(tmp_path / "p.csv", ["id", "title", "image"], [
        ["zh-dress", "红色连衣裙", "a.png"], ["en-dress", "red dress", "a.png"], ["en-shoes", "black leather shoes",
                                                                                   "a.png"]])
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file)
    ws.embed(image_encoder=None, text_encoder="use_multilingual", progress=False)
    ids, vectors = ws.vectors("use_multilingual", "title")
    by_id = dict(zip(ids, vectors, strict=True))
    assert _cosine(by_id["zh-dress"], by_id["en-dress"]) > _cosine(by_id["zh-dress"], by_id["en-shoes"]) + 0.1


def test_tfidf_is_fitted_once_on_the_catalog_and_reused(tmp_path: Path) -> None:
    photo(tmp_path / "a.png")
    texts = [("蓝色 陶瓷 杯子", "手工 陶瓷"), ("blue ceramic mug", "hand made"), ("glass vase", "clear glass"),
             ("cotton scarf", "soft")]
    rows = [[f"p{i}", title, "a.png", description] for i, (title, description) in enumerate(texts)]
    file = write_csv(tmp_path / "p.csv", ["id", "title", "image", "description"], rows)
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file)
    first = ws.embed(image_encoder=None, text_encoder="tfidf", progress=False)
    assert first["tfidf/title"]["embedded"] == 4 and (ws.artifacts / "encoders" / "tfidf" / "fitted").exists()
    again = ws.embed(image_encoder=None, text_encoder="tfidf", progress=False)
    assert again["tfidf/title"] == {"embedded": 0, "cached": 4}
    ids, vectors = ws.vectors("tfidf", "title")
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_ocr_text_is_stored_per_product_and_embedded(tmp_path: Path) -> None:
    image = Image.new("RGB", (360, 120), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 25), "SALE 50", fill="black", font=ImageFont.load_default(size=56))
    image.save(tmp_path / "sign.png")
    photo(tmp_path / "plain.png", "white")
    file = write_csv(tmp_path / "p.csv", ["id", "title", "image"], [["s1", "poster", "sign.png"],
                                                                      ["s2", "blank", "plain.png"]])
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file)
    report = ws.embed(image_encoder=None, text_encoder="use_multilingual", ocr=True, fields=("title",),
                      progress=False)
    assert report["ocr"] == {"read": 2, "cached": 0}
    texts = dict(zip(*ws.read("ocr", ["id", "text"]).to_dict("list").values(), strict=True))
    assert "50" in texts["s1"] and texts["s2"] == ""
    assert report["use_multilingual/ocr"]["embedded"] == 1  # only products whose photo carried text
    assert ws.embed(image_encoder=None, text_encoder=None, ocr=True, progress=False)["ocr"] == {"read": 0, "cached": 2}


def test_several_photo_encoders_embed_into_their_own_tables(tmp_path: Path) -> None:
    """``mobilenet_v2+color_histogram``: both vector tables filled, both cached on a re-run; a text encoder
    in the list is refused by name before anything is embedded."""
    photo(tmp_path / "red.png", "red")
    photo(tmp_path / "blue.png", "blue")
    file = write_csv(tmp_path / "p.csv", ["id", "title", "image"], [["r", "red top", "red.png"],
                                                                      ["b", "blue top", "blue.png"]])
    ws = Workspace(tmp_path / "ws")
    ws.ingest(catalog=file)
    first = ws.embed(image_encoder="mobilenet_v2+color_histogram", text_encoder=None, progress=False)
    assert first == {"mobilenet_v2/image": {"embedded": 2, "cached": 0},
                     "color_histogram/image": {"embedded": 2, "cached": 0}}
    again = ws.embed(image_encoder="mobilenet_v2 + color_histogram", text_encoder=None, progress=False)
    assert all(counts == {"embedded": 0, "cached": 2} for counts in again.values()) and len(again) == 2
    assert ws.vectors("color_histogram")[1].shape == (2, 128) and ws.vectors("mobilenet_v2")[1].shape == (2, 1280)
    with pytest.raises(ValueError, match="'tfidf' is a text encoder"):
        ws.embed(image_encoder="color_histogram+tfidf", text_encoder=None, progress=False)
