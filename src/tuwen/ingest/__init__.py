"""Loaders: one per source catalog, plus the generic column-mapped loader for a user's own files.

Each returns a :class:`tuwen.store.catalog.Batch`; nothing here writes to a workspace.
"""

from tuwen.ingest.generic import ColumnMap, load_generic, load_toml
from tuwen.ingest.presets import PRESETS, load_preset

__all__ = ["PRESETS", "ColumnMap", "load_generic", "load_preset", "load_toml"]
