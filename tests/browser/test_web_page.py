"""The web page in headless Chromium (Debian's `chromium`, driven by Playwright): `make test-browser`.

Kept out of `make test` (marker ``browser``) because it needs a system browser, which the default
test command does not install; `make test-browser` installs both and runs these.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from tuwen import Workspace
from tuwen.ingest.synthetic import generate_catalog
from tuwen.predict.training.config import TrainConfig
from tuwen.search import IndexSettings
from tuwen.serve.app import create_app

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # `make test` deselects these tests; `make test-browser` installs playwright
    sync_playwright = None

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).parent / "artifacts"  # screenshots kept for a person to look at; ignored by git
FACTS: dict[str, object] = {}  # the served workspace's info(), for the header test


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("web")
    catalog = generate_catalog(root / "catalog", n_products=120, n_users=40, seed=4, image_size=48)
    ws = Workspace(root / "ws")
    ws.ingest(preset="synthetic", path=catalog)
    ws.embed(image_encoder="color_histogram", text_encoder="use_multilingual", progress=False)
    ws.index(settings=IndexSettings(image_encoder="color_histogram"), progress=False, learn=False)
    ws.train("recommend", model="content")
    ws.train("classify", "category", name="kind", config=TrainConfig(epochs=5, progress=False, ensemble=1))
    ws.refresh_insights(progress=False)
    FACTS.update(ws.info())
    FACTS["reviewed"] = str(ws.read("reviews")["product_id"].value_counts().index[0])
    FACTS["reviewed_title"] = str(ws.read("products").set_index("id").loc[FACTS["reviewed"], "title"])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ws.path), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def page(base_url: str) -> Iterator[object]:
    if sync_playwright is None:
        pytest.fail("playwright is not installed: `make test-browser` installs it")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.fail("no chromium on PATH: `make test-browser` installs Debian's chromium")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=executable, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(base_url)
        yield tab
        assert not errors, errors
        browser.close()


def test_search_shows_cards_with_photos_and_similar_on_click(page) -> None:
    page.wait_for_selector("#info:has-text('products')")
    page.fill("#q", "red")
    page.click("#search-form button")
    page.wait_for_selector("#results .card")
    cards = page.locator("#results .card")
    assert cards.count() >= 5
    page.wait_for_function("() => { const img = document.querySelector('#results .card img');"
                           " return img && img.complete && img.naturalWidth > 0; }", timeout=10_000)
    assert "signals" in page.inner_text("#search-note")
    first = cards.first.get_attribute("data-id")
    cards.first.click()
    page.wait_for_selector(f"#search-note:has-text('more like {first}')")
    assert first not in [c.get_attribute("data-id") for c in page.locator("#results .card").all()]


def test_chinese_query_and_a_bad_filter_message(page) -> None:
    page.fill("#q", "红色")
    page.click("#search-form button")
    page.wait_for_selector("#results .card")
    page.fill("#where", "price <<< 2")
    page.click("#search-form button")
    page.wait_for_selector("#search-note.error")
    assert "bad filter" in page.inner_text("#search-note")
    page.fill("#where", "")


def test_shopper_recommendations_with_reasons(page, base_url: str) -> None:
    page.click("nav button[data-tab=shoppers]")
    page.fill("#user", "syn-u0001")
    page.click("#shopper-form button")
    page.wait_for_selector("#recs .card")
    assert page.locator("#recs .card").count() == 12
    assert page.locator("#recs .why").count() == 12
    page.wait_for_selector("#profile:has-text('syn-u0001')")  # the profile arrives after the products


def test_predict_tab_predicts_a_new_product(page, tmp_path: Path) -> None:
    page.click("nav button[data-tab=predict]")
    page.fill("#ptitle", "blue ceramic mug")
    page.click("#predict-form button")
    page.wait_for_selector("#prediction:has-text('\"prediction\"')")
    assert "contributions" in page.inner_text("#prediction")


def test_header_counts_shoppers_with_events_and_each_kind_of_event(page) -> None:
    page.wait_for_selector("#info:has-text('shoppers')")
    header = page.inner_text("#info")
    kinds = FACTS["events_by_kind"]
    assert f"{FACTS['shoppers']:,} shoppers" in header and FACTS["shoppers"] > 0
    assert f"{kinds['purchase']:,} purchases" in header and f"{kinds['view']:,} views" in header


# Draws one character on a canvas in the title's font and returns its ink (alpha per pixel): a font without the
# character draws the same empty box (tofu) for every such character, so two different characters that give
# identical ink are tofu; real glyphs differ from each other and from a private-use character's box.
INK = """([text, font]) => {
  const canvas = document.createElement("canvas"); canvas.width = 64; canvas.height = 64;
  const ctx = canvas.getContext("2d"); ctx.font = font; ctx.textBaseline = "top"; ctx.fillStyle = "#000";
  ctx.fillText(text, 4, 4);
  const data = ctx.getImageData(0, 0, 64, 64).data; const alpha = [];
  for (let i = 3; i < data.length; i += 4) alpha.push(data[i]);
  return {ink: alpha.join(","), painted: alpha.filter((a) => a > 0).length, width: ctx.measureText(text).width};
}"""


def test_a_chinese_title_renders_real_glyphs_not_boxes(page) -> None:
    page.click("nav button[data-tab=search]")
    page.fill("#q", "陶瓷")
    page.click("#search-form button")
    page.wait_for_selector("#results .card")
    titles = [t for t in page.locator("#results .card .title").all_inner_texts()
              if any("\u4e00" <= c <= "\u9fff" for c in t)]
    assert titles, "the search for 陶瓷 shows Chinese titles"
    chinese = [c for c in dict.fromkeys(titles[0]) if "\u4e00" <= c <= "\u9fff"][:2]
    font = page.eval_on_selector("#results .card .title", "e => getComputedStyle(e).font")
    first, second = (page.evaluate(INK, [c, font]) for c in chinese)
    box = page.evaluate(INK, ["\ue000", font])  # private use: no font has it, so this is the missing-glyph box
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n", encoding="utf-8")
    page.screenshot(path=str(ARTIFACTS / "chinese-titles.png"), full_page=True)
    assert first["width"] > 0 and first["painted"] > 0 and second["painted"] > 0
    assert first["ink"] != second["ink"], f"{chinese} draw the same box: no CJK font (fonts-noto-cjk)"
    assert first["ink"] != box["ink"] and second["ink"] != box["ink"]


def test_product_panel_shows_review_insights(page) -> None:
    """Clicking a product shows what its reviews praise and complain about, aspect by aspect, with examples."""
    product = str(FACTS["reviewed"])
    page.click("nav button[data-tab=search]")
    page.fill("#q", str(FACTS["reviewed_title"]))
    page.fill("#where", f"id = '{product}'")
    page.click("#search-form button")
    page.click(f'#results .card[data-id="{product}"]')
    page.wait_for_selector("#insights tr[data-aspect]")
    panel = page.inner_text("#product")
    assert FACTS["reviewed_title"] in panel and "reviews" in panel and "praised:" in panel
    first = page.locator("#insights tr[data-aspect]").first
    assert first.locator("q").count() >= 1  # an example sentence from a review
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n", encoding="utf-8")
    page.screenshot(path=str(ARTIFACTS / "product-insights.png"), full_page=True)
    page.fill("#where", "")


def test_ask_panel_searches_for_a_product_less_question_and_answers_on_the_product_page(page) -> None:
    """The Ask tab sends a question that names no product to search, with the filters its words imply; the product
    page's question box answers from that product's reviews and description, with the evidence quoted."""
    page.click("nav button[data-tab=ask]")
    page.fill("#ask-q", "do you have a red mug under 200?")
    page.click("#ask-form button")
    page.wait_for_selector("#ask-answer:has-text('filters')")
    note = page.inner_text("#ask-answer")
    assert "colour: red" in note and "price" in note, note
    cards = page.locator("#ask-results .card")
    assert cards.count() >= 1
    product = cards.first.get_attribute("data-id")
    cards.first.click()  # the product page (on the search tab)
    page.wait_for_selector("#product:not([hidden])")
    page.fill("#product-question", "is the quality good?")
    page.click("#product-ask-form button")
    page.wait_for_selector("#product-answer .verdict")
    assert page.inner_text("#product-answer .verdict").strip().lower() in ("yes", "no", "unsure")
    assert page.locator("#product-answer .evidence li").count() >= 1
    assert product in page.inner_text("#product-answer")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n", encoding="utf-8")
    page.screenshot(path=str(ARTIFACTS / "ask-answer.png"), full_page=True)
