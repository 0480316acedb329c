"""Seeded slices of the shared real data sets, written to a test's temporary folder in the same layout.

Tests never keep any of that data: a slice lives in ``tmp_path`` for one test. The files are re-written with the
csv / json modules so multi-line fields stay whole.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from tests.helpers import write_csv


def csv_rows(file: Path) -> tuple[list[str], list[list[str]]]:
    with file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


def sample_csv(source: Path, target: Path, n: int, seed: int = 0, keep: list[int] | None = None) -> list[list[str]]:
    """``n`` random rows of a CSV (in their file order), written to ``target``; returns them."""
    header, rows = csv_rows(source)
    chosen = sorted(random.Random(seed).sample(range(len(rows)), n)) if keep is None else keep
    picked = [rows[i] for i in chosen]
    write_csv(target, header, picked)
    return picked


def sample_lines(source: Path, target: Path, n: int) -> list[str]:
    """The first ``n`` lines of a JSON-lines file (whole products: the file is grouped by product)."""
    with source.open(encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(n)]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("".join(lines), encoding="utf-8")
    return lines
