"""``tuwen train WS --ray [ADDRESS]``: the training jobs of a product model as Ray tasks, the same model.

A cross-fitted model ("best" quality) is many self-contained jobs: each member (the model's network, its
class-weight candidates, the plain linear baselines) once per fold, then the kept members' refits, one per
bagging seed (:func:`tuwen.predict.training.crossfit.run_jobs`); a "fast" model fits its linear member beside
the network (:mod:`tuwen.predict.training.fast`). Locally they run in joblib's loky pool. Here they run in Ray's
own joblib backend (:mod:`ray.util.joblib`: a pool of Ray actors, placed anywhere on the cluster), chosen through
``TrainConfig.backend``, so the predict layer never imports Ray. Everything else (preparing the features from
the workspace, the stack, saving the model) stays on the driver, which alone opens the workspace.

Ray's backend starts a pool of actors for every ``Parallel`` call and ends it after; a cross-fitted model makes one
call for its folds and one for its refits, so each paid the actors' start again. :class:`WarmRayBackend` keeps an
idle pool for the next call of the same size, and :func:`train_ray` ends the pools when the model is trained.

Why the numbers are the same: every job seeds itself from the run's seed and its fold, runs on one thread, and
its arguments and result (NumPy arrays, the task, a network's state dict) travel pickled, exactly as to a loky
worker; the driver puts results back in job order. Nodes with another CPU or another build of the libraries may
differ in the last float digits, as two machines do without Ray.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from tuwen.distributed.cluster import actor_pool, ray_session, require_ray
from tuwen.predict.registry import train_model
from tuwen.predict.training.config import TrainConfig

if TYPE_CHECKING:  # annotations only
    from tuwen.predict.predictor import Predictor
    from tuwen.store.workspace import Workspace

BACKEND = "ray"  # the joblib backend's name, as TrainConfig.backend carries it


def warm_backend() -> type:
    """:class:`WarmRayBackend`, defined on first use: its base class comes with Ray, an optional extra."""
    global _WARM
    if _WARM is not None:
        return _WARM
    require_ray()
    from ray.util.joblib.ray_backend import RayBackend  # what ray.util.joblib.register_ray() registers

    class WarmRayBackend(RayBackend):  # type: ignore[misc, valid-type]
        """Ray's joblib backend whose pool of actors outlives one ``Parallel`` call: an idle pool of the same size
        and resources serves the next call; :func:`close_pools` ends them. Two calls at once get two pools."""

        idle: ClassVar[dict[tuple[int, str], list[Any]]] = {}
        lock: ClassVar[threading.Lock] = threading.Lock()

        def configure(self, n_jobs: int = 1, parallel: Any = None, prefer: Any = None, require: Any = None,
                      ray_remote_args: dict[str, Any] | None = None, **kwargs: Any) -> int:
            args = ray_remote_args if ray_remote_args is not None else self.ray_remote_args
            self.key = (self.effective_n_jobs(n_jobs), repr(sorted((args or {}).items())))
            with self.lock:
                waiting = self.idle.get(self.key)
                pool = waiting.pop() if waiting else None
            if pool is None:
                return super().configure(n_jobs, parallel, prefer, require, ray_remote_args, **kwargs)
            self._pool, self.parallel = pool, parallel
            return self.key[0]

        def terminate(self) -> None:
            """The call is over: its pool waits for the next call instead of ending."""
            if self._pool is not None:
                with self.lock:
                    self.idle.setdefault(self.key, []).append(self._pool)
                self._pool = None
            self.reset_batch_stats()

        def abort_everything(self, ensure_ready: bool = True) -> None:
            """A failed call's pool may hold broken actors: it ends, and a fresh one serves what follows."""
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.close()
                pool.terminate()
            super().abort_everything(ensure_ready)

    _WARM = WarmRayBackend
    return _WARM


_WARM: type | None = None


def close_pools() -> int:
    """End every idle pool (their actors); returns how many there were."""
    if _WARM is None:
        return 0
    with _WARM.lock:
        pools = [pool for waiting in _WARM.idle.values() for pool in waiting]
        _WARM.idle.clear()
    for pool in pools:
        pool.close()
        pool.terminate()
    return len(pools)


def ray_config(config: TrainConfig | None = None) -> TrainConfig:
    """``config`` with its jobs on the connected Ray cluster: as many processes as the cluster has CPUs (unless
    ``config.jobs`` says), each a Ray actor asking for a share of a CPU. Call it inside :func:`ray_session`.

    Why a share (:func:`tuwen.distributed.cluster.actor_pool`), not the whole CPU: Ray's joblib pool asks for no
    CPU at all by default, so the scheduler may stack every actor on one node; a share near one spreads them
    over the nodes while leaving some CPU to any other Ray work."""
    from joblib import register_parallel_backend

    ray = require_ray()
    config = config or TrainConfig()
    jobs = config.jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = actor_pool(jobs)
    register_parallel_backend(BACKEND, functools.partial(warm_backend(), ray_remote_args={"num_cpus": pool.cpus}))
    # joblib hands every pool a multiprocessing context, which Ray's pool ignores and warns about once
    logging.getLogger("ray.util.multiprocessing.pool").setLevel(logging.ERROR)
    return replace(config, backend=BACKEND, jobs=jobs)


def train_ray(workspace: Workspace, task: str, target: str | None = None, *, address: str | None = None,
              config: TrainConfig | None = None, **options: Any) -> Predictor:
    """:func:`tuwen.predict.registry.train_model` with the training jobs on Ray (connected to ``address``, or the
    Ray this process already uses, or one started here): the same model, saved the same way."""
    with ray_session(address):
        try:
            return train_model(workspace, task, target, config=ray_config(config), **options)
        finally:
            close_pools()
