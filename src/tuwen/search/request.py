"""Checks of a search request before any work is done: mode, fusion, result count, query length, and whether
the index has the signal the mode needs.

Kept apart so that every entry point (Python, CLI, HTTP) refuses a bad request with the same :class:`SearchError`,
naming what is wrong and how to fix it, and the engine reads as the search itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tuwen.search.common import FUSIONS, MAX_K, MAX_QUERY_CHARS, MODES, SearchError


def check_request(query: str, image: Any, mode: str, k: int, fusion: str, signals: Sequence[str]) -> None:
    """Refuse a search the index cannot answer (``signals``: those the index was built with)."""
    if mode not in MODES:
        raise SearchError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if fusion not in FUSIONS:
        raise SearchError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
    if not query and image is None:
        raise SearchError("empty query: give words to search for, or a photo (--image PATH)")
    if len(query) > MAX_QUERY_CHARS:
        raise SearchError(f"query too long ({len(query):,} characters; the limit is {MAX_QUERY_CHARS:,})")
    check_k(k)
    if mode == "image" and image is None:
        raise SearchError("mode 'image' needs a photo: --image PATH")
    if mode in ("lexical", "semantic", "crossmodal") and not query:
        raise SearchError(f"mode {mode!r} needs words to search for")
    needs = {"semantic": "semantic", "crossmodal": "crossmodal", "image": "image"}.get(mode)
    if needs and needs not in signals:
        hint = "run `tuwen align WS` then `tuwen index WS`" if needs == "crossmodal" else "run `tuwen embed WS` " \
            "then `tuwen index WS`"
        raise SearchError(f"this index has no {needs} signal; {hint}")


def check_k(k: int) -> None:
    """Refuse a result count outside 1..MAX_K."""
    if not 1 <= k <= MAX_K:
        raise SearchError(f"k must be between 1 and {MAX_K}, got {k}")
