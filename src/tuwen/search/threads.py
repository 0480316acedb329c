"""Process-wide threading for queries, shared by every engine: a BLAS thread limit and the pool BM25 runs in.

A query encodes one vector at a time, where extra BLAS threads only stall while other requests run side by side;
and BM25 runs in LanceDB's native code (no GIL), so a small pool lets it overlap the encoding of the same query.
Both are built on first use: importing the search package must stay cheap.
"""

from __future__ import annotations

import functools
from typing import Any


class _LazyBlas:
    """threadpoolctl's controller, built on first use (it scans the loaded libraries once, which is slow)."""

    def __init__(self) -> None:
        self._controller: Any = None

    def limit(self, **kwargs: Any) -> Any:
        if self._controller is None:
            from threadpoolctl import ThreadpoolController

            self._controller = ThreadpoolController()
        return self._controller.limit(**kwargs)


BLAS = _LazyBlas()


@functools.cache
def query_pool() -> Any:
    """The threads a query's BM25 list is computed in while the calling thread encodes the query."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="tuwen-search")
