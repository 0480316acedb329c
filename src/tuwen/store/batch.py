"""What a loader hands the workspace: the canonical tables of one ingest plus every reject.

Why a module of its own: every loader builds a :class:`Batch` and the workspace writes one, while neither
needs the validation rules that fill it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tuwen.store.rejects import Reject


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
