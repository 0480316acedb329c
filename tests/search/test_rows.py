"""Reading ANN candidates' rows by LanceDB row id (tuwen.search.rows) on a table of several fragments."""

from __future__ import annotations

from pathlib import Path

import lancedb
import pyarrow as pa

from tuwen.search.rows import RowReader


def _table(tmp_path: Path) -> lancedb.table.Table:
    """Three appends (three fragments, so row ids jump between them) and a few deleted rows."""
    db = lancedb.connect(str(tmp_path / "db"))
    table = None
    for part in range(3):
        rows = [{"id": f"p{part}-{i}", "title": f"title {part} {i}", "price": float(part * 100 + i),
                 "tokens": " ".join(["word"] * (i + 1))} for i in range(40)]
        data = pa.Table.from_pylist(rows)
        table = db.create_table("t", data) if table is None else table
        if part:
            table.add(data)
    table.delete("id IN ('p0-3', 'p1-7', 'p2-0')")
    return table


def test_rows_come_from_memory_and_table_by_row_id_and_by_id_without_one(tmp_path: Path) -> None:
    table = _table(tmp_path)
    everything = {r["id"]: r for r in table.to_arrow().to_pylist()}
    found = table.search().where("price >= 35 AND price < 110").select(["id"]).with_row_id(True).limit(None) \
        .to_arrow()
    row_ids = dict(zip(found.column("id").to_pylist(), found.column("_rowid").to_pylist(), strict=True))
    assert {row_id >> 32 for row_id in row_ids.values()} == {0, 1}  # two fragments: row ids are not offsets
    reader = RowReader(table, ["title", "price"])
    keys = ["p1-9", "p0-39", "p2-5", "p1-0", "gone", "p1-7"]  # p2-5: no row id given, read by id; p1-7: deleted
    rows = reader.rows(keys, row_ids, ["title", "tokens", "price"])
    assert set(rows) == {"p1-9", "p0-39", "p2-5", "p1-0"}
    for key, row in rows.items():
        assert list(row) == ["id", "title", "tokens", "price"]
        assert row == {c: everything[key][c] for c in row}
    block_ids, block = reader.block()
    assert len(block_ids) == block.num_rows == 117 and (block_ids[1:] > block_ids[:-1]).all()
    assert reader.rows(["p0-39"], row_ids, ["price"]) == {"p0-39": {"id": "p0-39", "price": 39.0}}  # memory only
    assert reader.rows([], row_ids, ["title"]) == {}
