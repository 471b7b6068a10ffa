"""Camera-stream load benchmark: N concurrent clients of ``/api/stream``, each sending JPEG frames
(scikit-image photos) as fast as the answers come back (one frame in flight, like the web page),
for T seconds; prints per client and overall frames per second, latency p50/p99 and drops.

    python -m benchmarks.stream_load                          # a server with the bundled model, 4 clients
    python -m benchmarks.stream_load --clients 8 --seconds 30 --width 640 --height 480
    python -m benchmarks.stream_load --url ws://127.0.0.1:8000/api/stream   # a running server

Without ``--url`` an ``impasto serve`` is started on 127.0.0.1 (the bundled model, or ``--models``).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
from PIL import ImageOps

from benchmarks.load import HOST, BenchmarkError, _free_port, running_server, wait_ready
from benchmarks.tables import text_table
from impasto.core.imageio import SKIMAGE_PHOTOS, skimage_photo
from impasto.core.model import BUNDLED_MODELS

PHOTOS = SKIMAGE_PHOTOS[:4]  # astronaut, chelsea, coffee, rocket


def sample_frames(width: int, height: int) -> list[bytes]:
    """scikit-image photos cropped to the frame's aspect ratio and scaled, as JPEG (quality 85, as the page)."""
    frames = []
    for name in PHOTOS:
        buf = io.BytesIO()
        ImageOps.fit(skimage_photo(name), (width, height)).save(buf, "JPEG", quality=85)
        frames.append(buf.getvalue())
    return frames


@dataclass
class ClientStats:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    batches: list[int] = field(default_factory=list)
    drops: int = 0
    seconds: float = 0.0

    def row(self) -> list[str]:
        lat = np.asarray(self.latencies_ms or [np.nan])
        p50, p99 = np.percentile(lat, [50, 99])
        fps = len(self.latencies_ms) / self.seconds if self.seconds else float("nan")
        batch = np.mean(self.batches) if self.batches else float("nan")
        return [self.name, str(len(self.latencies_ms)), f"{fps:.1f}", f"{p50:.0f}", f"{p99:.0f}", str(self.drops),
                f"{batch:.2f}"]


def merged(clients: list[ClientStats], seconds: float) -> ClientStats:
    total = ClientStats("all", seconds=seconds)
    for c in clients:
        total.latencies_ms += c.latencies_ms
        total.batches += c.batches
        total.drops += c.drops
    return total


async def run_client(url: str, index: int, frames: list[bytes], args, start: float, stop: float) -> ClientStats:
    """One stream: a frame, its answer, the next frame; only answers after ``start`` are counted."""
    from websockets.asyncio.client import connect

    stats = ClientStats(f"client {index + 1}")
    try:
        async with connect(url, max_size=None, compression=None, open_timeout=30) as ws:
            json.loads(await ws.recv())  # hello
            if args.style:
                await ws.send(json.dumps({"style": args.style}))
                reply = json.loads(await ws.recv())
                if reply["type"] == "error":
                    raise BenchmarkError(f"style {args.style!r} refused: {reply['detail']}")
            i = index
            while time.monotonic() < stop:
                sent = time.perf_counter()
                await ws.send(frames[i % len(frames)])
                i += 1
                answer = json.loads(await ws.recv())
                if answer["type"] == "error":
                    raise BenchmarkError(f"the server closed the stream: {answer['detail']}")
                if answer["type"] == "frame":
                    await ws.recv()  # the stylised frame
                counted = time.monotonic() >= start
                if answer["type"] == "dropped":
                    stats.drops += counted
                elif counted:
                    stats.latencies_ms.append((time.perf_counter() - sent) * 1000.0)
                    stats.batches.append(answer["batch"])
    except OSError as err:
        raise BenchmarkError(f"cannot connect to {url}: {err}") from None
    return stats


async def load(url: str, frames: list[bytes], args) -> list[ClientStats]:
    start = time.monotonic() + args.warmup_seconds
    stop = start + args.seconds
    clients = await asyncio.gather(*(run_client(url, i, frames, args, start, stop) for i in range(args.clients)))
    for c in clients:
        c.seconds = args.seconds
    return list(clients)


def report(clients: list[ClientStats], args) -> str:
    rows = [c.row() for c in clients] + [merged(clients, args.seconds).row()]
    return text_table(["client", "frames", "fps", "p50 ms", "p99 ms", "drops", "mean batch"], rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream_load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a running server's stream, ws://HOST:PORT/api/stream (default: start one here)")
    p.add_argument("--models", help="directory of .onnx models for the started server (default: the bundled model)")
    p.add_argument("--style", help="style spec to ask for (default: the server's default style)")
    p.add_argument("--clients", type=int, default=4, help="concurrent streams (default %(default)s)")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds (default %(default)s)")
    p.add_argument("--warmup-seconds", type=float, default=2.0, help="unmeasured streaming first (default %(default)s)")
    p.add_argument("--width", type=int, default=320, help="frame width (default %(default)s)")
    p.add_argument("--height", type=int, default=240, help="frame height (default %(default)s)")
    p.add_argument("--threads", type=int, help="the started server's onnxruntime threads (default: onnxruntime's choice)")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    args = p.parse_args(argv)
    if not (0 < args.clients <= 256 and 0 < args.seconds <= 600 and args.warmup_seconds >= 0
            and 16 <= min(args.width, args.height) and max(args.width, args.height) <= 4096):
        p.error("need 0 < --clients <= 256, 0 < --seconds <= 600, --warmup-seconds >= 0, 16 <= --width, --height <= 4096")
    if args.url and not args.url.startswith(("ws://", "wss://")):
        p.error("--url takes ws://HOST:PORT/api/stream (or wss://)")
    try:
        return _run(args)
    except BenchmarkError as err:
        print(f"benchmarks.stream_load: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    frames = sample_frames(args.width, args.height)
    print(f"stream load: {args.clients} clients, {args.seconds:g} s (+{args.warmup_seconds:g} s warm-up), "
          f"{args.width}x{args.height} JPEG frames ({np.mean([len(f) for f in frames]) / 1024:.0f} KiB), one in flight "
          f"per client, {os.cpu_count()} CPUs visible")
    if args.url:
        clients = asyncio.run(load(args.url, frames, args))
    else:
        models = Path(args.models).expanduser() if args.models else BUNDLED_MODELS
        if not sorted(models.glob("*.onnx")):
            raise BenchmarkError(f"no .onnx models in {models}")
        print(f"server: impasto serve on {HOST}, model(s) {', '.join(m.name for m in sorted(models.glob('*.onnx')))}, "
              f"max batch {args.max_batch_size}, max wait {args.max_batch_wait_ms:g} ms")
        port = _free_port()
        # The server reads settings from IMPASTO_* too: room for every client's stream.
        with mock.patch.dict(os.environ, {"IMPASTO_MAX_STREAMS": str(max(16, args.clients))}), \
                running_server(models, port, True, args) as server:
            asyncio.run(_ready(f"http://{HOST}:{port}", server))
            clients = asyncio.run(load(f"ws://{HOST}:{port}/api/stream", frames, args))
    print()
    print(report(clients, args))
    return 0


async def _ready(base: str, server) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await wait_ready(client, server)


if __name__ == "__main__":
    sys.exit(main())
