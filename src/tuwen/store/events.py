"""Shoppers' events validated a chunk at a time, vectorised with Arrow: the path 30M purchases take.

Why vectorised: the row-by-row validation tuwen had (now the reference in tests/ingest/test_scale_ingest.py)
walked every cell in Python (text checks, timestamp formatting, numbering of repeated events over the whole
file at once), which cost tens of microseconds and about a kilobyte per event. Here the same rules run on
Arrow arrays, one bounded chunk at a time, and only the few rows that need a closer look (odd whitespace, a
non-ISO timestamp, a value that is not a plain number, a reject's reason) go back to the row-level helpers of
the catalog module, so a good row and a reject come out exactly as the reference's: same fields, same
reasons, same ids.

Identical events (same shopper, product, time, kind) are numbered across chunks by :class:`Occurrences`, so
buying two units stays two rows even when the two rows land in different chunks. One deliberate difference:
an event's id spells its time with microseconds only when that event has them, where the whole-file version
spelt every time of a file with microseconds as soon as one event had them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tuwen.store.catalog import (
    FIELD_LIMITS,
    INTERACTION_KINDS,
    INTERACTION_SCHEMA,
    SHORT_FIELD,
    Reject,
    _cell_problem,
    _text_rejects,
    clean_text,
    future_limit,
    parse_timestamps,
)

EVENT_FIELDS = ("user_id", "product_id", "timestamp", "kind", "value")
_WHITESPACE = ("\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f\\x85\\xa0\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"
               "\\x{202f}\\x{205f}\\x{3000}")
# Text that clean_text would change: a whitespace other than one space between words, or space at either end.
_NEEDS_CLEANING = f"[{_WHITESPACE}]|^ | $|  "
_ISO = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$"
_PLAIN_NUMBER = r"^\d{1,15}(\.\d{1,15})?$"


class Occurrences:
    """How often each (shopper, product, time, kind) has been seen in earlier chunks of one file.

    Kept as sorted 64-bit key hashes with counts (12 bytes per distinct event), not as Python objects,
    so numbering 30M events stays within a few hundred megabytes.
    """

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.counts = np.empty(0, dtype=np.int64)

    def number(self, hashes: np.ndarray) -> np.ndarray:
        """The occurrence number of each event (0 for the first time its key appears in the file)."""
        if not len(hashes):
            return np.empty(0, dtype=np.int64)
        unique, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
        order = np.argsort(inverse, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        within = np.empty(len(hashes), dtype=np.int64)
        within[order] = np.arange(len(hashes)) - np.repeat(starts, counts)
        earlier = np.zeros(len(unique), dtype=np.int64)
        if len(self.keys):
            at = np.minimum(np.searchsorted(self.keys, unique), len(self.keys) - 1)
            found = self.keys[at] == unique
            earlier[found] = self.counts[at[found]]
        self._add(unique, counts)
        return within + earlier[inverse]

    def _add(self, unique: np.ndarray, counts: np.ndarray) -> None:
        keys = np.concatenate([self.keys, unique])
        total = np.concatenate([self.counts, counts])
        order = np.argsort(keys, kind="stable")  # two sorted runs: a merge
        keys, total = keys[order], total[order]
        starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
        self.keys, self.counts = keys[starts], np.add.reduceat(total, starts)


def _strings(column: Any) -> pa.Array:
    """A mapped column as an Arrow string array without nulls (missing cells read as empty text)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not isinstance(column, pa.Array):
        column = pa.array(pd.Series(column, dtype=object).map(lambda v: "" if v is None else v
                                                               if isinstance(v, str) else str(v)).tolist(),
                          pa.string())
    if column.type != pa.string():
        column = pc.cast(column, pa.string())
    return pc.fill_null(column, "")


def _clean(column: pa.Array) -> pa.Array:
    """clean_text on every cell: only the cells it would change go through Python."""
    needs = pc.match_substring_regex(column, _NEEDS_CLEANING)
    where = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
    if not len(where):
        return column
    values = column.to_pylist()
    for i in where:
        values[i] = clean_text(values[i])
    return pa.array(values, pa.string())


class _Rejector:
    """Row-level rejects in the order the rules run; the first reason a row gets is the one it keeps."""

    def __init__(self, rows: np.ndarray, file: str):
        self.rows = rows
        self.alive = np.ones(len(rows), dtype=bool)
        self.file = file
        self.rejects: list[Reject] = []

    def reject(self, mask: np.ndarray, field: str, reason: Any) -> None:
        """Reject live rows under ``mask``; ``reason(i)`` gives the text for row position ``i``."""
        for i in np.flatnonzero(mask & self.alive):
            self.rejects.append(Reject(self.file, int(self.rows[i]), field, reason(int(i)), "interactions"))
        self.alive &= ~mask


def _text_checks(columns: dict[str, pa.Array], rejector: _Rejector, texts_checked: bool) -> None:
    """Too long, undecodable or NUL text; ``texts_checked`` when the reader already refused the last two."""
    n = len(rejector.rows)
    first: dict[int, tuple[str, str]] = {}
    for name in EVENT_FIELDS:
        if name not in columns:
            continue
        column = columns[name]
        suspect = pc.greater(pc.utf8_length(column), FIELD_LIMITS.get(name, SHORT_FIELD))
        if not texts_checked:
            suspect = pc.or_(suspect, pc.match_substring(column, "\x00"))
        for i in np.flatnonzero(suspect.to_numpy(zero_copy_only=False)):
            if int(i) not in first:
                problem = _cell_problem(name, column[int(i)].as_py())
                if problem:
                    first[int(i)] = problem
    for i in sorted(first):
        mask = np.zeros(n, dtype=bool)
        mask[i] = True
        field, reason = first[i]
        rejector.reject(mask, field, lambda _, reason=reason: reason)


def parse_event_times(text: pa.Array) -> np.ndarray:
    """UTC microseconds (int64; NaT's value where unparseable) with the rules of parse_timestamps, fast for ISO."""
    iso = pc.match_substring_regex(text, _ISO).to_numpy(zero_copy_only=False)
    out = np.full(len(text), np.iinfo(np.int64).min, dtype=np.int64)
    rest = np.flatnonzero(~iso)
    if iso.any():
        where = np.flatnonzero(iso)
        subset = text.take(pa.array(where)) if len(where) < len(text) else text
        parsed = _cast_iso(subset)
        if parsed is None:
            rest = np.arange(len(text))
        else:
            out[where] = parsed
    if len(rest):
        slow = parse_timestamps(pd.Series(text.take(pa.array(rest)).to_pylist(), dtype=object))
        out[rest] = slow.dt.tz_localize(None).to_numpy().astype("datetime64[us]").view(np.int64)
    return out


def _cast_iso(text: pa.Array) -> np.ndarray | None:
    """Arrow's ISO-8601 parser: all with a zone, or all without (read as UTC); None when the chunk mixes them."""
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            return pc.cast(text, target).cast(pa.int64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    return None


def _utc(micros: Any) -> pd.Timestamp:
    return pd.Timestamp(int(micros), unit="us", tz="UTC")


def _time_text(micros: np.ndarray) -> pa.Array:
    """Times as pandas spells a UTC timestamp ("2024-01-01 08:00:00+00:00"), the form event ids hash."""
    seconds = pa.array(micros // 1_000_000 * 1_000_000, pa.timestamp("us"))
    # Arrow spells a seconds timestamp "YYYY-MM-DD HH:MM:SS" when cast to text (strftime is ten times slower).
    text = pc.binary_join_element_wise(pc.cast(pc.cast(seconds, pa.timestamp("s")), pa.string()), "+00:00", "")
    fraction = np.flatnonzero(micros % 1_000_000)
    if not len(fraction):
        return text
    values = text.to_pylist()
    for i in fraction:
        values[i] = str(_utc(micros[i]))
    return pa.array(values, pa.string())


def _values(text: pa.Array) -> np.ndarray:
    """Event values as numbers (NaN where not a number): plain decimals by Arrow, the rest by pandas."""
    text = pc.if_else(pc.equal(text, ""), "1", text)
    plain = pc.match_substring_regex(text, _PLAIN_NUMBER).to_numpy(zero_copy_only=False)
    out = np.full(len(text), np.nan)
    if plain.any():
        where = np.flatnonzero(plain)
        out[where] = pc.cast(text.take(pa.array(where)), pa.float64()).to_numpy(zero_copy_only=False)
    rest = np.flatnonzero(~plain)
    if len(rest):
        out[rest] = pd.to_numeric(pd.Series(text.take(pa.array(rest)).to_pylist(), dtype=object),
                                  errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return out


def _ids(user: pa.Array, product: pa.Array, time: pa.Array, kind: pa.Array, occurrences: Occurrences) -> list[str]:
    """stable_id(user, product, time, kind, n) with n counting identical events across the whole file."""
    keys = pc.binary_join_element_wise(user, product, time, kind, "\x1f").to_pylist()
    hashes = np.fromiter((hash(key) for key in keys), dtype=np.int64, count=len(keys)).view(np.uint64)
    numbers = occurrences.number(hashes)
    sha1 = hashlib.sha1
    return [sha1(f"{key}\x1f{n}".encode("utf-8", "surrogatepass")).hexdigest()[:20]
            for key, n in zip(keys, numbers.tolist(), strict=True)]


def validate_events(raw: pa.Table | pd.DataFrame, file: str, default_kind: str = "purchase",
                    occurrences: Occurrences | None = None, texts_checked: bool = False) -> tuple[pa.Table,
                                                                                                 list[Reject]]:
    """Mapped rows (``_row`` plus user_id, product_id, timestamp, kind?, value?) → canonical interactions
    (an Arrow table in INTERACTION_SCHEMA, input order) and rejects, by the rules of the catalog module.

    Pass one ``occurrences`` to every chunk of a file so repeated events are numbered across chunks.
    """
    occurrences = occurrences if occurrences is not None else Occurrences()
    table = raw if isinstance(raw, pa.Table) else None
    names = raw.column_names if table is not None else list(raw.columns)
    rows = np.asarray(raw["_row"].to_numpy() if table is None else raw["_row"].to_numpy(), dtype=np.int64)
    rejector = _Rejector(rows, file)
    try:
        columns = {name: _strings(raw[name] if table is not None else raw[name].to_numpy(dtype=object))
                   for name in EVENT_FIELDS if name in names}
    except (UnicodeEncodeError, pa.ArrowInvalid):
        # Text Arrow cannot hold (lone surrogates): reject those rows by the catalog's rules first.
        assert table is None
        bad = _text_rejects(raw, EVENT_FIELDS, file, "interactions")
        kept, rest = validate_events(raw[~raw["_row"].isin(bad)], file, default_kind, occurrences, texts_checked)
        return kept, sorted([*bad.values(), *rest], key=lambda r: r.row)
    _text_checks(columns, rejector, texts_checked)
    n = len(rows)
    for name in EVENT_FIELDS:
        columns[name] = _clean(columns[name]) if name in columns else pa.array([""] * n, pa.string())
    for name in ("user_id", "product_id", "timestamp"):
        empty = pc.equal(columns[name], "").to_numpy(zero_copy_only=False)
        rejector.reject(empty, name, lambda _, name=name: f"missing {name.replace('_', ' ')}")
    stamp_text = columns["timestamp"]
    micros = parse_event_times(stamp_text)
    bad = micros == np.iinfo(np.int64).min
    rejector.reject(bad, "timestamp", lambda i: f"bad timestamp {stamp_text[i].as_py()[:40]!r}")
    late = ~bad & (micros > future_limit().value // 1000)
    rejector.reject(late, "timestamp", lambda i: f"timestamp {_utc(micros[i]):%Y-%m-%d %H:%M} is in the future "
                                                 "(later than now + 1 day)")
    kind = pc.utf8_lower(columns["kind"])
    kind = pc.if_else(pc.equal(kind, ""), default_kind, kind)
    unknown = pc.invert(pc.is_in(kind, pa.array(INTERACTION_KINDS))).to_numpy(zero_copy_only=False)
    rejector.reject(unknown, "kind", lambda i: f"unknown kind {kind[i].as_py()!r} (use one of "
                                               f"{', '.join(INTERACTION_KINDS)})")
    value_text = columns["value"]
    values = _values(value_text)
    rejector.reject(np.isnan(values), "value", lambda i: f"not a number: {value_text[i].as_py()[:20]!r}")
    bad_value = ~np.isnan(values) & (~np.isfinite(values) | (values < 0))
    rejector.reject(bad_value, "value", lambda i: f"value must be a finite number ≥ 0, not {values[i]}")
    keep = pa.array(np.flatnonzero(rejector.alive))
    user, product, kind = (columns["user_id"].take(keep), columns["product_id"].take(keep), kind.take(keep))
    kept_micros = micros[rejector.alive]
    ids = _ids(user, product, _time_text(kept_micros), kind, occurrences)
    out = pa.table({"id": pa.array(ids, pa.string()), "user_id": user, "product_id": product,
                    "timestamp": pa.array(kept_micros, pa.timestamp("us", tz="UTC")), "kind": kind,
                    "value": pa.array(values[rejector.alive], pa.float64())}, schema=INTERACTION_SCHEMA)
    return out, sorted(rejector.rejects, key=lambda r: r.row)


# ----------------------------------------------------------------------------------- reading for training


class _Coder:
    """Integer codes for strings in order of first appearance, filled one Arrow batch at a time.

    Why first appearance: it is the order ``pandas.factorize`` gives a whole column, so a model trained on
    codes read in batches numbers its shoppers and products exactly as one trained on a whole-table frame.
    """

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}

    def encode(self, column: pa.Array) -> np.ndarray:
        encoded = pc.dictionary_encode(column)
        if isinstance(encoded, pa.ChunkedArray):
            encoded = encoded.combine_chunks()
        local = encoded.dictionary.to_pylist()  # this batch's distinct values, first appearance first
        codes = self.codes
        mapping = np.fromiter((codes.setdefault(v, len(codes)) for v in local), dtype=np.int32, count=len(local))
        return mapping[encoded.indices.to_numpy(zero_copy_only=False)]

    def values(self) -> np.ndarray:
        return np.array(list(self.codes), dtype=object)


@dataclass
class EventArrays:
    """Events as integer-coded columns: what training reads instead of a whole-table DataFrame.

    ``user`` / ``item`` index ``users`` / ``items`` (ids in order of first appearance), ``kind`` indexes
    ``kinds``, ``time`` is microseconds since the epoch (UTC) and ``value`` is NaN where the event has none.
    About 25 bytes an event, where a DataFrame of the same events holds five Python strings per row.
    """

    users: np.ndarray
    items: np.ndarray
    kinds: tuple[str, ...]
    user: np.ndarray
    item: np.ndarray
    time: np.ndarray
    kind: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    @property
    def empty(self) -> bool:
        return len(self.user) == 0

    def kind_mask(self, kinds: Any) -> np.ndarray:
        """True where the event's kind is one of ``kinds``."""
        wanted = np.array([k in set(kinds) for k in self.kinds] + [False], dtype=bool)
        return wanted[self.kind] if len(self.kinds) else np.zeros(len(self), bool)

    def subset(self, mask: np.ndarray) -> EventArrays:
        """The events under ``mask``, shoppers and products renumbered in their order of first appearance there
        (as factorising the filtered frame would number them)."""
        if mask.dtype == bool and mask.all():
            return self
        user, user_values = pd.factorize(self.user[mask])
        item, item_values = pd.factorize(self.item[mask])
        return EventArrays(self.users[user_values], self.items[item_values], self.kinds, user.astype(np.int32),
                           item.astype(np.int32), self.time[mask], self.kind[mask], self.value[mask])

    def user_ids(self) -> np.ndarray:
        return self.users[self.user]

    def item_ids(self) -> np.ndarray:
        return self.items[self.item]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> EventArrays:
        """The same arrays from an events frame (``user_id, product_id, timestamp, kind[, value]``)."""
        user, users = pd.factorize(frame["user_id"].astype(str).to_numpy(object))
        item, items = pd.factorize(frame["product_id"].astype(str).to_numpy(object))
        kind, kinds = pd.factorize(frame["kind"].astype(str).to_numpy(object))
        times = pd.to_datetime(frame["timestamp"], utc=True)
        micros = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[us]").astype(np.int64)
        value = frame["value"].to_numpy(np.float32, na_value=np.nan) if "value" in frame else \
            np.full(len(frame), np.nan, np.float32)
        return cls(np.asarray(users, dtype=object), np.asarray(items, dtype=object), tuple(str(k) for k in kinds),
                   user.astype(np.int32), item.astype(np.int32), micros, kind.astype(np.int8), value)


def read_event_arrays(table: Any, kinds: Any = None, batch_rows: int = 1 << 20,
                      progress: Any = None) -> EventArrays:
    """Read an events table (a LanceDB table, or anything with ``to_arrow``) in Arrow batches into coded arrays.

    Only ``kinds`` are kept (all when ``None``), filtered before coding so the codes number what is kept.
    Memory stays at the arrays plus one batch: no whole-table frame, no per-event Python object.
    ``progress(rows)`` is called after each batch.
    """
    columns = list(EVENT_FIELDS)
    users, items, kind_coder = _Coder(), _Coder(), _Coder()
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "item", "time", "kind", "value")}
    wanted = pa.array(sorted(kinds), pa.string()) if kinds is not None else None
    for batch in _event_batches(table, columns, batch_rows):
        rows = batch.num_rows
        if wanted is not None:
            batch = batch.filter(pc.is_in(batch.column("kind"), value_set=wanted))
        if batch.num_rows:
            parts["user"].append(users.encode(_strings(batch.column("user_id"))))
            parts["item"].append(items.encode(_strings(batch.column("product_id"))))
            parts["kind"].append(kind_coder.encode(_strings(batch.column("kind"))).astype(np.int8))
            stamp = batch.column("timestamp")
            if not pa.types.is_timestamp(stamp.type):
                raise ValueError(f"events table: field 'timestamp' is {stamp.type}, expected a timestamp")
            stamp = pc.cast(stamp, pa.timestamp("us", tz="UTC"))
            parts["time"].append(stamp.cast(pa.int64()).to_numpy(zero_copy_only=False))
            parts["value"].append(pc.cast(batch.column("value"), pa.float32()).to_numpy(zero_copy_only=False)
                                  .astype(np.float32))
        if progress is not None:
            progress(rows)
    dtypes = {"user": np.int32, "item": np.int32, "time": np.int64, "kind": np.int8, "value": np.float32}
    arrays = {k: np.concatenate(v).astype(dtypes[k], copy=False) if v else np.zeros(0, dtypes[k])
              for k, v in parts.items()}
    return EventArrays(users.values(), items.values(), tuple(str(k) for k in kind_coder.values()), **arrays)


def _event_batches(table: Any, columns: list[str], batch_rows: int) -> Any:
    """Arrow record batches of ``columns``: a Lance scan where the table has one, else its Arrow table's."""
    if hasattr(table, "to_lance"):
        try:
            dataset = table.to_lance()
        except ImportError:  # pylance absent: LanceDB's own query streams too
            yield from table.search().select(columns).limit(None).to_batches(batch_size=batch_rows)
            return
        yield from dataset.to_batches(columns=columns, batch_size=batch_rows)
        return
    yield from table.to_arrow().select(columns).to_batches(max_chunksize=batch_rows)
