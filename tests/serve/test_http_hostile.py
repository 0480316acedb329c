"""The HTTP server under a hostile client (issue 17, items 1-6): filters, body limits, photo sizes, server paths,
access, and a forgotten shopper in a running server; plus schemathesis over the whole OpenAPI schema."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings, strategies
from PIL import Image, ImageDraw
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance
from typer.testing import CliRunner

from tests.helpers import synthetic_shop
from tuwen import Workspace
from tuwen.cli.main import app as cli
from tuwen.search import IndexSettings, SearchError
from tuwen.search.filters import parse_filter
from tuwen.serve.app import (
    MAX_OTHER_BYTES,
    MAX_PHOTO_BYTES,
    MAX_PREDICT_BYTES,
    PHOTO_WORKERS,
    UPLOAD_SIDE,
    check_access,
    create_app,
)

KEY = "s3cret-key"
LOCAL = "http://localhost"


def _build(root: Path) -> Workspace:
    ws = synthetic_shop(root, text_encoder="use_multilingual", n_products=60, n_users=12, seed=3, image_size=24)
    ws.index(settings=IndexSettings(image_encoder="color_histogram", soft_vocabulary=0), progress=False, learn=False)
    ws.train("recommend", model="content")
    return ws


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return _build(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def client(shop: Workspace) -> TestClient:
    return TestClient(create_app(shop.path), base_url=LOCAL)


def _png(side: int, colour: tuple[int, int, int] = (200, 20, 20)) -> bytes:
    """A mostly blank PNG: tiny in bytes, huge in pixels (what a hostile upload looks like)."""
    image = Image.new("RGB", (side, side), (240, 240, 240))
    ImageDraw.Draw(image).rectangle([side // 4, side // 4, 3 * side // 4, 3 * side // 4], fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _no_server_path(text: str, shop: Workspace) -> None:
    assert str(shop.path.resolve().parent) not in text and "/tmp/" not in text, text


# ------------------------------------------------------------------------------------------------ 1. filters
def test_filter_grammar_rewrites_to_quoted_sql() -> None:
    columns = {"price": "number", "category": "string", "has_image": "bool", "colour": "string"}
    assert parse_filter("price < 50 and Category like 'Home%'", columns) == \
        "((`price` < 50) AND (`category` LIKE 'Home%'))"
    assert parse_filter("NOT (price BETWEEN 1 AND 2) OR colour IN ('red', 'it''s')", columns) == \
        "((NOT (`price` BETWEEN 1 AND 2)) OR (`colour` IN ('red', 'it''s')))"
    assert parse_filter("has_image = true AND colour IS NOT NULL", columns) == \
        "((`has_image` = TRUE) AND (`colour` IS NOT NULL))"
    assert parse_filter("  ", columns) is None


@pytest.mark.parametrize(("where", "reason"), [
    ("length(repeat(title, 300000)) > 0", "functions are not allowed"),
    ("price < 3; DROP TABLE products", "unexpected ';"),
    ("price < 3 -- comment", "unexpected '-- comment'"),
    ("nosuch = 1", "unknown column 'nosuch'"),
    ("image LIKE '/%'", "unknown column 'image'"),  # the photo's server path is not filterable
    ("price = 'cheap'", "price holds numbers"),
    ("title LIKE '" + "%a" * 60 + "'", "LIKE pattern too long"),
    ("title = '" + "x" * 300 + "'", "text value too long"),
    ("(" * 40 + "price < 1" + ")" * 40, "levels of NOT and parentheses"),
    ("price IN (" + ", ".join(["1"] * 150) + ")", "at most 100 values"),
])
def test_filters_outside_the_grammar_are_refused_everywhere(client: TestClient, shop: Workspace, where: str,
                                                            reason: str) -> None:
    answer = client.get("/api/search", params={"q": "red", "where": where})
    assert answer.status_code == 400, answer.text
    detail = answer.json()["detail"]
    assert "bad filter" in detail and reason in detail, detail
    if "unknown column" in reason or "functions" in reason:
        assert "allowed: columns " in detail and "price" in detail  # says what is allowed
    with pytest.raises(SearchError, match=reason.replace("(", r"\(")):
        shop.search("red", where=where)
    result = CliRunner().invoke(cli, ["search", str(shop.path), "red", "--where", where])
    assert result.exit_code == 2 and "bad filter" in result.output


def test_filters_in_the_grammar_select_the_right_products(shop: Workspace) -> None:
    products = shop.read("products").set_index("id")
    low, high = products["price"].quantile([0.25, 0.75])
    hits = shop.search("red", mode="lexical", k=50, where=f"price BETWEEN {low:.2f} AND {high:.2f}").hits
    assert hits and all(low - 0.01 <= products.loc[h.id, "price"] <= high + 0.01 for h in hits)
    category = str(products["category"].iloc[0])
    inside = shop.search("red", mode="semantic", k=60, where=f"category IN ('{category}')").ids
    outside = shop.search("red", mode="semantic", k=60, where=f"NOT category IN ('{category}')").ids
    assert inside and outside and not set(inside) & set(outside)
    assert set(inside) | set(outside) == set(products.index)
    assert set(inside) == set(products.index[products["category"] == category])


# -------------------------------------------------------------------------------------------- 2. body limits
def _asgi_post(app: Any, path: str, chunks: int, chunk: int, headers: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """POST a streamed body of ``chunks`` x ``chunk`` bytes straight into the ASGI app; (status, bytes pulled)."""
    pulled = 0
    sent = 0
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent, pulled
        sent += 1
        pulled += chunk
        return {"type": "http.request", "body": b"\0" * chunk, "more_body": sent < chunks}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"mode=image",
             "headers": [(b"host", b"localhost"), *headers], "client": ("127.0.0.1", 1), "server": ("localhost", 80)}
    asyncio.run(app(scope, receive, send))
    return status, pulled


def test_a_chunked_upload_is_cut_off_at_the_limit(shop: Workspace) -> None:
    app = create_app(shop.path)
    mib = 1024 * 1024
    status, pulled = _asgi_post(app, "/api/search", 400, mib, [(b"content-type", b"image/png")])  # 400 MiB
    assert status == 413
    assert pulled <= MAX_PHOTO_BYTES + mib  # read up to the limit, never the whole body
    status, pulled = _asgi_post(app, "/api/models/any/predict", 400, mib, [(b"content-type", b"application/json")])
    assert status == 413 and pulled <= MAX_PREDICT_BYTES + mib


def test_an_over_limit_content_length_is_refused_before_reading(shop: Workspace) -> None:
    app = create_app(shop.path)
    declared = [(b"content-length", str(400 * 1024 * 1024).encode()), (b"content-type", b"image/png")]
    assert _asgi_post(app, "/api/search", 1, 10, declared) == (413, 0)
    small = [(b"content-length", str(MAX_OTHER_BYTES + 1).encode())]
    assert _asgi_post(app, "/api/shoppers/x", 1, 10, small)[0] == 413
    client = TestClient(app, base_url=LOCAL)
    answer = client.post("/api/search", content=b"\0" * (MAX_PHOTO_BYTES + 1), headers={"Content-Type": "image/png"})
    assert answer.status_code == 413 and "at most" in answer.json()["detail"]


# ------------------------------------------------------------------------------------------------- 3. photos
def test_a_photo_over_the_pixel_cap_is_refused_from_its_header(client: TestClient,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    body = _png(6300)  # 39.7 Mpx in a few KB: the 5.5 s request

    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)  # refused from the header, before any pixel is decoded
    answer = client.post("/api/search", params={"mode": "image"}, content=body, headers={"Content-Type": "image/png"})
    assert answer.status_code == 400 and "6300x6300" in answer.json()["detail"] and "16,000,000" in answer.text


def test_large_photos_are_decoded_small(tmp_path: Path) -> None:
    from tuwen.encoders.images import open_downscaled

    png = open_downscaled(io.BytesIO(_png(4000)), UPLOAD_SIDE, 16_000_000)
    assert UPLOAD_SIDE <= min(png.size) < 2 * UPLOAD_SIDE and png.mode == "RGB"
    assert png.getpixel((png.size[0] // 2, png.size[1] // 2)) == (200, 20, 20)
    jpeg = io.BytesIO()
    Image.new("RGB", (3000, 2000), (20, 160, 20)).save(jpeg, format="JPEG")
    small = open_downscaled(io.BytesIO(jpeg.getvalue()), UPLOAD_SIDE, 16_000_000)
    assert UPLOAD_SIDE <= min(small.size) < 2 * UPLOAD_SIDE  # JPEG draft: decoded at 1/2 or 1/4 scale
    assert small.size[0] / small.size[1] == pytest.approx(1.5, abs=0.01)


def test_photo_requests_run_off_the_event_loop_in_a_bounded_pool(shop: Workspace,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import tuwen.serve.photos

    real = tuwen.serve.photos.prepare_photo
    running = {"now": 0, "most": 0}
    lock = threading.Lock()

    def slow(payload: bytes, path: Path, field: str = "photo") -> Path:
        assert threading.current_thread() is not threading.main_thread()
        with lock:
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        time.sleep(0.3)
        with lock:
            running["now"] -= 1
        return real(payload, path, field)

    monkeypatch.setattr(tuwen.serve.photos, "prepare_photo", slow)
    app = create_app(shop.path)

    async def scenario() -> tuple[list[int], int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=LOCAL) as http:
            photos = [asyncio.create_task(http.post("/api/search", params={"mode": "image", "k": 3},
                                                    content=_png(64), headers={"Content-Type": "image/png"}))
                      for _ in range(PHOTO_WORKERS + 3)]
            await asyncio.sleep(0.05)
            info = await http.get("/api/products/" + shop.read("products")["id"].iloc[0])
            decoding = running["now"]  # photos still being decoded when the product answer arrived
            return [r.status_code for r in await asyncio.gather(*photos)], decoding, info.status_code

    statuses, decoding, info = asyncio.run(scenario())
    assert statuses == [200] * (PHOTO_WORKERS + 3) and info == 200
    assert running["most"] == PHOTO_WORKERS  # bounded: the others waited their turn
    assert decoding > 0  # the event loop answered while photos were decoding


# -------------------------------------------------------------------------------------------------- 4. paths
@pytest.mark.parametrize("model", ["../../etc", "/etc", "..", "a/b", "C:\\x"])
def test_recommend_accepts_model_names_only(client: TestClient, shop: Workspace, model: str) -> None:
    user = str(shop.read("interactions")["user_id"].iloc[0])
    answer = client.get(f"/api/recommend/{user}", params={"model": model})
    assert answer.status_code == 400 and "not a model name" in answer.json()["detail"]


def test_no_answer_shows_a_server_path(client: TestClient, shop: Workspace) -> None:
    user = str(shop.read("interactions")["user_id"].iloc[0])
    answers = [
        client.get(f"/api/recommend/{user}", params={"model": "nosuch"}),
        client.post("/api/models/nosuch/predict", json={"items": [{"title": "x"}]}),
        client.get("/api/profile/nobody"),
        client.get("/api/similar/nothing"),
        client.get("/api/products/nothing/image", params={"index": 3}),
        client.post("/api/search", content=b"not a photo", headers={"Content-Type": "image/png"}),
        client.get("/api/search", params={"q": "red", "mode": "crossmodal"}),
    ]
    assert [a.status_code for a in answers] == [404, 404, 404, 404, 404, 400, 400]
    for answer in answers:
        _no_server_path(answer.text, shop)
    assert answers[2].json()["detail"] == f"no shopper 'nobody' in {shop.path.name} (no interactions)"
    info = client.get("/api/info").json()
    assert info["workspace"] == shop.path.name
    hits = client.get("/api/search", params={"q": "red", "k": 5}).json()["hits"]
    assert hits and all(h["image"] == f"/api/products/{h['id']}/image?index=0" for h in hits)
    product = client.get(f"/api/products/{hits[0]['id']}").json()
    assert "image_paths" not in product and product["photos"] == 1 and product["image"] == hits[0]["image"]
    served = client.get(f"/api/recommend/{user}", params={"k": 3}).json()
    _no_server_path(str(served), shop)


# ------------------------------------------------------------------------------------------------- 5. access
def test_shopper_routes_need_the_api_key_when_one_is_set(shop: Workspace) -> None:
    client = TestClient(create_app(shop.path, api_key=KEY), base_url=LOCAL)
    user = str(shop.read("interactions")["user_id"].iloc[0])
    for method, url in (("get", f"/api/recommend/{user}"), ("get", f"/api/profile/{user}"),
                        ("delete", "/api/shoppers/nobody")):
        assert getattr(client, method)(url).status_code == 401
        assert getattr(client, method)(url, headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get(f"/api/recommend/{user}", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get(f"/api/profile/{user}", headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/api/search", params={"q": "red"}).status_code == 200  # the catalog stays public
    assert client.post("/api/models/x/predict", json={"items": [{"title": "x"}], "user": user}).status_code == 401


def test_unknown_host_headers_are_refused(shop: Workspace) -> None:
    app = create_app(shop.path, allowed_hosts=["shop.example"])
    for base, status in (("http://evil.example", 400), ("http://localhost:8000", 200), ("http://127.0.0.1", 200),
                         ("http://[::1]:8000", 200), ("http://shop.example", 200)):
        assert TestClient(app, base_url=base).get("/api/info").status_code == status, base


def test_serving_beyond_loopback_needs_a_key(shop: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        check_access(host, None)
    for host in ("0.0.0.0", "192.0.2.1", "::", "shop.example"):
        with pytest.raises(ValueError, match="API key"):
            check_access(host, None)
        check_access(host, KEY)
    monkeypatch.delenv("TUWEN_API_KEY", raising=False)
    result = CliRunner().invoke(cli, ["serve", str(shop.path), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "API key" in result.output


# ----------------------------------------------------------------------------------------- 6. forget, reload
@pytest.fixture
def forgetful(tmp_path: Path) -> Workspace:
    return _build(tmp_path)


def _buyers(ws: Workspace) -> list[str]:
    counts = ws.read("interactions")["user_id"].value_counts()
    return [str(u) for u in counts.index[:3]]


def test_a_running_server_notices_forget(forgetful: Workspace) -> None:
    client = TestClient(create_app(forgetful.path, api_key=KEY), base_url=LOCAL, headers={"X-API-Key": KEY})
    shopper, other, _ = _buyers(forgetful)
    before = client.get(f"/api/recommend/{shopper}", params={"k": 5, "explain": True}).json()
    assert not before["cold"] and before["reasons"]
    assert client.get(f"/api/profile/{shopper}").status_code == 200

    Workspace(forgetful.path, create=False).forget(shopper)  # another process's forget, as `tuwen forget` does

    after = client.get(f"/api/recommend/{shopper}", params={"k": 5, "explain": True}).json()  # the next request
    assert after["cold"] and after["items"]
    assert not any(r.get("closest") or r.get("closest_title") for r in after.get("reasons", []))  # none from history
    assert client.get(f"/api/profile/{shopper}").status_code == 404
    assert client.get("/api/info").status_code == 200
    other_answer = client.get(f"/api/recommend/{other}", params={"k": 5})
    assert other_answer.status_code == 200 and not other_answer.json()["cold"]
    assert client.get(f"/api/profile/{other}").status_code == 200


def test_forget_over_http(forgetful: Workspace) -> None:
    client = TestClient(create_app(forgetful.path, api_key=KEY), base_url=LOCAL)
    shopper, other, _ = _buyers(forgetful)
    assert client.delete(f"/api/shoppers/{shopper}").status_code == 401
    answer = client.delete(f"/api/shoppers/{shopper}", headers={"X-API-Key": KEY})
    assert answer.status_code == 200 and answer.json()["rows_removed"]["interactions"] > 0
    _no_server_path(answer.text, forgetful)
    served = client.get(f"/api/recommend/{shopper}", headers={"X-API-Key": KEY}).json()
    assert served["cold"]
    assert (Workspace(forgetful.path, create=False).read("interactions")["user_id"] == shopper).sum() == 0
    assert client.delete(f"/api/shoppers/{shopper}", headers={"X-API-Key": KEY}).status_code == 404
    manifest = (forgetful.path / "tuwen.json").read_bytes()
    assert client.delete("/api/shoppers/never-seen-42", headers={"X-API-Key": KEY}).status_code == 404
    assert (forgetful.path / "tuwen.json").read_bytes() == manifest  # an unknown id writes nothing
    assert not client.get(f"/api/recommend/{other}", headers={"X-API-Key": KEY}).json()["cold"]


# ------------------------------------------------------------------------------------------------ schemathesis
def test_schemathesis_finds_no_server_error_and_only_documented_codes(shop: Workspace) -> None:
    """Every route of the OpenAPI schema fuzzed in-process with valid and invalid input (150 cases in all): never a
    5xx, and only the status codes the schema declares (400/401/404/409/413/422 where they can happen)."""
    app = create_app(shop.path, api_key=KEY, allowed_hosts=["testserver"])  # schemathesis's ASGI Host
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    cases = strategies.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE))
    seen: set[str] = set()

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases)
    def fuzz(case: Any) -> None:
        seen.add(f"{case.method} {case.path}")
        case.call_and_validate(headers={"X-API-Key": KEY}, checks=[not_a_server_error, status_code_conformance])

    fuzz()
    assert len(seen) >= 8  # the cases reached (nearly) every route
