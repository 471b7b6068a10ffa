"""What the app holds between requests: settings, metrics, models, batchers, readiness."""
from __future__ import annotations

import asyncio
import logging
from typing import Protocol

import numpy as np
from starlette.concurrency import run_in_threadpool

from impasto.core.contract import MIN_SIDE
from impasto.core.model import StyleModel
from impasto.serving.batching import Batcher, Submitter
from impasto.serving.catalog import Catalog
from impasto.serving.metrics import Metrics
from impasto.serving.pipeline import Stylizer
from impasto.serving.settings import Settings

log = logging.getLogger(__name__)


def load_models(settings: Settings) -> list[StyleModel]:
    return [StyleModel(path, device=settings.device, threads=settings.threads) for path in settings.model_paths()]


class RemoteInference(Protocol):
    """Inference in other processes (the Ray engine's model replicas, each with its own batchers)."""

    def submitters(self, names: list[str]) -> dict[str, Submitter]: ...

    async def unready_reason(self) -> str | None:
        """None when a replica can take requests now, else why not (for ``/readyz``)."""


class Service:
    def __init__(self, settings: Settings, metrics: Metrics, remote: RemoteInference | None = None):
        self.settings, self.metrics, self.remote = settings, metrics, remote
        self.catalog: Catalog | None = None
        self.batchers: dict[str, Batcher] = {}
        self.stylizer: Stylizer | None = None
        self.ready = False
        self.warmup_error: str | None = None

    def start(self, models: list[StyleModel]) -> None:
        """Build the catalog and one running batcher per model (inside the event loop); with
        ``remote`` inference the requests go to its submitters instead and no batcher runs here."""
        self.catalog = Catalog(models)
        if self.remote is not None:
            self.stylizer = Stylizer(self.settings, self.catalog, self.remote.submitters(list(self.catalog.models)))
            return
        s = self.settings
        for model in models:
            name = model.name
            batch_size, wait_s = (s.max_batch_size, s.max_batch_wait_ms / 1000.0) if s.batching else (1, 0.0)

            def on_batch(size, seconds, name=name):
                self.metrics.batch_size.labels(name).observe(size)
                self.metrics.inference.labels(name).observe(seconds)

            batcher = Batcher(name, model.run, max_batch_size=batch_size, max_wait_s=wait_s, max_queue=s.max_queue,
                              on_batch=on_batch, on_depth=self.metrics.queue_depth.labels(name).set)
            batcher.start()
            self.batchers[name] = batcher
        self.stylizer = Stylizer(s, self.catalog, self.batchers)

    async def warm_up(self) -> None:
        """One small inference per model, so the first real request does not pay for arena allocation."""
        if self.catalog is None:
            raise RuntimeError("start() the service before warming it up")
        if self.remote is not None:  # replicas warm up their own sessions before they take requests
            self.ready = True
            return
        models = list(self.catalog.models.values())
        try:
            for model in models:
                image = np.full((1, 3, MIN_SIDE * 2, MIN_SIDE * 2), 0.5, dtype=np.float32)
                weights = model.style_weights(None)[None] if model.blendable else None
                await run_in_threadpool(model.run, image, weights)
            self.ready = True
            log.info("ready: %s", ", ".join(f"{m.name} ({len(m.style_names)} styles, {m.providers[0]})"
                                            for m in models))
        except Exception as err:  # a model that cannot run must keep /readyz red, not crash the loop
            self.warmup_error = f"warm-up failed: {err}".splitlines()[0]
            log.error(self.warmup_error)

    async def unready_reason(self) -> str | None:
        """None when requests can be served now, else why not (``/readyz``)."""
        if not self.ready:
            return self.warmup_error or "models are warming up"
        return await self.remote.unready_reason() if self.remote is not None else None

    async def stop(self) -> None:
        self.ready = False
        await asyncio.gather(*(b.stop() for b in self.batchers.values()))
