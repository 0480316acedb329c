"""Batch query files for `tuwen search --queries FILE`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tuwen.search.common import SearchError


def iter_query_file(path: str | Path) -> Iterable[dict[str, Any]]:
    """Queries from a file: one per line, plain text or a JSON object with ``query`` (and optionally
    ``image``, ``where``, ``k``, ``mode``). Blank lines are skipped; a malformed JSON line is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SearchError(f"{path}: cannot read the queries file ({error.strerror or error})") from error
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                item = json.loads(line)
            except json.JSONDecodeError as error:
                raise SearchError(f"{path}:{number}: not valid JSON ({error.msg})") from error
            if not isinstance(item, dict) or not (item.get("query") or item.get("image")):
                raise SearchError(f"{path}:{number}: a JSON line needs a \"query\" (or \"image\") field")
            yield item
        else:
            yield {"query": line}
