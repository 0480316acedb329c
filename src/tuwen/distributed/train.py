"""``tuwen train WS --ray [ADDRESS]``: the training jobs of a product model as Ray tasks, the same model.

A cross-fitted model ("best" quality) is many self-contained jobs: each member (the model's network, its
class-weight candidates, the plain linear baselines) once per fold, then the kept members' refits, one per
bagging seed (:func:`tuwen.predict.training.crossfit.run_jobs`); a "fast" model fits its linear member beside
the network (:mod:`tuwen.predict.training.fast`). Locally they run in joblib's loky pool. Here they run in Ray's
own joblib backend (:mod:`ray.util.joblib`: a pool of Ray actors, placed anywhere on the cluster), chosen through
``TrainConfig.backend``, so the predict layer never imports Ray. Everything else (preparing the features from
the workspace, the stack, saving the model) stays on the driver, which alone opens the workspace.

Why the numbers are the same: every job seeds itself from the run's seed and its fold, runs on one thread, and
its arguments and result (NumPy arrays, the task, a network's state dict) travel pickled, exactly as to a loky
worker; the driver puts results back in job order. Nodes with another CPU or another build of the libraries may
differ in the last float digits, as two machines do without Ray.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tuwen.distributed.cluster import actor_pool, ray_session, require_ray
from tuwen.predict.registry import train_model
from tuwen.predict.training.config import TrainConfig

if TYPE_CHECKING:  # annotations only
    from tuwen.predict.predictor import Predictor
    from tuwen.store.workspace import Workspace

BACKEND = "ray"  # the joblib backend's name, as TrainConfig.backend carries it


def ray_config(config: TrainConfig | None = None) -> TrainConfig:
    """``config`` with its jobs on the connected Ray cluster: as many processes as the cluster has CPUs (unless
    ``config.jobs`` says), each a Ray actor asking for a share of a CPU. Call it inside :func:`ray_session`.

    Why a share (:func:`tuwen.distributed.cluster.actor_pool`), not the whole CPU: Ray's joblib pool asks for no
    CPU at all by default, so the scheduler may stack every actor on one node; a share near one spreads them
    over the nodes while leaving some CPU to any other Ray work."""
    from joblib import register_parallel_backend

    ray = require_ray()
    from ray.util.joblib.ray_backend import RayBackend  # what ray.util.joblib.register_ray() registers

    config = config or TrainConfig()
    jobs = config.jobs or max(1, int(ray.cluster_resources().get("CPU", 1)))
    pool = actor_pool(jobs)
    register_parallel_backend(BACKEND, functools.partial(RayBackend, ray_remote_args={"num_cpus": pool.cpus}))
    # joblib hands every pool a multiprocessing context, which Ray's pool ignores and warns about once
    logging.getLogger("ray.util.multiprocessing.pool").setLevel(logging.ERROR)
    return replace(config, backend=BACKEND, jobs=jobs)


def train_ray(workspace: Workspace, task: str, target: str | None = None, *, address: str | None = None,
              config: TrainConfig | None = None, **options: Any) -> Predictor:
    """:func:`tuwen.predict.registry.train_model` with the training jobs on Ray (connected to ``address``, or the
    Ray this process already uses, or one started here): the same model, saved the same way."""
    with ray_session(address):
        return train_model(workspace, task, target, config=ray_config(config), **options)
