"""The catalog schema (Product, Interaction, Review) and the validation that turns raw rows into it.

Every loader maps its source's columns onto these canonical columns and then calls
``validate_*``: one place decides what a good row is, so every data set, the CLI and the
HTTP API reject bad input for the same reasons and report it the same way
(file, row, field, reason). Good rows always go through.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

INTERACTION_KINDS = ("purchase", "view", "click", "cart")

# Bigger than any product photo; a file past either limit is treated as hostile or broken.
MAX_IMAGE_PIXELS = 40_000_000
MAX_IMAGE_BYTES = 50 * 1024 * 1024

# Longest text (in characters) a field may hold; a row past a limit is rejected, because one absurd cell
# (a 100 MB title) otherwise costs every later stage memory and time. Each limit is far above real
# catalogs' longest value, so only broken or hostile input reaches it. Unlisted fields get SHORT_FIELD.
ID_CHARS = 256
SHORT_FIELD = 256
FIELD_LIMITS: dict[str, int] = {
    "id": ID_CHARS, "user_id": ID_CHARS, "product_id": ID_CHARS,
    "title": 1_000, "category": 1_000, "variant": 1_000,
    "description": 20_000, "text": 20_000, "question": 20_000, "answer": 20_000,
    "attributes": 20_000,  # the whole JSON object of a product's other columns
    "image": 8_192,  # one cell may list several photo paths
}
# An event may be dated up to this far ahead of the clock (time zones, clock skew); later is a broken date.
FUTURE_SLACK = pd.Timedelta(days=1)

PRODUCT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("title", pa.string()),
        ("description", pa.string()),
        ("image_paths", pa.list_(pa.string())),
        ("has_image", pa.bool_()),
        ("category", pa.string()),
        ("attributes", pa.string()),  # JSON object: attributes differ per catalog
        ("price", pa.float64()),
        ("currency", pa.string()),
        ("source", pa.string()),
    ]
)

INTERACTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("user_id", pa.string()),
        ("product_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("kind", pa.string()),
        ("value", pa.float64()),
    ]
)

REVIEW_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("product_id", pa.string()),
        ("user_id", pa.string()),
        ("rating", pa.float64()),
        ("title", pa.string()),
        ("text", pa.string()),
        ("image_paths", pa.list_(pa.string())),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("group", pa.string()),  # same reviewer + same text: copies that must never straddle a split
        # Labels some review sets carry besides (or instead of) a rating; null where a set has none.
        ("recommended", pa.float64()),  # 1.0 / 0.0: the reviewer recommends the product
        ("label", pa.string()),  # a sentiment label as the source gives it ("1" positive / "0" negative)
        ("category", pa.string()),  # the reviewed product's category (reviews of sets without product rows)
        ("attributes", pa.string()),  # JSON object: the source's other columns (reviewer age, helpful votes…)
    ]
)

# Shoppers' questions about a product with one answer each (product Q&A pages).
QUESTION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("product_id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("question_type", pa.string()),  # "yes/no" | "open-ended"
        ("answer_type", pa.string()),  # yes/no questions: "Y" | "N" | "?"; "" for open-ended ones
        ("timestamp", pa.timestamp("us", tz="UTC")),
    ]
)
QUESTION_TYPES = ("yes/no", "open-ended")
ANSWER_TYPES = ("Y", "N", "?", "")

# Messages shoppers send to customer service, with the routing labels they were given.
MESSAGE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("text", pa.string()),
        ("intent", pa.string()),
        ("category", pa.string()),
        ("flags", pa.string()),  # the source's language-variation tags, one letter each
    ]
)

USER_SCHEMA = pa.schema([("id", pa.string()), ("attributes", pa.string())])

REJECT_SCHEMA = pa.schema(
    [
        ("file", pa.string()),
        ("row", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("kind", pa.string()),  # products / interactions / reviews / questions / messages
    ]
)


@dataclass(frozen=True)
class Product:
    """One product as tuwen stores it; ``attributes`` keeps every source column without a canonical slot."""

    id: str
    title: str = ""
    description: str = ""
    image_paths: list[str] = field(default_factory=list)
    category: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    price: float | None = None
    currency: str = ""


@dataclass(frozen=True)
class Interaction:
    """A shopper's event on a product; ``kind`` is one of purchase, view, click, cart."""

    user_id: str
    product_id: str
    timestamp: pd.Timestamp
    kind: str = "purchase"
    value: float = 1.0


@dataclass(frozen=True)
class Review:
    """A shopper's rating and words about a product."""

    id: str
    product_id: str
    user_id: str
    rating: float
    text: str = ""
    image_paths: list[str] = field(default_factory=list)
    timestamp: pd.Timestamp | None = None


@dataclass(frozen=True)
class Reject:
    """Why one input row did not go in; ``row`` is the 1-based data row (header excluded)."""

    file: str
    row: int
    field: str
    reason: str
    kind: str = "products"

    def __str__(self) -> str:
        return f"{self.file}: row {self.row}: {self.field}: {self.reason}"


@dataclass
class Batch:
    """What a loader produced: canonical tables plus every reject, ready for the workspace.

    ``forgotten`` counts rows dropped at ingest because their shopper was forgotten earlier."""

    products: pd.DataFrame
    interactions: pd.DataFrame
    reviews: pd.DataFrame
    rejects: list[Reject] = field(default_factory=list)
    missing_images: int = 0
    users: pd.DataFrame | None = None
    forgotten: int = 0
    questions: pd.DataFrame | None = None  # product Q&A (None: the input has none)
    messages: pd.DataFrame | None = None  # customer-service messages (None: the input has none)
    # Events too many to hold: an iterable of Arrow tables (tuwen.ingest.stream.EventStream) that the workspace
    # pulls chunk by chunk inside its write transaction; ``streamed`` counts the rows it wrote.
    event_stream: Any = None
    streamed: int = 0
    strict: bool = False  # any reject (streamed ones included) aborts the write

    def summary(self) -> dict[str, int]:
        counts = {
            "products": len(self.products),
            "interactions": len(self.interactions) + self.streamed,
            "reviews": len(self.reviews),
            "rejects": len(self.rejects),
            "missing_images": self.missing_images,
            "forgotten": self.forgotten,
        }
        for name in ("questions", "messages"):
            if getattr(self, name) is not None:
                counts[name] = len(getattr(self, name))
        return counts

    def landed(self) -> int:
        """Rows this batch writes to the workspace (products, events, reviews, shoppers, questions, messages)."""
        extra = sum(0 if frame is None else len(frame) for frame in (self.users, self.questions, self.messages))
        return len(self.products) + len(self.interactions) + self.streamed + len(self.reviews) + extra


class RejectedInput(ValueError):
    """Raised in strict mode: any reject is fatal, with all of them listed."""

    def __init__(self, rejects: list[Reject]):
        self.rejects = rejects
        shown = "\n".join(f"  {r}" for r in rejects[:20])
        more = f"\n  … and {len(rejects) - 20} more" if len(rejects) > 20 else ""
        super().__init__(f"{len(rejects)} input row(s) rejected:\n{shown}{more}")


class NoRowsLanded(RejectedInput):
    """An ingest in which not one row survived validation: nothing was written."""

    def __init__(self, rejects: list[Reject], forgotten: int = 0):
        super().__init__(rejects)
        why = f"all {len(rejects)} input row(s) were rejected" if rejects else "the input holds no data rows"
        if forgotten:
            why += f"; {forgotten} row(s) belonged to forgotten shoppers and were dropped"
        listing = self.args[0].partition("\n")[2]
        self.args = (f"no rows landed: {why}" + (f"\n{listing}" if listing else ""),)


def empty_frame(schema: pa.Schema) -> pd.DataFrame:
    return schema.empty_table().to_pandas()


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why this text cannot be stored, or None: undecodable bytes, lone surrogates or NUL characters.

    Text read with errors="surrogateescape" keeps undecodable bytes as U+DC80..U+DCFF; a JSON
    escape such as "\\ud800" yields a lone surrogate too. Neither encodes to UTF-8, so they would
    fail later (Arrow, LanceDB, HTTP) far from the row that caused them. NUL ends strings in C
    libraries and terminals, so an id or title with one is broken input.
    """
    if _UNSTORABLE.search(value) is None:  # the common case, scanned in C
        return None
    for ch in value:
        if "\ud800" <= ch <= "\udfff":
            return ("undecodable text (not valid UTF-8)" if "\udc80" <= ch <= "\udcff"
                    else "lone surrogate escape (not valid Unicode text)")
        if ch == "\x00":
            return "contains a NUL character"
    return None


def _cell_problem(column: str, value: Any) -> tuple[str, str] | None:
    """(field, reason) when one mapped cell is too long or holds text that cannot be stored."""
    limit = FIELD_LIMITS.get(column, SHORT_FIELD)
    if isinstance(value, dict):
        size = sum(len(str(k)) + len(str(v)) + 6 for k, v in value.items())  # ≈ its JSON length, cheaply
        if size > limit:
            return column, f"too long: attributes of about {size:,} characters (limit {limit:,})"
        for key, item in value.items():
            problem = text_problem(f"{key}{item}")
            if problem:
                return str(key), problem
        return None
    if not isinstance(value, str):
        return None
    if len(value) > limit:
        return column, f"too long: {len(value):,} characters (limit {limit:,})"
    problem = text_problem(value)
    return (column, problem) if problem else None


def _text_rejects(frame: pd.DataFrame, columns: Iterable[str], file: str, kind: str) -> dict[int, Reject]:
    """Rows whose text is over its field's length limit, undecodable, or holds NUL (see FIELD_LIMITS)."""
    bad: dict[int, Reject] = {}
    for column in columns:
        if column not in frame:
            continue
        for row, value in _suspect_cells(frame, column):
            if row in bad:
                continue
            problem = _cell_problem(column, value)
            if problem:
                bad[row] = Reject(file, row, problem[0], problem[1], kind)
    return bad


def _suspect_cells(frame: pd.DataFrame, column: str) -> Iterator[tuple[int, Any]]:
    """(row, value) of the cells _cell_problem could object to: text over the field's limit or holding NUL or a
    surrogate, and every cell that is not text. One C-level scan per cell instead of a Python loop per character."""
    values = frame[column].to_numpy(dtype=object)
    limit = FIELD_LIMITS.get(column, SHORT_FIELD)
    search = _UNSTORABLE.search
    suspect = [not isinstance(v, str) or len(v) > limit or search(v) is not None for v in values]
    rows = frame["_row"].to_numpy()
    for i in np.flatnonzero(suspect):
        yield int(rows[i]), values[i]


def future_limit() -> pd.Timestamp:
    """The latest acceptable event time: now plus FUTURE_SLACK."""
    return pd.Timestamp.now(tz="UTC") + FUTURE_SLACK


def clean_text(value: Any) -> str:
    """Missing values become "", whitespace is collapsed: titles are compared and hashed as text."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return " ".join(str(value).split())


def parse_price(value: Any) -> tuple[float | None, str | None]:
    """Returns (price, error); empty means unknown price, which is allowed."""
    text = clean_text(value).replace(",", "")
    if text == "":
        return None, None
    try:
        price = float(text)
    except ValueError:
        return None, f"not a number: {text[:40]!r}"
    if math.isnan(price) or math.isinf(price):
        return None, f"not a finite number: {text!r}"
    if price < 0:
        return None, f"negative price: {price}"
    return price, None


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Dates, datetimes and unix seconds all become UTC timestamps; unparseable ones become NaT."""
    text = values.map(clean_text)
    numeric = pd.to_numeric(text, errors="coerce")
    as_unix = pd.to_datetime(numeric.where(numeric > 10_000_000), unit="s", utc=True, errors="coerce")
    as_text = pd.to_datetime(text.where(numeric.isna()), utc=True, errors="coerce", format="mixed")
    return as_unix.fillna(as_text).astype("datetime64[us, UTC]")


def check_image(path: Path) -> str | None:
    """Why this file cannot serve as a product photo, or None when it can.

    Decodes a thumbnail (JPEG ``draft``) so truncated files are caught without paying
    for a full-size decode, and checks the pixel count from the header before decoding,
    so a decompression bomb is refused instead of exhausting memory.
    """
    try:
        info = path.stat()
    except OSError as error:
        return f"unreadable file: {error.strerror or error}"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a FIFO, device or folder)"  # opening a FIFO would block for ever
    size = info.st_size
    if size == 0:
        return "empty file"
    if size > MAX_IMAGE_BYTES:
        return f"absurdly large file ({size / 1e6:.0f} MB > {MAX_IMAGE_BYTES / 1e6:.0f} MB)"
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                return f"image too large ({width}x{height} pixels): possible decompression bomb"
            image.draft("RGB", (64, 64))
            image.load()
    except UnidentifiedImageError:
        return "not an image file"
    except Image.DecompressionBombError:
        return "decompression bomb"
    except (OSError, SyntaxError, ValueError) as error:
        return f"broken image: {error}"
    return None


def resolve_image(raw: str, root: Path) -> tuple[Path | None, str | None]:
    """Resolve a catalog's image reference inside its folder; refuses paths that escape it."""
    root = root.resolve()
    candidate = (root / raw).resolve()
    if not candidate.is_relative_to(root):
        return None, f"image path escapes the catalog folder: {raw!r}"
    return candidate, None


def split_paths(value: Any) -> list[str]:
    """One cell may hold several images: a JSON list, or paths separated by '|' or ';'."""
    text = clean_text(value)
    if not text:
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
            return [str(item).strip() for item in items if str(item).strip()]
        except json.JSONDecodeError:
            pass
    for separator in ("|", ";"):
        if separator in text:
            return [part.strip() for part in text.split(separator) if part.strip()]
    return [text]


def validate_products(raw: pd.DataFrame, file: str, image_root: Path, source: str, check_images: bool = True) -> Batch:
    """Turn mapped rows (columns: _row, id, title, description, image, category, attributes, price, currency)
    into canonical products, rejecting bad rows with their reason.

    Rule for photos: a referenced file that does not exist leaves the product in, without a
    photo (catalogs often lag their image folder; counted as ``missing_images``); a file
    that exists but is broken, not an image, hostile, or outside the catalog folder rejects
    the row, because it signals bad input the user should fix.
    """
    rejects = dict(_text_rejects(raw, ["id", "title", "description", "category", "attributes", "image", "currency",
                                       "price"], file, "products"))
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    image_jobs: list[tuple[int, Path]] = []
    missing = 0
    for record in raw.to_dict("records"):
        row = int(record["_row"])
        if row in rejects:
            continue
        product_id = clean_text(record.get("id"))
        if not product_id:
            rejects[row] = Reject(file, row, "id", "missing id")
            continue
        if product_id in seen:
            rejects[row] = Reject(file, row, "id", f"duplicate id {product_id!r}")
            continue
        price, price_error = parse_price(record.get("price"))
        if price_error:
            rejects[row] = Reject(file, row, "price", price_error)
            continue
        paths: list[str] = []
        path_error = None
        for ref in split_paths(record.get("image")):
            resolved, path_error = resolve_image(ref, image_root)
            if path_error:
                break
            assert resolved is not None
            if resolved.exists():
                paths.append(str(resolved))
                image_jobs.append((row, resolved))
            else:
                missing += 1
        if path_error:
            rejects[row] = Reject(file, row, "image", path_error)
            continue
        seen.add(product_id)
        attributes = record.get("attributes") or {}
        rows.append(
            {
                "_row": row,
                "id": product_id,
                "title": clean_text(record.get("title")),
                "description": clean_text(record.get("description")),
                "image_paths": paths,
                "has_image": bool(paths),
                "category": clean_text(record.get("category")),
                "attributes": attributes if isinstance(attributes, str) else json.dumps(attributes, ensure_ascii=False),
                "price": price,
                "currency": clean_text(record.get("currency")),
                "source": source,
            }
        )
    if check_images and image_jobs:
        workers = min(8, (os.cpu_count() or 2) * 2)
        with ThreadPoolExecutor(workers) as pool:
            problems = list(pool.map(check_image, [path for _, path in image_jobs]))
        for (row, path), problem in zip(image_jobs, problems, strict=True):
            if problem and row not in rejects:
                rejects[row] = Reject(file, row, "image", f"{path.name}: {problem}")
    products = pd.DataFrame([r for r in rows if r["_row"] not in rejects], columns=["_row", *PRODUCT_SCHEMA.names])
    products = products.drop(columns="_row").reset_index(drop=True)
    return Batch(products, empty_frame(INTERACTION_SCHEMA), empty_frame(REVIEW_SCHEMA),
                 sorted(rejects.values(), key=lambda r: r.row), missing)


def stable_id(*parts: Any) -> str:
    """A short, deterministic id from content: re-ingesting the same rows upserts rather than duplicates."""
    return hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).hexdigest()[:20]


def _review_number(record: dict[str, Any], column: str, required: bool) -> tuple[float, str | None]:
    """A review's rating / recommended value: (value or NaN, reason it is bad or None)."""
    text = clean_text(record.get(column))
    if text == "":
        return math.nan, (f"missing {column}" if required else None)
    try:
        value = float(text)
    except ValueError:
        return math.nan, f"not a number: {text[:20]!r}"
    if column == "rating" and not 1 <= value <= 5:
        return math.nan, f"rating {value} outside 1..5"
    if column == "recommended" and value not in (0.0, 1.0):
        return math.nan, f"recommended must be 1 or 0, not {text[:20]!r}"
    return value, None


def validate_reviews(raw: pd.DataFrame, file: str, image_root: Path | None = None, require_rating: bool = True,
                     require_product: bool = True) -> tuple[pd.DataFrame, list[Reject]]:
    """Mapped rows (columns: _row, id?, product_id, user_id, rating, text, timestamp, image?, and optionally
    recommended, label, category, attributes, group) → canonical reviews.

    ``group`` ties together copies of one review (same reviewer, same words) — the Amazon
    5-core file repeats a review once per product variant — so training can split by it; a loader that knows
    better (a whole product must stay on one side) maps its own ``group`` column.
    Rows without an id get one from (reviewer, product, time, text): re-ingesting upserts.
    Sets whose reviews name no product or carry no rating (a sentiment label instead) pass
    ``require_product=False`` / ``require_rating=False``: the missing value is then stored as ""/null.
    """
    rejects = _text_rejects(raw, ["id", "product_id", "user_id", "rating", "title", "text", "timestamp", "image",
                                  "variant", "recommended", "label", "category", "attributes", "group"], file,
                            "reviews")
    latest = future_limit()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    occurrences: dict[str, int] = {}
    stamps = parse_timestamps(raw["timestamp"]) if "timestamp" in raw else pd.Series(pd.NaT, index=raw.index)
    for record, stamp in zip(raw.to_dict("records"), stamps, strict=True):
        row = int(record["_row"])
        if row in rejects:
            continue
        product_id, user_id = clean_text(record.get("product_id")), clean_text(record.get("user_id"))
        text = clean_text(record.get("text"))
        if not product_id and require_product:
            rejects[row] = Reject(file, row, "product_id", "missing product id", "reviews")
            continue
        rating, problem = _review_number(record, "rating", require_rating)
        if problem:
            rejects[row] = Reject(file, row, "rating", problem if problem != "missing rating"
                                  else "not a number: ''", "reviews")
            continue
        recommended, problem = _review_number(record, "recommended", False)
        if problem:
            rejects[row] = Reject(file, row, "recommended", problem, "reviews")
            continue
        raw_stamp = clean_text(record.get("timestamp"))
        if raw_stamp and pd.isna(stamp):
            rejects[row] = Reject(file, row, "timestamp", f"bad timestamp {raw_stamp[:40]!r}", "reviews")
            continue
        if not pd.isna(stamp) and stamp > latest:
            rejects[row] = Reject(file, row, "timestamp", f"timestamp {stamp:%Y-%m-%d %H:%M} is in the future (later "
                                  "than now + 1 day)", "reviews")
            continue
        review_id = clean_text(record.get("id"))
        if not review_id:
            # Identical lines are numbered, not dropped: the file says they happened that many times.
            content = stable_id(user_id, product_id, raw_stamp, text, clean_text(record.get("title")),
                                clean_text(record.get("variant")))
            occurrences[content] = occurrences.get(content, -1) + 1
            review_id = stable_id(content, occurrences[content])
        elif review_id in seen:
            rejects[row] = Reject(file, row, "id", f"duplicate review id {review_id!r}", "reviews")
            continue
        seen.add(review_id)
        paths = []
        if image_root is not None:
            for ref in split_paths(record.get("image")):
                resolved, error = resolve_image(ref, image_root)
                if resolved is not None and resolved.exists() and check_image(resolved) is None:
                    paths.append(str(resolved))
        attributes = record.get("attributes")
        if isinstance(attributes, dict):
            attributes = json.dumps(attributes, ensure_ascii=False) if attributes else ""
        rows.append({"id": review_id, "product_id": product_id, "user_id": user_id, "rating": rating,
                     "title": clean_text(record.get("title")), "text": text,
                     "image_paths": paths, "timestamp": None if pd.isna(stamp) else stamp,
                     "group": clean_text(record.get("group")) or stable_id(user_id, text.lower()),
                     "recommended": recommended, "label": clean_text(record.get("label")),
                     "category": clean_text(record.get("category")), "attributes": clean_text(attributes)})
    frame = pd.DataFrame(rows, columns=REVIEW_SCHEMA.names)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    for column in ("rating", "recommended"):
        frame[column] = frame[column].astype(float)
    return frame, sorted(rejects.values(), key=lambda r: r.row)


def validate_questions(raw: pd.DataFrame, file: str) -> tuple[pd.DataFrame, list[Reject]]:
    """Mapped rows (columns: _row, id, product_id, question, answer, question_type, answer_type, timestamp?)
    → canonical questions.

    A question needs its product and its words; the answer may be empty (an unanswered question is still a
    question). ``answer_type`` must fit ``question_type``: Y/N/? for yes/no questions, "" for open-ended ones.
    """
    kind = "questions"
    rejects = _text_rejects(raw, ["id", "product_id", "question", "answer", "question_type", "answer_type",
                                  "timestamp"], file, kind)
    stamps = parse_timestamps(raw["timestamp"]) if "timestamp" in raw else pd.Series(pd.NaT, index=raw.index)
    latest = future_limit()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record, stamp in zip(raw.to_dict("records"), stamps, strict=True):
        row = int(record["_row"])
        if row in rejects:
            continue
        values = {name: clean_text(record.get(name)) for name in ("id", "product_id", "question", "answer",
                                                                   "question_type", "answer_type")}
        missing = next((name for name in ("id", "product_id", "question") if not values[name]), None)
        if missing:
            rejects[row] = Reject(file, row, missing, f"missing {missing.replace('_', ' ')}", kind)
            continue
        if values["id"] in seen:
            rejects[row] = Reject(file, row, "id", f"duplicate question id {values['id']!r}", kind)
            continue
        question_type = values["question_type"].lower() or "open-ended"
        if question_type not in QUESTION_TYPES:
            rejects[row] = Reject(file, row, "question_type", f"unknown question type {question_type[:40]!r} (use "
                                  f"{' or '.join(QUESTION_TYPES)})", kind)
            continue
        answer_type = values["answer_type"].upper() if question_type == "yes/no" else ""
        if question_type == "yes/no" and answer_type not in ANSWER_TYPES[:3]:
            rejects[row] = Reject(file, row, "answer_type", f"a yes/no question's answer type must be Y, N or ?, "
                                  f"not {values['answer_type'][:20]!r}", kind)
            continue
        if not pd.isna(stamp) and stamp > latest:
            rejects[row] = Reject(file, row, "timestamp", f"timestamp {stamp:%Y-%m-%d %H:%M} is in the future", kind)
            continue
        seen.add(values["id"])
        rows.append({**values, "question_type": question_type, "answer_type": answer_type,
                     "timestamp": None if pd.isna(stamp) else stamp})
    frame = pd.DataFrame(rows, columns=QUESTION_SCHEMA.names)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).astype("datetime64[us, UTC]")
    return frame, sorted(rejects.values(), key=lambda r: r.row)


def validate_messages(raw: pd.DataFrame, file: str) -> tuple[pd.DataFrame, list[Reject]]:
    """Mapped rows (columns: _row, id, text, intent?, category?, flags?) → canonical messages.

    A message needs an id and words; its labels may be empty (a message still to be routed)."""
    kind = "messages"
    rejects = _text_rejects(raw, ["id", "text", "intent", "category", "flags"], file, kind)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for record in raw.to_dict("records"):
        row = int(record["_row"])
        if row in rejects:
            continue
        values = {name: clean_text(record.get(name)) for name in MESSAGE_SCHEMA.names}
        missing = next((name for name in ("id", "text") if not values[name]), None)
        if missing:
            rejects[row] = Reject(file, row, missing, f"missing {missing}", kind)
            continue
        if values["id"] in seen:
            rejects[row] = Reject(file, row, "id", f"duplicate message id {values['id']!r}", kind)
            continue
        seen.add(values["id"])
        rows.append(values)
    return pd.DataFrame(rows, columns=MESSAGE_SCHEMA.names), sorted(rejects.values(), key=lambda r: r.row)


def rejects_frame(rejects: list[Reject]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rejects], columns=REJECT_SCHEMA.names)
