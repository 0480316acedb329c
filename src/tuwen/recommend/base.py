"""The one small contract every recommender follows, and the indexed data they all share.

Why one contract (``fit / score / recommend / save / load``, in the spirit of Cornac's
``Recommender``): the evaluation, the candidate ranker, the CLI and ``forget`` treat a popularity
count, an ALS model and a two-tower network the same way, so a new model is one small class.

Shared pieces:

* :class:`ItemContent` — per-product image and text vectors from the workspace, L2-normalised,
  centred and PCA-reduced, aligned to one item index. Products without a photo or text keep a
  zero row and a ``False`` mask: models must work without content for them.
* :class:`Histories` — every shopper's events as (item, age in days, weight), newest first.
  Models keep the histories they were trained on, so a saved model recommends without reading
  the workspace (fast, and the same answer in a fresh process), and ``forget`` can remove one
  shopper from a saved model.
* :class:`Recommender` — item universe, popularity fallback for unknown shoppers, top-k with
  exclusions, save/load of config (JSON) + arrays (``.npz``), and ``forget_user``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from tuwen.encoders.cache import load_vectors
from tuwen.encoders.defaults import TEXT_FALLBACKS
from tuwen.store.events import EventArrays
from tuwen.store.workspace import Workspace
from tuwen.util.folders import FormatError, atomic_folder, read_info, write_info
from tuwen.util.vectors import l2

# How much each kind of event says about taste; purchases are what the evaluation predicts.
KIND_WEIGHTS: dict[str, float] = {"purchase": 1.0, "cart": 0.5, "click": 0.25, "view": 0.2}
# 2: the ranker gained its look-alike sales features and VBPR its direct content match (array widths changed)
# 3: VBPR keeps one feature-width content vector per shopper and the product features (other arrays)
# 4: a candidate ranker's generators are saved without the histories the ranker keeps once (format 3 still loads:
#    its members carry their own copies)
FORMAT_VERSION = 4
READABLE_VERSIONS = (3,)
DAY = 86400.0


class RecommendError(ValueError):
    """A user-facing problem (unknown model, no interactions, unknown shopper)."""


# ---------------------------------------------------------------------------------------------- content


ROW_BLOCK = 65_536  # rows normalised at a time: a whole-matrix temporary is gigabytes at a million products


def _row_norms(matrix: np.ndarray) -> np.ndarray:
    """``np.linalg.norm(matrix, axis=1)``, a block of rows at a time (each row's norm is the same number)."""
    return np.concatenate([np.linalg.norm(matrix[lo:lo + ROW_BLOCK], axis=1)
                           for lo in range(0, len(matrix), ROW_BLOCK)] or [np.zeros(0, matrix.dtype)])


def _l2_in_place(matrix: np.ndarray) -> np.ndarray:
    """:func:`tuwen.util.vectors.l2` of a float32 matrix written over it, a block of rows at a time (same values)."""
    for lo in range(0, len(matrix), ROW_BLOCK):
        matrix[lo:lo + ROW_BLOCK] = l2(matrix[lo:lo + ROW_BLOCK])
    return matrix


def _reduce(matrix: np.ndarray, mask: np.ndarray, dim: int | None, seed: int = 0) -> np.ndarray:
    """Normalise, centre (MobileNet features are all positive; centring makes cosine discriminate)
    and PCA-reduce the rows that have content; rows without content stay zero.

    ``matrix`` (float32) is the caller's to lose: it is normalised and centred in place rather than copied, the
    copies being what made loading a million products' vectors the peak of a recommender's training."""
    out = np.zeros((len(matrix), 0), dtype=np.float32)
    if not mask.any():
        return out
    rows = _l2_in_place(matrix if mask.all() else matrix[mask])
    rows -= rows.mean(axis=0, keepdims=True)
    if dim is not None and dim < rows.shape[1] and len(rows) > dim:
        from sklearn.decomposition import PCA

        rows = PCA(n_components=dim, random_state=seed, svd_solver="randomized", copy=False).fit_transform(rows)
    out = np.zeros((len(matrix), rows.shape[1]), dtype=np.float32)
    out[mask] = l2(rows)
    return out


@dataclass
class ItemContent:
    """Image and text vectors of products, row-aligned with ``ids``; zero rows where absent."""

    ids: list[str]
    image: np.ndarray
    text: np.ndarray
    has_image: np.ndarray
    has_text: np.ndarray
    sources: dict[str, Any] = field(default_factory=dict)

    @property
    def has_any(self) -> np.ndarray:
        return self.has_image | self.has_text

    def align(self, item_ids: Sequence[str]) -> ItemContent:
        """The same content re-indexed to another item list (items unknown here get zero rows)."""
        index = {item: k for k, item in enumerate(self.ids)}
        rows = np.array([index.get(item, -1) for item in item_ids], dtype=np.int64)
        found = rows >= 0

        def take(matrix: np.ndarray) -> np.ndarray:
            out = np.zeros((len(item_ids), matrix.shape[1]), dtype=matrix.dtype)
            out[found] = matrix[rows[found]]
            return out

        def take_mask(mask: np.ndarray) -> np.ndarray:
            out = np.zeros(len(item_ids), dtype=bool)
            out[found] = mask[rows[found]]
            return out

        return ItemContent(list(item_ids), take(self.image), take(self.text), take_mask(self.has_image),
                           take_mask(self.has_text), dict(self.sources))

    def joint(self, image_weight: float = 1.0, text_weight: float = 1.0) -> np.ndarray:
        """[image | text] with modality weights; each half is unit length, so the weights set the mix."""
        return np.hstack([self.image * image_weight, self.text * text_weight]).astype(np.float32)

    @classmethod
    def from_arrays(cls, ids: Sequence[str], image: np.ndarray | None, text: np.ndarray | None,
                    dim: int | None = 128, seed: int = 0) -> ItemContent:
        """Build from raw vectors (rows of all-zero or NaN mean 'absent')."""
        copies = [None if m is None else np.array(m, dtype=np.float32, order="C") for m in (image, text)]  # ours
        return cls._from_own(ids, copies[0], copies[1], dim, seed)

    @classmethod
    def _from_own(cls, ids: Sequence[str], image: np.ndarray | None, text: np.ndarray | None, dim: int | None,
                  seed: int) -> ItemContent:
        """:meth:`from_arrays` of float32 matrices it may overwrite (no copy of every vector on the way)."""
        n = len(ids)
        parts = []
        for matrix in (image, text):
            if matrix is None:
                parts.append((np.zeros((n, 0), np.float32), np.zeros(n, bool)))
                continue
            matrix = np.nan_to_num(matrix, copy=False)
            mask = _row_norms(matrix) > 0
            parts.append((_reduce(matrix, mask, dim, seed), mask))
        (img, img_mask), (txt, txt_mask) = parts
        return cls(list(ids), img, txt, img_mask, txt_mask, {"dim": dim})

    @classmethod
    def from_workspace(cls, workspace: Workspace, image: str | None = "auto", text: Sequence[str] | str | None = "auto",
                       dim: int | None = 128, seed: int = 0) -> ItemContent:
        """Read cached vectors: ``image`` is ``"encoder/field"``, ``text`` one or more of those (averaged).

        ``"auto"`` takes MobileNetV2 (or any image encoder) and the multilingual USE title +
        description vectors (or any text encoder) that ``tuwen embed`` left in the workspace.
        """
        available = content_sources(workspace)
        image_source = _pick_image(available) if image == "auto" else image
        text_sources = _pick_text(available) if text == "auto" else ([text] if isinstance(text, str) else text)
        products = workspace.read("products", ["id"])
        ids = list(products["id"])
        index = {item: k for k, item in enumerate(ids)}
        image_matrix = None
        if image_source:
            image_matrix = _vectors_for(workspace, image_source, index)
        text_matrix = None
        for source in text_sources or []:
            part = _l2_in_place(_vectors_for(workspace, source, index))  # zero rows (no vector) stay zero
            if text_matrix is None:
                text_matrix = part
            else:
                text_matrix += part
            del part
        content = cls._from_own(ids, image_matrix, text_matrix, dim, seed)
        content.sources = {"image": image_source, "text": list(text_sources or []), "dim": dim}
        return content


def content_sources(workspace: Workspace) -> dict[str, str]:
    """``{"encoder/field": modality}`` for every vector table the workspace holds."""
    meta = workspace.manifest.get("meta", {})
    found = {}
    for name, info in meta.items():
        if name.startswith("vec__") and workspace.has_table(name):
            found[f"{info['encoder']}/{info['field']}"] = info.get("modality", "text")
    return found


def _pick_image(available: dict[str, str]) -> str | None:
    images = [k for k, m in available.items() if m == "image"]
    preferred = [k for k in images if k.startswith("mobilenet_v2/")]
    return (preferred or sorted(images) or [None])[0]


def _pick_text(available: dict[str, str]) -> list[str]:
    texts = [k for k, m in available.items() if m == "text" and not k.endswith("/ocr")]
    for encoder in TEXT_FALLBACKS:
        chosen = [k for k in texts if k.startswith(encoder + "/") and k.split("/")[1] in ("title", "description")]
        if chosen:
            return sorted(chosen, key=lambda k: k.split("/")[1] != "title")
    return sorted(texts)[:2]


def _vectors_for(workspace: Workspace, source: str, index: dict[str, int]) -> np.ndarray:
    encoder, field_name = source.split("/", 1)
    ids, matrix = load_vectors(workspace, encoder, field_name)
    out = np.zeros((len(index), matrix.shape[1]), dtype=np.float32)
    target = np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    origin = np.flatnonzero(target >= 0)
    for lo in range(0, len(origin), ROW_BLOCK):  # a block at a time: no temporary copy of every vector
        out[target[origin[lo:lo + ROW_BLOCK]]] = matrix[origin[lo:lo + ROW_BLOCK]]
    return out


# -------------------------------------------------------------------------------------------- histories


@dataclass
class Histories:
    """Each known shopper's events, newest first: item index, age in days (vs ``now``) and weight."""

    users: list[str]
    indptr: np.ndarray
    items: np.ndarray
    ages: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        self.index = {user: k for k, user in enumerate(self.users)}

    def __contains__(self, user: object) -> bool:
        return user in self.index

    def __len__(self) -> int:
        return len(self.users)

    def get(self, user: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = self.index.get(user)
        if k is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
        a, b = self.indptr[k], self.indptr[k + 1]
        return self.items[a:b], self.ages[a:b], self.weights[a:b]

    @classmethod
    def build(cls, user: np.ndarray, item: np.ndarray, age: np.ndarray, weight: np.ndarray,
              users: list[str]) -> Histories:
        return cls.from_events(user, item, age, weight, users)[0]

    @classmethod
    def from_events(cls, user: np.ndarray, item: np.ndarray, age: np.ndarray, weight: np.ndarray,
                    users: list[str]) -> tuple[Histories, np.ndarray]:
        """The histories and, per history entry, the position of its event in the input (``order``).

        Item indices stay 32-bit (a universe has far fewer than 2**31 products): at thirty million events every
        byte per event is 30 MB, and the histories are what a trained model keeps.
        """
        order = np.lexsort((age, user))  # per user, youngest first
        counts = np.bincount(user, minlength=len(users))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        histories = cls(users, indptr, item[order].astype(_index_dtype(len(item) and int(item.max())), copy=False),
                        age[order].astype(np.float32, copy=False), weight[order].astype(np.float32, copy=False))
        return histories, order.astype(_index_dtype(len(order)))

    def shopper_of_entry(self) -> np.ndarray:
        """The shopper index of every history entry (the row of the entry in a shopper x product matrix)."""
        return np.repeat(np.arange(len(self.users), dtype=_index_dtype(len(self.users))), np.diff(self.indptr))

    def without(self, user: str) -> Histories:
        """A copy without one shopper (``forget``)."""
        k = self.index.get(user)
        if k is None:
            return self
        a, b = self.indptr[k], self.indptr[k + 1]
        keep = np.r_[0:a, b:len(self.items)]
        indptr = np.concatenate([self.indptr[:k + 1], self.indptr[k + 2:] - (b - a)])
        return Histories(self.users[:k] + self.users[k + 1:], indptr, self.items[keep], self.ages[keep],
                         self.weights[keep])

    def arrays(self, prefix: str = "hist_") -> dict[str, np.ndarray]:
        return {f"{prefix}users": np.array(self.users, dtype=object).astype(str), f"{prefix}indptr": self.indptr,
                f"{prefix}items": self.items, f"{prefix}ages": self.ages, f"{prefix}weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "hist_") -> Histories:
        return cls([str(u) for u in arrays[f"{prefix}users"]], arrays[f"{prefix}indptr"], arrays[f"{prefix}items"],
                   arrays[f"{prefix}ages"], arrays[f"{prefix}weights"])


@dataclass
class TrainData:
    """Training interactions indexed against an item universe (trained items + catalog items).

    The events are kept once, as the per-shopper :class:`Histories` plus ``order`` (each history entry's position
    among the events as read), not a second time as per-event arrays: at a real shop's size those were as big as
    the histories themselves. ``user`` / ``item`` / ``age`` / ``weight`` rebuild a per-event array in the order the
    events were read, so the sums over events (popularity, the sparse matrix's repeated cells) add in the same order
    as before, to the same bits.
    """

    item_ids: list[str]
    item_index: dict[str, int]
    users: list[str]
    now: pd.Timestamp
    histories: Histories
    order: np.ndarray  # history entry -> position of its event in the events read
    n_trained_items: int  # items [0, n_trained_items) have training events; the rest are catalog-only

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_events(self) -> int:
        return len(self.order)

    def _in_event_order(self, values: np.ndarray) -> np.ndarray:
        out = np.empty(len(values), dtype=values.dtype)
        out[self.order] = values
        return out

    @property
    def user(self) -> np.ndarray:
        """Each event's shopper index, in event order (built on each call: keep it while you need it)."""
        return self._in_event_order(self.histories.shopper_of_entry())

    @property
    def item(self) -> np.ndarray:
        """Each event's item index, in event order."""
        return self._in_event_order(self.histories.items)

    @property
    def age(self) -> np.ndarray:
        """Each event's age in days (vs ``now``), in event order."""
        return self._in_event_order(self.histories.ages)

    @property
    def weight(self) -> np.ndarray:
        """Each event's weight (kind x value), in event order."""
        return self._in_event_order(self.histories.weights)

    def matrix(self, halflife: float | None = None) -> Any:
        """Users x items CSR of summed event weights (optionally decayed by age)."""
        import scipy.sparse as sp

        values = self.weight * (0.5 ** (self.age / halflife) if halflife else 1.0)
        return sp.csr_matrix((values.astype(np.float32), (self.user, self.item)),
                             shape=(self.n_users, self.n_items))


def prepare(interactions: pd.DataFrame | EventArrays, catalog_ids: Iterable[str] = (),
            now: pd.Timestamp | None = None, kind_weights: dict[str, float] | None = None) -> TrainData:
    """Index events against the universe of (trained items, then catalog-only items).

    Why catalog-only items are in the universe: products nobody has bought yet (new arrivals —
    70% of the H&M test week) can then be scored by models that see content.
    A frame goes through the same coded arrays that :func:`tuwen.store.events.read_event_arrays` reads
    from the workspace in batches, so both paths give the same shoppers, products and numbers.
    """
    weights = kind_weights or KIND_WEIGHTS
    events = interactions if isinstance(interactions, EventArrays) else EventArrays.from_frame(interactions)
    events = events.subset(events.kind_mask(weights))
    if events.empty:
        raise RecommendError("no interactions to learn from (purchases, carts, clicks or views)")
    now_us = int(events.time.max()) + int(DAY * 1_000_000) if now is None else to_micros(now)
    now = pd.Timestamp(now_us, unit="us", tz="UTC") if now is None else pd.Timestamp(now)
    item_ids = universe(events, catalog_ids)
    item_index = {i: k for k, i in enumerate(item_ids)}
    users = [str(u) for u in events.users]
    age = ((now_us - events.time) / 1e6 / DAY).astype(np.float32)
    value = np.nan_to_num(events.value, nan=1.0).clip(min=0.0).astype(np.float32)
    kind_weight = np.array([weights.get(k, 0.0) for k in events.kinds] + [0.0], dtype=np.float32)[events.kind]
    weight = (kind_weight * np.minimum(value, 3.0)).astype(np.float32)
    del value, kind_weight
    histories, order = Histories.from_events(events.user, events.item, age, weight, users)
    return TrainData(item_ids, item_index, users, now, histories, order, len(events.items))


def universe(events: EventArrays, catalog_ids: Iterable[str] = ()) -> list[str]:
    """The item universe of :func:`prepare`: the events' items (in their code order), then the catalog-only ones."""
    return _universe(events.items, catalog_ids)


def _universe(trained: np.ndarray, catalog_ids: Iterable[str]) -> list[str]:
    extra = pd.unique(np.asarray(list(catalog_ids), dtype=object))
    if len(extra):
        extra = extra[~pd.Index(extra).isin(trained)]
    return [str(i) for i in trained] + [str(i) for i in extra]


def plan(events: EventArrays, catalog_ids: Iterable[str] = (), now: pd.Timestamp | None = None,
         kind_weights: dict[str, float] | None = None) -> tuple[list[str], pd.Timestamp]:
    """(item universe, ``now``) that :func:`prepare` gives these events, without preparing them.

    Why: the candidate ranker fits its label weeks on slices of the events before it prepares them all; knowing
    the whole universe and moment first lets it do so without the whole prepared data in memory beside a slice's.
    """
    mask = events.kind_mask(kind_weights or KIND_WEIGHTS)
    if not mask.any():
        raise RecommendError("no interactions to learn from (purchases, carts, clicks or views)")
    # the kept events' items in order of first appearance: the numbering prepare's subset gives them
    trained = events.items if mask.all() else events.items[pd.unique(events.item[mask])]
    if now is None:
        return _universe(trained, catalog_ids), pd.Timestamp(
            int(events.time[mask].max()) + int(DAY * 1_000_000), unit="us", tz="UTC")
    return _universe(trained, catalog_ids), pd.Timestamp(now)


def _index_dtype(largest: int) -> type:
    """int32 for indices and positions that fit it (every realistic shop), else int64."""
    return np.int32 if largest < 2**31 - 1 else np.int64


def content_ids(content: ItemContent | None) -> list[str]:
    """The products with a photo or text vector: they join the universe even when nobody bought them."""
    if content is None:
        return []
    return list(np.asarray(content.ids, dtype=object)[np.asarray(content.has_any, dtype=bool)])


def to_micros(moment: Any) -> int:
    stamp = pd.Timestamp(moment)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1000)


def history_from_frame(frame: pd.DataFrame, item_index: dict[str, int], now: pd.Timestamp,
                       kind_weights: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One shopper's events (e.g. read from the workspace after training) in the model's terms."""
    weights = kind_weights or KIND_WEIGHTS
    frame = frame[frame["kind"].isin(list(weights)) & frame["product_id"].astype(str).isin(item_index)]
    if frame.empty:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
    age = ((now - pd.to_datetime(frame["timestamp"], utc=True)).dt.total_seconds().to_numpy() / DAY)
    items = frame["product_id"].astype(str).map(item_index).to_numpy(np.int64)
    w = frame["kind"].map(weights).to_numpy(np.float32)
    order = np.argsort(age, kind="stable")
    return items[order], np.maximum(age[order], 0).astype(np.float32), w[order]


# ------------------------------------------------------------------------------------------- the contract


class Recommender:
    """Base class: subclasses implement ``_fit`` and ``_score_user`` (and state for save/load).

    ``score`` returns one number per item of the model's universe (``item_ids``), ``-inf`` where
    the model cannot say anything; ``recommend`` takes the top k and fills any gap with recent
    popularity, so a shopper the model never saw still gets (popular) products.
    """

    name: ClassVar[str] = "base"
    uses_content: ClassVar[bool] = False
    uses_products: ClassVar[bool] = False  # reads the products table (attributes, prices) while fitting
    registry: ClassVar[dict[str, type[Recommender]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name != "base":
            Recommender.registry[cls.name] = cls

    def __init__(self, popularity_halflife: float = 7.0, seed: int = 0, **params: Any):
        self.params: dict[str, Any] = {"popularity_halflife": popularity_halflife, "seed": seed, **params}
        self.item_ids: list[str] = []
        self.item_index: dict[str, int] = {}
        self.histories: Histories | None = None
        self.popularity = np.zeros(0, np.float32)
        self.now = pd.Timestamp(0, tz="UTC")
        self.n_trained_items = 0
        self.meta: dict[str, Any] = {}
        self.products: pd.DataFrame | None = None  # set during fit only; not saved

    # ------------------------------------------------------------------ fit
    def fit(self, interactions: pd.DataFrame | EventArrays | TrainData, products: pd.DataFrame | None = None,
            content: ItemContent | None = None, now: pd.Timestamp | None = None) -> Recommender:
        """Learn from events (``user_id, product_id, timestamp, kind, value``), products and their vectors.

        The universe is every product with a training event plus every product with content
        (so never-bought products can be recommended by models that read content).
        ``products`` (the workspace table) gives attributes and prices to models that use them.
        Events come as a frame, as coded arrays (:func:`tuwen.store.events.read_event_arrays`, the path
        that scales), or already prepared (:func:`prepare` with this content's ids: the candidate ranker
        prepares once and fits its generators on the same data).
        """
        started = time.perf_counter()
        if isinstance(interactions, TrainData):
            data = interactions
        else:
            data = prepare(interactions, content_ids(content), now, self.params.get("kind_weights"))
        self.item_ids, self.item_index = data.item_ids, data.item_index
        self.histories, self.now, self.n_trained_items = data.histories, data.now, data.n_trained_items
        pop = np.bincount(data.item, weights=data.weight * 0.5 ** (data.age / self.params["popularity_halflife"]),
                          minlength=data.n_items)  # in event order: the sum adds as it always did
        self.popularity = pop.astype(np.float32)
        self.products = products
        # aligned only for a model that reads it: the id-only ones (ALS, ItemKNN, ...) would hold a copy of every
        # vector while they fit, for nothing
        self._fit(data, content.align(data.item_ids) if content is not None and self.uses_content else None)
        self.meta = {"trained_at": time.time(), "fit_seconds": round(time.perf_counter() - started, 3),
                     "n_users": data.n_users, "n_items": data.n_items, "n_trained_items": data.n_trained_items,
                     "n_events": data.n_events, "now": str(data.now),
                     "content": content.sources if content is not None else None}
        return self

    def _fit(self, data: TrainData, content: ItemContent | None) -> None:
        raise NotImplementedError

    def needs_content(self) -> bool:
        """Whether fitting without product vectors is an error (a model that reads content can opt out)."""
        return self.uses_content

    # ---------------------------------------------------------------- score
    def knows(self, user: str) -> bool:
        return self.histories is not None and user in self.histories

    def score(self, user: str, items: Sequence[str] | None = None,
              history: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Scores for ``items`` (default: every item of the universe); ``-inf`` = no opinion.

        ``history`` (items, ages, weights) replaces the stored one: fold-in for a shopper who
        bought since training, where the model supports it.
        """
        if history is None:
            history = self.histories.get(user) if self.histories is not None else None
        scores = self._score_user(user, history)
        if items is None:
            return scores
        rows = np.array([self.item_index.get(i, -1) for i in items], dtype=np.int64)
        out = np.full(len(rows), -np.inf, dtype=np.float32)
        out[rows >= 0] = scores[rows[rows >= 0]]
        return out

    def _score_user(self, user: str, history: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, user: str, k: int = 12, exclude: Iterable[str] = (),
                  history: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> list[str]:
        """The top ``k`` product ids for a shopper, best first; popular items fill any gap."""
        scores = self.score(user, history=history).astype(np.float32, copy=True)
        banned = [self.item_index[i] for i in exclude if i in self.item_index]
        if banned:
            scores[banned] = -np.inf
        return [self.item_ids[i] for i in self.top_k(scores, k, banned)]

    def top_k(self, scores: np.ndarray, k: int, banned: Sequence[int] = ()) -> list[int]:
        finite = np.isfinite(scores)
        n_finite = int(finite.sum())
        if n_finite > k:
            top = np.argpartition(-np.where(finite, scores, -np.inf), k - 1)[:k]
            top = top[np.argsort(-scores[top], kind="stable")]
            return [int(i) for i in top]
        chosen = [int(i) for i in np.flatnonzero(finite)[np.argsort(-scores[finite], kind="stable")]]
        taken = set(chosen) | set(banned)
        for i in self.popular_order(k + len(taken)):
            if len(chosen) >= k:
                break
            if i not in taken:
                chosen.append(int(i))
                taken.add(int(i))
        return chosen

    def popular_order(self, k: int) -> np.ndarray:
        k = min(k, len(self.popularity))
        if k <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-self.popularity, k - 1)[:k]
        return top[np.argsort(-self.popularity[top], kind="stable")]

    def popular(self, k: int = 12) -> list[str]:
        return [self.item_ids[i] for i in self.popular_order(k)]

    # ---------------------------------------------------------- save / load
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able config, arrays) of what ``_fit`` learnt; the base saves the rest."""
        return {}, {}

    def _set_state(self, config: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Inverse of ``_state``."""

    def save(self, folder: str | Path, histories: bool = True) -> Path:
        """Write ``model.json`` + ``arrays.npz`` atomically (:func:`tuwen.util.folders.atomic_folder`).

        ``histories=False``: without the shoppers' histories, for a model saved inside another that keeps the same
        histories once for all its members (the candidate ranker's generators).
        """
        folder = Path(folder)
        with atomic_folder(folder) as tmp:
            config, arrays = self._state()
            base_arrays = {"item_ids": np.array(self.item_ids, dtype=str), "popularity": self.popularity}
            if self.histories is not None and histories:
                base_arrays.update(self.histories.arrays())
            np.savez(tmp / "arrays.npz", **base_arrays, **{f"m_{k}": v for k, v in arrays.items()})
            extra = self._save_extra(tmp)
            write_info(tmp / "model.json", "recommender", FORMAT_VERSION,
                       {"model": self.name, "params": _jsonable(self.params), "config": _jsonable(config),
                        "now": self.now.isoformat(), "n_trained_items": self.n_trained_items,
                        "meta": _jsonable(self.meta), "extra_files": extra})
        return folder

    def _save_extra(self, folder: Path) -> list[str]:
        """Files other than arrays (e.g. a LightGBM booster); returns their names."""
        return []

    def _load_extra(self, folder: Path) -> None:
        pass

    @staticmethod
    def load(folder: str | Path) -> Recommender:
        """Any saved recommender, whatever its class (read from ``model.json``)."""
        folder = Path(folder)
        try:
            info = read_info(folder / "model.json", "recommender", FORMAT_VERSION,
                             "run `tuwen train WS --task recommend`", older=READABLE_VERSIONS)
        except (FileNotFoundError, FormatError) as error:
            raise RecommendError(str(error)) from error
        cls = Recommender.registry.get(info["model"])
        if cls is None:
            raise RecommendError(f"{folder}: unknown model {info['model']!r}")
        model = cls(**info["params"])
        with np.load(folder / "arrays.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        model.item_ids = [str(i) for i in arrays["item_ids"]]
        model.item_index = {item: k for k, item in enumerate(model.item_ids)}
        model.popularity = arrays["popularity"]
        model.histories = Histories.from_arrays(arrays) if "hist_users" in arrays else None
        model.now = pd.Timestamp(info["now"])
        model.n_trained_items = info["n_trained_items"]
        model.meta = info.get("meta", {})
        model._set_state(info["config"], {k[2:]: v for k, v in arrays.items() if k.startswith("m_")})
        model._load_extra(folder)
        return model

    # --------------------------------------------------------------- forget
    def forget_user(self, user: str) -> bool:
        """Drop everything this model keeps *per shopper* about ``user``; True when there was something.

        Item-side parameters (factors, popularity, the ranker) were still learnt with the
        shopper's events: the caller marks the model stale until it is retrained.
        """
        found = self.histories is not None and user in self.histories
        state = bool(self._forget_user_state(user))  # first: it may use the user's row index
        if found:
            self.histories = self.histories.without(user)
        return state or found

    def _forget_user_state(self, user: str) -> bool:
        return False


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def decay(ages: np.ndarray, halflife: float | None) -> np.ndarray:
    """Exponential recency weight: 1 today, 1/2 after ``halflife`` days."""
    if not halflife:
        return np.ones_like(ages, dtype=np.float32)
    return (0.5 ** (np.asarray(ages, dtype=np.float32) / halflife)).astype(np.float32)
