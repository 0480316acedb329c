"""Small builders for test catalogs: real files on disk, written by the tests themselves."""

from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image

from tuwen import Workspace
from tuwen.ingest.synthetic import generate_catalog


def photo(path: Path, colour: str = "red", size: tuple[int, int] = (32, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def synthetic_shop(root: Path, image_encoder: str = "color_histogram", text_encoder: str | None = "tfidf",
                   **catalog: int) -> Workspace:
    """A workspace over a generated SYNTHETIC catalog (``catalog``: generate_catalog's sizes and seed), embedded."""
    ws = Workspace(root / "ws")
    ws.ingest(preset="synthetic", path=generate_catalog(root / "catalog", **catalog))
    ws.embed(image_encoder=image_encoder, text_encoder=text_encoder, progress=False)
    return ws
