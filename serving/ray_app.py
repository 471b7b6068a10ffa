"""The Ray Serve engine (``impasto serve --engine ray``, ``serve run`` config files; the ``ray`` extra).

One Serve application of two deployments:

- ``Ingress``: the single-process server's FastAPI app itself (``serve.ingress``: web page, API,
  ``/healthz``, ``/readyz``, ``/metrics``); checks, decoding and encoding run here, on models
  loaded only for their catalog (styles, metadata).
- ``StyleModels``: the replicas. Each loads the onnxruntime sessions, warms them up before Ray
  routes to it, and runs impasto's :class:`~impasto.serving.batching.Batcher` (one per model; not
  Ray's ``@serve.batch`` as well). Fixed ``replicas`` or ``autoscale`` MIN:MAX on requests in
  flight per replica.

A replica that dies takes only its in-flight requests with it, answered 503 with ``Retry-After``
like a full queue; Serve starts a new one.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

import numpy as np
from ray import serve  # type: ignore[import-not-found,unused-ignore]
from ray.exceptions import RayActorError, RayTaskError  # type: ignore[import-not-found,unused-ignore]
from ray.serve.exceptions import (  # type: ignore[import-not-found,unused-ignore]
    BackPressureError,
    DeploymentUnavailableError,
    ReplicaUnavailableError,
)
from starlette.concurrency import run_in_threadpool

from impasto.serving.app import create_app
from impasto.serving.batching import BatchResult, Overloaded, Submitter
from impasto.serving.ray_metrics import RayMetrics
from impasto.serving.service import Service, load_models
from impasto.serving.settings import Settings

APP_NAME = "impasto"
MODELS_DEPLOYMENT = "StyleModels"
# What a call to a replica raises when the replica is gone or Serve will not queue more for it.
UNAVAILABLE = (RayActorError, BackPressureError, DeploymentUnavailableError, ReplicaUnavailableError)


class StyleModels:
    """A model replica: onnxruntime sessions and one batcher per model."""

    async def __init__(self, settings: dict[str, Any]):  # type: ignore[misc]  # Serve awaits an async constructor
        self.settings = Settings(**settings)
        self.service = Service(self.settings, RayMetrics())
        self.service.start(await run_in_threadpool(load_models, self.settings))
        await self.service.warm_up()
        if not self.service.ready:  # fail the replica's start: Serve retries it and reports the reason
            raise RuntimeError(self.service.warmup_error)
        self.replica = serve.get_replica_context().replica_id.unique_id

    async def infer(self, model: str, image: np.ndarray, weights: np.ndarray | None) -> BatchResult:
        result = await self.service.batchers[model].submit(image, weights)
        result.replica = self.replica
        return result

    def check_health(self) -> None:
        """Serve calls this periodically; raising replaces the replica."""
        stopped = [name for name, batcher in self.service.batchers.items() if not batcher.running]
        if stopped:
            raise RuntimeError(f"batcher stopped for model(s) {', '.join(stopped)}")

    def identity(self) -> tuple[str, int]:
        """(replica id, process id), for operators and tests."""
        return self.replica, os.getpid()


class _ReplicaClient:
    """A :class:`~impasto.serving.batching.Submitter` whose batcher is in a ``StyleModels`` replica."""

    def __init__(self, handle: Any, model: str):
        self.handle, self.model = handle, model

    async def submit(self, image: np.ndarray, weights: np.ndarray | None = None) -> BatchResult:
        try:
            return await self.handle.infer.remote(self.model, image, weights)
        except RayTaskError as err:  # raised in the replica: as it would have been here
            cause = err.cause
            if isinstance(cause, Overloaded):
                raise Overloaded(self.model, str(cause)) from None
            raise cause from None
        except UNAVAILABLE as err:
            raise Overloaded(self.model, f"model replica unavailable ({type(err).__name__})") from None


class Replicas:
    """The ingress's :class:`~impasto.serving.service.RemoteInference`: the ``StyleModels`` deployment
    of Serve application ``app``."""

    def __init__(self, handle: Any, app: str):
        self.handle, self.app = handle, app

    def submitters(self, names: list[str]) -> dict[str, Submitter]:
        return {name: _ReplicaClient(self.handle, name) for name in names}

    async def unready_reason(self) -> str | None:
        try:
            status = await run_in_threadpool(serve.status)
            deployment = status.applications[self.app].deployments[MODELS_DEPLOYMENT]
        except Exception as err:  # controller unreachable, application being replaced: not ready, not a 500
            return f"model replicas' state unknown ({type(err).__name__})"
        if any(state == "RUNNING" and count for state, count in deployment.replica_states.items()):
            return None
        return f"no model replica running ({deployment.status}: {deployment.message or 'starting'})"


class Ingress:
    def __init__(self, settings: dict[str, Any], models: Any):
        self.settings, self.models = Settings(**settings), models

    def __serve_build_asgi_app__(self):
        # The ingress's own sessions only describe the models: on the CPU, one onnxruntime thread each.
        replicas = Replicas(self.models, serve.get_replica_context().app_name)
        return create_app(self.settings.model_copy(update={"threads": 1, "device": "cpu"}), remote=replicas,
                          metrics=RayMetrics())


def replica_threads(settings: Settings) -> int:
    """onnxruntime threads per replica: as set, else this machine's cores shared by the most replicas."""
    most = settings.autoscale[1] if settings.autoscale else settings.replicas
    return settings.threads or max(1, (os.cpu_count() or 1) // most)


def deployment_options(settings: Settings, autoscaling: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """Serve options of (``StyleModels``, ``Ingress``); ``autoscaling`` adds to the autoscaling config."""
    batch = settings.max_batch_size if settings.batching else 1
    threads = replica_threads(settings)
    models: dict[str, Any] = {
        "name": MODELS_DEPLOYMENT,
        # One batch running and the next filling. Below a batch, Serve's cap (default 5) would
        # silently cap every batch.
        "max_ongoing_requests": 2 * batch,
        # Beyond this many waiting for a replica: 503 + Retry-After, as a full queue is locally.
        "max_queued_requests": settings.max_queue,
        # Ray places a replica only where `threads` cores are free: threads x replicas <= cores.
        "ray_actor_options": {"num_cpus": threads},
        "health_check_period_s": 2.0,
        "health_check_timeout_s": 10.0,
        "logging_config": {"log_level": settings.log_level.upper()},
    }
    if settings.autoscale:
        low, high = settings.autoscale
        models["autoscaling_config"] = {"min_replicas": low, "max_replicas": high,
                                        "target_ongoing_requests": batch, **(autoscaling or {})}
    else:
        models["num_replicas"] = settings.replicas
    most = settings.autoscale[1] if settings.autoscale else settings.replicas
    ingress = {
        "name": "Ingress",
        # Enough requests in progress to keep every replica's batches full, plus a queue's worth.
        "max_ongoing_requests": most * 2 * batch + settings.max_queue,
        # Decoding and encoding are short; the cores are reserved for the replicas' inference.
        "ray_actor_options": {"num_cpus": 0},
        "logging_config": {"log_level": settings.log_level.upper()},
    }
    return models, ingress


def build_app(settings: Settings, autoscaling: dict[str, Any] | None = None):
    """The bound Serve application for ``settings`` (``serve.run(build_app(...))``)."""
    models_options, ingress_options = deployment_options(settings, autoscaling)
    values = settings.model_copy(update={"threads": replica_threads(settings)}).model_dump(mode="json")
    models = serve.deployment(**models_options)(StyleModels).bind(values)
    return serve.deployment(**ingress_options)(serve.ingress()(Ingress)).bind(values, models)


def app_builder(args: dict[str, Any]):
    """For ``serve run``/``serve deploy`` config files: ``import_path: impasto.serving.ray_app:app_builder``,
    ``args`` = settings (as ``impasto serve`` flags, e.g. ``{models: /srv/models, autoscale: "1:4"}``)."""
    return build_app(Settings(**args))


def run(settings: Settings) -> int:
    """``impasto serve --engine ray``: join the Ray cluster (RAY_ADDRESS) or start one here, serve
    the application on ``settings.host:port`` until interrupted."""
    import ray  # type: ignore[import-not-found,unused-ignore]

    # A local instance without Ray's dashboard: lighter and quicker to start (for the dashboard,
    # `ray start --head` first and point RAY_ADDRESS at it; joining a cluster ignores this).
    try:
        ray.init(logging_level=logging.WARNING, include_dashboard=False)
    except Exception as err:  # Ray's own start-up failures (a busy or misconfigured machine): one line, exit 2
        print(f"impasto serve: Ray did not start: {err}".splitlines()[0], file=sys.stderr)
        return 2
    try:
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(build_app(settings), name=APP_NAME, route_prefix="/", blocking=True)
    except KeyboardInterrupt:  # Serve has deleted the application
        pass
    finally:
        ray.shutdown()  # stops the local instance if this process started it, else disconnects
    return 0
