"""The validation that turns mapped raw rows into canonical products, reviews, questions and messages.

Every loader maps its source's columns onto the canonical columns (:mod:`tuwen.store.schemas`) and then
calls ``validate_*``: one place decides what a good row is, so every data set, the CLI and the HTTP API
reject bad input for the same reasons and report it the same way (file, row, field, reason). Good rows
always go through. Shoppers' events take the vectorised path in :mod:`tuwen.store.events` instead.
"""

from __future__ import annotations

import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from tuwen.store.batch import Batch
from tuwen.store.cells import _text_rejects, clean_text, future_limit, parse_price, parse_timestamps, stable_id
from tuwen.store.images import check_image, resolve_image, split_paths
from tuwen.store.rejects import Reject
from tuwen.store.schemas import (
    ANSWER_TYPES,
    INTERACTION_SCHEMA,
    MESSAGE_SCHEMA,
    PRODUCT_SCHEMA,
    QUESTION_SCHEMA,
    QUESTION_TYPES,
    REVIEW_SCHEMA,
    empty_frame,
)


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
