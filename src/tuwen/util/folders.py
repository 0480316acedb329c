"""Saved artefacts (models, recommenders, the alignment): one way to write a folder and one format-version rule.

Why one helper: a folder is written into a temporary sibling and swapped in, so a crash or Ctrl-C leaves either
the old folder or the new one, never half of one; and every artefact states ``format_version`` in its JSON, which
a reader compares with the one version it reads, so a folder from an older tuwen fails in words ("retrain"),
not with a KeyError three calls later.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class FormatError(ValueError):
    """A saved folder this tuwen cannot read (another format version, or not that kind of artefact)."""


@contextmanager
def atomic_folder(folder: str | Path, carry: Sequence[str] = ()) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``folder``; when the block ends without error it replaces ``folder``.

    ``carry``: glob patterns of files or folders already in ``folder`` (training logs, checkpoints) copied into
    the new one first, so replacing a folder keeps what was written into it before the save.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        for pattern in carry if folder.exists() else ():
            for path in folder.glob(pattern):
                if path.is_dir():
                    shutil.copytree(path, temp / path.name)
                else:
                    shutil.copy2(path, temp / path.name)
        yield temp
        swap_folder(temp, folder)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def swap_folder(new: Path, folder: Path) -> None:
    """Replace ``folder`` by ``new`` with at most a rename's window in between."""
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
        os.replace(new, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, folder)


def write_info(path: Path, kind: str, version: int, data: dict[str, Any]) -> None:
    """An artefact's JSON description, headed by what it is and its format version."""
    info = {"artifact": kind, "format_version": version, **data}
    path.write_text(json.dumps(info, indent=2, ensure_ascii=False), encoding="utf-8")


def read_info(path: Path, kind: str, version: int, missing: str = "", older: tuple[int, ...] = ()) -> dict[str, Any]:
    """The JSON written by :func:`write_info`, refused in words when absent or of another format version.

    ``missing``: what to tell the user when the file is not there (e.g. which command makes one); ``older``: earlier
    format versions this tuwen still reads (a format that only dropped something this tuwen can do without), so a new
    version makes an older tuwen refuse the folder in words while this one keeps reading old folders.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent.name}: no saved {kind} here ({path.name} missing)"
                                + (f"; {missing}" if missing else ""))
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise FormatError(f"{path.parent.name}: {path.name} is unreadable ({error}); retrain it") from error
    found = info.get("format_version", info.get("format"))  # the alignment wrote "format" before this rule
    if found != version and found not in older:
        age = "a newer" if isinstance(found, int) and found > version else "an older"
        raise FormatError(f"{path.parent.name}: {kind} saved by {age} tuwen (format {found}, this tuwen reads "
                          f"{version}): retrain it")
    return info
