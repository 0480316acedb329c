"""Column mappings: which source column(s) feed each canonical field, and building the canonical columns.

Apart from the loaders (:mod:`tuwen.ingest.generic`) so the streaming event reader can map chunks with the same
rules without importing the loaders that build on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tuwen.store.catalog import clean_text

INTERACTION_FIELDS = ("user_id", "product_id", "timestamp", "kind", "value")
DEFAULT_INTERACTION_MAP = {name: name for name in INTERACTION_FIELDS}


class MappingError(ValueError):
    """A mapping names a field tuwen does not know, or a column the file does not have."""


@dataclass
class ColumnMap:
    """canonical field → source column(s); parsed from ``--map field=col[,col…]`` or a tuwen.toml table."""

    fields: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(cls, items: list[str] | Mapping[str, str | list[str]], allowed: tuple[str, ...]) -> ColumnMap:
        pairs: list[tuple[str, str | list[str]]] = []
        if isinstance(items, Mapping):
            pairs = list(items.items())
        else:
            for item in items:
                name, sep, columns = item.partition("=")
                if not sep or not name.strip() or not columns.strip():
                    raise MappingError(f"--map {item!r}: expected FIELD=COLUMN (e.g. title=product_name)")
                pairs.append((name.strip(), columns))
        fields: dict[str, list[str]] = {}
        for name, columns in pairs:
            if name not in allowed:
                raise MappingError(f"unknown field {name!r} in the column mapping; known: {', '.join(allowed)}")
            listed = columns if isinstance(columns, list) else columns.split(",")
            fields[name] = [c.strip() for c in listed if c.strip()]
        return cls(fields)

    def with_defaults(self, defaults: Mapping[str, str], columns: list[str]) -> ColumnMap:
        """Fill unmapped fields with same-named columns, when the file has them."""
        merged = dict(self.fields)
        for name, column in defaults.items():
            if name not in merged and column in columns:
                merged[name] = [column]
        return ColumnMap(merged)

    def check(self, columns: list[str], file: Path) -> None:
        for name, sources in self.fields.items():
            missing = [c for c in sources if c not in columns]
            if missing:
                raise MappingError(f"{file}: field {name!r} is mapped to column(s) {', '.join(missing)} that the file "
                                   f"does not have; it has: {', '.join(c for c in columns if c != '_row')}")


def apply_map(raw: pd.DataFrame, mapping: ColumnMap, file: Path, joiners: Mapping[str, str] | None = None,
              keep_rest_as_attributes: bool = False) -> pd.DataFrame:
    """Build the canonical columns (plus ``_row``) from the source columns."""
    mapping.check(list(raw.columns), file)
    joiners = joiners or {}
    out = pd.DataFrame({"_row": raw["_row"].to_numpy()})
    for name, sources in mapping.fields.items():
        if name == "attributes":
            continue
        if len(sources) == 1:
            out[name] = pd.Series(raw[sources[0]].to_numpy(), dtype=object)
        else:
            joiner = joiners.get(name, " ")
            parts = raw[sources].map(clean_text)
            out[name] = pd.Series([joiner.join(p for p in values if p) for values in parts.itertuples(index=False)],
                                  dtype=object)
    if keep_rest_as_attributes:
        used = {c for name, cs in mapping.fields.items() if name not in {"category", "attributes"} for c in cs}
        columns = mapping.fields.get("attributes") or [c for c in raw.columns if c != "_row" and c not in used]
        values = raw[columns].map(clean_text).to_dict("records") if columns else [{}] * len(raw)
        out["attributes"] = pd.Series([{k: v for k, v in record.items() if v != ""} for record in values],
                                      dtype=object)
    return out
