"""``impasto serve``: run the HTTP stylization service with uvicorn, or on Ray Serve (``--engine ray``).

Every flag has an ``IMPASTO_*`` environment variable (see :mod:`impasto.serving.settings`); flags win.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError

from impasto.core.cli import OneLineParser, missing_extra
from impasto.core.errors import ImpastoError
from impasto.serving.settings import Settings


def parse_args(argv: list[str] | None) -> dict:
    p = OneLineParser(prog="impasto serve", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", help="directory of .onnx models (default: the bundled models; env IMPASTO_MODELS)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument("--engine", choices=("local", "ray"),
                   help="local: this process (default); ray: model replicas on Ray Serve (the 'ray' extra)")
    p.add_argument("--replicas", type=int, help="--engine ray: model replicas (default 1)")
    p.add_argument("--autoscale", metavar="MIN:MAX",
                   help="--engine ray: scale model replicas between MIN and MAX on load (overrides --replicas)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="onnxruntime device (default auto)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads per model")
    p.add_argument("--batching", action=argparse.BooleanOptionalAction, default=None,
                   help="group concurrent requests into one inference call (default on)")
    p.add_argument("--max-batch-size", type=int, help="images per inference call (default 8)")
    p.add_argument("--max-batch-wait-ms", type=float, help="longest a request waits for others (default 5)")
    p.add_argument("--max-queue", type=int, help="queued requests per model before 503 (default 64)")
    p.add_argument("--request-timeout-s", type=float, help="per-request time limit, then 504 (default 30)")
    p.add_argument("--max-aspect-ratio", type=float,
                   help="refuse images longer than this many times their width or height (default 100)")
    p.add_argument("--decode-budget-pixels", type=int,
                   help="pixels being decoded at once across requests before 503 (default 64000000)")
    p.add_argument("--max-streams", type=int, help="camera stream connections open at once (default 16)")
    p.add_argument("--stream-max-side", type=int, help="longest side of a camera stream frame (default 640)")
    p.add_argument("--keep-alive-timeout-s", type=float, help="close idle connections after this (default 5)")
    p.add_argument("--header-timeout-s", type=float,
                   help="close connections whose request headers take longer than this (default 10)")
    p.add_argument("--allowed-hosts", help="comma-separated Host names to answer, '*' for any "
                                           "(default: localhost, 127.0.0.1, ::1 and --host)")
    p.add_argument("--allowed-origins", help="comma-separated origins whose web pages may POST here "
                                             "(default: only the service's own page)")
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"))
    args = vars(p.parse_args(argv))
    return {k: v for k, v in args.items() if v is not None}


def export_environment(settings: Settings) -> None:
    """Worker processes build their app from IMPASTO_* variables, so hand them the resolved settings."""
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        os.environ[f"IMPASTO_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Everything of ``uvicorn.Config`` that comes from the settings (tests run real servers with it)."""
    from impasto.serving.protocol import protocol_factory

    # Streams: a message over the frame limit is refused by the protocol (1009) before it is buffered
    # whole; no per-message compression, which would spend CPU deflating JPEGs for nothing.
    return dict(host=settings.host, port=settings.port, log_level=settings.log_level,
                http=protocol_factory(settings.header_timeout_s, settings.keep_alive_timeout_s),
                ws_max_size=settings.stream_max_frame_bytes, ws_per_message_deflate=False)


@contextmanager
def shared_metrics_directory():
    """Several workers: prometheus_client's multiprocess mode, in a directory of this run only.

    Set before the workers start (prometheus_client reads it at import) and removed at exit, so
    no counts of an earlier run are ever added in.
    """
    from impasto.serving.metrics import MULTIPROC_ENV

    with tempfile.TemporaryDirectory(prefix="impasto-metrics-") as directory:
        previous = os.environ.get(MULTIPROC_ENV)
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield directory
        finally:
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous


def main(argv: list[str] | None = None) -> int:
    overrides = parse_args(argv)
    try:
        settings = Settings(**overrides)
        if settings.engine == "ray" and (hint := missing_extra("serve --engine ray", ("ray", ("ray",)))):
            print(hint, file=sys.stderr)
            return 2
        # Every model is loaded here, before uvicorn starts: a missing, corrupt or non-conforming
        # model or an unavailable device is one line and exit 2, not a traceback from a worker.
        from impasto.serving.catalog import Catalog
        from impasto.serving.service import load_models

        models = load_models(settings)
        Catalog(models)  # model names must be unique
    except ValidationError as err:
        print(f"impasto serve: invalid setting: {err}".replace("\n", " "), file=sys.stderr)
        return 2
    except ImpastoError as err:
        print(f"impasto serve: {err}", file=sys.stderr)
        return 2
    if settings.engine == "ray":
        del models  # each replica loads its own sessions
        from impasto.serving import ray_app

        replicas = "{} to {}".format(*settings.autoscale) if settings.autoscale else settings.replicas
        print(f"impasto serve: Ray Serve, {replicas} model replica(s); http://{settings.host}:{settings.port}/",
              file=sys.stderr)
        return ray_app.run(settings)
    import uvicorn

    print(f"impasto serve: {len(models)} model(s) from {models[0].path.parent}; "
          f"http://{settings.host}:{settings.port}/ (API docs at /docs)", file=sys.stderr)
    if not settings.allowed_hosts and settings.host in ("0.0.0.0", "::"):
        print("impasto serve: only requests for localhost, 127.0.0.1 and ::1 are answered; pass "
              "--allowed-hosts with this machine's names (or '*') to serve other hosts", file=sys.stderr)
    options = uvicorn_options(settings)
    if settings.workers == 1:
        from impasto.serving.app import create_app

        uvicorn.run(create_app(settings, models=models), **options)
    else:
        del models  # each worker loads its own sessions
        export_environment(settings)
        with shared_metrics_directory():
            uvicorn.run("impasto.serving.app:factory", factory=True, workers=settings.workers, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
