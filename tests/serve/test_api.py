"""The HTTP API and web page (``tuwen serve``) on a synthetic shop, through FastAPI's test client."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import synthetic_shop
from tuwen import Workspace
from tuwen.ingest.synthetic import generate_catalog
from tuwen.predict.training.config import TrainConfig
from tuwen.search import IndexSettings
from tuwen.serve.app import create_app


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("api")
    ws = synthetic_shop(root, text_encoder="use_multilingual", n_products=160, n_users=60, seed=2, image_size=32)
    ws.index(settings=IndexSettings(image_encoder="color_histogram"), progress=False, learn=False)
    ws.train("recommend", model="content")
    ws.train("classify", "category", name="kind", config=TrainConfig(epochs=5, progress=False, ensemble=1))
    return ws


@pytest.fixture(scope="module")
def client(shop: Workspace) -> TestClient:
    return TestClient(create_app(shop.path), base_url="http://localhost")


def _photo(colour: tuple[int, int, int] = (200, 20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_page_and_info(client: TestClient, shop: Workspace) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "tuwen" in page.text and "/api/search" in page.text
    facts = client.get("/api/info").json()
    assert facts["products"] == shop.count("products") and "kind" in facts["models"]


def test_text_search_returns_hits_with_signals_and_facets(client: TestClient, shop: Workspace) -> None:
    title = str(shop.read("products")["title"].iloc[0])
    answer = client.get("/api/search", params={"q": title, "k": 5, "facets": "category"}).json()
    assert answer["query"] == title and 1 <= len(answer["hits"]) <= 5
    assert answer["hits"][0]["signals"] and "category" in answer["facets"]
    ids = [h["id"] for h in answer["hits"]]
    direct = shop.search(title, k=5).ids
    assert ids == direct  # the API is the Python API, not a second implementation


def test_photo_search_and_similar_and_product(client: TestClient, shop: Workspace) -> None:
    answer = client.post("/api/search", params={"k": 4, "mode": "image"}, content=_photo(),
                         headers={"Content-Type": "image/png"})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["hits"]) == 4
    product_id = answer.json()["hits"][0]["id"]
    similar = client.get(f"/api/similar/{product_id}", params={"k": 3}).json()
    assert len(similar["hits"]) == 3 and product_id not in [h["id"] for h in similar["hits"]]
    product = client.get(f"/api/products/{product_id}").json()
    assert product["id"] == product_id and not any(k.endswith("_vec") for k in product)
    picture = client.get(f"/api/products/{product_id}/image")
    assert "image_paths" not in product and product["photos"] == len(product["image_urls"]) >= 1
    assert product["image_urls"][0] == product["image"] == f"/api/products/{product_id}/image?index=0"
    stored = shop.read("products").set_index("id").loc[product_id, "image_paths"][0]
    assert picture.status_code == 200 and picture.content == Path(stored).read_bytes()
    assert client.get(product["image"]).content == picture.content


def test_recommend_profile_and_cold_shopper(client: TestClient, shop: Workspace) -> None:
    user = str(shop.read("interactions")["user_id"].iloc[0])
    served = client.get(f"/api/recommend/{user}", params={"k": 6, "explain": True}).json()
    assert served["user"] == user and len(served["items"]) == 6 and not served["cold"]
    assert [p["id"] for p in served["products"]] == served["items"] and len(served["reasons"]) == 6
    assert served["items"] == shop.recommend(user, k=6).items
    assert client.get(f"/api/profile/{user}").json()["summary"]
    stranger = client.get("/api/recommend/nobody-at-all", params={"k": 3}).json()
    assert stranger["cold"] and len(stranger["items"]) == 3


def test_predict_a_new_product_with_photo(client: TestClient, shop: Workspace) -> None:
    photo = base64.b64encode(_photo()).decode()
    answer = client.post("/api/models/kind/predict", json={"items": [
        {"id": "a", "title": "red summer dress", "image_base64": photo}, {"id": "b", "title": "leather wallet"}]})
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["id"] for p in predictions] == ["a", "b"]
    labels = set(shop.read("products")["category"])
    assert all(p["prediction"] in labels and abs(sum(p["scores"].values()) - 1) < 1e-3 for p in predictions)


@pytest.mark.parametrize(("method", "url", "kwargs", "status", "words"), [
    ("get", "/api/search", {"params": {"q": "dress", "where": "price <<< 3"}}, 400, "filter"),
    ("get", "/api/search", {"params": {"q": "x" * 2000}}, 400, "characters"),
    ("post", "/api/search", {"content": b"not a photo", "headers": {"Content-Type": "image/png"}}, 400,
     "not an image"),
    ("post", "/api/search", {"content": b""}, 400, "empty"),
    ("get", "/api/similar/no-such-product", {}, 404, "no product"),
    ("get", "/api/profile/nobody-at-all", {}, 404, "nobody-at-all"),
    ("post", "/api/models/missing/predict", {"json": {"items": [{"title": "x"}]}}, 404, "no model"),
    ("post", "/api/models/kind/predict", {"json": {"items": [{"title": "x", "image_base64": "%%%"}]}}, 400,
     "base64"),
    ("post", "/api/models/kind/predict", {"json": {"items": []}}, 422, ""),
])
def test_bad_requests_get_a_reason(client: TestClient, method: str, url: str, kwargs: dict, status: int,
                                   words: str) -> None:
    answer = getattr(client, method)(url, **kwargs)
    assert answer.status_code == status, answer.text
    assert words in json.dumps(answer.json()["detail"])


def test_warm_loads_jieba_and_tolerates_a_workspace_without_index(shop: Workspace, tmp_path: Path) -> None:
    from tuwen.serve.app import warm
    from tuwen.util import chinese

    chinese.jieba.cache_clear()
    warm(shop)
    assert chinese.jieba.cache_info().currsize == 1  # the first Chinese query will not pay for the dictionary
    bare = Workspace(tmp_path / "bare")
    bare.ingest(preset="synthetic", path=generate_catalog(tmp_path / "catalog", n_products=20, n_users=2,
                                                          image_size=16))
    warm(bare)  # no index yet: nothing to warm, no error


def test_vectors_by_id_match_the_full_table(shop: Workspace) -> None:
    from tuwen.encoders.cache import load_vectors

    all_ids, everything = load_vectors(shop, "color_histogram", "image")
    wanted = [all_ids[5], "not-a-product", all_ids[0]]
    ids, vectors = load_vectors(shop, "color_histogram", "image", wanted)  # what predict reads: those rows only
    assert sorted(ids) == sorted([all_ids[0], all_ids[5]]) and vectors.shape == (2, everything.shape[1])
    for item, vector in zip(ids, vectors, strict=True):
        assert (vector == everything[all_ids.index(item)]).all()
    none, empty = load_vectors(shop, "color_histogram", "image", ["new-1"])
    assert none == [] and empty.shape == (0, everything.shape[1])


def test_a_predicted_item_is_scored_on_what_was_sent_even_with_a_catalog_id(client: TestClient,
                                                                            shop: Workspace) -> None:
    """An item whose id is a catalog product's must not be scored on that product's stored vectors."""
    catalog_id = str(shop.read("products")["id"].iloc[0])
    item = {"title": "Plain wooden stool, oak", "description": "a stool"}
    with_catalog_id = client.post("/api/models/kind/predict", json={"items": [{"id": catalog_id, **item}]}).json()
    with_new_id = client.post("/api/models/kind/predict", json={"items": [{"id": "brand-new", **item}]}).json()
    assert with_catalog_id["predictions"][0]["id"] == catalog_id
    assert with_catalog_id["predictions"][0]["scores"] == with_new_id["predictions"][0]["scores"]


def test_products_are_served_without_reading_the_catalog(shop: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A product page, its photo and a shopper's list read those products by id, never the whole products table
    (at a million products that table is gigabytes in pandas)."""
    from tuwen.serve.app import _public
    from tuwen.store.workspace import Workspace as Store

    catalog = shop.read("products").set_index("id", drop=False)
    user = str(shop.read("interactions")["user_id"].iloc[0])
    reads: list[tuple[str, list[str] | None, str | None]] = []
    original = Store.read_arrow

    def recording(self: Store, name: str, columns: list[str] | None = None, where: str | None = None) -> object:
        reads.append((name, columns, where))
        return original(self, name, columns, where)

    monkeypatch.setattr(Store, "read_arrow", recording)
    fresh = TestClient(create_app(shop.path), base_url="http://localhost")  # a snapshot that has read nothing yet
    product_id = str(catalog["id"].iloc[3])
    page = fresh.get(f"/api/products/{product_id}").json()
    assert page == json.loads(json.dumps(_public(catalog.loc[product_id]), default=str))
    assert fresh.get(f"/api/products/{product_id}/image").status_code == 200
    assert fresh.get("/api/products/no-such-product").status_code == 404
    served = fresh.get(f"/api/recommend/{user}", params={"k": 6, "explain": True}).json()
    assert [p["id"] for p in served["products"]] == served["items"] == shop.recommend(user, k=6).items
    assert served["products"] == [json.loads(json.dumps(_public(catalog.loc[i]), default=str))
                                  for i in served["items"]]
    products = [(columns, where) for name, columns, where in reads if name == "products"]
    assert products and all(where and "IN (" in where for _, where in products), products
