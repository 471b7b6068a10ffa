"""``impasto serve``: run the HTTP stylization service with uvicorn.

Every flag has an ``IMPASTO_*`` environment variable (see :mod:`impasto.serving.settings`); flags win.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from pydantic import ValidationError

from impasto.core.errors import ImpastoError
from impasto.serving.settings import Settings


def parse_args(argv: list[str] | None) -> dict:
    p = argparse.ArgumentParser(prog="impasto serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", help="directory of .onnx models (default: the bundled models; env IMPASTO_MODELS)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, help="port (default 8000)")
    p.add_argument("--workers", type=int, help="worker processes (default 1)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="onnxruntime device (default auto)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads per model")
    p.add_argument("--batching", action=argparse.BooleanOptionalAction, default=None,
                   help="group concurrent requests into one inference call (default on)")
    p.add_argument("--max-batch-size", type=int, help="images per inference call (default 8)")
    p.add_argument("--max-batch-wait-ms", type=float, help="longest a request waits for others (default 5)")
    p.add_argument("--max-queue", type=int, help="queued requests per model before 503 (default 64)")
    p.add_argument("--request-timeout-s", type=float, help="per-request time limit, then 504 (default 30)")
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"))
    args = vars(p.parse_args(argv))
    return {k: v for k, v in args.items() if v is not None}


def export_environment(settings: Settings) -> None:
    """Worker processes build their app from IMPASTO_* variables, so hand them the resolved settings."""
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        os.environ[f"IMPASTO_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)


def main(argv: list[str] | None = None) -> int:
    overrides = parse_args(argv)
    try:
        settings = Settings(**overrides)
        paths = settings.model_paths()  # fail here, with a clear message, not inside a worker
    except ValidationError as err:
        print(f"impasto serve: invalid setting: {err}", file=sys.stderr)
        return 2
    except ImpastoError as err:
        print(f"impasto serve: {err}", file=sys.stderr)
        return 2
    import uvicorn

    print(f"impasto serve: {len(paths)} model(s) from {paths[0].parent}; "
          f"http://{settings.host}:{settings.port}/ (API docs at /docs)", file=sys.stderr)
    common = dict(host=settings.host, port=settings.port, log_level=settings.log_level)
    if settings.workers == 1:
        from impasto.serving.app import create_app

        uvicorn.run(create_app(settings), **common)
    else:
        export_environment(settings)
        uvicorn.run("impasto.serving.app:factory", factory=True, workers=settings.workers, **common)
    return 0


if __name__ == "__main__":
    sys.exit(main())
