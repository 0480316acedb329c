"""What the routes share: the workspace's current :class:`Snapshot` and the :class:`Server` that re-opens it.

Why a module of its own: the snapshot's caches and the freshness check (one ``stat`` per request) are the
server's state, independent of any route.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from tuwen.predict.registry import load_model, saved_models
from tuwen.recommend.store import Service, model_folder, model_folders
from tuwen.serve.limits import PHOTO_WORKERS
from tuwen.service import insights as review_insights
from tuwen.shop import Shop
from tuwen.store.workspace import MANIFEST

MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,99}")
PRODUCTS_KEPT = 20_000  # product rows a snapshot keeps after reading them (the oldest go first)


def manifest_stamp(path: Path) -> tuple[int, int, int]:
    """Cheap change signal of a workspace's manifest (inode, size, mtime): commits replace it by rename, so any
    commit changes it; :meth:`Server.current` confirms a change by content before reloading."""
    info = (path / MANIFEST).stat()
    return info.st_ino, info.st_size, info.st_mtime_ns


def manifest_digest(path: Path) -> str:
    """The committed state's fingerprint: a hash of the manifest's content (never of file times)."""
    return hashlib.blake2b((path / MANIFEST).read_bytes(), digest_size=16).hexdigest()


class Snapshot:
    """Everything loaded from one committed version of the workspace: products, models and recommenders, each
    on first use. A commit by another process makes a new snapshot; requests still running keep theirs."""

    def __init__(self, workspace: Shop) -> None:
        self.workspace = workspace
        self._models: dict[str, Any] = {}
        self._services: dict[str | None, Any] = {}
        self._products: dict[str, pd.Series | None] = {}  # product rows read so far (None: no such product)
        self._products_lock = threading.Lock()
        self._lock = threading.Lock()  # loading a model twice at once would only waste memory

    @cached_property
    def facts(self) -> dict[str, Any]:
        """``Shop.info()`` of this version, counted once: the web page asks on every load, and counting reads the
        events table."""
        return self.workspace.info()

    def product(self, product_id: str) -> pd.Series:
        found = self.products([product_id])
        if product_id not in found:
            raise KeyError(f"no product {product_id!r}")
        return found[product_id]

    def products(self, ids: Sequence[str]) -> dict[str, pd.Series]:
        """The rows of these products (absent ids left out), read with a filter and kept for this version.

        Why not the whole table once: at a million products it is gigabytes of text in pandas, for a page that
        shows a dozen products at a time.
        """
        missing = [i for i in dict.fromkeys(ids) if i not in self._products]
        if missing:
            rows = self.workspace.read_keys("products", "id", missing)
            found = {str(row["id"]): row for _, row in rows.iterrows()}
            with self._products_lock:
                for product_id in missing:
                    self._products[product_id] = found.get(product_id)
                while len(self._products) > PRODUCTS_KEPT:
                    self._products.pop(next(iter(self._products)))
        rows = {i: self._products.get(i) for i in ids}
        return {i: row for i, row in rows.items() if row is not None}

    @cached_property
    def insight_rows(self) -> pd.DataFrame:
        """The stored review insights of this version, read once (``tuwen insights WS --refresh`` writes them)."""
        return review_insights.read(self.workspace)

    def insights(self, product: str | None = None, category: str | None = None) -> dict[str, Any]:
        if product is not None:
            self.product(product)
        answer = review_insights.insights(self.workspace, product, category, rows=self.insight_rows)
        return json.loads(json.dumps(answer, default=str))

    def model(self, name: str) -> Any:
        check_model_name(name)
        with self._lock:
            if name not in self._models:
                folder = self.workspace.artifacts / "models" / name
                if not (folder / "config.json").is_file():
                    raise KeyError(f"no model {name!r}; saved models: {', '.join(self.model_names()) or 'none'}")
                self._models[name] = load_model(self.workspace, name)
            return self._models[name]

    def model_names(self) -> list[str]:
        return saved_models(self.workspace)

    def service(self, name: str | None) -> Any:
        if name is not None:
            check_model_name(name)
            if not (model_folder(self.workspace, name) / "model.json").is_file():
                trained = ", ".join(p.name for p in model_folders(self.workspace)) or "none"
                raise KeyError(f"no recommender {name!r}; trained: {trained}")
        with self._lock:
            if name not in self._services:
                self._services[name] = Service(self.workspace, name)
            return self._services[name]


class Server:
    """What the routes share: the workspace's current :class:`Snapshot`, its name, the API key, the photo pool."""

    def __init__(self, workspace: Path, api_key: str | None = None) -> None:
        self.path = Path(workspace)
        self.name = self.path.resolve().name
        self.api_key = api_key or None
        self._reload_lock = threading.Lock()
        self._stamp = manifest_stamp(self.path)
        self._digest = manifest_digest(self.path)
        self._snapshot = Snapshot(Shop(self.path, create=False))
        self._photo_slots: Any = None
        self.reloads = 0

    def current(self) -> Snapshot:
        """The snapshot of the workspace as last committed: re-opened when the manifest's content changed."""
        try:
            stamp = manifest_stamp(self.path)
        except OSError:
            return self._snapshot  # mid-rename or gone: keep serving what we have
        if stamp == self._stamp:
            return self._snapshot
        with self._reload_lock:
            if stamp != self._stamp:
                digest = manifest_digest(self.path)
                if digest != self._digest:
                    self._snapshot = Snapshot(Shop(self.path, create=False))
                    self._digest = digest
                    self.reloads += 1
                self._stamp = stamp
        return self._snapshot

    def photo_slots(self) -> Any:
        """The limiter of the photo pool (made inside the event loop, on first use)."""
        import anyio

        if self._photo_slots is None:
            self._photo_slots = anyio.CapacityLimiter(PHOTO_WORKERS)
        return self._photo_slots

    def public(self, message: str) -> str:
        """An error text without server paths: the workspace's folder becomes its name, any other absolute path
        its last part."""
        for prefix in sorted({str(self.path.resolve()), str(self.path.absolute()), str(self.path)}, key=len,
                             reverse=True):
            if prefix not in (".", ""):
                message = message.replace(prefix, self.name)
        return re.sub(r"(?<![\w.:/])(?:/[^\s'\"/`,;:()]+){2,}", lambda m: m.group().rsplit("/", 1)[-1], message)


def check_model_name(name: str) -> str:
    """Model names only (letters, digits, ``_ . -``; no paths): a path would load a model outside the workspace."""
    if not MODEL_NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"{name[:100]!r} is not a model name (letters, digits, '_', '.', '-'; no paths)")
    return name
