"""Read a user's table file (CSV, TSV, JSON lines, JSON, Parquet) into string columns, row by row.

Rows are numbered from 1 (header excluded) so every reject can point at the exact row.
Bytes that are not UTF-8 are kept as lone surrogates (``surrogateescape``) so that one
bad row is reported and rejected instead of aborting the whole file. The same goes for a
JSON line that cannot be parsed (too deep, a 5,000-digit number), a line longer than
``MAX_RECORD_CHARS`` (skipped without holding it in memory) and a CSV quote left open.

Rule for CSV quotes: a quoted field may hold line breaks, but a record that spans several
physical lines is taken as an unbalanced quote, rejected, and its later lines re-read as rows
of their own, when (a) it does not parse (the quote never closes, or closes before garbage),
(b) it has the wrong number of fields, (c) it grows past ``MAX_RECORD_CHARS``, or (d) every
one of its later lines is on its own a complete row (the header's number of fields) — the
mark of good rows swallowed by a stray quote, which real multi-line descriptions do not show.
"""

from __future__ import annotations

import codecs
import csv
import json
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tuwen.store.catalog import Reject, text_problem

csv.field_size_limit(sys.maxsize)  # lines and records are capped by _Lines instead, with a row-level reject

# Longest physical line or CSV record read; far beyond the sum of every field limit (tuwen.store.catalog.FIELD_LIMITS).
MAX_RECORD_CHARS = 1_000_000
# Longest number literal in JSON; longer ones are broken input (Python refuses ints past 4,300 digits anyway).
MAX_NUMBER_CHARS = 100
# Deepest nesting kept in a JSON value; deeper values are rejected before they reach json.dumps or Arrow.
MAX_JSON_DEPTH = 64


# Rows per chunk when a file is read as a stream (iter_rows): large enough to amortise per-chunk work,
# small enough that a chunk's Python objects stay in the tens of megabytes.
CHUNK_ROWS = 500_000
_FAST_BLOCK_BYTES = 16 << 20


class InputFileError(ValueError):
    """The file as a whole cannot be read (missing, not a regular file, empty, unknown format or encoding)."""


class _LongLine(Exception):
    """A physical line past MAX_RECORD_CHARS (its text was skipped, not kept)."""


class _LongRecord(Exception):
    """A CSV record whose lines together pass MAX_RECORD_CHARS."""


def _bad_field(names: list[str], values: list[Any]) -> tuple[str, str] | None:
    """(column, reason) of the first cell whose text cannot be stored (undecodable, lone surrogate, NUL)."""
    for name, value in zip(names, values, strict=False):
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                return name, problem
    return None


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value if isinstance(value, str) else str(value)


# ----------------------------------------------------------------------------------------------- opening


def _encoding(path: Path) -> tuple[str, str]:
    """(codec, error handler) from the byte-order mark; UTF-8 without one.

    UTF-16/32 files (Excel's "Unicode text") are decoded properly; without a BOM they are
    refused by name, since read as UTF-8 every other byte would be NUL.
    """
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        return "utf-32", "surrogatepass"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", "surrogatepass"  # a lone surrogate decodes, then rejects its row only
    if head and head.count(0) * 4 >= len(head):
        raise InputFileError(f"{path}: looks like UTF-16 or UTF-32 text without a byte-order mark; "
                             "save it as UTF-8 (or UTF-16 with a BOM)")
    return "utf-8-sig", "surrogateescape"


def _open_text(path: Path, newline: str | None = None) -> IO[str]:
    codec, errors = _encoding(path)
    return path.open(encoding=codec, errors=errors, newline=newline)


def check_file(path: Path) -> None:
    """Refuse, by name, a path that is missing or not a regular file, before anything opens it."""
    if not path.exists():
        raise InputFileError(f"{path}: no such file")
    if not path.is_file():
        # A FIFO or device would block or never end when read; a folder is a user slip.
        raise InputFileError(f"{path}: not a regular file (a folder, FIFO or device); give a data file")


def read_rows(path: Path, kind: str = "products") -> tuple[pd.DataFrame, list[Reject]]:
    """All rows of ``path`` as strings plus a ``_row`` column; malformed rows become rejects."""
    path = Path(path)
    check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv", ".txt"}:
            return _read_csv(path, kind, "\t" if suffix == ".tsv" else ",")
        if suffix in {".jsonl", ".ndjson"}:
            return _read_jsonl(path, kind)
        if suffix == ".json":
            return _read_json(path, kind)
        if suffix in {".parquet", ".pq"}:
            return _read_parquet(path)
    except UnicodeDecodeError as error:
        raise InputFileError(f"{path}: not valid {error.encoding} text near byte {error.start}: "
                             f"{error.reason}") from error
    raise InputFileError(f"{path}: unsupported file type {suffix!r} (use .csv, .tsv, .jsonl, .json or .parquet)")


@dataclass
class Chunk:
    """Consecutive rows of one file: an Arrow table (fast CSV path) or a DataFrame, each with ``_row``; cells are
    text that passed the reader's checks (decodable, no NUL); ``rejects`` are the rows in this stretch that did not.
    """

    rows: pa.Table | pd.DataFrame
    rejects: list[Reject]

    def __len__(self) -> int:
        return self.rows.num_rows if isinstance(self.rows, pa.Table) else len(self.rows)

    def frame(self) -> pd.DataFrame:
        """The rows as the DataFrame read_rows gives (object columns of text)."""
        if isinstance(self.rows, pd.DataFrame):
            return self.rows
        frame = self.rows.to_pandas()
        return frame.astype({c: object for c in frame.columns if c != "_row"})


def iter_rows(path: Path, kind: str = "products", chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The rows of ``path`` as a stream of chunks of about ``chunk_rows`` rows, with read_rows' rows and rejects.

    Why: read_rows holds a whole file as Python strings (about a kilobyte per event row); a stream holds one
    chunk. A CSV without quotes, NUL or lone carriage returns — the shape of machine-written event logs — is
    parsed by Arrow; any line Arrow would read differently (a wrong field count, an empty line, bytes that are
    not UTF-8, a very long line) hands the rest of the file, from that chunk on, to the exact Python reader.
    """
    path = Path(path)
    check_file(path)
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv", ".txt"}:
            yield from _iter_csv_fast(path, kind, "\t" if suffix == ".tsv" else ",", chunk_rows)
            return
        if suffix in {".jsonl", ".ndjson"}:
            yield from _iter_jsonl(path, kind, chunk_rows)
            return
        if suffix in {".parquet", ".pq"}:
            yield from _iter_parquet(path, chunk_rows)
            return
    except UnicodeDecodeError as error:
        raise InputFileError(f"{path}: not valid {error.encoding} text near byte {error.start}: "
                             f"{error.reason}") from error
    frame, rejects = read_rows(path, kind)  # whole-document formats (JSON) and the errors for unknown ones
    yield Chunk(frame, rejects)


def _check_header(path: Path, header: list[str]) -> None:
    """Two columns with one name would make every mapping of that name ambiguous: refuse the file."""
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if name in seen:
            raise InputFileError(f"{path}: column {name!r} appears twice in the header (columns {seen[name]} and "
                                 f"{position}); rename one")
        seen[name] = position


def _read_parquet(path: Path) -> tuple[pd.DataFrame, list[Reject]]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise InputFileError(f"{path}: cannot read it as Parquet: {error}") from error
    _check_header(path, table.column_names)
    frame = table.to_pandas()
    frame = frame.map(_cell) if len(frame) else frame.astype(str)
    frame.insert(0, "_row", range(1, len(frame) + 1))
    return frame, []


def _iter_parquet(path: Path, chunk_rows: int) -> Iterator[Chunk]:
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise InputFileError(f"{path}: cannot read it as Parquet: {error}") from error
    _check_header(path, parquet.schema_arrow.names)
    done = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        frame = batch.to_pandas()
        frame = frame.map(_cell) if len(frame) else frame.astype(str)
        frame.insert(0, "_row", range(done + 1, done + len(frame) + 1))
        done += len(frame)
        yield Chunk(frame, [])
    if done == 0:
        frame = parquet.schema_arrow.empty_table().to_pandas().astype(str)
        frame.insert(0, "_row", [])
        yield Chunk(frame, [])


# --------------------------------------------------------------------------------------------------- CSV


class _Lines:
    """The physical lines of a text file, each read with a length cap, with a push-back queue.

    ``csv.reader`` pulls lines from this iterator one at a time and never reads past the end
    of a record, so ``taken`` holds exactly the lines of the record just parsed; a record
    judged an unbalanced quote pushes its later lines back to be read again as rows.
    """

    def __init__(self, handle: IO[str]):
        self.handle = handle
        self.number = 0  # physical lines read from the file
        self.pending: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []
        self.chars = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.pending:
            number, line = self.pending.popleft()
        else:
            line = self.handle.readline(MAX_RECORD_CHARS + 1)
            if not line:
                raise StopIteration
            self.number += 1
            number = self.number
            if len(line) > MAX_RECORD_CHARS and not line.endswith(("\n", "\r")):
                while (rest := self.handle.readline(MAX_RECORD_CHARS)) and not rest.endswith(("\n", "\r")):
                    pass
                self.taken.append((number, ""))
                raise _LongLine
        self.taken.append((number, line))
        self.chars += len(line)
        if self.chars > MAX_RECORD_CHARS:
            raise _LongRecord
        return line

    def start_record(self) -> None:
        self.taken, self.chars = [], 0

    def push_back_continuation(self) -> None:
        """Read the current record's lines after the first again, as rows of their own."""
        self.pending.extendleft(reversed(self.taken[1:]))


def _fields(line: str, delimiter: str) -> int:
    """How many fields one physical line holds when parsed on its own (0 when it does not parse)."""
    try:
        return len(next(csv.reader([line], delimiter=delimiter, strict=True), []))
    except csv.Error:
        return 0


def _swallowed(lines: list[tuple[int, str]], width: int, delimiter: str) -> bool:
    """Rule (d): every continuation line of a multi-line record is, on its own, a complete row."""
    return len(lines) > 1 and all(_fields(line, delimiter) == width for _, line in lines[1:])


def _unbalanced(lines: list[tuple[int, str]], detail: str) -> str:
    first, last = lines[0][0], lines[-1][0]  # file line numbers, header included
    return (f"unbalanced quote: the quoted field opened on line {first} runs to line {last} ({detail}); "
            f"lines {first + 1}-{last} are read again as rows of their own")


def _plain_csv(path: Path) -> bool:
    """No quote, NUL, empty line or lone carriage return anywhere: every line is one record, split at the
    delimiter only, so Arrow and the csv module cannot read it differently."""
    if _encoding(path)[0] != "utf-8-sig":
        return False
    with path.open("rb") as handle:
        handle.readline()  # the header is read by the csv module, quotes and all
        tail = b""
        while block := handle.read(_FAST_BLOCK_BYTES):
            if b'"' in block or b"\x00" in block:
                return False
            joined = tail + block
            if joined.count(b"\r") != joined.count(b"\r\n") + joined.endswith(b"\r"):
                return False
            if b"\n\n" in joined or b"\n\r\n" in joined:
                return False
            tail = block[-2:]
    return True


def _iter_csv_fast(path: Path, kind: str, delimiter: str, chunk_rows: int) -> Iterator[Chunk]:
    if not _plain_csv(path):
        yield from (Chunk(frame, rejects) for frame, rejects in _iter_csv(path, kind, delimiter, chunk_rows))
        return
    with _open_text(path, newline="") as handle:
        lines = _Lines(handle)
        header = _read_header(lines, path, delimiter)
        single_line_header = lines.number == 1
    if len(header) < 2 or not single_line_header:  # one column: an empty line is a row there, not an error
        yield from (Chunk(frame, rejects) for frame, rejects in _iter_csv(path, kind, delimiter, chunk_rows))
        return
    invalid: list[Any] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row)
        return "skip"

    try:
        reader = _open_arrow_csv(path, header, delimiter, on_invalid)
    except pa.ArrowInvalid:  # the first block already holds bytes that are not UTF-8
        reader, invalid = None, [None]
    done, pending, clean = 0, [], reader is not None
    while reader is not None:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            break
        except pa.ArrowInvalid:  # bytes that are not UTF-8: the exact reader rejects them row by row
            clean = False
            break
        if invalid or _has_long_row(batch):
            clean = False
            break
        pending.append(batch)
        while sum(b.num_rows for b in pending) >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield _fast_chunk(table.slice(0, chunk_rows).to_batches(), done, header)
            done += chunk_rows
            pending = table.slice(chunk_rows).to_batches()
    if reader is not None:
        reader.close()
    if pending or (clean and done == 0):
        yield _fast_chunk(pending, done, header)
        done += sum(b.num_rows for b in pending)
    if not clean:  # from the first odd batch on, the exact reader (rows so far were one line each)
        rest = _iter_csv(path, kind, delimiter, chunk_rows, skip_records=done)
        yield from (Chunk(frame, rejects) for frame, rejects in rest)


def _open_arrow_csv(path: Path, header: list[str], delimiter: str, on_invalid: Any) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(skip_rows=1, column_names=header, block_size=_FAST_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, quote_char=False, ignore_empty_lines=False,
                                         invalid_row_handler=on_invalid),
        convert_options=pacsv.ConvertOptions(column_types={name: pa.string() for name in header},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))


def _has_long_row(batch: pa.RecordBatch) -> bool:
    """A row near MAX_RECORD_CHARS: the exact reader decides what to do with it (skip, reject)."""
    if not batch.num_rows:
        return False
    total = None
    for column in batch.columns:
        length = pc.utf8_length(column)
        total = length if total is None else pc.add(total, length)
    return pc.max(total).as_py() > MAX_RECORD_CHARS // 2


def _fast_chunk(batches: list[pa.RecordBatch], done: int, header: list[str] | None = None) -> Chunk:
    table = pa.Table.from_batches(batches) if batches else pa.table({name: pa.array([], pa.string())
                                                                     for name in header or []})
    rows = pa.array(range(done + 1, done + table.num_rows + 1), pa.int64())
    return Chunk(table.add_column(0, "_row", rows).combine_chunks(), [])


def _read_csv(path: Path, kind: str, delimiter: str) -> tuple[pd.DataFrame, list[Reject]]:
    frames, rejects = [], []
    for frame, chunk_rejects in _iter_csv(path, kind, delimiter, chunk_rows=None):
        frames.append(frame)
        rejects += chunk_rejects
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), rejects


def _read_header(lines: _Lines, path: Path, delimiter: str) -> list[str]:
    try:
        header = next(csv.reader(lines, delimiter=delimiter, strict=True))
    except StopIteration as error:
        raise InputFileError(f"{path}: empty file (no header row)") from error
    except (csv.Error, _LongLine, _LongRecord) as error:
        raise InputFileError(f"{path}: unreadable header row: {error or 'too long'}") from error
    header = [name.strip() for name in header]
    _check_header(path, header)
    return header


def _iter_csv(path: Path, kind: str, delimiter: str, chunk_rows: int | None,
              skip_records: int = 0) -> Iterator[tuple[pd.DataFrame, list[Reject]]]:
    """Rows of a CSV file, ``chunk_rows`` at a time (all at once for None); always yields at least one frame.

    ``skip_records`` single-line records after the header are skipped unread (the fast reader took them).
    """
    rejects: list[Reject] = []
    records: list[list[str]] = []
    numbers: list[int] = []
    with _open_text(path, newline="") as handle:
        lines = _Lines(handle)
        header = _read_header(lines, path, delimiter)
        for _ in range(skip_records):
            handle.readline()
        lines.number += skip_records
        row = skip_records
        yielded = False
        while True:
            if chunk_rows is not None and len(records) + len(rejects) >= chunk_rows:
                yield _csv_frame(records, header, numbers), rejects
                yielded = True
                records, numbers, rejects = [], [], []
            lines.start_record()
            reader = csv.reader(lines, delimiter=delimiter, strict=True)  # fresh: no state left by an error
            try:
                values = next(reader)
            except StopIteration:
                break
            except (csv.Error, _LongLine, _LongRecord) as error:
                row += 1
                rejects.append(Reject(str(path), row, "*", _broken_record(lines, error), kind))
                continue
            row += 1
            if not values:
                continue
            reason = _record_problem(lines, values, header, delimiter)
            if reason is None:
                bad = _bad_field(header, values)
                if bad is None:
                    records.append(values)
                    numbers.append(row)
                    continue
                rejects.append(Reject(str(path), row, bad[0], bad[1], kind))
                continue
            rejects.append(Reject(str(path), row, "*", reason, kind))
    if records or rejects or not yielded:
        yield _csv_frame(records, header, numbers), rejects


def _csv_frame(records: list[list[str]], header: list[str], numbers: list[int]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=header, dtype=object)
    frame.insert(0, "_row", pd.Series(numbers, dtype="int64"))
    return frame


def _broken_record(lines: _Lines, error: BaseException) -> str:
    """The reason for a record that did not parse; a multi-line one has its later lines re-read."""
    if isinstance(error, _LongLine):
        long_line = lines.taken.pop()[0]
        if lines.taken:  # a quoted field opened on an earlier line ran into the long one
            lines.push_back_continuation()
            return _unbalanced(lines.taken, f"and into line {long_line}, longer than {MAX_RECORD_CHARS:,} "
                                            "characters, which is skipped")
        return f"line {long_line} is longer than {MAX_RECORD_CHARS:,} characters (skipped)"
    detail = (f"longer than {MAX_RECORD_CHARS:,} characters" if isinstance(error, _LongRecord)
              else f"malformed CSV: {error}")
    if len(lines.taken) > 1:
        lines.push_back_continuation()
        return _unbalanced(lines.taken, detail)
    return detail


def _record_problem(lines: _Lines, values: list[str], header: list[str], delimiter: str) -> str | None:
    """Why a parsed record is not a row (wrong width, or a quote that swallowed rows); None when it is one."""
    width = len(header)
    if len(lines.taken) > 1 and (len(values) != width or _swallowed(lines.taken, width, delimiter)):
        lines.push_back_continuation()
        detail = (f"{len(values)} fields instead of {width}" if len(values) != width
                  else "each later line is a complete row")
        return _unbalanced(lines.taken, detail)
    if len(values) != width:
        return f"expected {width} fields, found {len(values)}"
    return None


# -------------------------------------------------------------------------------------------------- JSON


class _LongNumber(str):
    """A JSON number literal past MAX_NUMBER_CHARS, kept as text so its line can be rejected by field."""


def _number(convert: type) -> Any:
    def parse(text: str) -> Any:
        return _LongNumber(text) if len(text) > MAX_NUMBER_CHARS else convert(text)

    return parse


def _loads(text: str) -> Any:
    """json.loads that turns absurd number literals into markers instead of raising or computing them."""
    return json.loads(text, parse_int=_number(int), parse_float=_number(float))


def _value_problem(value: Any) -> str | None:
    """Why one JSON value cannot be stored: nested too deep, a number too long, or text that cannot be
    stored. Walks with an explicit stack, so no depth can exhaust Python's recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, _LongNumber):
            return f"number with {len(item):,} characters (limit {MAX_NUMBER_CHARS})"
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, dict):
            stack.extend((key, depth) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None


def _record_rejects(record: Any, file: str, row: int, kind: str) -> Reject | None:
    """A reject for a parsed JSON record that is not one object, or holds a value that cannot be stored."""
    if not isinstance(record, dict):
        return Reject(file, row, "*", "a line must hold one JSON object", kind)
    for key, value in record.items():
        problem = text_problem(key) if isinstance(key, str) else None
        if problem:
            return Reject(file, row, "*", f"field name: {problem}", kind)
        problem = _value_problem(value)
        if problem:
            return Reject(file, row, key, problem, kind)
    return None


def _parse_line(line: str, file: str, row: int, kind: str) -> dict[str, Any] | Reject:
    try:
        record = _loads(line)
    except json.JSONDecodeError as error:
        return Reject(file, row, "*", f"invalid JSON: {error.msg} (column {error.colno})", kind)
    except RecursionError:
        return Reject(file, row, "*", "invalid JSON: nested too deeply", kind)
    except ValueError as error:
        return Reject(file, row, "*", f"invalid JSON: {error}"[:200], kind)
    return _record_rejects(record, file, row, kind) or record


def _read_jsonl(path: Path, kind: str) -> tuple[pd.DataFrame, list[Reject]]:
    chunks = list(_iter_jsonl(path, kind, chunk_rows=None))
    frames = [chunk.rows for chunk in chunks]
    rejects = [reject for chunk in chunks for reject in chunk.rejects]
    return (frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)), rejects


def _iter_jsonl(path: Path, kind: str, chunk_rows: int | None) -> Iterator[Chunk]:
    rejects: list[Reject] = []
    records: list[dict[str, Any]] = []
    yielded = False
    with _open_text(path) as handle:
        row = 0
        while line := handle.readline(MAX_RECORD_CHARS + 1):
            if chunk_rows is not None and len(records) + len(rejects) >= chunk_rows:
                yield Chunk(_frame(records), rejects)
                yielded = True
                records, rejects = [], []
            row += 1
            if len(line) > MAX_RECORD_CHARS and not line.endswith("\n"):
                while (rest := handle.readline(MAX_RECORD_CHARS)) and not rest.endswith("\n"):
                    pass
                rejects.append(Reject(str(path), row, "*", f"line longer than {MAX_RECORD_CHARS:,} characters "
                                      "(skipped)", kind))
                continue
            if not line.strip():
                continue
            parsed = _parse_line(line, str(path), row, kind)
            if isinstance(parsed, Reject):
                rejects.append(parsed)
                continue
            records.append({"_row": row, **{k: _cell(v) for k, v in parsed.items()}})
    if records or rejects or not yielded:
        yield Chunk(_frame(records), rejects)


def _read_json(path: Path, kind: str) -> tuple[pd.DataFrame, list[Reject]]:
    with _open_text(path) as handle:
        text = handle.read()
    try:
        data = _loads(text)
    except json.JSONDecodeError as error:
        raise InputFileError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from error
    except RecursionError as error:
        raise InputFileError(f"{path}: invalid JSON: nested too deeply") from error
    except ValueError as error:
        raise InputFileError(f"{path}: invalid JSON: {error}"[:300]) from error
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON array of objects")
    rejects: list[Reject] = []
    records = []
    for row, record in enumerate(data, start=1):
        reject = _record_rejects(record, str(path), row, kind)
        if reject is not None:
            rejects.append(reject if isinstance(record, dict) else
                           Reject(str(path), row, "*", "expected a JSON object", kind))
            continue
        records.append({"_row": row, **{k: _cell(v) for k, v in record.items()}})
    return _frame(records), rejects


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame({"_row": []})
    return frame.fillna("").astype({c: object for c in frame.columns if c != "_row"})
