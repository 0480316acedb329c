"""The workspace manifest ``tuwen.json``: the schema version and the committed version of every table.

LanceDB commits each table write atomically, but an operation (an ingest) writes several tables. The manifest
records which table versions belong to the last complete operation and is replaced in one step (write + rename
on disk, one conditional PUT in a bucket) only after all of them landed; readers see those versions.
This module reads, checks and replaces it; :mod:`tuwen.store.workspace` decides what goes in it. It sits below
the workspace so that the modules the workspace builds on (the writer lock) can raise :class:`WorkspaceError`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tuwen.store.objectstore import ObjectStoreError, S3Folder

SCHEMA_VERSION = 1
MANIFEST = "tuwen.json"


class WorkspaceError(RuntimeError):
    """The folder is not a usable workspace (wrong schema version, not a workspace, locked)."""


def new_manifest() -> dict[str, Any]:
    """The manifest of a workspace that holds no table yet."""
    return {"schema_version": SCHEMA_VERSION, "created": time.time(), "tables": {}, "history": []}


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so that a reader sees the whole old file or the whole new one."""
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temp, path)


def read_manifest(folder: Path, remote: S3Folder | None) -> dict[str, Any]:
    """The manifest of the workspace in ``folder`` (or in the bucket ``remote``), checked to be one this tuwen
    reads."""
    try:
        text = remote.read_text(MANIFEST) if remote else (folder / MANIFEST).read_text(encoding="utf-8")
        manifest = json.loads(text)
    except (OSError, json.JSONDecodeError, ObjectStoreError) as error:
        where = f"{remote.uri}/{MANIFEST}" if remote else folder / MANIFEST
        raise WorkspaceError(f"{where}: unreadable workspace manifest: {error}") from error
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise WorkspaceError(
            f"{folder}: workspace schema version {version} is not supported by this tuwen "
            f"(it reads version {SCHEMA_VERSION}); re-ingest into a new workspace folder"
        )
    return manifest


def save_manifest(folder: Path, remote: S3Folder | None, manifest: dict[str, Any]) -> None:
    """Replace the manifest in one step: a rename on disk, one conditional PUT in a bucket."""
    text = json.dumps(manifest, indent=2)
    if remote is None:
        atomic_write_text(folder / MANIFEST, text)
        return
    try:
        remote.write_text(MANIFEST, text)
    except ObjectStoreError as error:
        raise WorkspaceError(str(error)) from error
