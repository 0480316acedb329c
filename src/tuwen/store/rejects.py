"""Why an input row did not go in (:class:`Reject`), the errors that abort an ingest over them, and the
table the workspace keeps them in.

Why a module of its own: the validators, the vectorised event path (:mod:`tuwen.store.events`), the readers
that fail before a row is mapped, the workspace and the CLI all report rejects the same way
(file, row, field, reason), so the record and its errors sit below all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from tuwen.store.schemas import REJECT_SCHEMA


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


def rejects_frame(rejects: list[Reject]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rejects], columns=REJECT_SCHEMA.names)
