"""Read a user's table file (CSV, TSV, JSON lines, JSON, Parquet) into string columns, row by row.

Rows are numbered from 1 (header excluded) so every reject can point at the exact row.
Bytes that are not UTF-8 are kept as lone surrogates (``surrogateescape``) so that one
bad row is reported and rejected instead of aborting the whole file.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from tuwen.catalog import Reject

csv.field_size_limit(sys.maxsize)


class InputFileError(ValueError):
    """The file as a whole cannot be read (missing, empty, unknown format)."""


def _undecodable_field(names: list[str], values: list[Any]) -> str | None:
    """The first column whose text held bytes that are not UTF-8 (kept as lone surrogates)."""
    for name, value in zip(names, values, strict=False):
        if isinstance(value, str) and any("\udc80" <= ch <= "\udcff" for ch in value):
            return name
    return None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value if isinstance(value, str) else str(value)


def read_rows(path: Path, kind: str = "products") -> tuple[pd.DataFrame, list[Reject]]:
    """All rows of ``path`` as strings plus a ``_row`` column; malformed rows become rejects."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".txt"}:
        return _read_csv(path, kind, "\t" if suffix == ".tsv" else ",")
    if suffix in {".jsonl", ".ndjson"}:
        return _read_jsonl(path, kind)
    if suffix == ".json":
        return _read_json(path, kind)
    if suffix in {".parquet", ".pq"}:
        frame = pq.read_table(path).to_pandas()
        frame = frame.map(_cell) if len(frame) else frame.astype(str)
        frame.insert(0, "_row", range(1, len(frame) + 1))
        return frame, []
    raise InputFileError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv, .jsonl, .json or .parquet)")


def _read_csv(path: Path, kind: str, delimiter: str) -> tuple[pd.DataFrame, list[Reject]]:
    rejects: list[Reject] = []
    records: list[list[str]] = []
    numbers: list[int] = []
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration as error:
            raise InputFileError(f"{path}: empty file (no header row)") from error
        header = [name.strip() for name in header]
        row = 0
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                row += 1
                rejects.append(Reject(str(path), row, "*", f"malformed CSV: {error}", kind))
                continue
            row += 1
            if not values:
                continue
            if len(values) != len(header):
                rejects.append(Reject(str(path), row, "*", f"expected {len(header)} fields, found {len(values)}", kind))
                continue
            bad_field = _undecodable_field(header, values)
            if bad_field is not None:
                rejects.append(Reject(str(path), row, bad_field, "undecodable text (not valid UTF-8)", kind))
                continue
            records.append(values)
            numbers.append(row)
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame.insert(0, "_row", numbers)
    return frame, rejects


def _read_jsonl(path: Path, kind: str) -> tuple[pd.DataFrame, list[Reject]]:
    rejects: list[Reject] = []
    records: list[dict[str, Any]] = []
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        for row, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                rejects.append(Reject(str(path), row, "*", f"invalid JSON: {error.msg}", kind))
                continue
            if not isinstance(record, dict):
                rejects.append(Reject(str(path), row, "*", "a line must hold one JSON object", kind))
                continue
            cells = {k: _cell(v) for k, v in record.items()}
            bad_field = _undecodable_field(list(cells), list(cells.values()))
            if bad_field is not None:
                rejects.append(Reject(str(path), row, bad_field, "undecodable text (not valid UTF-8)", kind))
                continue
            records.append({"_row": row, **cells})
    return _frame(records), rejects


def _read_json(path: Path, kind: str) -> tuple[pd.DataFrame, list[Reject]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="surrogateescape"))
    except json.JSONDecodeError as error:
        raise InputFileError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from error
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON array of objects")
    rejects: list[Reject] = []
    records = []
    for row, record in enumerate(data, start=1):
        if isinstance(record, dict):
            records.append({"_row": row, **{k: _cell(v) for k, v in record.items()}})
        else:
            rejects.append(Reject(str(path), row, "*", "expected a JSON object", kind))
    return _frame(records), rejects


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame({"_row": []})
    return frame.fillna("").astype({c: object for c in frame.columns if c != "_row"})
