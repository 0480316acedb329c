"""Joining (or starting) a Ray cluster, and sizing work for it.

Why fractional CPUs: Ray Data's own tasks (splitting blocks, moving them to the driver) need CPU too; a pool whose
actors take every whole CPU of a small machine leaves them none, and the pipeline waits forever. Each actor asks
for a share of a CPU instead, and the pool's total stays below the cluster's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

ACTOR_SHARE = 0.8  # of one CPU, per actor: the rest of the CPU is left to Ray Data's own tasks


def require_ray() -> ModuleType:
    """The ``ray`` module, or a clear message naming the extra that installs it.

    Ray's usage statistics are switched off here unless the user chose (``RAY_USAGE_STATS_ENABLED``): tuwen runs
    offline, and with them on, Ray Data's driver polls a Prometheus server from a thread for the rest of the
    process, logging a traceback for every failed poll."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data  # noqa: F401  (the `data` part of the extra)
    except ImportError as error:
        raise ImportError("this needs Ray, tuwen's optional extra: pip install 'tuwen[ray]'") from error
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None) -> Iterator[ModuleType]:
    """Use the Ray already connected in this process, else connect to ``address`` (``auto``, ``HOST:PORT`` or
    ``ray://HOST:PORT``) or, without one, start Ray on this machine; disconnect at the end only if connected here.

    Call it before opening a workspace: LanceDB's handles are not safe to carry across a fork."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    ray.init(address=address or None, logging_level=logging.WARNING, include_dashboard=False)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class Pool:
    """How many actors run a stage, and the CPU share and thread count each one gets."""

    actors: int
    cpus: float
    threads: int


def actor_pool(actors: int | None = None) -> Pool:
    """One actor per CPU of the cluster (or ``actors``), each asking for :data:`ACTOR_SHARE` of a CPU."""
    ray = require_ray()
    total = float(ray.cluster_resources().get("CPU", 1.0))
    count = max(1, actors or int(total))
    share = min(ACTOR_SHARE, ACTOR_SHARE * total / count)
    return Pool(count, round(share, 3), max(1, round(share)))


def quiet_data_context() -> None:
    """Ray Data without its own progress bars (tuwen draws one bar per stage on the driver)."""
    ray = require_ray()
    with warnings.catch_warnings():  # Ray's own deprecated settings warn when the context is first built
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
