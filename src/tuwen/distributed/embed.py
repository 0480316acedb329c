"""``tuwen embed WS --ray [ADDRESS]``: the same encoders as a pool of Ray Data actors, the same vector tables.

Why the driver still writes: the workspace's vector tables are content-hash caches committed chunk by chunk through
the manifest transaction (:mod:`tuwen.encoders.cache`). Workers only turn inputs into vectors; the driver streams
every (product, encoder, field) item through the actors and commits the vectors in chunks as they come back, under
the same hashes as a local run. So a cluster run is resumable exactly like a local one, a local run afterwards finds
everything cached, and workers never open LanceDB (whose handles must not cross a fork).

Why one pipeline for every encoder and field: each Ray Data pipeline starts its own pool of actors, and starting a
worker (Python, NumPy, the model) costs seconds; one pool that holds every encoder pays it once. Photos are hashed
by the actors, next to the files, so the driver never reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tuwen.distributed.cluster import actor_pool, quiet_data_context, ray_session
from tuwen.encoders import Encoder, encoder_for, encoder_names, get_encoder
from tuwen.encoders.cache import COMMIT_ROWS, _digest, file_digest, product_texts, table_name, vector_schema
from tuwen.store.workspace import Workspace
from tuwen.util.progress import progress_bar

BATCH = 256  # items per actor call


class EncodeBatch:
    """A Ray Data actor holding every encoder of the run; each batch may mix encoders and fields.

    A row is (``id``, ``table``, ``encoder`` index, ``input``, ``content`` hash, ``cached`` hash). Photo rows come
    with an empty ``content``: the actor hashes the file. Rows whose final hash equals ``cached`` are dropped
    (already embedded); the others come back as (``id``, ``table``, ``hash``, ``vector``).
    """

    def __init__(self, specs: list[str | Encoder], threads: int) -> None:
        # a fitted encoder (TF-IDF) arrives whole from the driver; any other is built here by name
        self.encoders = [get_encoder(spec) if isinstance(spec, str) else spec for spec in specs]
        for encoder in self.encoders:
            if hasattr(encoder, "threads"):  # the actor's CPU share, not every core of the node
                encoder.threads = threads

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pydict()
        content = [c or file_digest(path) for c, path in zip(rows["content"], rows["input"], strict=True)]
        which = np.asarray(rows["encoder"], dtype=np.int64)
        hashes = [_digest(c, self.encoders[e].name, self.encoders[e].version) for c, e in zip(content, which,
                                                                                                strict=True)]
        out: dict[str, list[Any]] = {"id": [], "table": [], "hash": [], "vector": []}
        for index in np.unique(which):
            encoder = self.encoders[int(index)]
            todo = [i for i in np.flatnonzero(which == index) if hashes[i] != rows["cached"][i]]
            if not todo:
                continue
            vectors = np.asarray(encoder.encode([rows["input"][i] for i in todo]), dtype=np.float32)
            out["id"] += [rows["id"][i] for i in todo]
            out["table"] += [rows["table"][i] for i in todo]
            out["hash"] += [hashes[i] for i in todo]
            out["vector"] += list(vectors.reshape(len(todo), encoder.dim))
        # plain float lists, not Ray's tensor type: the driver casts them to the table's fixed-size vectors
        return pa.table({"id": pa.array(out["id"], pa.string()), "table": pa.array(out["table"], pa.string()),
                         "hash": pa.array(out["hash"], pa.string()),
                         "vector": pa.array(out["vector"], pa.list_(pa.float32()))})


def _cached(workspace: Workspace, name: str) -> dict[str, str]:
    if not workspace.has_table(name):
        return {}
    frame = workspace.read(name, ["id", "hash"])
    return dict(zip(frame["id"], frame["hash"], strict=True))


def _items(workspace: Workspace, products: pd.DataFrame, encoders: list[Encoder],
           text_fields: Sequence[str]) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Every (product, encoder, field) to consider, with its cached hash; and each vector table's meta."""
    frames, tables = [], {}
    with_image = products[products["has_image"]]
    for index, encoder in enumerate(encoders):
        fields = ["image"] if encoder.modality == "image" else list(text_fields)
        for field in fields:
            name = table_name(encoder.name, field)
            tables[name] = {"encoder": encoder.name, "field": field, "dim": encoder.dim, "modality": encoder.modality}
            if field == "image":
                ids, inputs = list(with_image["id"]), [p[0] for p in with_image["image_paths"]]
                content = [""] * len(ids)  # hashed by the actors, where the photos are read
            else:
                texts = product_texts(workspace, products, field)
                keep = texts != ""
                ids, inputs = list(products.loc[keep, "id"]), list(texts[keep])
                content = [_digest(t) for t in inputs]
            cached = _cached(workspace, name)
            if field != "image":  # text hashes are known here: send only what changed
                final = [_digest(c, encoder.name, encoder.version) for c in content]
                todo = [i for i, (item, h) in enumerate(zip(ids, final, strict=True)) if cached.get(item) != h]
                ids, inputs, content = [ids[i] for i in todo], [inputs[i] for i in todo], [content[i] for i in todo]
            tables[name]["total"] = len(with_image) if field == "image" else int(keep.sum())
            frames.append(pd.DataFrame({"id": ids, "table": name, "encoder": index, "input": inputs,
                                        "content": content, "cached": [cached.get(i, "") for i in ids]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), tables


def _commit(workspace: Workspace, done: pa.Table, tables: dict[str, dict[str, Any]]) -> None:
    """One chunk of vectors, every table it touches committed together."""
    with workspace.transaction("embed (ray)") as writer:
        for name in sorted(set(done.column("table").to_pylist())):
            rows = done.filter(pc.equal(done.column("table"), name))
            dim = tables[name]["dim"]
            vectors = rows.column("vector").combine_chunks().flatten().to_numpy().reshape(rows.num_rows, dim)
            writer.upsert(name, pd.DataFrame({"id": rows.column("id").to_pylist(),
                                              "hash": rows.column("hash").to_pylist(), "vector": list(vectors)}),
                          schema=vector_schema(dim))
            writer.meta[name] = {k: v for k, v in tables[name].items() if k != "total"}


def embed_workspace_ray(workspace: Workspace, image_encoder: str | None, text_encoder: str | None,
                        fields: Sequence[str] = ("title", "description"), batch_size: int = BATCH,
                        progress: bool = True, address: str | None = None, actors: int | None = None,
                        ocr: bool = False) -> dict[str, Any]:
    """:func:`tuwen.encoders.cache.embed_workspace` on a Ray cluster: the same tables, hashes and report.

    ``address``: the cluster (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``; none starts Ray here) unless this
    process is connected already. ``actors``: encoder actors (default: one per cluster CPU).
    """
    if ocr:
        raise ValueError("--ocr does not run on Ray yet: run `tuwen embed WS --ocr` without --ray first; the OCR "
                         "text is then cached and `--ray` embeds it with --fields title,description,ocr")
    products = workspace.read("products", ["id", "title", "description", "image_paths", "has_image"])
    if products.empty:
        raise ValueError(f"{workspace.uri}: the workspace holds no products, so there is nothing to embed; "
                         f"ingest a catalog first (`tuwen ingest {workspace.uri} --catalog FILE ...`)")
    encoders: list[Encoder] = [get_encoder(name) for name in encoder_names(image_encoder)]
    for encoder in encoders:
        if encoder.modality != "image":
            raise ValueError(f"{encoder.name!r} is a {encoder.modality} encoder, not an image encoder")
    if text_encoder:
        corpus = [t for t in pd.concat([products["title"], products["description"]]) if t]
        text = encoder_for(text_encoder, workspace, corpus)  # fitted here, once, and shipped to the actors
        if text.modality != "text":
            raise ValueError(f"{text_encoder!r} is an {text.modality} encoder, not a text encoder")
        encoders.append(text)
    items, tables = _items(workspace, products, encoders, fields)
    embedded = dict.fromkeys(tables, 0)
    if len(items):
        with ray_session(address) as ray:
            quiet_data_context()
            pool = actor_pool(actors)
            specs = [encoder if hasattr(encoder, "fit") else encoder.name for encoder in encoders]
            blocks = [items.iloc[lo:lo + batch_size].reset_index(drop=True) for lo in range(0, len(items), batch_size)]
            stream = ray.data.from_pandas(blocks).map_batches(
                EncodeBatch, fn_constructor_kwargs={"specs": specs, "threads": pool.threads}, batch_size=batch_size,
                batch_format="pyarrow", num_cpus=pool.cpus,
                compute=ray.data.ActorPoolStrategy(min_size=1, max_size=pool.actors))
            pending: list[pa.Table] = []
            with progress_bar(len(items), "embed · ray", progress) as advance:
                for done in stream.iter_batches(batch_size=batch_size, batch_format="pyarrow"):
                    pending.append(done)
                    for name in done.column("table").to_pylist():
                        embedded[name] += 1
                    if sum(part.num_rows for part in pending) >= COMMIT_ROWS:  # as many rows per commit as a
                        _commit(workspace, pa.concat_tables(pending), tables)  # local run
                        pending.clear()
                    advance(done.num_rows)
                if any(part.num_rows for part in pending):
                    _commit(workspace, pa.concat_tables(pending), tables)
    return {f"{meta['encoder']}/{meta['field']}": {"embedded": embedded[name], "cached": meta["total"] - embedded[name]}
            for name, meta in tables.items()}
