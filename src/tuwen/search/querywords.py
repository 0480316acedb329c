"""The words of a query as BM25 and word coverage see them, Chinese words the catalog never uses translated.

A Chinese query on a catalog written in English has no word BM25 or exact coverage can find. Each of its Chinese
words (jieba's precise cut) that the catalog's vocabulary lacks is looked up in CC-CEDICT
(:mod:`tuwen.search.dictionary`): BM25 is also given the English words (红色连衣裙 → "red woman dress frock"),
and coverage counts the Chinese word as found in a product whose words contain one of its senses ("red"; "woman
dress" half by "dress"). Words the catalog does use (a Chinese catalog's 连衣裙) are matched as typed, and words
the dictionary cannot place stay as typed too: soft coverage (:mod:`tuwen.search.vocab`) may still find them by
meaning. Without a stored vocabulary nothing is translated: there is no telling which words the catalog uses.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from tuwen.search.dictionary import IRREGULAR_PLURALS, chinese_words, translate_word
from tuwen.search.tokens import STOP_WORDS, match_form, match_words
from tuwen.util.chinese import CJK_RUN

Sense = tuple[frozenset[str], ...]  # one English sense: for each of its words, the match forms that count


@dataclass(frozen=True)
class Term:
    """One word coverage counts: ``form`` (match form) and ``typed`` (embedded for soft matching); a translated
    Chinese word also has ``senses`` and is found by them instead of by its form."""

    form: str
    typed: str
    senses: tuple[Sense, ...] = ()


@dataclass(frozen=True)
class QueryWords:
    """A query's coverage terms, the English words BM25 is also given, and whether any word was translated."""

    terms: tuple[Term, ...]
    english: str = ""

    @property
    def translated(self) -> bool:
        return any(t.senses for t in self.terms)


def _forms(word: str) -> frozenset[str]:
    """The match forms an English dictionary word counts under: itself and its irregular plural (man, men)."""
    forms = {match_form(word)}
    if word in IRREGULAR_PLURALS:
        forms.add(match_form(IRREGULAR_PLURALS[word]))
    return frozenset(forms)


@functools.lru_cache(maxsize=4096)
def _translations(word: str) -> tuple[tuple[str, tuple[Sense, ...], tuple[str, ...]], ...]:
    """(piece, senses as match forms, English words for BM25) of each dictionary piece of one Chinese word."""
    out = []
    for t in translate_word(word, STOP_WORDS):
        senses = tuple(tuple(_forms(w) for w in sense) for sense in t.senses)
        english = [w for sense in t.senses for w in sense]
        english += [IRREGULAR_PLURALS[w] for w in english if w in IRREGULAR_PLURALS]
        out.append((t.word, senses, tuple(dict.fromkeys(english))))
    return tuple(out)


def query_words(query: str, known: Callable[[str], bool] | None) -> QueryWords:
    """The coverage terms and extra BM25 words of a query; ``known(form)``: does the catalog use this word (None:
    no vocabulary, so nothing is translated)."""
    plain = match_words(query)
    if known is None or not CJK_RUN.search(query):
        return QueryWords(tuple(Term(form, typed) for form, typed in plain.items()))
    unknown = [w for w in chinese_words(query) if not known(match_form(w))]
    if not any(_translations(w) for w in unknown):
        return QueryWords(tuple(Term(form, typed) for form, typed in plain.items()))
    terms = [Term(form, typed) for form, typed in plain.items() if not CJK_RUN.search(typed)]
    english: list[str] = []
    for word in chinese_words(query):
        form = match_form(word)
        found = () if known(form) else _translations(word)
        if not found:
            terms.append(Term(form, word))
            continue
        for piece, senses, words in found:
            terms.append(Term(match_form(piece), piece, senses))
            english.extend(words)
    unique = tuple(dict.fromkeys(terms))
    return QueryWords(unique, " ".join(dict.fromkeys(english)))


def term_hits(terms: Sequence[Term], sets: Sequence[frozenset[str]]) -> np.ndarray:
    """Exact coverage of each term (rows) by each candidate's words (columns): 1 when the word is there; for a
    translated term, the best of its senses, each by the share of its words there (to cover "dark blue" a text
    needs both)."""
    out = np.zeros((len(terms), len(sets)), np.float32)
    for j, term in enumerate(terms):
        if not term.senses:
            out[j] = [term.form in ws for ws in sets]
            continue
        for c, ws in enumerate(sets):
            out[j, c] = max(sum(bool(forms & ws) for forms in sense) / len(sense) for sense in term.senses)
    return out


def needs_soft(term: Term, known: Callable[[str], bool]) -> bool:
    """Whether soft (vector) coverage should judge this term: the catalog uses neither the word nor any word of
    its translations (the dictionary's words are tried first; the vectors only where it cannot help)."""
    if not term.senses:
        return not known(term.form)
    return not any(known(form) for sense in term.senses for forms in sense for form in forms)
