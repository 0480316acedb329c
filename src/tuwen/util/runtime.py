"""The process's CPU budget: how many cores it may use, and torch's thread count scoped to one piece of work."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def cpu_count() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike ``os.cpu_count``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run torch CPU ops with ``threads`` intra-op threads (0 or None: leave as is), then restore the caller's.

    ``torch.set_num_threads`` is process-wide; scoping it keeps an encoder, a recommender or a training loop
    from silently changing the thread count of whatever runs next in the same process.
    """
    import torch  # heavy: loaded here so that importing this module (the CLI does) costs nothing

    before = torch.get_num_threads()
    if threads and before != threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
