"""Search on a small SYNTHETIC catalog: every mode, fusion, filters, facets, errors, updates, CLI, alignment.

The synthetic catalog is built so that each signal has something only it can find: ~30% of titles are
Chinese (lexical must segment them, semantic must bridge languages), and the colour is named in only about
half of the titles while always visible in the photo (cross-modal must find the rest). One workspace is
built per module (generate → ingest → embed → align → index, ~20 s); tests that change it work on a copy.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import tuwen.cli.search  # noqa: F401  (registers the search commands on the app)
from tests.helpers import synthetic_shop
from tuwen import Workspace
from tuwen.cli.main import app
from tuwen.metrics.ranking import ndcg_at
from tuwen.search import (
    DEFAULT_WEIGHTS,
    RRF_K,
    IndexSettings,
    SearchError,
    build_index,
    category_queries,
    clear_engines,
    engine_for,
    learn_weights,
    query_terms,
    search,
    segment,
    similar,
)
from tuwen.search.align import AlignConfig, Aligner, align_workspace, retrieval_metrics
from tuwen.search.common import read_meta, write_meta
from tuwen.search.fusion import choose_weights, fuse, standardise
from tuwen.search.learn import fit_weight_grid, ndcg_table, prepare_queries, weight_grid
from tuwen.search.results import Ranked
from tuwen.search.tokens import match_form, match_words, word_hits, word_set
from tuwen.search.vocab import SoftMatcher, soft_hits, vocabulary

runner = CliRunner()
SETTINGS = IndexSettings(image_encoder="color_histogram")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("search")
    ws = synthetic_shop(root, text_encoder="use_multilingual", n_products=240, n_users=5, seed=0, image_size=48)
    align_workspace(ws, image_encoder="color_histogram", config=AlignConfig(epochs=30, batch_size=128, hidden=128),
                    progress=False)
    build_index(ws, SETTINGS, progress=False, learn=False)
    return ws


@pytest.fixture(scope="module")
def attrs(shop: Workspace) -> pd.DataFrame:
    products = shop.read("products")
    table = pd.DataFrame([json.loads(a) for a in products["attributes"]])
    table["id"], table["title"], table["price"] = products["id"], products["title"], products["price"]
    return table.set_index("id")


def _copy(ws: Workspace, tmp_path: Path) -> Workspace:
    shutil.copytree(ws.path, tmp_path / "ws")
    return Workspace(tmp_path / "ws", create=False)


# ------------------------------------------------------------------------------------------------ words


def test_segment_cuts_chinese_with_sub_words_and_keeps_english() -> None:
    words = segment("红色连衣裙 Black Dresses").split()
    assert {"红色", "连衣裙", "衣裙", "Black", "Dresses"} <= set(words)
    assert segment("") == "" and segment(None) == ""
    assert query_terms("Red 红色连衣裙") == ["red", "红色", "连衣", "衣裙", "连衣裙"]


def test_lexical_finds_chinese_titles_by_a_chinese_word(shop: Workspace, attrs: pd.DataFrame) -> None:
    products = shop.read("products")
    expected = set(products.loc[(products["title"] + products["description"]).str.contains("纯棉"), "id"])
    result = search(shop, "纯棉", mode="lexical", k=50)
    assert len(expected) >= 10 and set(result.ids) == expected
    assert all(attrs.loc[h.id, "material"] == "cotton" for h in result.hits)
    assert all(h.signals["lexical"]["terms"] == ["纯棉"] for h in result.hits)
    assert [h.signals["lexical"]["rank"] for h in result.hits] == list(range(1, len(expected) + 1))


def test_lexical_stems_english(shop: Workspace, attrs: pd.DataFrame) -> None:
    hits = search(shop, "ceramics", mode="lexical", k=15).hits
    assert len(hits) == 15 and all(attrs.loc[h.id, "material"] == "ceramic" for h in hits)


def test_semantic_bridges_languages(shop: Workspace, attrs: pd.DataFrame) -> None:
    hits = search(shop, "陶瓷", mode="semantic", k=10).hits  # "ceramic" in Chinese
    ceramic = [h for h in hits if attrs.loc[h.id, "material"] == "ceramic"]
    assert len(ceramic) >= 8
    assert any(h.title.isascii() for h in ceramic), "an English title found by a Chinese query"


# ------------------------------------------------------------------------------------------ cross-modal


def test_crossmodal_finds_the_colour_seen_only_in_the_photo(shop: Workspace, attrs: pd.DataFrame) -> None:
    for query, colour, word in (("red", "red", "red"), ("蓝色", "blue", "蓝"), ("black", "black", "black")):
        hits = search(shop, query, mode="crossmodal", k=10).hits
        right = [h for h in hits if attrs.loc[h.id, "colour"] == colour]
        assert len(right) >= 7, (query, [attrs.loc[h.id, "colour"] for h in hits])  # chance: 10 / 8 colours
        silent = [h for h in right if word not in h.title.lower() and "色" not in h.title]
        assert silent or query == "蓝色", "some hits do not name the colour: only the photo shows it"


def test_image_query_finds_itself_then_the_same_colour(shop: Workspace, attrs: pd.DataFrame) -> None:
    products = shop.read("products")
    row = products.iloc[7]
    result = search(shop, image=row["image_paths"][0], mode="image", k=6)
    assert result.hits[0].id == row["id"]
    assert result.hits[0].score == pytest.approx(1.0, abs=1e-4)
    same = sum(attrs.loc[h.id, "colour"] == attrs.loc[row["id"], "colour"] for h in result.hits)
    assert same >= 5


# ----------------------------------------------------------------------------------------------- hybrid


def test_hybrid_rrf_scores_are_the_sum_over_signal_ranks(shop: Workspace) -> None:
    result = search(shop, "red ceramic", mode="hybrid", fusion="rrf", k=10)
    assert result.fusion == "rrf" and set(result.signals) == {"lexical", "semantic", "crossmodal"}
    for hit in result.hits:
        expected = sum(1.0 / (RRF_K + info["rank"]) for info in hit.signals.values())
        assert hit.score == pytest.approx(expected, rel=1e-9)
    assert any(len(h.signals) == 3 for h in result.hits), "the best hits are found by every signal"
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)


def test_hybrid_combines_words_and_photo(shop: Workspace, attrs: pd.DataFrame) -> None:
    hits = search(shop, "red ceramic", mode="hybrid", fusion="rrf", k=10).hits
    both = sum(attrs.loc[h.id, "colour"] == "red" and attrs.loc[h.id, "material"] == "ceramic" for h in hits)
    lexical = search(shop, "red ceramic", mode="lexical", k=10).hits
    lexical_both = sum(attrs.loc[h.id, "colour"] == "red" and attrs.loc[h.id, "material"] == "ceramic"
                       for h in lexical)
    assert both >= 6 and both >= lexical_both


def test_learnt_weights_are_saved_used_and_score_what_search_scores(tmp_path: Path, shop: Workspace,
                                                                   attrs: pd.DataFrame) -> None:
    """Learning and searching must fuse the same candidates with the same features (pool, coverage, scale):
    the nDCG learning reports for its weights is the nDCG search then delivers with them."""
    ws = _copy(shop, tmp_path)
    categories, members = category_queries(ws, min_products=5)
    assert categories and all(len(r) >= 5 for r in members)
    engine = engine_for(ws)  # cached before learning: it must notice the new weights by itself
    assert engine.weights is None
    groups = attrs.groupby(["colour", "material"]).groups
    queries = [f"{colour} {material}" for colour, material in groups if len(groups[colour, material]) >= 3]
    relevant = [set(groups[tuple(q.split())]) for q in queries]
    learnt = learn_weights(ws, queries, relevant)
    assert learnt["queries"] == len(queries) >= 10  # every query has words the catalog's texts contain
    features = ("lexical", "semantic", "crossmodal", "coverage")
    assert sum(learnt["weights"][s] for s in features) == pytest.approx(1.0) and learnt["weights"]["coverage"] < 1
    engine = engine_for(ws)
    assert engine.weights is not None and engine.weights["weights"] == learnt["weights"]
    assert engine.search("red mug", k=5).fusion == "weighted"  # auto picks the learnt weights
    delivered = [ndcg_at(engine.search(q, fusion="weighted", k=10, weights=learnt).ids, r)
                 for q, r in zip(queries, relevant, strict=True)]
    assert np.mean(delivered) == pytest.approx(learnt["ndcg@10"], abs=1e-3)
    assert set(learnt["held_out_ndcg@10"]) == {"single", "raw", "standardised"}


def _queries(seed: int, n: int, make: Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray]]) -> list:
    """Prepared queries for :func:`fit_weight_grid`: ``make(rng)`` gives (features × 30 candidates, relevant mask)."""
    rng = np.random.default_rng(seed)
    out = []
    for q in range(n):
        feats, rel = make(rng)
        ids = [f"{q}-{i}" for i in range(feats.shape[1])]
        out.append((feats, ids, {ids[i] for i in np.flatnonzero(rel)}, True))
    return out


def _two_halves(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """5 relevant candidates fairly high on both signals; 10 very high on one signal only, 10 on the other."""
    lo, mid, hi = rng.uniform(0.0, 0.2, 30), rng.uniform(0.5, 0.7, 30), rng.uniform(0.8, 1.0, 30)
    first = np.r_[mid[:5], hi[5:15], lo[15:25], lo[25:]]
    second = np.r_[mid[5:10], lo[:10], hi[15:25], lo[:5]]
    return np.stack([first, second]), np.arange(30) < 5


def test_learning_finds_the_mix_when_relevance_needs_both_signals() -> None:
    both = ["lexical", "semantic"]
    fitted = fit_weight_grid(_queries(0, 30, _two_halves), both, both, 10, 0.1, "")
    w = fitted["weights"]
    assert 0 < w["lexical"] < 1 and w["lexical"] + w["semantic"] == pytest.approx(1.0)
    held_out = fitted["held_out_ndcg@10"]
    assert held_out["single"] < 0.2 and max(held_out["raw"], held_out["standardised"]) > 0.9
    fresh = _queries(1, 20, _two_halves)  # new queries from the same shop: the mix must carry over
    learnt = np.array([w["lexical"], w["semantic"]])
    for weights in (learnt, np.array([1.0, 0.0]), np.array([0.0, 1.0])):
        score = np.mean([ndcg_at([ids[i] for i in np.argsort(-(weights @ feats))[:10]], rel)
                         for feats, ids, rel, _ in fresh])
        assert score > 0.9 if weights is learnt else score < 0.2


def _noisy_first_signal(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Signal 0 lifts the relevant fifth a little; signal 1 is pure noise."""
    rel = rng.random(30) < 0.2
    return np.stack([rel * 0.3 + rng.random(30), rng.random(30)]), rel


def test_learning_keeps_the_best_signal_alone_when_a_mix_only_wins_on_the_fitting_queries() -> None:
    prepared = _queries(18, 30, _noisy_first_signal)  # a draw where the trap is there (most seeds have it)
    grid = weight_grid(["lexical", "semantic"], ["lexical", "semantic"], 0.1)
    in_sample = ndcg_table(prepared, grid, 10, standardised=False).mean(axis=1)
    corners = grid.max(axis=1) == 1.0
    assert in_sample.max() > in_sample[corners].max() + 0.002, "some noise mix wins on the fitting queries"
    fitted = fit_weight_grid(prepared, ["lexical", "semantic"], ["lexical", "semantic"], 10, 0.1, "")
    assert fitted["weights"]["lexical"] == 1.0 and fitted["scale"] == "raw"
    assert fitted["held_out_ndcg@10"]["single"] > max(fitted["held_out_ndcg@10"][f] for f in ("raw", "standardised"))


def _every_word(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Relevant = the candidates with every query word (coverage 1); BM25 barely tells them from half matches."""
    cover = np.r_[np.ones(5), np.full(15, 0.5), np.zeros(10)]
    bm25 = 0.6 * cover + rng.uniform(0, 0.6, 30)
    return np.stack([bm25, rng.random(30), cover]), cover == 1


def test_learning_weighs_coverage_but_never_ranks_by_it_alone() -> None:
    names = ["lexical", "semantic", "coverage"]
    grid = weight_grid(names, names, 0.1)
    assert grid[:, 2].max() == pytest.approx(0.9)  # coverage alone would leave its ties to chance
    fitted = fit_weight_grid(_queries(0, 30, _every_word), names, names, 10, 0.1, "")
    assert 0.5 <= fitted["weights"]["coverage"] < 1 and fitted["ndcg@10"] == pytest.approx(1.0)
    assert fitted["held_out_ndcg@10"]["single"] < 0.9


def test_coverage_reorders_candidates_by_the_share_of_query_words_they_contain() -> None:
    lists = {"lexical": Ranked([0, 1], np.array([4.0, 3.0], np.float32)),
             "crossmodal": Ranked([2, 1], np.array([0.5, 0.3], np.float32))}
    exact = {"crossmodal": np.array([0.1, 0.3, 0.5], np.float32)}
    asked: list[list[int]] = []

    def cover(keys: list[int], soft: bool) -> np.ndarray:
        assert not soft  # explicit weights were learnt on no soft coverage
        asked.append(list(keys))
        return np.array([0.5, 1.0, 0.0], np.float32)[keys]

    keys, _ = fuse(lists, "weighted", lambda s, ks: exact.get(s), {"lexical": 0.5, "crossmodal": 0.5}, coverage=cover)
    assert keys == [0, 1, 2] and asked == []  # no weight on coverage: the words are not even read
    keys, scores = fuse(lists, "weighted", lambda s, ks: exact.get(s),
                        {"lexical": 0.3, "crossmodal": 0.3, "coverage": 0.4}, coverage=cover)
    # lexical [1, .75, 0], crossmodal [.1, .3, .5], coverage [.5, 1, 0]: by hand .53, .715, .15
    assert asked == [[0, 1, 2]] and keys == [1, 0, 2] and scores == pytest.approx([0.715, 0.53, 0.15], abs=1e-6)


def test_coverage_counts_the_query_words_each_product_text_contains(shop: Workspace) -> None:
    engine = engine_for(shop)
    products = shop.read("products").set_index("id")
    keys = list(range(len(engine.ids)))
    matched = {"lexical": Ranked([0], np.ones(1, np.float32))}  # BM25 found the words: coverage is exact
    shares = engine.coverage("Red ceramics for the table", keys, matched)  # stop words do not count
    for key, share in zip(keys, shares, strict=True):
        words = set(re.findall(r"\w+", f"{products.loc[engine.ids[key], 'title']} "
                                       f"{products.loc[engine.ids[key], 'description']}".lower()))
        expected = (("red" in words) + bool({"ceramic", "ceramics"} & words) + bool({"table", "tables"} & words)) / 3
        assert share == pytest.approx(expected), engine.ids[key]
    assert 0 < shares.mean() < 1 and engine.coverage("the of", keys, matched) is None


def test_match_forms_fold_plurals_and_skip_stop_words() -> None:
    assert list(match_words("Black Casual Shoes for Men")) == ["black", "casual", "shoe", "men"]
    for plural, singular in (("dresses", "dress"), ("hoodies", "hoodie"), ("watches", "watch"), ("shoes", "shoe"),
                             ("accessories", "accessory"), ("bikinis", "bikini"), ("glasses", "glass")):
        assert match_form(plural) == match_form(singular), plural
    assert match_form("dress") != match_form("dresser") and match_form("bus") == "bus"
    words = word_set(segment("Men Black Casual Shoe 红色连衣裙"))
    assert word_hits(list(match_words("black shoes for women")), [words]).mean() == pytest.approx(2 / 3)
    assert word_hits(list(match_words("红色连衣裙")), [words]).mean() == 1.0 and word_hits([], [words]).shape == (0, 1)


def test_soft_coverage_finds_a_chinese_word_in_its_translation_only() -> None:
    from tuwen.encoders import get_encoder

    encoder = get_encoder("use_multilingual")
    texts = [segment("Black leather handbag"), segment("Umbrella with wooden handle"), segment("Black umbrella")]
    words = vocabulary(texts, 100)
    assert "handbag" in words and "with" not in words  # stop words are no meaning to match
    matcher = SoftMatcher(list(words), np.asarray(encoder.encode(list(words.values())), np.float32))
    similarity = matcher.similarity(np.asarray(encoder.encode(["黑色", "雨伞"]), np.float32))
    hits = soft_hits(similarity, [matcher.ids(word_set(t)) for t in texts] + [np.zeros(0, np.int64)])
    assert hits[0, 0] > 0.8 and hits[0, 1] == 0.0 and hits[0, 2] > 0.8  # 黑色 is "black", not "umbrella"
    assert hits[1, 1] > hits[1, 0] + 0.3 and hits[:, 3].tolist() == [0.0, 0.0]  # 雨伞: umbrella; no words: 0
    assert matcher.unknown(["black", "黑色"]) == [1]  # words the catalog uses are matched exactly, never softly


def test_engine_coverage_is_soft_for_foreign_words_and_exact_for_the_catalog_s_own(shop: Workspace) -> None:
    engine = engine_for(shop)
    assert engine.matcher() is not None  # the index stored its vocabulary
    keys = list(range(len(engine.ids)))
    sets = [word_set(engine.info["tokens"][key]) for key in keys]
    english = engine.coverage("red", keys, {}, soft=True)
    assert english.tolist() == [float("red" in ws) for ws in sets]  # exact: full coverage, nothing partial
    soft = engine.coverage("Umbrella", keys, {}, soft=True)  # a word no product uses: only soft matches, none close
    assert "umbrella" not in engine.matcher().index and soft.max() < 0.5
    rainbow = engine.coverage("彩虹 red", keys, {}, soft=True)
    alone = engine.coverage("彩虹", keys, {}, soft=True)
    assert rainbow.tolist() == pytest.approx([(float("red" in ws) + s) / 2 for ws, s in zip(sets, alone, strict=True)])
    assert alone.max() > 0  # soft matches exist ... but only when asked for: exact coverage has none
    assert engine.coverage("彩虹", keys, {}).max() == 0.0


def test_coverage_is_soft_only_for_weights_learnt_on_soft_coverage() -> None:
    no_words = {"lexical": Ranked([], np.zeros(0, np.float32)),
                "semantic": Ranked([0, 1], np.array([0.5, 0.4], np.float32))}
    cover = {"semantic": 0.5, "coverage": 0.5}
    without = {"weights": {"lexical": 0.5, "coverage": 0.5}, "weights_without_lexical": cover}
    for weights, learnt, soft in ((cover, None, False),  # explicit weights: exact coverage
                                  (None, {"weights": cover}, False),  # learnt with words only (two text signals)
                                  (None, {**without, "soft_coverage_without_lexical": True}, True),
                                  (None, {**without, "soft_coverage_without_lexical": False}, False),
                                  (None, without, True),  # learnt before the flag: coverage there meant soft
                                  (None, {**without, "weights_without_lexical": {"semantic": 1.0}}, False)):
        assert choose_weights(no_words, weights, learnt)[2] is soft, (weights, learnt)
        asked: list[bool] = []
        fuse(no_words, "weighted", lambda s, ks: None, weights, learnt,
             lambda ks, soft_, asked=asked: asked.append(soft_) or np.zeros(len(ks), np.float32))
        assert asked == ([soft] if choose_weights(no_words, weights, learnt)[0].get("coverage") else [])
    words = {**no_words, "lexical": Ranked([0], np.ones(1, np.float32))}
    assert choose_weights(words, None, {**without, "soft_coverage_without_lexical": True})[2] is False


def test_explicit_weights_weigh_exact_coverage_on_a_query_bm25_finds_nothing_for(shop: Workspace) -> None:
    engine = engine_for(shop)
    assert not engine.lexical("彩虹", None, 100).keys  # no product text has the word
    with_coverage = engine.search("彩虹", fusion="weighted", k=20, weights={"semantic": 0.5, "coverage": 0.5})
    alone = engine.search("彩虹", fusion="weighted", k=20, weights={"semantic": 0.5})
    assert with_coverage.ids == alone.ids  # exact coverage is 0 everywhere; soft coverage was never learnt here


def test_weights_for_queries_with_words_are_never_learnt_on_queries_without(tmp_path: Path, shop: Workspace) -> None:
    queries = ["彩虹", "雨伞", "火箭", "钢琴", "香蕉"]
    engine = engine_for(shop)
    assert not any(engine.lexical(q, None, 100).keys for q in queries)
    ids = list(engine.ids)
    learnt = learn_weights(shop, queries, [set(ids[i::5]) for i in range(5)], save=False)
    assert "weights" not in learnt and learnt["queries"] == 0 and learnt["queries_without_lexical"] == 5
    assert learnt["soft_coverage_without_lexical"] is True and "weights_without_lexical" in learnt
    prepared = prepare_queries(engine, ["lexical", "semantic", "coverage"], ["彩虹", "red mug"], [{ids[0]}, {ids[0]}],
                        100, soft=True)
    keys = list(range(len(ids)))
    assert [p[3] for p in prepared] == ["none", "words"]
    assert prepared[0][0][2].max() > 0  # without BM25 hits: soft coverage, the feature searched with
    exact = engine.coverage("red mug", keys, {})
    assert set(prepared[1][0][2].tolist()) <= set(exact.tolist())  # with hits: exact coverage


def test_restricted_soft_similarity_equals_the_whole_vocabulary_s() -> None:
    rng = np.random.default_rng(0)
    matcher = SoftMatcher([f"w{i}" for i in range(300)], rng.normal(size=(300, 16)).astype(np.float32))
    terms = rng.normal(size=(3, 16)).astype(np.float32)
    terms[0] = matcher.vectors[7] + 0.1 * terms[0]  # close to a word: ramped similarity well above 0
    word_ids = [rng.choice(300, size=n, replace=False) for n in (5, 0, 40, 1, 12)] + [np.array([7, 7, 299])]
    full = soft_hits(matcher.similarity(terms), word_ids)
    assert full[0].max() > 0.5
    assert np.array_equal(matcher.soft_hits(terms, word_ids), full)
    assert matcher.soft_hits(terms, [np.zeros(0, np.int64)]).tolist() == [[0.0]] * 3


def test_word_vectors_survive_another_thread_evicting_the_cache(shop: Workspace) -> None:
    from tuwen.search.engine import SearchEngine

    class Evicting(OrderedDict):
        def __setitem__(self, key: Any, value: Any) -> None:  # another request empties the cache meanwhile
            self.clear()
            super().__setitem__(key, value)

    engine = SearchEngine(shop)
    red = engine.word_vectors(["red"])[0]
    engine._query_vectors = Evicting(engine._query_vectors)
    both = engine.word_vectors(["red", "彩虹", "red"])
    assert both.shape[0] == 3 and np.array_equal(both[0], red) and np.array_equal(both[2], red)


def test_the_vocabulary_loads_once_across_threads(shop: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from tuwen.search import engine as engine_module
    from tuwen.search.engine import SearchEngine

    loads: list[int] = []
    original = SoftMatcher.load

    def slow(workspace: Any, table: str) -> Any:
        loads.append(1)
        time.sleep(0.05)
        return original(workspace, table)

    monkeypatch.setattr(engine_module.SoftMatcher, "load", staticmethod(slow))
    engine = SearchEngine(shop)
    threads = [threading.Thread(target=engine.matcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and engine.matcher() is not None
    assert engine.matcher().vectors.dtype == np.float32 and len(engine.matcher().words) > 20


def test_clear_caches_forgets_the_rows_words_too(shop: Workspace) -> None:
    from tuwen.search.engine import SearchEngine

    engine = SearchEngine(shop)
    engine.coverage("彩虹 red", [0, 1, 2], {}, soft=True)
    assert engine._words and engine._word_ids and engine._query_vectors
    engine.clear_caches()
    assert not engine._words and not engine._word_ids and not engine._query_vectors
    assert engine.matcher() is not None  # the index's vocabulary stays loaded, like its vectors


def test_an_index_from_before_word_coverage_still_searches(tmp_path: Path, shop: Workspace) -> None:
    ws = _copy(shop, tmp_path)
    settings = read_meta(ws)
    settings.pop("vocabulary", None)
    old = {"weights": {"lexical": 0.4, "semantic": 0.3, "crossmodal": 0.3, "image": 0.5}, "scale": "raw",
           "weights_without_lexical": {"lexical": 0.0, "semantic": 0.6, "crossmodal": 0.4, "image": 0.5},
           "scale_without_lexical": "standardised", "ndcg@10": 0.5, "queries": 10}
    with ws.transaction("an index from before word coverage") as writer:
        write_meta(writer, {"settings": settings, "weights": old})
    clear_engines()
    engine = engine_for(ws)
    assert "vocabulary" not in engine.meta and engine.matcher() is None and "coverage" not in engine.weights
    for query in ("red mug", "红色", "彩虹"):
        result = engine.search(query, k=5)
        assert result.fusion == "weighted" and len(result.hits) == 5, query
    explicit = engine.search("彩虹 red", k=5, weights={"semantic": 0.5, "coverage": 0.5}, fusion="weighted")
    assert len(explicit.hits) == 5


def test_standardised_fusion_ranks_by_weighted_z_scores() -> None:
    lists = {"lexical": Ranked([0, 1], np.array([4.0, 2.0], np.float32)),
             "semantic": Ranked([2, 1], np.array([0.52, 0.51], np.float32))}
    exact = {"semantic": np.array([0.30, 0.51, 0.52], np.float32)}
    learnt = {"weights": {"lexical": 0.5, "semantic": 0.5}, "scale": "standardised"}
    keys, scores = fuse(lists, "weighted", lambda s, ks: exact.get(s), learnt=learnt)
    # lexical relative to the query's best BM25: [1, 0.5, 0] -> z [1.225, 0, -1.225]; semantic z [-1.413, 0.657,
    # 0.756]; half of each, worked out by hand:
    assert keys == [1, 0, 2] and scores == pytest.approx([0.3286, -0.0942, -0.2345], abs=2e-4)
    assert standardise(np.ones(3)).tolist() == [0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------------- filters and facets


def test_where_filters_on_price_category_prefix_and_attributes(shop: Workspace, attrs: pd.DataFrame) -> None:
    result = search(shop, "mug", k=20, where="price < 80 AND category LIKE 'Home%'")
    assert result.hits and all(h.price < 80 and h.category.startswith("Home") for h in result.hits)
    hits = search(shop, "gift", k=10, where="colour = 'red'").hits
    assert hits and all(attrs.loc[h.id, "colour"] == "red" for h in hits)
    assert search(shop, "mug", k=5, where="price < 0").hits == []


def test_facets_count_the_candidates(shop: Workspace, attrs: pd.DataFrame) -> None:
    result = search(shop, "glass", mode="lexical", k=5, facets=["category", "material", "price"])
    assert set(result.facets) == {"category", "material", "price"}
    assert sum(result.facets["material"].values()) == sum(result.facets["category"].values()) > 5
    assert next(iter(result.facets["material"])) == "glass"
    assert all(isinstance(n, int) for n in result.facets["price"].values())
    with pytest.raises(SearchError, match="unknown facet"):
        search(shop, "glass", facets=["nope"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"query": ""}, "empty query"),
    ({"query": "   "}, "empty query"),
    ({"query": "x" * 1001}, "too long"),
    ({"query": "mug", "mode": "fuzzy"}, "unknown mode"),
    ({"query": "mug", "k": 0}, "k must be"),
    ({"query": "mug", "mode": "image"}, "needs a photo"),
    ({"query": "mug", "where": "price <"}, "bad filter"),
    ({"query": "mug", "where": "nosuch = 1"}, "bad filter"),
    ({"query": "mug", "image": "/no/such/photo.png"}, "not found"),
])
def test_bad_requests_get_a_clear_error(shop: Workspace, kwargs: dict, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        search(shop, **kwargs)


def test_unreadable_photo_is_a_clear_error(shop: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(SearchError, match="cannot read this image"):
        search(shop, image=bad)


# ---------------------------------------------------------------------------------------------- similar


def test_similar_leaves_the_product_out_and_finds_its_kind(shop: Workspace, attrs: pd.DataFrame) -> None:
    pid = attrs.index[3]
    result = similar(shop, pid, k=8)
    ids = result.ids
    assert len(ids) == 8 and pid not in ids
    kin = sum(attrs.loc[i, "colour"] == attrs.loc[pid, "colour"] or attrs.loc[i, "material"] == attrs.loc[pid,
              "material"] for i in ids)
    assert kin >= 6
    assert all({"semantic", "image"} <= set(h.signals) for h in result.hits)
    with pytest.raises(SearchError, match="no product"):
        similar(shop, "nope")


# ------------------------------------------------------------------------------------- index updates


def test_reindex_writes_only_what_changed(tmp_path: Path, shop: Workspace) -> None:
    ws = _copy(shop, tmp_path)
    assert build_index(ws, SETTINGS, progress=False, learn=False)["written"] == 0
    products = ws.read("products")
    changed = products.iloc[[0]].copy()
    changed["title"] = "Zebrawood Unicorn Teapot"
    new = products.iloc[[1]].copy()
    new["id"], new["title"] = "syn-new", "Quokka Lantern"
    gone = products["id"].iloc[2]
    with ws.transaction("edit") as writer:
        writer.upsert("products", pd.concat([changed, new]))
        table = ws.db.open_table("products")
        table.delete(f"id = '{gone}'")
        writer.versions["products"] = table.version
    report = build_index(ws, SETTINGS, progress=False, learn=False)
    assert (report["rebuilt"], report["written"], report["deleted"], report["rows"]) == (False, 2, 1, 240)
    assert search(ws, "unicorn teapot", mode="lexical", k=3).ids[0] == changed["id"].iloc[0]
    assert search(ws, "quokka", mode="lexical", k=3).ids == ["syn-new"]
    assert gone not in search(ws, products["title"].iloc[2], mode="lexical", k=50).ids
    assert not any(idx.index_type == "FTS" and engine_for(ws).table.index_stats(idx.name).num_unindexed_rows
                   for idx in engine_for(ws).table.list_indices()), "new rows were folded into the FTS index"


def test_realigning_without_reindexing_is_a_clear_error_until_index_runs(tmp_path: Path, shop: Workspace) -> None:
    """Photos projected by an old alignment and queries by a new one would rank at random: refuse, say what to run."""
    ws = _copy(shop, tmp_path)
    align_workspace(ws, image_encoder="color_histogram", config=AlignConfig(epochs=2, batch_size=128, hidden=128),
                    progress=False)
    clear_engines()
    with pytest.raises(SearchError, match="alignment changed.*tuwen index"):
        search(ws, "red mug", mode="crossmodal", k=5)
    with pytest.raises(SearchError, match="alignment changed"):  # the default (hybrid) mode too, decided once
        search(ws, "red mug", k=5)
    build_index(ws, SETTINGS, progress=False, learn=False)
    assert len(search(ws, "red mug", mode="crossmodal", k=5).ids) == 5


def test_ann_index_agrees_with_exact_search(tmp_path: Path, shop: Workspace) -> None:
    ws = _copy(shop, tmp_path)
    exact = {q: search(ws, q, mode="semantic", k=10).ids for q in ("red mug", "纯棉 围巾", "glass lamp")}
    report = build_index(ws, IndexSettings(image_encoder="color_histogram", ann="on"), progress=False, learn=False)
    assert report["ann"] and engine_for(ws).ann
    kinds = {idx.columns[0]: idx.index_type for idx in engine_for(ws).table.list_indices()}
    assert {"text_vec", "image_vec", "xmodal_vec", "tokens"} <= set(kinds)
    assert {kinds[c] for c in ("text_vec", "image_vec", "xmodal_vec")} == {"IvfFlat"}  # the default ann_index
    assert engine_for(ws).settings.refine_factor == 1  # exact distances already: no re-ranking
    for query, ids in exact.items():
        assert len(set(search(ws, query, mode="semantic", k=10).ids) & set(ids)) >= 9
    _assert_ann_reads_rows_as_exact_mode(shop, ws)
    hybrid = search(ws, "red ceramic", k=5, where="price < 90")
    assert hybrid.hits and all(h.price < 90 for h in hybrid.hits)
    assert similar(ws, hybrid.hits[0].id, k=3).hits
    # another index type replaces the vector indexes on re-index (rows unchanged); a made-up one is refused
    build_index(ws, IndexSettings(image_encoder="color_histogram", ann="on", ann_index="ivf_sq"), progress=False,
                learn=False)
    kinds = {idx.columns[0]: idx.index_type for idx in engine_for(ws).table.list_indices()}
    assert {kinds[c] for c in ("text_vec", "image_vec", "xmodal_vec")} == {"IvfSq"}
    assert engine_for(ws).settings.refine_factor == 2
    for query, ids in exact.items():
        assert len(set(search(ws, query, mode="semantic", k=10).ids) & set(ids)) >= 8
    with pytest.raises(SearchError, match="unknown ANN index"):
        build_index(ws, IndexSettings(ann="on", ann_index="hnsw_magic"), progress=False, learn=False)


def _assert_ann_reads_rows_as_exact_mode(shop: Workspace, ws: Workspace) -> None:
    """ANN mode asks LanceDB for ids and scores only and reads the shown rows after fusion, by row id: on 240
    products every IVF partition is probed, so its hits, their rows, signals and facets must equal exact mode's
    (which holds every row in memory), and so must word coverage, which reads each candidate's words."""
    exact_engine, ann_engine = engine_for(shop), engine_for(ws)
    assert not exact_engine.ann and ann_engine.ann

    def shown(result: Any) -> list[tuple[Any, ...]]:
        return [(h.id, h.title, h.category, h.price, h.image, json.dumps(h.row, sort_keys=True, default=str),
                 {s: (e["rank"], e.get("terms")) for s, e in h.signals.items()}) for h in result.hits]

    asks = [("glass", {"mode": "lexical", "k": 7, "facets": ["category", "material", "price"]}),
            ("纯棉 围巾", {"mode": "lexical", "k": 3, "where": "price < 200"}),
            ("red ceramic", {"mode": "hybrid", "k": 5, "fusion": "rrf", "facets": ["colour", "price"]}),
            ("blue", {"mode": "semantic", "k": 10})]
    for query, kwargs in asks:
        want, got = search(shop, query, **kwargs), search(ws, query, **kwargs)
        assert got.hits, (query, kwargs)
        assert shown(got) == shown(want), (query, kwargs)
        assert got.facets == want.facets and sum(got.facets[next(iter(got.facets))].values()) > kwargs["k"]
        assert np.allclose([h.score for h in got.hits], [h.score for h in want.hits], atol=1e-5)
    product = search(shop, "glass", k=1).ids[0]
    assert similar(ws, product, k=5).ids == similar(shop, product, k=5).ids
    for query in ("black cotton scarf", "红色 马克杯"):
        lists, _ = ann_engine.signal_lists(query, None, "hybrid", None, 50)
        keys = list(dict.fromkeys(key for ranked in lists.values() for key in ranked.keys))
        assert all(ranked.row_ids and set(ranked.keys) == set(ranked.row_ids) for ranked in lists.values())
        want = exact_engine.coverage(query, [exact_engine.row[key] for key in keys], {})
        assert want is not None and want.max() > 0
        assert np.array_equal(ann_engine.coverage(query, keys, lists), want)
    before = search(ws, "red ceramic", k=5).to_dict()
    parts = ann_engine.prewarm()  # loads indexes and rows ahead of the first queries; the answers stay the same
    assert {"encoders", "tokens", "text_vec", "xmodal_vec", "rows"} <= set(parts)
    after = search(ws, "red ceramic", k=5).to_dict()
    assert {k: v for k, v in after.items() if k != "timings_ms"} == {k: v for k, v in before.items()
                                                                      if k != "timings_ms"}


def test_ann_configs_scale_with_the_catalog() -> None:
    from tuwen.search.build import ANN_INDEXES, ann_config

    configs = {kind: ann_config(IndexSettings(ann_index=kind), 1_000_000, 513, "dot") for kind in ANN_INDEXES}
    assert configs["ivf_flat"].num_partitions == configs["ivf_sq"].num_partitions == 1000  # √rows
    assert configs["ivf_hnsw_sq"].num_partitions == 4  # one graph per 250k rows
    assert configs["ivf_pq"].num_sub_vectors == 57  # a divisor of 513 near 513 / 8
    assert ann_config(IndexSettings(ann_partitions=64), 10_000, 512, "cosine").num_partitions == 64


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_search_json_batch_and_errors(tmp_path: Path, shop: Workspace) -> None:
    result = runner.invoke(app, ["search", str(shop.path), "红色 杯子", "--k", "3", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == "红色 杯子" and len(payload["hits"]) == 3
    assert {"id", "score", "signals"} <= set(payload["hits"][0])
    queries = tmp_path / "q.txt"
    queries.write_text('blue glass\n\n{"query": "纯棉", "mode": "lexical", "k": 2}\n', encoding="utf-8")
    result = runner.invoke(app, ["search", str(shop.path), "--queries", str(queries), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(p["query"], p["mode"], len(p["hits"])) for p in lines] == [("blue glass", "hybrid", 10),
                                                                         ("纯棉", "lexical", 2)]
    result = runner.invoke(app, ["search", str(shop.path), "mug", "--where", "price <"])
    assert result.exit_code == 2 and "bad filter" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["similar", str(shop.path), "syn-0001", "--k", "2", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)["hits"]) == 2
    result = runner.invoke(app, ["search", str(shop.path), "mug", "--k", "2"])
    assert result.exit_code == 0 and "hybrid" in result.stdout


def test_cli_search_without_index_says_what_to_run(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "empty")
    result = runner.invoke(app, ["search", str(ws.path), "mug"])
    assert result.exit_code == 2 and "tuwen index" in result.output


# ------------------------------------------------------------------------------------------- alignment


def test_aligner_learns_a_shared_space_and_reloads_identically(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(600, 8))
    texts = latent @ rng.normal(size=(8, 64)) + 0.3 * rng.normal(size=(600, 64))
    photos = np.maximum(latent @ rng.normal(size=(8, 96)), 0) + 0.1 * rng.random((600, 96))
    aligner = Aligner(AlignConfig(epochs=40, batch_size=128, hidden=64, dim=32, cca_dim=16)).fit(texts[:500],
                                                                                               photos[:500])
    held_out = retrieval_metrics(aligner.encode_text(texts[500:]), aligner.encode_image(photos[500:]))
    assert held_out["R@10"] > 0.6  # chance: 0.10
    assert aligner.log[-1]["loss"] < aligner.log[0]["loss"]
    import torch

    z = aligner.text_std(texts[500:])
    with torch.no_grad():
        reference = aligner.heads["text"](torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(aligner._numpy_head("text")(z), reference, atol=1e-4)  # numpy inference = torch
    aligner.save(tmp_path / "a")
    again = Aligner.load(tmp_path / "a")
    np.testing.assert_allclose(again.encode_text(texts[500:]), aligner.encode_text(texts[500:]), atol=1e-6)
    np.testing.assert_allclose(again.encode_image(photos[500:]), aligner.encode_image(photos[500:]), atol=1e-6)
    z = aligner.encode_image(np.vstack([photos[:2], np.zeros((1, 96))]))
    assert np.linalg.norm(z[:2], axis=1) == pytest.approx([1, 1], abs=1e-5) and not z[2].any()


def test_aligner_refuses_too_few_pairs() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        Aligner().fit(np.zeros((1, 4)), np.zeros((1, 4)))



def test_clip_checkpoint_is_used_zero_shot_for_crossmodal(tmp_path: Path, shop: Workspace) -> None:
    pytest.importorskip("transformers")
    from tests.encoders.test_encoders import write_tiny_clip

    ws = _copy(shop, tmp_path)
    folder = write_tiny_clip(tmp_path / "tiny-clip", projection_dim=16)
    report = align_workspace(ws, clip=folder, progress=False)
    assert report == {"kind": "clip", "folder": str(folder.resolve()), "dim": 16}
    build_index(ws, SETTINGS, progress=False, learn=False)
    engine = engine_for(ws)
    assert engine.matrices["xmodal_vec"].shape == (240, 16)
    result = search(ws, "red", mode="crossmodal", k=5)
    assert len(result.hits) == 5 and all("crossmodal" in h.signals for h in result.hits)
    photo_ids, photo_vectors = ws.vectors(engine.alignment().image_encoder, "image")
    unit = photo_vectors / np.linalg.norm(photo_vectors, axis=1, keepdims=True)
    best = photo_ids[int(np.argmax(unit @ engine.text_vector(f"{folder.resolve()}:text", "red")))]
    assert result.hits[0].id == best  # zero-shot: the CLIP text tower's query against its image tower's photos


def test_reindexing_deletes_vocabulary_words_the_catalog_no_longer_has(tmp_path: Path) -> None:
    """A word whose products are gone leaves the vocabulary: kept, it would count as "known" and never be
    matched softly, and the table would only grow."""
    from tuwen.search.vocab import update_vocabulary, vocabulary_table

    ws = Workspace(tmp_path / "ws")

    def encode(words: list[str]) -> np.ndarray:
        return np.ones((len(words), 4), np.float32)

    with ws.transaction("vocabulary") as writer:
        first = update_vocabulary(ws, writer, ["red umbrella", "blue scarf"], "test", encode, 100)
    assert first["embedded"] == 4 and first["deleted"] == 0
    with ws.transaction("vocabulary") as writer:
        again = update_vocabulary(ws, writer, ["red umbrella", "green hat"], "test", encode, 100)
    assert again["embedded"] == 2 and again["deleted"] == 2  # green, hat in; blue, scarf out
    stored = set(ws.table(vocabulary_table("test")).to_arrow().column("id").to_pylist())
    assert stored == {match_form(w) for w in ("red", "umbrella", "green", "hat")}


def test_an_index_over_tfidf_text_searches_semantically(tmp_path: Path) -> None:
    """The query side of a catalog-fitted encoder is the workspace's own fitted one (it was a fresh, unfitted
    TF-IDF, and semantic and hybrid search failed with NotFittedError)."""
    ws = synthetic_shop(tmp_path, text_encoder="tfidf", n_products=80, n_users=3, seed=2, image_size=24)
    build_index(ws, IndexSettings(text_encoder="tfidf", image_encoder="color_histogram"), progress=False,
                learn=False)
    title = str(ws.read("products")["title"].iloc[0])
    for mode in ("semantic", "hybrid"):
        result = search(ws, title, mode=mode, k=5)
        assert result.ids, mode
    assert search(ws, title, mode="semantic", k=5).ids[0] == str(ws.read("products")["id"].iloc[0])


def test_a_chinese_word_the_catalog_lacks_finds_english_texts_through_the_dictionary(shop: Workspace) -> None:
    engine = engine_for(shop)
    assert "棉" not in engine.matcher().index and "cotton" in engine.matcher().index  # its shops say 纯棉 / cotton
    plan = engine.query_words("棉")
    assert plan.translated and "cotton" in plan.english.split()
    found = engine.lexical("棉", None, 100)
    words = [word_set(engine.info["tokens"][key]) for key in found.keys]
    assert found.keys and all("cotton" in ws for ws in words)  # BM25 saw the English word
    keys = list(range(len(engine.ids)))
    sets = [word_set(engine.info["tokens"][key]) for key in keys]
    assert engine.coverage("棉", keys, found).tolist() == [float("cotton" in ws) for ws in sets]
    assert not engine.query_words("纯棉").translated  # a word the catalog uses is matched as typed
    result = engine.search("棉", k=10, fusion="weighted", weights={"lexical": 0.5, "semantic": 0.5})
    assert all(shop_material == "cotton" for shop_material in _materials(shop, result.ids))


def _materials(ws: Workspace, ids: list[str]) -> list[str]:
    products = ws.read("products", ["id", "attributes"]).set_index("id")
    return [json.loads(products.loc[i, "attributes"]).get("material") for i in ids]


def test_translated_queries_learn_their_own_weights(tmp_path: Path, shop: Workspace, attrs: pd.DataFrame) -> None:
    engine = engine_for(shop)
    zh = {"red": "紅色", "blue": "藍色", "green": "綠色", "black": "黑色", "pink": "粉紅色", "yellow": "黃色"}
    material = {"cotton": "棉", "glass": "玻璃杯", "ceramic": "瓷器"}
    groups = attrs.groupby(["colour", "material"]).groups
    queries, relevant = [], []
    for (colour, mat), ids in groups.items():
        if colour in zh and mat in material and len(ids) >= 3:
            queries.append(zh[colour] + material[mat])
            relevant.append(set(ids))
    assert sum(engine.query_words(q).translated for q in queries) >= 5  # traditional characters: not the shop's
    learnt = learn_weights(shop, queries, relevant, save=False)
    assert learnt["queries_translated"] >= 5 and learnt["soft_coverage_translated"] is True
    assert sum(learnt["weights_translated"][s] for s in ("lexical", "semantic", "crossmodal", "coverage")) == \
        pytest.approx(1.0)
    no_words = {"lexical": Ranked([0], np.ones(1, np.float32))}
    assert choose_weights(no_words, None, learnt, translated=True)[0] == learnt["weights_translated"]
    assert choose_weights(no_words, None, learnt, translated=False)[0] == learnt.get("weights", DEFAULT_WEIGHTS)


def test_a_translated_query_is_embedded_as_typed_and_as_its_english(shop: Workspace) -> None:
    from tuwen.util.vectors import l2

    engine = engine_for(shop)
    english = engine.query_words("棉").english
    assert english
    typed = l2(engine.text_vector(engine.settings.text_encoder, "棉"))
    translated = l2(engine.text_vector(engine.settings.text_encoder, english))
    vectors = engine.query_vectors("棉", ["semantic", "crossmodal"])
    assert vectors["semantic"] == pytest.approx(l2(typed + translated), abs=1e-5)
    alone = engine.alignment().text_space(engine.text_vector(engine.alignment().text_encoder, "棉")[None], 0.0)[0]
    assert vectors["crossmodal"].shape == alone.shape and not np.allclose(vectors["crossmodal"], alone)
    hit = engine.search("棉", k=1, mode="lexical").hits[0]
    assert "cotton" in hit.signals["lexical"]["terms"]  # explained by the English word it matched
    red = engine.query_vectors("red", ["semantic"])["semantic"]  # untranslated queries: one vector, as before
    assert red == pytest.approx(l2(engine.text_vector(engine.settings.text_encoder, "red")), abs=1e-6)
