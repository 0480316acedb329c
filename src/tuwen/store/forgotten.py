"""Forgotten shoppers (``tuwen forget``): remembered in the workspace manifest as keyed hashes (HMAC-SHA256 with
a random per-workspace salt), never as raw ids, and their rows dropped at every later ingest.

Why a module of its own: the transaction writer records new hashes and the workspace filters incoming batches and
event streams by them; both need the same hash, and the writer cannot import :mod:`tuwen.store.workspace`.
``known`` below is the manifest's ``forgotten`` entry (``{"salt": ..., "hashes": [...]}``, or None).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tuwen.store.catalog import Batch


def shopper_digest(salt: str, user: str) -> str:
    """The keyed hash a forgotten shopper is remembered by: the raw id is never stored."""
    return hmac.new(bytes.fromhex(salt), user.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def drop_forgotten(batch: Batch, known: dict[str, Any] | None) -> int:
    """Remove the rows of forgotten shoppers from a batch about to be written; returns how many."""
    known = known or {}
    hashes = set(known.get("hashes", []))
    if not hashes:
        return 0
    salt = known["salt"]
    dropped = 0
    for attribute, column in (("interactions", "user_id"), ("reviews", "user_id"), ("users", "id")):
        frame = getattr(batch, attribute)
        if frame is None or not len(frame):
            continue
        digests = {user: shopper_digest(salt, str(user)) for user in frame[column].unique()}
        gone = frame[column].map(digests).isin(hashes)
        dropped += int(gone.sum())
        setattr(batch, attribute, frame[~gone].reset_index(drop=True))
    return dropped


def drop_forgotten_rows(table: pa.Table, column: str, known: dict[str, Any] | None) -> tuple[pa.Table, int]:
    """An Arrow table less the rows of forgotten shoppers, and how many went."""
    known = known or {}
    hashes = set(known.get("hashes", []))
    if not hashes or not table.num_rows:
        return table, 0
    salt = known["salt"]
    users = pc.unique(table[column]).to_pylist()
    gone = [user for user in users if shopper_digest(salt, str(user)) in hashes]
    if not gone:
        return table, 0
    keep = pc.invert(pc.is_in(table[column], pa.array(gone, pa.string())))
    kept = table.filter(keep)
    return kept, table.num_rows - kept.num_rows
