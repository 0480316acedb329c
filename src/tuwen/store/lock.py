"""One writer at a time per workspace: a file lock on disk, a leased lock object in a bucket.

A second writer waits for the first (``TUWEN_LOCK_TIMEOUT`` seconds, 60 by default) and says so on stderr
rather than failing at once, which would throw away the validation work its caller has already done.
"""

from __future__ import annotations

import contextlib
import fcntl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuwen.store.manifest import WorkspaceError
from tuwen.store.objectstore import ObjectStoreError, S3Folder


def wait_for_lock(lock: Any, folder: Path, timeout: float) -> None:
    """Take the file lock on the open file ``lock``, waiting up to ``timeout`` seconds for another writer of the
    workspace in ``folder`` to finish."""
    deadline = time.monotonic() + timeout
    said = False
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError as error:
            if time.monotonic() >= deadline:
                raise WorkspaceError(
                    f"{folder}: another tuwen process is still writing to this workspace after "
                    f"{timeout:g} s of waiting; try again when it is done (TUWEN_LOCK_TIMEOUT sets "
                    "the wait)") from error
            if not said:
                print(f"waiting for another tuwen process writing to {folder}… (up to "
                      f"{timeout:g} s)", file=sys.stderr, flush=True)
                said = True
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


@contextlib.contextmanager
def writer_lock(folder: Path, remote: S3Folder | None, timeout: float) -> Iterator[None]:
    """Hold the one-writer lock of the workspace in ``folder`` (or in the bucket ``remote``)."""
    if remote is not None:
        try:
            with remote.lock(timeout):
                yield
        except ObjectStoreError as error:
            raise WorkspaceError(str(error)) from error
        return
    with (folder / ".lock").open("w") as lock:
        wait_for_lock(lock, folder, timeout)
        yield
