"""Hostile and broken input at ingest: one bad row never costs the good ones, and every refusal names
file, row, field and reason. Also what ingest keeps promising over time: forgotten shoppers stay
forgotten, a second writer waits its turn, and old table versions do not pile up."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.helpers import photo, write_csv
from tuwen import Workspace
from tuwen.cli.main import app
from tuwen.ingest import ColumnMap, load_generic
from tuwen.ingest.generic import load_interactions, load_reviews
from tuwen.ingest.readers import MAX_RECORD_CHARS, InputFileError
from tuwen.ingest.synthetic import generate_catalog
from tuwen.store.catalog import FIELD_LIMITS, NoRowsLanded
from tuwen.store.workspace import WorkspaceError

PRODUCT_MAP = ColumnMap.parse(["id=sku", "title=name", "image=img", "price=cost"], ("id", "title", "image", "price"))
EVENT_MAP = ColumnMap.parse(["user_id=who", "product_id=what", "timestamp=when", "value=value"],
                            ("user_id", "product_id", "timestamp", "value"))
REVIEW_MAP = ColumnMap.parse(["product_id=asin", "user_id=who", "rating=stars", "text=words"],
                             ("product_id", "user_id", "rating", "text"))  # a "timestamp" column maps itself


def _reasons(rejects) -> dict[int, tuple[str, str]]:
    return {r.row: (r.field, r.reason) for r in rejects}


def _csv(tmp_path: Path, text: str, name: str = "products.csv", encoding: str = "utf-8") -> Path:
    photo(tmp_path / "img" / "ok.png")
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------------------------- 8: bad JSON lines


def test_each_unparseable_json_line_is_rejected_alone(tmp_path: Path) -> None:
    file = tmp_path / "reviews.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    file.write_text("\n".join([
        '{"asin": "p1", "who": "u1", "stars": 5, "words": "good"}',
        '{"asin": "p2", "who": "u2", "stars": 4, "words": ' + deep + "}",
        '{"asin": "p3", "who": "u3", "stars": ' + "9" * 5_000 + ', "words": "x"}',
        '{"asin": "p4", "who": "u4", "stars": 3, "words": "bad \\ud800 escape"}',
        '{"asin": "p5", "who": "u5", "stars": 4, "words": {"a": [' + "1." + "5" * 5_000 + "]}}",
        '{"asin": "p6", "who": "u6", "stars": 4, "words": "fine too"}',
    ]) + "\n")
    frame, rejects = load_reviews(file, REVIEW_MAP)
    reasons = _reasons(rejects)
    assert reasons[2] == ("*", "invalid JSON: nested too deeply")
    assert reasons[3] == ("stars", "number with 5,000 characters (limit 100)")
    assert reasons[4] == ("words", "lone surrogate escape (not valid Unicode text)")
    assert reasons[5][0] == "words" and "number with 5,002 characters" in reasons[5][1]
    assert all(r.file == str(file) for r in rejects)
    assert sorted(frame["product_id"]) == ["p1", "p6"]


def test_a_json_line_past_the_length_cap_is_skipped_without_harm(tmp_path: Path) -> None:
    file = tmp_path / "reviews.jsonl"
    huge = '{"asin": "p2", "who": "u2", "stars": 4, "words": "' + "w" * (MAX_RECORD_CHARS + 10) + '"}'
    file.write_text('{"asin": "p1", "who": "u1", "stars": 5, "words": "ok"}\n' + huge + "\n"
                    '{"asin": "p3", "who": "u3", "stars": 5, "words": "ok"}\n')
    frame, rejects = load_reviews(file, REVIEW_MAP)
    assert _reasons(rejects) == {2: ("*", f"line longer than {MAX_RECORD_CHARS:,} characters (skipped)")}
    assert sorted(frame["product_id"]) == ["p1", "p3"]


# ------------------------------------------------------------------------------------ 9: field-size caps


def test_fields_past_their_length_limit_are_rejected(tmp_path: Path) -> None:
    rows = [
        ["a1", "Fine", "img/ok.png", "1", "blue"],
        ["x" * (FIELD_LIMITS["id"] + 1), "Long id", "img/ok.png", "1", "blue"],
        ["a3", "t" * (FIELD_LIMITS["title"] + 1), "img/ok.png", "1", "blue"],
        ["a4", "Huge attribute", "img/ok.png", "1", "b" * (FIELD_LIMITS["attributes"] + 1)],
        ["a5", "t" * FIELD_LIMITS["title"], "img/ok.png", "1", "blue"],  # exactly at the limit: kept
    ]
    photo(tmp_path / "img" / "ok.png")
    file = write_csv(tmp_path / "products.csv", ["sku", "name", "img", "cost", "colour"], rows)
    batch = load_generic(file, PRODUCT_MAP)
    reasons = _reasons(batch.rejects)
    assert reasons[2] == ("id", f"too long: {FIELD_LIMITS['id'] + 1:,} characters (limit {FIELD_LIMITS['id']:,})")
    assert reasons[3] == ("title", "too long: 1,001 characters (limit 1,000)")
    assert reasons[4][0] == "attributes" and "limit 20,000" in reasons[4][1]
    assert sorted(batch.products["id"]) == ["a1", "a5"]

    reviews = tmp_path / "reviews.jsonl"
    reviews.write_text(json.dumps({"asin": "p1", "who": "u1", "stars": 5, "words": "w" * 20_001}) + "\n")
    frame, rejects = load_reviews(reviews, REVIEW_MAP)
    assert frame.empty and _reasons(rejects) == {1: ("text", "too long: 20,001 characters (limit 20,000)")}


# --------------------------------------------------------------------------- 10: future dates, bad values


def test_future_timestamps_and_bad_event_values_are_rejected(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "events.csv", ["who", "what", "when", "value"], [
        ["u1", "p1", "2024-01-02", "1"],
        ["u1", "p1", "3000-01-01", "1"],
        ["u1", "p1", "9999-12-31", "1"],
        ["u1", "p1", "32503680000", "1"],  # unix seconds of the year 3000
        ["u1", "p2", "2024-01-03", "inf"],
        ["u1", "p3", "2024-01-03", "-2"],
        ["u1", "p4", "2024-01-03", "0"],
        ["u1", "p5", (pd.Timestamp.now(tz="UTC") + pd.Timedelta(hours=2)).isoformat(), "1"],  # clock skew: kept
    ])
    frame, rejects = load_interactions(file, EVENT_MAP)
    reasons = _reasons(rejects)
    assert reasons[2] == ("timestamp", "timestamp 3000-01-01 00:00 is in the future (later than now + 1 day)")
    assert reasons[3][0] == "timestamp" and "9999-12-31" in reasons[3][1]
    assert reasons[4][0] == "timestamp" and "future" in reasons[4][1]
    assert reasons[5] == ("value", "value must be a finite number ≥ 0, not inf")
    assert reasons[6] == ("value", "value must be a finite number ≥ 0, not -2.0")
    assert sorted(frame["product_id"]) == ["p1", "p4", "p5"]

    reviews = tmp_path / "reviews.jsonl"
    lines = [{"asin": "p1", "who": "u1", "stars": 5, "words": "a", "timestamp": "2999-05-01"},
             {"asin": "p2", "who": "u1", "stars": 5, "words": "b", "timestamp": "2020-05-01"}]
    reviews.write_text("".join(json.dumps(line) + "\n" for line in lines))
    frame, rejects = load_reviews(reviews, REVIEW_MAP)
    assert [r.field for r in rejects] == ["timestamp"] and list(frame["product_id"]) == ["p2"]


# ----------------------------------------------------------------------------------------------- 11: CSV


def test_an_unclosed_quote_rejects_its_row_and_the_rows_it_swallowed_still_land(tmp_path: Path) -> None:
    file = _csv(tmp_path, "sku,name,img,cost\n"
                          "a1,Good,img/ok.png,1\n"
                          'a2,"Broken title,img/ok.png,2\n'
                          "a3,Next good,img/ok.png,3\n"
                          "a4,Last good,img/ok.png,4\n")
    batch = load_generic(file, PRODUCT_MAP)
    reasons = _reasons(batch.rejects)
    assert list(reasons) == [2] and reasons[2][0] == "*"
    assert reasons[2][1].startswith("unbalanced quote: the quoted field opened on line 3 runs to line 5")
    assert sorted(batch.products["id"]) == ["a1", "a3", "a4"]
    assert batch.products.set_index("id").loc["a3", "title"] == "Next good"


def test_a_stray_quote_that_closes_later_is_caught_and_a_real_multiline_field_is_not(tmp_path: Path) -> None:
    file = _csv(tmp_path, "sku,name,img,cost\n"
                          'b1,"Broken,img/ok.png,1\n'
                          'b2,Fine",img/ok.png,2\n'
                          'b3,"A title, on\ntwo lines",img/ok.png,3\n'
                          "b4,After,img/ok.png,4\n")
    batch = load_generic(file, PRODUCT_MAP)
    reasons = _reasons(batch.rejects)
    assert list(reasons) == [1] and "each later line is a complete row" in reasons[1][1]
    kept = batch.products.set_index("id")
    assert sorted(kept.index) == ["b2", "b3", "b4"]
    assert kept.loc["b3", "title"] == "A title, on two lines"  # a quoted line break is legal CSV


def test_csv_file_level_problems_are_named(tmp_path: Path) -> None:
    duplicate = _csv(tmp_path, "sku,name,name,cost\na1,x,y,1\n", "dup.csv")
    with pytest.raises(InputFileError, match=r"dup\.csv: column 'name' appears twice in the header \(columns 2 and 3"):
        load_generic(duplicate, PRODUCT_MAP)
    no_bom = _csv(tmp_path, "sku,name,img,cost\na1,x,img/ok.png,1\n", "le.csv", "utf-16-le")
    with pytest.raises(InputFileError, match=r"le\.csv: looks like UTF-16"):
        load_generic(no_bom, PRODUCT_MAP)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match=r"pipe\.csv: not a regular file"):
        load_generic(fifo, PRODUCT_MAP)
    garbage = tmp_path / "junk.parquet"
    garbage.write_bytes(b"not parquet at all")
    with pytest.raises(InputFileError, match=r"junk\.parquet: cannot read it as Parquet"):
        load_generic(garbage, PRODUCT_MAP)


def test_utf16_files_are_decoded_and_nul_bytes_reject_their_row(tmp_path: Path) -> None:
    text = "sku,name,img,cost\nu1,红色连衣裙,img/ok.png,1\nu2,Mug,img/ok.png,2\n"
    for encoding in ("utf-16", "utf-8-sig"):
        batch = load_generic(_csv(tmp_path, text, f"{encoding}.csv", encoding), PRODUCT_MAP)
        assert list(batch.products["title"]) == ["红色连衣裙", "Mug"] and not batch.rejects, encoding
    nul = _csv(tmp_path, "sku,name,img,cost\nn\x001,Id with NUL,img/ok.png,1\nn2,Ti\x00tle,img/ok.png,2\n"
                         "n3,Clean,img/ok.png,3\n", "nul.csv")
    batch = load_generic(nul, PRODUCT_MAP)
    assert _reasons(batch.rejects) == {1: ("sku", "contains a NUL character"), 2: ("name", "contains a NUL character")}
    assert list(batch.products["id"]) == ["n3"]


def test_a_photo_that_is_a_fifo_is_named_as_such(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.png")
    file = write_csv(tmp_path / "products.csv", ["sku", "name", "img", "cost"], [["f1", "Pipe", "pipe.png", "1"]])
    batch = load_generic(file, PRODUCT_MAP)
    assert _reasons(batch.rejects) == {1: ("image", "pipe.png: not a regular file (a FIFO, device or folder)")}


# --------------------------------------------------------------------------------- 12: nothing landed


def test_an_ingest_where_every_row_is_rejected_fails_loudly(tmp_path: Path) -> None:
    file = write_csv(tmp_path / "products.csv", ["sku", "name", "img", "cost"], [["", "No id", "", "1"],
                                                                                  ["b", "Bad price", "", "x"]])
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(NoRowsLanded, match="no rows landed: all 2 input row"):
        ws.ingest(catalog=file, mapping=["id=sku", "title=name", "image=img", "price=cost"])
    assert ws.count("products") == 0
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "ws"), "--catalog", str(file), "--map", "id=sku",
                                      "--map", "title=name", "--map", "price=cost"])
    assert result.exit_code == 2 and "no rows landed" in result.output and "row 2: price" in result.output
    result = CliRunner().invoke(app, ["embed", str(tmp_path / "ws"), "--image-encoder", "none", "--text-encoder",
                                      "tfidf"])
    assert result.exit_code == 2 and "holds no products" in result.output and "empty corpus" not in result.output


# ---------------------------------------------------------------------------- 7: forgotten stay forgotten


def test_a_forgotten_shopper_stays_forgotten_when_old_files_are_ingested_again(tmp_path: Path) -> None:
    catalog = generate_catalog(tmp_path / "catalog", n_products=40, n_users=8, image_size=32)
    ws = Workspace(tmp_path / "ws")
    ws.ingest(preset="synthetic", path=catalog)
    events = ws.read("interactions")
    reviews = ws.read("reviews")
    user = events["user_id"].value_counts().index[0]
    theirs = int((events["user_id"] == user).sum() + (reviews["user_id"] == user).sum())
    ws.forget(user)

    batch = ws.ingest(preset="synthetic", path=catalog)

    assert batch.forgotten == theirs and batch.summary()["forgotten"] == theirs
    fresh = Workspace(tmp_path / "ws", create=False)
    assert not (fresh.read("interactions")["user_id"] == user).any()
    assert not (fresh.read("reviews")["user_id"] == user).any()
    assert fresh.count("interactions") == len(events) - int((events["user_id"] == user).sum())
    manifest = (tmp_path / "ws" / "tuwen.json").read_text()
    assert user not in manifest and len(fresh.forgotten_hashes()) == 1  # a keyed hash, never the raw id
    result = CliRunner().invoke(app, ["ingest", str(tmp_path / "ws"), "--preset", "synthetic", str(catalog)])
    assert result.exit_code == 0 and f"{theirs} row(s) of forgotten shoppers dropped" in result.output


# ------------------------------------------------------------------------- 13: lock wait, version clean-up


def _hold_lock(path: Path, seconds: float, held: threading.Event) -> None:
    with (path / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        held.set()
        time.sleep(seconds)


def test_a_second_writer_waits_for_the_first_then_succeeds(tmp_path: Path, capsys) -> None:
    photo(tmp_path / "img" / "ok.png")
    file = write_csv(tmp_path / "products.csv", ["sku", "name", "img", "cost"], [["a1", "Mug", "img/ok.png", "1"]])
    ws = Workspace(tmp_path / "ws", lock_timeout=30)
    held = threading.Event()
    other = threading.Thread(target=_hold_lock, args=(ws.path, 1.0, held))
    other.start()
    held.wait(5)
    start = time.monotonic()
    ws.ingest(catalog=file, mapping=["id=sku", "title=name", "image=img", "price=cost"])
    waited = time.monotonic() - start
    other.join()
    assert waited >= 0.5 and ws.count("products") == 1
    assert f"waiting for another tuwen process writing to {ws.path}" in capsys.readouterr().err

    impatient = Workspace(tmp_path / "ws", lock_timeout=0.3)
    held.clear()
    other = threading.Thread(target=_hold_lock, args=(ws.path, 1.5, held))
    other.start()
    held.wait(5)
    with pytest.raises(WorkspaceError, match="still writing to this workspace after 0.3 s"):
        impatient.ingest(catalog=file, mapping=["id=sku", "title=name", "image=img", "price=cost"])
    other.join()


def test_re_ingesting_keeps_the_table_folders_bounded(tmp_path: Path) -> None:
    catalog = generate_catalog(tmp_path / "catalog", n_products=60, n_users=6, image_size=32)
    ws = Workspace(tmp_path / "ws", keep_versions_s=0)
    folder = tmp_path / "ws" / "db" / "products.lance"
    for _ in range(7):
        ws.ingest(preset="synthetic", path=catalog)
        table = ws.db.open_table("products")
        assert len(table.list_versions()) <= 3
        assert len(list((folder / "data").iterdir())) <= 3
        assert table.version == ws.manifest["tables"]["products"]  # the committed version is the one kept
    fresh = Workspace(tmp_path / "ws", create=False)
    assert fresh.count("products") == 60 and fresh.count("interactions") == ws.count("interactions")
    live = ws.db.open_table("products").stats()["total_bytes"]
    assert sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) < 3 * live + 100_000
