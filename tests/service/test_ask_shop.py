"""``ask`` on a synthetic shop (no Q&A; reviews and descriptions as evidence): routing a product-less question to
search with the filters it implies, the answer about a product, the CLI and ``POST /api/ask`` with hostile input."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from tests.helpers import synthetic_shop
from tuwen import Workspace
from tuwen.cli.main import app as cli
from tuwen.search import IndexSettings
from tuwen.serve.app import MAX_PHOTO_BYTES, create_app
from tuwen.service.routing import implied_filters, price_band

runner = CliRunner()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = synthetic_shop(tmp_path_factory.mktemp("ask"), n_products=120, n_users=40, seed=3, image_size=32)
    ws.index(settings=IndexSettings(image_encoder="color_histogram", text_encoder="tfidf"), progress=False,
             learn=False)
    return ws


@pytest.fixture(scope="module")
def client(shop: Workspace) -> TestClient:
    return TestClient(create_app(shop.path), base_url="http://localhost")


def _attributes(shop: Workspace) -> list[dict]:
    products = shop.read("products")
    return [{**json.loads(a), "id": i, "price": p} for a, i, p in
            zip(products["attributes"], products["id"], products["price"], strict=True)]


def test_price_phrases() -> None:
    assert price_band("a red dress under 50?")[0] == {"max": 50.0}
    assert price_band("between $20 and 40 dollars")[0] == {"min": 20.0, "max": 40.0}
    assert price_band("红色连衣裙 100元以下")[0] == {"max": 100.0}
    assert price_band("over 30 please")[0] == {"min": 30.0}
    assert price_band("size 8 in blue")[0] == {}


def test_a_question_naming_no_product_searches_with_the_filters_it_implies(shop: Workspace) -> None:
    implied = implied_filters(shop, "do you have a red mug under 80?")
    assert implied.filters["colour"] == ["red"] and implied.filters["category"] == ["Home > Mugs"]
    assert implied.filters["price"] == {"max": 80.0}
    assert "red" in implied.words and "mug" in implied.words and "80" not in implied.words
    answer = shop.ask("do you have a red mug under 80?", k=10)
    assert answer["route"] == "search" and answer["answer"] is None and answer["search"]["where"]
    hits = answer["search"]["hits"]
    wanted = {p["id"] for p in _attributes(shop) if p["colour"] == "red" and p["category"] == "Home > Mugs"
              and p["price"] <= 80}
    assert hits and {h["id"] for h in hits} <= wanted  # every product found satisfies every implied filter
    assert len(hits) == min(10, len(wanted))


def test_chinese_colour_words_imply_the_same_filter(shop: Workspace) -> None:
    implied = implied_filters(shop, "有没有蓝色的杯子？")
    assert implied.filters.get("colour") == ["blue"]


def test_a_photo_with_this_one_but_in_blue_searches_by_photo_with_the_colour(shop: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "mine.png"
    Image.new("RGB", (40, 40), (30, 60, 200)).save(path)
    answer = shop.ask("this one but in blue?", image=path)
    assert answer["route"] == "search" and answer["search"]["implied"]["colour"] == ["blue"]
    blue = {p["id"] for p in _attributes(shop) if p["colour"] == "blue"}
    assert answer["search"]["hits"] and {h["id"] for h in answer["search"]["hits"]} <= blue
    assert "image" in answer["search"]["signals"]


def test_a_question_about_a_product_quotes_its_reviews_and_description(shop: Workspace) -> None:
    reviewed = shop.read("reviews")["product_id"].value_counts().index[0]
    answer = shop.ask("is the quality good?", product=reviewed)
    assert answer["route"] == "answer" and answer["product"] == reviewed
    assert answer["question_type"] == "yes/no" and answer["answer"] == "unsure"  # no Q&A to learn yes/no from
    sources = {e["source"] for e in answer["evidence"]}
    assert "review" in sources and all(e["product_id"] == reviewed for e in answer["evidence"])
    review_ids = set(shop.read("reviews").query("product_id == @reviewed")["id"])
    assert {e["id"] for e in answer["evidence"] if e["source"] == "review"} <= review_ids
    scores = [e["score"] for e in answer["evidence"]]
    assert scores == sorted(scores, reverse=True)
    assert shop.ask("what is it made of", product=reviewed)["answer"] is None  # an open question


def test_a_product_id_in_the_words_is_the_product_asked_about(shop: Workspace) -> None:
    product = str(shop.read("products")["id"].iloc[5])
    answer = shop.ask(f"is {product} made of glass?")
    assert answer["route"] == "answer" and answer["product"] == product


def test_cli_ask_json(shop: Workspace) -> None:
    product = str(shop.read("products")["id"].iloc[0])
    result = runner.invoke(cli, ["ask", str(shop.path), "is it sturdy?", "--product", product, "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["product"] == product and answer["answer"] in ("yes", "no", "unsure")
    assert all({"source", "id", "text"} <= set(e) for e in answer["evidence"])
    result = runner.invoke(cli, ["ask", str(shop.path), "green vase under 100", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["search"]["implied"]["colour"] == ["green"]
    result = runner.invoke(cli, ["ask", str(shop.path), "is it red?", "--product", "no-such-id"])
    assert result.exit_code == 2 and "no product 'no-such-id'" in result.output


def _png(colour: tuple[int, int, int] = (200, 20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_api_ask_answers_like_python(client: TestClient, shop: Workspace) -> None:
    product = str(shop.read("reviews")["product_id"].iloc[0])
    response = client.post("/api/ask", json={"question": "does the colour fade?", "product": product, "k": 3})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == json.loads(json.dumps(shop.ask("does the colour fade?", product=product, k=3), default=str)) | {
        "milliseconds": answer["milliseconds"]}
    searched = client.post("/api/ask", json={"question": "red mug under 80"}).json()
    assert searched["route"] == "search" and searched["search"]["implied"]["price"] == {"max": 80.0}
    assert all(h["image"] is None or h["image"].startswith("/api/products/") for h in searched["search"]["hits"])


def test_api_ask_with_a_photo(client: TestClient) -> None:
    raw = client.post("/api/ask", params={"q": "this one but in blue?"}, content=_png(),
                      headers={"Content-Type": "image/png"})
    assert raw.status_code == 200, raw.text
    assert raw.json()["search"]["implied"]["colour"] == ["blue"] and raw.json()["search"]["image"] == "upload"
    encoded = client.post("/api/ask", json={"question": "in blue?", "image_base64": base64.b64encode(_png()).decode()})
    assert encoded.status_code == 200 and encoded.json()["route"] == "search"


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"question": ""}, 400, "empty question"),
    ({"question": "   "}, 400, "empty question"),
    ({"question": "is it red?", "product": "no-such-product"}, 404, "no product"),
    ({"question": "x" * 2_001}, 422, "at most 2000"),
    ({"question": "is it red?", "k": 0}, 422, "greater than or equal to 1"),
    ({"question": "in blue?", "image_base64": "not base64!"}, 400, "not base64"),
    ({"question": "in blue?", "image_base64": base64.b64encode(b"not a picture").decode()}, 400, "image_base64"),
])
def test_api_ask_refuses_bad_input_with_the_reason(client: TestClient, body: dict, status: int, reason: str) -> None:
    response = client.post("/api/ask", json=body)
    assert response.status_code == status, response.text
    assert reason in json.dumps(response.json()["detail"])


def test_api_ask_refuses_oversized_and_malformed_bodies(client: TestClient) -> None:
    huge = client.post("/api/ask", content=b"x" * (MAX_PHOTO_BYTES + 1), headers={"Content-Type": "image/png"})
    assert huge.status_code == 413
    assert client.post("/api/ask", content=b"{not json", headers={"Content-Type": "application/json"}
                       ).status_code == 422
    empty_photo = client.post("/api/ask", content=b"", headers={"Content-Type": "image/png"})
    assert empty_photo.status_code == 400 and "empty upload" in empty_photo.json()["detail"]
