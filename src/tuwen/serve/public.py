"""Answers as JSON a client may see: no vectors, no hashes, no server paths (photos become URLs by id).

Shared by every route that returns products or search hits, so no route can leak a path on its own.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pandas as pd

HIDDEN_COLUMNS = {"hash", "attributes", "image_paths"}


def _photo_urls(product_id: str, count: int) -> list[str]:
    return [f"/api/products/{quote(product_id, safe='')}/image?index={i}" for i in range(count)]


def public_product(row: pd.Series | dict[str, Any]) -> dict[str, Any]:
    """A product row as JSON: no vectors, no hash, no server paths (photos as URLs by id), NaN as null."""
    data = dict(row)
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in HIDDEN_COLUMNS or key.endswith("_vec"):
            continue
        if hasattr(value, "tolist"):
            value = value.tolist()
        if isinstance(value, float) and value != value:
            value = None
        if isinstance(value, pd.Timestamp):
            value = value.isoformat()
        out[key] = value
    if isinstance(data.get("attributes"), str) and data["attributes"]:
        try:
            out["attributes"] = json.loads(data["attributes"])
        except json.JSONDecodeError:
            out["attributes"] = data["attributes"]
    paths = data.get("image_paths")
    urls = _photo_urls(str(data.get("id", "")), len(paths) if paths is not None else 0)
    out.update({"photos": len(urls), "image_urls": urls, "image": urls[0] if urls else None})
    return out


def public_search(result: Any) -> dict[str, Any]:
    """A search answer as JSON, each hit's photo path replaced by its URL."""
    answer = result.to_dict()
    for hit in answer["hits"]:
        hit["image"] = _photo_urls(hit["id"], 1)[0] if hit.get("image") else None
    return answer


def public_search_dict(answer: dict[str, Any]) -> dict[str, Any]:
    """A search answer already as a dict (``ask``'s): photo paths replaced by their URLs, no upload path."""
    for hit in answer.get("hits", []):
        hit["image"] = _photo_urls(hit["id"], 1)[0] if hit.get("image") else None
    if answer.get("image"):
        answer["image"] = "upload"
    return answer


def plain(value: Any) -> Any:
    """numpy scalars and arrays in predictions, as JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
