"""Prometheus metrics, one :class:`CollectorRegistry` per app (several apps can share a process).

Every label value comes from a closed set (route templates, standard methods, the app's status
and error codes, model names), so no client can grow the number of series.

With several worker processes (``impasto serve --workers N``) prometheus_client's multiprocess
mode is on (``PROMETHEUS_MULTIPROC_DIR``, set by ``impasto serve`` before the workers start):
each worker writes its values to files in that directory and a scrape, whichever worker answers
it, adds up the files of all of them.
"""
from __future__ import annotations

import logging
import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The client went away mid-request (e.g. mid-upload): not a server error. Counted under 499, the
# status nginx made the convention for it; nothing is sent (there is nobody to send it to).
CLIENT_GONE: tuple[type[BaseException], ...] = (ClientDisconnect,)
CLIENT_CLOSED = 499


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or os.environ.get(MULTIPROC_ENV.lower())


def method_label(method: str) -> str:
    """HTTP allows any token as a method: anything non-standard shares one label value."""
    return method if method in METHODS else "other"


def route_label(scope) -> str:
    """The matched route's template (``/v1/stylize``), never the raw URL; ``unmatched`` otherwise."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("impasto_http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("impasto_http_request_duration_seconds", "HTTP request latency by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("impasto_errors", "error answers by route and error code",
                              ["route", "error"], registry=r)
        self.inference = Histogram("impasto_inference_duration_seconds", "onnxruntime time per batch",
                                   ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("impasto_batch_size", "images per onnxruntime call", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        # Several workers: the sum over the live ones (a worker's files are dropped when it stops).
        self.queue_depth = Gauge("impasto_queue_depth", "requests waiting for a batch", ["model"], registry=r,
                                 multiprocess_mode="livesum")
        self.rejected = Counter("impasto_rejected",
                                "requests refused as overloaded (queue full, decode budget spent, out of memory)",
                                ["model"], registry=r)
        # Live camera streams (WebSocket): what was answered, what was dropped and why, what is open.
        self.stream_frames = Counter("impasto_stream_frames", "stream frames stylised and sent back", ["model"],
                                     registry=r)
        self.stream_drops = Counter("impasto_stream_drops", "stream frames not stylised (stale: a newer frame "
                                    "replaced it; overloaded; timeout)", ["reason"], registry=r)
        self.streams_open = Gauge("impasto_streams_open", "open stream connections", ["route"], registry=r,
                                  multiprocess_mode="livesum")
        self.stream_latency = Histogram("impasto_stream_frame_duration_seconds", "stream frame from receipt to "
                                        "answer", ["model"], buckets=LATENCY_BUCKETS, registry=r)

    def render(self) -> tuple[bytes, str]:
        if multiprocess_dir():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def count_error(self, scope, error: str) -> None:
        self.errors.labels(route_label(scope), error).inc()

    def process_stopped(self) -> None:
        """Drop this process's live gauges from the shared files (multiprocess mode only)."""
        if multiprocess_dir():
            multiprocess.mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Pure ASGI middleware: counts every HTTP answer (errors included) by route template.

    A client that went away mid-request is counted as ``499`` and logged at info level: nothing
    went wrong on this side. Caught here, outside the app's exception handlers, so that the
    catch-all 500 handler never sees it (it would log a traceback, and uvicorn a second one).
    """

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except CLIENT_GONE:
            status["code"] = CLIENT_CLOSED
            self.metrics.count_error(scope, "client_closed")
            log.info("client closed the connection during %s %s", scope["method"], scope["path"])
        finally:
            route = route_label(scope)
            self.metrics.requests.labels(route, method_label(scope["method"]), str(status["code"])).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
