"""Ingest at a real shop's size, in miniature: the scale generator, the streaming readers, the vectorised event
validation and the chunked, still atomic, workspace write.

The streaming path must give exactly what the whole-file path gives (rows, row numbers, rejects and their
reasons, event ids), however the file is cut into chunks: these tests cut tiny files into tiny chunks.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tuwen.ingest.readers as readers
import tuwen.ingest.stream as stream
from tuwen import Workspace
from tuwen.ingest.readers import iter_rows, read_rows
from tuwen.ingest.synthetic.scale import generate_scale_catalog
from tuwen.store.catalog import (
    INTERACTION_KINDS,
    INTERACTION_SCHEMA,
    Reject,
    RejectedInput,
    _text_rejects,
    clean_text,
    future_limit,
    parse_timestamps,
    stable_id,
)
from tuwen.store.events import Occurrences, validate_events

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def scale_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scale_catalog(tmp_path_factory.mktemp("scale") / "catalog", 2000, 500, 20_000, seed=3)


# ------------------------------------------------------------------------------------------ the generator


def test_scale_catalog_has_the_shape_of_a_shop(scale_catalog: Path) -> None:
    products = pd.read_csv(scale_catalog / "products.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(scale_catalog / "interactions.csv", dtype=str)
    manifest = json.loads((scale_catalog / "synthetic.json").read_text())
    assert len(products) == 2000 and products["id"].is_unique
    assert len(events) == 20_000 == manifest["counts"]["interactions"]
    assert events["user_id"].nunique() == 500  # every shopper buys at least once
    assert set(events["product_id"]) <= set(products["id"])
    # power-law popularity: the top 1% of products take far more than 1% of purchases
    counts = events["product_id"].value_counts().to_numpy()
    assert counts[:20].sum() / counts.sum() > 0.05
    # repeat purchases exist, but most purchases are of a new article
    repeat = events.duplicated(["user_id", "product_id"]).mean()
    assert 0.05 < repeat < 0.6
    # weekly seasonality: the busiest weekday clearly above the quietest
    weekday = pd.to_datetime(events["timestamp"]).dt.day_of_week.value_counts(normalize=True)
    assert weekday.max() / weekday.min() > 1.1
    # bilingual titles, product types and colours as columns
    chinese = products["title"].map(lambda t: bool(CJK.search(t))).mean()
    assert 0.2 < chinese < 0.4
    assert products["product_type"].nunique() > 10 and products["colour"].nunique() == 8
    assert (products["image"] == "").all()  # no photos unless asked for


def test_scale_catalog_is_reused_and_deterministic(scale_catalog: Path, tmp_path: Path) -> None:
    stamp = (scale_catalog / "interactions.csv").stat().st_mtime_ns
    assert generate_scale_catalog(scale_catalog, 2000, 500, 20_000, seed=3) == scale_catalog
    assert (scale_catalog / "interactions.csv").stat().st_mtime_ns == stamp  # reused, not rewritten
    again = generate_scale_catalog(tmp_path / "again", 2000, 500, 20_000, seed=3)
    for name in ("products.csv", "interactions.csv"):
        assert (again / name).read_bytes() == (scale_catalog / name).read_bytes()
    photos = generate_scale_catalog(tmp_path / "photos", 50, 10, 100, seed=3, photos=4)
    assert len(list((photos / "images").glob("*.png"))) == 4
    with pytest.raises(ValueError, match="products"):
        generate_scale_catalog(tmp_path / "bad", 0, 10, 100)


# ----------------------------------------------------------------------------------------- the readers

CSV_CASES = {
    "clean.csv": "a,b\n1,2\n3,4\n",
    "crlf.csv": "a,b\r\n1,2\r\n3,4\r\n",
    "bom.csv": "\ufeffa,b\n1,2\n3,4",
    "blank.csv": "a,b\n1,2\n\n3,4\n5\n6,7\n",
    "quoted.csv": 'a,b\n1,"x\ny"\n3,"4,5"\n',
    "lone_cr.csv": "a,b\n1,2\r3,4\n",
    "header_only.csv": '"a","b"\n',
    "wide.csv": "a,b\n1,2,3\n4,5\n",
}


def _chunked(path: Path, chunk_rows: int) -> tuple[list[list[str]], list[str]]:
    chunks = list(iter_rows(path, "interactions", chunk_rows))
    frame = pd.concat([c.frame() for c in chunks], ignore_index=True)
    return frame.astype(str).values.tolist(), [str(r) for c in chunks for r in c.rejects]


@pytest.mark.parametrize("name", sorted(CSV_CASES))
def test_streamed_csv_rows_and_rejects_equal_the_whole_file_reader(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(CSV_CASES[name], encoding="utf-8", newline="")
    whole, rejects = read_rows(path, "interactions")
    for chunk_rows in (1, 2, 1000):
        assert _chunked(path, chunk_rows) == (whole.astype(str).values.tolist(), [str(r) for r in rejects])


@pytest.mark.parametrize("odd", ["", "x", None])
def test_an_odd_line_mid_file_hands_the_rest_to_the_exact_reader(odd: str | None, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Arrow reads the clean start in small blocks; from the block with the odd line on, the csv module does."""
    monkeypatch.setattr(readers, "_FAST_BLOCK_BYTES", 32)
    lines = [f"u{i},p{i}".encode() for i in range(200)]
    lines.insert(150, b"z,\xff" if odd is None else odd.encode())  # an empty line, a short row, bad UTF-8
    path = tmp_path / "events.csv"
    path.write_bytes(b"a,b\n" + b"\n".join(lines) + b"\n")
    whole, rejects = read_rows(path, "interactions")
    assert len(rejects) == (0 if odd == "" else 1)
    for chunk_rows in (7, 1000):
        kinds = {type(c.rows).__name__ for c in iter_rows(path, "interactions", chunk_rows)}
        # an empty line is seen before reading (the exact reader takes the whole file); the others mid-file
        assert kinds == ({"DataFrame"} if odd == "" else {"Table", "DataFrame"})
        assert _chunked(path, chunk_rows) == (whole.astype(str).values.tolist(), [str(r) for r in rejects])


def test_jsonl_and_parquet_stream_in_chunks(tmp_path: Path) -> None:
    jsonl = tmp_path / "e.jsonl"
    jsonl.write_text("\n".join([json.dumps({"a": i, "b": str(i)}) for i in range(5)] + ["{bad", ""]) + "\n")
    whole, rejects = read_rows(jsonl, "interactions")
    assert _chunked(jsonl, 2) == (whole.astype(str).values.tolist(), [str(r) for r in rejects])
    parquet = tmp_path / "e.parquet"
    pd.DataFrame({"a": range(5), "b": list("vwxyz")}).to_parquet(parquet)
    whole, _ = read_rows(parquet)
    assert _chunked(parquet, 2)[0] == whole.astype(str).values.tolist()


# --------------------------------------------------------------------------------- vectorised validation

HOSTILE = [
    ("u1", "p1", "2024-01-01T10:00:00Z", "purchase", "1"),
    ("u1", "p1", "2024-01-01T10:00:00Z", "purchase", "1"),  # a second unit: a second event
    ("u1", "p1", "2024-01-01T10:00:00Z", "PURCHASE", ""),
    (" u2  x", "p\t2", "2024-01-01", "view", "2.5"),
    ("", "p3", "2024-01-01", "view", "1"),
    ("u4", "", "2024-01-01", "view", "1"),
    ("u5", "p5", "", "view", "1"),
    ("u6", "p6", "not a date", "view", "1"),
    ("u7", "p7", "2999-01-01", "view", "1"),
    ("u8", "p8", "1700000000", "cart", "1"),
    ("u9", "p9", "2024-01-01 12:00", "click", "1"),
    ("u10", "p10", "2024-01-01", "buy", "1"),
    ("u11", "p11", "2024-01-01", "", "abc"),
    ("u12", "p12", "2024-01-01", "view", "-1"),
    ("u13", "p13", "2024-01-01", "view", "inf"),
    ("u14", "p14", "2024-01-01", "view", "1e2"),
    ("u15" * 200, "p15", "2024-01-01", "view", "1"),
    ("u16", "p\x0016", "2024-01-01", "view", "1"),
    ("u17", "p17", "2024-01-01T10:00:00+08:00", "view", "1."),
    ("u18", "p18", "20240101", "view", "1"),
    ("u19", "p19", "2024-02-30", "view", "1"),
    ("u21", "p21", "Jan 5 2024", "view", " 3 "),
    ("u1", "p1", "2024-01-01T10:00:00Z", "purchase", "1"),  # a third unit, far from the first two
]


# ------------------------------------------------------------------- the reference the fast path must equal


def _reject_where(frame: pd.DataFrame, mask: pd.Series, field: str, reasons: Iterable[str], file: str,
                  kind: str, rejects: dict[int, Reject]) -> pd.DataFrame:
    """Record a reject for every row under ``mask`` and return the rows that remain."""
    for row, reason in zip(frame.loc[mask, "_row"], reasons, strict=True):
        rejects.setdefault(int(row), Reject(file, int(row), field, reason, kind))
    return frame[~mask]


def validate_interactions(  # the reference: every cell in Python
    raw: pd.DataFrame, file: str, default_kind: str = "purchase"
) -> tuple[pd.DataFrame, list[Reject]]:
    """The row-by-row rules tuwen validated events with before :mod:`tuwen.store.events` (kept here, not in the
    package, as the reference the vectorised path must equal). Mapped rows → canonical interactions.

    Interactions are kept whether or not their product is in the catalog: a purchase of an
    item without text or photo is still a real purchase, and recommenders must use it.
    Identical events (same shopper, product, time, kind) are numbered so that buying two
    units stays two rows, while re-ingesting the same file upserts the same ids.
    """
    kind = "interactions"
    rejects = _text_rejects(raw, ["user_id", "product_id", "timestamp", "kind", "value"], file, kind)
    frame = raw[~raw["_row"].isin(rejects)].copy()
    for column in ("user_id", "product_id", "timestamp", "kind", "value"):
        frame[column] = frame[column].map(clean_text) if column in frame else ""
    for column in ("user_id", "product_id", "timestamp"):
        empty = frame[column] == ""
        frame = _reject_where(frame, empty, column, [f"missing {column.replace('_', ' ')}"] * int(empty.sum()),
                              file, kind, rejects)
    stamps = parse_timestamps(frame["timestamp"])
    frame = _reject_where(frame, stamps.isna(), "timestamp",
                          [f"bad timestamp {v[:40]!r}" for v in frame.loc[stamps.isna(), "timestamp"]], file, kind,
                          rejects)
    stamps = stamps[stamps.notna()]
    late = stamps > future_limit()
    frame = _reject_where(frame, late, "timestamp", [f"timestamp {t:%Y-%m-%d %H:%M} is in the future (later than now "
                                                     "+ 1 day)" for t in stamps[late]], file, kind, rejects)
    frame["timestamp"] = stamps[~late]
    frame["kind"] = frame["kind"].str.lower().replace("", default_kind)
    unknown = ~frame["kind"].isin(INTERACTION_KINDS)
    frame = _reject_where(frame, unknown, "kind", [f"unknown kind {k!r} (use one of {', '.join(INTERACTION_KINDS)})"
                                                   for k in frame.loc[unknown, "kind"]], file, kind, rejects)
    values = pd.to_numeric(frame["value"].replace("", "1"), errors="coerce")
    frame = _reject_where(frame, values.isna(), "value",
                          [f"not a number: {v[:20]!r}" for v in frame.loc[values.isna(), "value"]], file, kind, rejects)
    values = values[values.notna()]
    bad_value = ~values.map(math.isfinite) | (values < 0)
    frame = _reject_where(frame, bad_value, "value", [f"value must be a finite number ≥ 0, not {v}"
                                                      for v in values[bad_value]], file, kind, rejects)
    frame["value"] = values[~bad_value].astype(float)
    key = [frame["user_id"], frame["product_id"], frame["timestamp"].astype(str), frame["kind"]]
    occurrence = frame.groupby(key, sort=False).cumcount()
    frame["id"] = [stable_id(u, p, t, k, n) for u, p, t, k, n in zip(*key, occurrence, strict=True)]
    out = frame[INTERACTION_SCHEMA.names].reset_index(drop=True)
    return out, sorted(rejects.values(), key=lambda r: r.row)


def _hostile() -> pd.DataFrame:
    frame = pd.DataFrame(HOSTILE, columns=["user_id", "product_id", "timestamp", "kind", "value"], dtype=object)
    frame.insert(0, "_row", range(1, len(frame) + 1))
    return frame


def test_vectorised_events_equal_the_row_by_row_rules() -> None:
    """Same good rows (ids included), same rejects with the same field and reason, as validate_interactions."""
    old, old_rejects = validate_interactions(_hostile(), "e.csv")
    new, new_rejects = validate_events(_hostile(), "e.csv")
    assert [str(r) for r in new_rejects] == [str(r) for r in old_rejects]
    assert len(old_rejects) == 12
    new = new.to_pandas()
    for column in old.columns:
        assert new[column].astype(str).tolist() == old[column].astype(str).tolist(), column
    assert new["id"].is_unique


def test_repeated_events_are_numbered_across_chunks() -> None:
    whole, _ = validate_events(_hostile(), "e.csv")
    occurrences = Occurrences()
    parts = [validate_events(_hostile().iloc[lo:lo + 2], "e.csv", occurrences=occurrences)[0]
             for lo in range(0, len(HOSTILE), 2)]
    assert [i for part in parts for i in part["id"].to_pylist()] == whole["id"].to_pylist()


def test_occurrences_count_keys_over_many_chunks() -> None:
    occurrences = Occurrences()
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 50, size=1000).astype(np.uint64)
    got = np.concatenate([occurrences.number(keys[lo:lo + 64]) for lo in range(0, 1000, 64)])
    expected = pd.Series(keys).groupby(keys).cumcount().to_numpy()
    assert (got == expected).all()


# ---------------------------------------------------------------------------- streamed, atomic ingest


def _events_file(tmp_path: Path, rows: int = 600, bad_every: int = 0) -> Path:
    lines = ["user_id,product_id,timestamp,kind,value"]
    for i in range(rows):
        stamp = "not-a-date" if bad_every and i % bad_every == bad_every - 1 else f"2024-01-{1 + i % 28:02d}"
        lines.append(f"u{i % 37},p{i % 53},{stamp},purchase,1")
    path = tmp_path / "events.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_streamed_ingest_equals_one_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _events_file(tmp_path, bad_every=97)
    one = Workspace(tmp_path / "one")
    batch_one = one.ingest(interactions=events)
    monkeypatch.setattr(stream, "CHUNK_ROWS", 50)
    many = Workspace(tmp_path / "many")
    batch_many = many.ingest(interactions=events)
    assert batch_many.summary() == batch_one.summary()
    assert batch_many.summary()["interactions"] == 600 - 6
    assert [str(r) for r in batch_many.rejects] == [str(r) for r in batch_one.rejects]
    assert batch_many.rejects[0].row == 97 and batch_many.rejects[0].field == "timestamp"
    a = one.read("interactions").sort_values("id").reset_index(drop=True)
    b = many.read("interactions").sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert many.read("rejects")["row"].tolist() == [r.row for r in batch_many.rejects]
    # re-ingesting the same file upserts: same ids, no duplicates
    many.ingest(interactions=events)
    assert many.count("interactions") == 600 - 6


def test_a_failure_mid_stream_leaves_the_workspace_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = _events_file(tmp_path)
    ws = Workspace(tmp_path / "ws")
    ws.ingest(interactions=events)
    before = ws.read("interactions").sort_values("id").reset_index(drop=True)
    monkeypatch.setattr(stream, "CHUNK_ROWS", 50)
    calls = {"n": 0}
    real = stream.validate_events

    def failing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # Ctrl-C after three chunks were written
        return real(*args, **kwargs)

    monkeypatch.setattr(stream, "validate_events", failing)
    other = tmp_path / "other.csv"
    header, *rows = events.read_text().splitlines()
    other.write_text("\n".join([header, *(row.replace("u", "v", 1) for row in rows)]) + "\n")
    with pytest.raises(KeyboardInterrupt):
        ws.ingest(interactions=other)
    reopened = Workspace(tmp_path / "ws")
    pd.testing.assert_frame_equal(reopened.read("interactions").sort_values("id").reset_index(drop=True), before)


def test_strict_rejects_a_bad_streamed_event_and_writes_nothing(tmp_path: Path) -> None:
    events = _events_file(tmp_path, rows=100, bad_every=40)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(RejectedInput, match="row 40: timestamp"):
        ws.ingest(interactions=events, strict=True)
    assert ws.count("interactions") == 0


def test_forgotten_shoppers_stay_out_of_streamed_events(tmp_path: Path) -> None:
    events = _events_file(tmp_path, rows=100)
    ws = Workspace(tmp_path / "ws")
    ws.ingest(interactions=events)
    ws.forget("u3")
    batch = ws.ingest(interactions=events)
    assert batch.forgotten == len([i for i in range(100) if i % 37 == 3])
    assert "u3" not in set(ws.read("interactions")["user_id"])


def test_the_cli_generates_and_ingests_a_scale_catalog(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tuwen.cli.main import app

    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "ws"), str(tmp_path / "cat"), "--preset", "synthetic",
                                      "--products", "300", "--shoppers", "40", "--purchases", "2000"])
    assert result.exit_code == 0, result.output
    ws = Workspace(tmp_path / "ws")
    assert ws.count("products") == 300 and ws.count("interactions") == 2000
