"""Per-modality feature matrices and presence masks for a task, assembled from a workspace (or live).

A model input is one (field, encoder) pair — ``title@use_multilingual``, ``description@tfidf_sparse``,
``image@mobilenet_v2``, ``tabular`` — and belongs to one modality (text, image, tabular). Keeping
inputs this fine-grained is what lets a user pick text fields (``--text-fields prod_name``) and
lets the ablation hide a whole modality by masking its inputs.

Three kinds of input:

* **vector**: frozen encoder vectors, read from the workspace's cache (``tuwen embed``); for
  items the workspace has never seen (``tuwen predict``, review texts) they are computed live
  with the same encoder, so training and prediction see the same features.
* **tfidf_sparse**: a sparse TF-IDF (word 1-2-grams + character 2-4-grams) that the *model* fits on its
  training texts and carries in its folder. Why the model owns it: sparse TF-IDF is the strongest
  cheap text signal on short catalog titles (bare names such as "Granger HW" carry no sentence
  meaning, but their n-grams do), and a model that fits its own vocabulary never depends on a
  workspace-level fit that saw test texts.
* **tabular**: price (log) and chosen categorical attribute columns, one-hot over training values.

Every input has a presence mask: no photo, an empty title or an unknown price is *absent*, and
fusion ignores it (see :mod:`tuwen.predict.fusion`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from tuwen.util.chinese import segment_lower

TFIDF = "tfidf_sparse"  # encoder name of the model-owned sparse TF-IDF input (not the workspace SVD "tfidf")
TABULAR = "tabular"
IMAGE_FIELDS = ("image",)
NUMERIC_COLUMNS = ("price",)


@dataclass(frozen=True)
class InputSpec:
    """One model input: which field of an item, through which encoder, and its modality."""

    field: str
    encoder: str
    modality: str
    columns: tuple[str, ...] = ()  # tabular only: which columns

    @property
    def name(self) -> str:
        return TABULAR if self.encoder == TABULAR else f"{self.field}@{self.encoder}"

    @property
    def kind(self) -> str:
        return "sparse" if self.encoder == TFIDF else "dense"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "columns": list(self.columns)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(data["field"], data["encoder"], data["modality"], tuple(data.get("columns", ())))


def parse_attributes(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The ``attributes`` JSON column as dicts (an empty dict where it is missing or unreadable)."""
    if "attributes" not in frame:
        return [{} for _ in range(len(frame))]
    parsed = []
    for raw in frame["attributes"]:
        try:
            value = json.loads(raw) if isinstance(raw, str) and raw else {}
        except json.JSONDecodeError:
            value = {}
        parsed.append(value if isinstance(value, dict) else {})
    return parsed


def column_values(frame: pd.DataFrame, column: str, attributes: list[dict[str, Any]] | None = None,
                  required: bool = True) -> pd.Series:
    """Values of a product column or attribute, as strings ("" where missing).

    ``category:N`` is the category path cut at depth N ("Clothing > Dresses" for N=2), which is how
    Flipkart's tree is classified at a chosen depth.
    """
    name, _, depth = column.partition(":")
    if name == "category" and "category" in frame:
        levels = frame["category"].fillna("").map(lambda path: [p.strip() for p in str(path).split(">")])
        if depth:
            cut = int(depth)
            return levels.map(lambda ls: " > ".join(ls[:cut]) if len(ls) >= cut and ls[0] else "")
        return frame["category"].fillna("").astype(str)
    if name in frame.columns and name not in {"attributes"}:
        return frame[name].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    attributes = attributes if attributes is not None else parse_attributes(frame)
    values = [a.get(name) for a in attributes]
    if required and all(v is None for v in values):
        known = sorted({k for a in attributes[:200] for k in a})
        raise KeyError(f"no column or attribute {column!r}; products have: {', '.join(['category', *known][:40])}")
    return pd.Series(["" if v is None else str(v) for v in values], index=frame.index)


# --------------------------------------------------------------------------------------------- TF-IDF


class SparseText:
    """Word + character n-gram TF-IDF, fitted on training texts, saved as plain JSON (no pickle).

    Word n-grams see Chinese cut into jieba words (:func:`tuwen.util.chinese.segment_lower`; other text is only
    lower-cased, as before); character n-grams see the raw text. Models saved before the segmentation existed
    have no ``segment`` mark in their state and keep their whole-run Chinese tokens.
    """

    SEGMENTED = {"word": segment_lower}  # parts whose texts are segmented first

    PARAMS: dict[str, dict[str, Any]] = {
        "word": {"analyzer": "word", "ngram_range": (1, 2), "min_df": 2, "max_features": 40000, "sublinear_tf": True,
                 "token_pattern": r"(?u)\b\w+\b"},
        "char": {"analyzer": "char_wb", "ngram_range": (2, 4), "min_df": 2, "max_features": 40000,
                 "sublinear_tf": True},
    }

    def __init__(self) -> None:
        self.vectorizers: dict[str, TfidfVectorizer] = {}

    @property
    def dim(self) -> int:
        return sum(len(v.vocabulary_) for v in self.vectorizers.values())

    def fit(self, texts: Sequence[str]) -> SparseText:
        texts = [t for t in texts if t]
        for part, params in self.PARAMS.items():
            min_df = params["min_df"] if len(texts) >= 50 else 1  # tiny corpora: keep every n-gram
            extra = {"preprocessor": self.SEGMENTED[part]} if part in self.SEGMENTED else {}
            vectorizer = TfidfVectorizer(**{**params, **extra, "min_df": min_df})
            try:
                vectorizer.fit(texts or ["empty"])
            except ValueError:  # every document filtered out (e.g. only stop characters)
                vectorizer = TfidfVectorizer(**{**params, **extra, "min_df": 1}).fit(["empty"])
            self.vectorizers[part] = vectorizer
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        parts = [v.transform([t or "" for t in texts]) for v in self.vectorizers.values()]
        return (sp.hstack(parts, format="csr") / math.sqrt(len(parts))).astype(np.float32).tocsr()

    def state(self) -> dict[str, Any]:
        return {part: {"vocabulary": {k: int(i) for k, i in v.vocabulary_.items()}, "idf": v.idf_.tolist(),
                       **({"segment": True} if v.preprocessor is not None else {})}
                for part, v in self.vectorizers.items()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SparseText:
        text = cls()
        for part, saved in state.items():
            params = {k: v for k, v in cls.PARAMS[part].items() if k not in {"min_df", "max_features"}}
            if saved.get("segment") and part in cls.SEGMENTED:
                params["preprocessor"] = cls.SEGMENTED[part]
            vectorizer = TfidfVectorizer(**params, vocabulary=saved["vocabulary"])
            vectorizer.idf_ = np.asarray(saved["idf"], dtype=np.float64)
            text.vectorizers[part] = vectorizer
        return text


# -------------------------------------------------------------------------------------------- tabular


class Tabular:
    """Numeric columns (log1p, standardised later by the model) and one-hot categorical columns.

    Categories are the training values seen at least twice (at most 50 per column) plus an
    "other" slot, so an unseen brand at prediction time is "other", not an error.
    """

    def __init__(self, columns: Sequence[str]):
        self.columns = tuple(columns)
        self.categories: dict[str, list[str]] = {}

    @property
    def dim(self) -> int:
        numeric = sum(2 for c in self.columns if c in NUMERIC_COLUMNS)
        return numeric + sum(len(v) + 1 for c, v in self.categories.items())

    def fit(self, frame: pd.DataFrame) -> Tabular:
        attributes = parse_attributes(frame)
        for column in self.columns:
            if column in NUMERIC_COLUMNS:
                continue
            counts = Counter(v for v in column_values(frame, column, attributes) if v)
            self.categories[column] = sorted(v for v, n in counts.most_common(50) if n >= 2)
        return self

    def transform(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        attributes = parse_attributes(frame)
        blocks, present = [], np.zeros(len(frame), dtype=bool)
        for column in self.columns:
            if column in NUMERIC_COLUMNS:
                values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64) \
                    if column in frame else np.full(len(frame), np.nan)
                ok = np.isfinite(values) & (values > 0)
                blocks.append(np.stack([np.where(ok, np.log1p(np.where(ok, values, 0)), 0.0), ok], axis=1))
                present |= ok
                continue
            vocabulary = {v: i for i, v in enumerate(self.categories[column])}
            onehot = np.zeros((len(frame), len(vocabulary) + 1))
            for row, value in enumerate(column_values(frame, column, attributes, required=False)):
                if value:
                    onehot[row, vocabulary.get(value, len(vocabulary))] = 1.0
                    present[row] = True
            blocks.append(onehot)
        matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(frame), 0))
        return matrix.astype(np.float32), present

    def state(self) -> dict[str, Any]:
        return {"columns": list(self.columns), "categories": self.categories}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tabular:
        tabular = cls(state["columns"])
        tabular.categories = {k: list(v) for k, v in state["categories"].items()}
        return tabular


# ------------------------------------------------------------------------------------------ features


@dataclass
class FeatureSet:
    """Aligned inputs for a list of items: dense matrices, sparse matrices and one presence mask."""

    ids: list[str]
    specs: list[InputSpec]
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: dict[str, sp.csr_matrix] = field(default_factory=dict)
    mask: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    def subset(self, rows: np.ndarray | Sequence[int]) -> FeatureSet:
        rows = np.asarray(rows, dtype=np.int64)
        return FeatureSet([self.ids[i] for i in rows], self.specs, {k: v[rows] for k, v in self.dense.items()},
                          {k: v[rows] for k, v in self.sparse.items()}, self.mask[rows])

    def dims(self) -> dict[str, int]:
        return {**{k: v.shape[1] for k, v in self.dense.items()}, **{k: v.shape[1] for k, v in self.sparse.items()}}

    def select(self, names: Sequence[str]) -> FeatureSet:
        """The same items with only some inputs (how the ablation builds text-only / image-only variants)."""
        columns = [self.names.index(n) for n in names]
        return FeatureSet(self.ids, [self.specs[c] for c in columns],
                          {n: v for n, v in self.dense.items() if n in names},
                          {n: v for n, v in self.sparse.items() if n in names}, self.mask[:, columns])


def default_specs(available: Sequence[tuple[str, str]], text_fields: Sequence[str], modalities: Sequence[str],
                  tabular_columns: Sequence[str] = (), tfidf: bool = True) -> list[InputSpec]:
    """The inputs a task uses: for each chosen text field, TF-IDF plus every cached text encoder;
    every cached image encoder; tabular columns when asked for.

    ``available`` lists the workspace's (encoder, field) vector tables.
    """
    specs: list[InputSpec] = []
    if "text" in modalities:
        for text_field in text_fields:
            if tfidf:
                specs.append(InputSpec(text_field, TFIDF, "text"))
            specs += [InputSpec(text_field, enc, "text") for enc, f in available if f == text_field]
    if "image" in modalities:
        specs += [InputSpec("image", enc, "image") for enc, f in available if f == "image"]
    if "tabular" in modalities and tabular_columns:
        specs.append(InputSpec(TABULAR, TABULAR, "tabular", tuple(tabular_columns)))
    if not specs:
        raise ValueError(f"no model inputs for modalities {','.join(modalities)} and text fields "
                         f"{','.join(text_fields) or 'none'}: run `tuwen embed` or choose other --modalities")
    return specs


class FeatureBuilder:
    """Turns items (product or review rows) into a :class:`FeatureSet`; fits TF-IDF/tabular on training rows.

    ``vector_source(spec, ids, frame)`` supplies encoder vectors: from the workspace cache during
    training, live from the encoder at prediction time (see :func:`workspace_vectors`, :func:`live_vectors`).
    """

    def __init__(self, specs: Sequence[InputSpec]):
        self.specs = list(specs)
        self.text: dict[str, SparseText] = {}
        self.tabular: Tabular | None = None

    def fit(self, frame: pd.DataFrame) -> FeatureBuilder:
        for spec in self.specs:
            if spec.encoder == TFIDF:
                self.text[spec.name] = SparseText().fit(list(text_of(frame, spec.field)))
            elif spec.encoder == TABULAR:
                self.tabular = Tabular(spec.columns).fit(frame)
        return self

    def build(self, frame: pd.DataFrame, vector_source: Any) -> FeatureSet:
        ids = [str(i) for i in frame["id"]]
        features = FeatureSet(ids, self.specs, mask=np.zeros((len(frame), len(self.specs)), dtype=bool))
        for column, spec in enumerate(self.specs):
            if spec.encoder == TFIDF:
                matrix = self.text[spec.name].transform(list(text_of(frame, spec.field)))
                features.sparse[spec.name] = matrix
                features.mask[:, column] = np.diff(matrix.indptr) > 0
            elif spec.encoder == TABULAR:
                assert self.tabular is not None, "fit() before build()"
                features.dense[spec.name], features.mask[:, column] = self.tabular.transform(frame)
            else:
                features.dense[spec.name], features.mask[:, column] = vector_source(spec, ids, frame)
        return features

    def select(self, names: Sequence[str]) -> FeatureBuilder:
        builder = FeatureBuilder([s for s in self.specs if s.name in names])
        builder.text = {n: t for n, t in self.text.items() if n in names}
        builder.tabular = self.tabular if TABULAR in names else None
        return builder

    def state(self) -> dict[str, Any]:
        return {"specs": [s.to_dict() for s in self.specs],
                "tfidf": {name: text.state() for name, text in self.text.items()},
                "tabular": self.tabular.state() if self.tabular else None}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureBuilder:
        builder = cls([InputSpec.from_dict(s) for s in state["specs"]])
        builder.text = {name: SparseText.from_state(s) for name, s in state["tfidf"].items()}
        builder.tabular = Tabular.from_state(state["tabular"]) if state.get("tabular") else None
        return builder


# Source column names of the shipped presets → tuwen's canonical text fields, so `--text-fields
# prod_name,detail_desc` (the names a user sees in H&M's articles.csv) means title,description.
FIELD_ALIASES = {"prod_name": "title", "detail_desc": "description", "productDisplayName": "title",
                 "product_name": "title", "reviewText": "text", "summary": "title"}


def canonical_fields(fields: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(FIELD_ALIASES.get(f, f) for f in fields))


def text_of(frame: pd.DataFrame, text_field: str) -> pd.Series:
    """One text field of items ("" where missing: an absent title is absent, not the string "nan").

    A field that is not a column is read from the ``attributes`` (any source column can be text).
    """
    if text_field not in frame:
        if "attributes" in frame:
            try:
                return column_values(frame, text_field)
            except KeyError:
                pass
        return pd.Series([""] * len(frame), index=frame.index)
    return frame[text_field].map(lambda v: v if isinstance(v, str) else "")


def first_image(frame: pd.DataFrame) -> list[str]:
    """The first photo path of each item ("" when it has none)."""
    if "image_paths" not in frame:
        return [""] * len(frame)
    return [str(p[0]) if p is not None and len(p) else "" for p in frame["image_paths"]]
