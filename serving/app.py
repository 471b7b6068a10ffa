"""App factory: ``create_app(settings)`` -> FastAPI app that loads its models in its lifespan.

Sessions are created once at start-up (a broken model file makes start-up fail with its reason);
warm-up then runs in the background and ``/readyz`` turns 200 when it is done.
"""
from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from impasto.core.model import StyleModel
from impasto.serving import http_errors, routes_api, routes_ops, routes_stream, routes_web
from impasto.serving.guard import GuardMiddleware
from impasto.serving.metrics import Metrics, MetricsMiddleware
from impasto.serving.service import RemoteInference, Service, load_models
from impasto.serving.settings import Settings

DESCRIPTION = """Real-time neural style transfer with onnxruntime.

`POST /v1/stylize` with an image (multipart field `image` or the raw body) and query parameters;
the answer is the stylized image. Concurrent requests for one model are batched together.
Every error answer is JSON: `{"error": code, "detail": message}`.
"""


def create_app(settings: Settings | None = None, models: list[StyleModel] | None = None, *,
               remote: RemoteInference | None = None, metrics: Metrics | None = None) -> FastAPI:
    """``models`` (already loaded) replaces loading from ``settings.models``; used by tests.

    ``remote`` sends inference to other processes (the Ray engine's replicas): the models loaded
    here then only give the catalog (styles, metadata) and request checks. ``metrics`` replaces the
    plain Prometheus registry (the Ray engine's also exports through Ray).
    """
    settings = settings or Settings()
    metrics = metrics or Metrics()
    service = Service(settings, metrics, remote)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loaded = models if models is not None else await run_in_threadpool(load_models, settings)
        service.start(loaded)
        warm = asyncio.create_task(service.warm_up())
        try:
            yield
        finally:
            warm.cancel()
            await asyncio.gather(warm, return_exceptions=True)
            await service.stop()
            metrics.process_stopped()

    # FastAPIOffline: the same FastAPI app, with /docs and /redoc assets served locally instead of a CDN.
    app = FastAPIOffline(title="impasto", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.service = service
    http_errors.install(app, metrics)
    app.include_router(routes_api.build_router(settings))
    app.include_router(routes_ops.router)
    app.include_router(routes_stream.build_router(settings))
    app.include_router(routes_web.router)
    app.mount("/static", routes_web.static_files(), name="static")
    app.add_middleware(GuardMiddleware, allowed_hosts=settings.served_hosts(),
                       allowed_origins=settings.allowed_origins, metrics=metrics)
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # the last added is outermost: counts refusals too
    return app


def factory() -> FastAPI:
    """For ``uvicorn --factory impasto.serving.app:factory`` and multi-worker runs: settings from IMPASTO_*."""
    return create_app(Settings())
