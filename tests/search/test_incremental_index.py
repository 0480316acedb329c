"""Re-indexing at a million products must be incremental: only changed texts are segmented again, and a
previous text encoder's vocabulary table does not outlive the index that used it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tuwen.search.docs as docs
from tests.helpers import synthetic_shop
from tuwen.search import IndexSettings, build_index
from tuwen.search.common import read_meta, write_meta
from tuwen.search.vocab import update_vocabulary, vocabulary_table

SETTINGS = dict(text_encoder="tfidf", image_encoder="color_histogram")


def test_reindex_segments_only_changed_texts_and_drops_an_old_vocabulary(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ws = synthetic_shop(tmp_path, text_encoder="tfidf", n_products=60, n_users=3, seed=4, image_size=24)
    build_index(ws, IndexSettings(**SETTINGS), progress=False, learn=False)
    tokens_before = dict(zip(*[ws.table(read_meta(ws)["table"]).to_arrow().column(c).to_pylist()
                              for c in ("id", "tokens")], strict=True))
    calls: list[str] = []
    real = docs.segment
    monkeypatch.setattr(docs, "segment", lambda text: calls.append(text) or real(text))

    # an old encoder's vocabulary, recorded as the index's: the next build must drop it
    with ws.transaction("old vocabulary") as writer:
        update_vocabulary(ws, writer, ["red scarf"], "old_encoder", lambda w: np.ones((len(w), 3), np.float32), 10)
        write_meta(writer, {"settings": {**read_meta(ws), "vocabulary": vocabulary_table("old_encoder")}})
    assert ws.has_table(vocabulary_table("old_encoder"))

    again = build_index(ws, IndexSettings(**SETTINGS), progress=False, learn=False)
    assert calls == [] and again["written"] == 0  # nothing changed: nothing segmented, nothing written
    assert not ws.has_table(vocabulary_table("old_encoder"))

    products = ws.read("products")
    first = products.iloc[0]
    catalog = tmp_path / "one.csv"
    catalog.write_text(f"id,title,description\n{first['id']},Brand new 红色 title,{first['description']}\n")
    ws.ingest(catalog=catalog)
    changed = build_index(ws, IndexSettings(**SETTINGS), progress=False, learn=False)
    assert len(calls) == 1 and "Brand new" in calls[0]
    assert changed["written"] == 1
    tokens_after = dict(zip(*[ws.table(read_meta(ws)["table"]).to_arrow().column(c).to_pylist()
                             for c in ("id", "tokens")], strict=True))
    assert tokens_after[first["id"]] != tokens_before[first["id"]]
    assert {k: v for k, v in tokens_after.items() if k != first["id"]} == \
        {k: v for k, v in tokens_before.items() if k != first["id"]}
