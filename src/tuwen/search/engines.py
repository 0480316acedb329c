"""One cached engine per workspace, and the function-style entry points :func:`search` and :func:`similar`."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from tuwen.search.common import META_TABLE
from tuwen.search.engine import SearchEngine
from tuwen.search.results import SearchResult
from tuwen.store.workspace import Workspace, as_workspace

_ENGINES: dict[str, tuple[SearchEngine, tuple[int | None, int | None]]] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(workspace: Workspace | str | Path) -> SearchEngine:
    """The cached engine of a workspace, reloaded when the index table or its settings and weights changed since.

    Freshness is read from the workspace manifest's committed versions (in memory), not from the tables: any
    re-index commits the index table, and any new settings or weights commit the meta table.
    """
    workspace = as_workspace(workspace)
    key = str(Path(workspace.path).resolve())
    with _ENGINES_LOCK:
        cached = _ENGINES.get(key)
        if cached is not None:
            engine, versions = cached
            if _versions(workspace, engine.version[0]) == versions:
                return engine
        engine = SearchEngine(workspace)
        _ENGINES[key] = (engine, _versions(workspace, engine.version[0]))
        return engine


def _versions(workspace: Workspace, table: str) -> tuple[int | None, int | None]:
    committed = workspace.committed_tables()
    return committed.get(table), committed.get(META_TABLE)


def clear_engines() -> None:
    with _ENGINES_LOCK:
        _ENGINES.clear()


def search(workspace: Workspace, query: str | None = None, *, image: str | Path | None = None, mode: str = "hybrid",
           k: int = 10, where: str | None = None, fusion: str = "auto",
           facets: Sequence[str] | None = None) -> SearchResult:
    """Search a workspace's products (run :func:`build_index` first). See :meth:`SearchEngine.search`.

    >>> search("shop", "红色连衣裙", k=5, where="price < 500").ids   # doctest: +SKIP
    """
    return engine_for(workspace).search(query, image=image, mode=mode, k=k, where=where, fusion=fusion,
                                        facets=facets)


def similar(workspace: Workspace, product_id: str, *, k: int = 10, where: str | None = None,
            facets: Sequence[str] | None = None) -> SearchResult:
    """"More like this": the products nearest to one product's fused text + photo embedding."""
    return engine_for(workspace).similar(product_id, k=k, where=where, facets=facets)
