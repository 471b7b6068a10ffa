"""Load benchmark: a real ``impasto serve`` on 127.0.0.1, N concurrent clients for T seconds,
batching on vs off side by side, on one or more engines (the single process, Ray Serve with N
model replicas).

    python -m benchmarks.load --models DIR --clients 16 --seconds 10
    python -m benchmarks.load --models DIR --modes on --engines local,ray:1,ray:2

Without ``--models`` an untrained default-size network is exported to a temporary directory
(needs the ``train`` extra); its speed is that of a trained one of the same architecture.
The server only ever binds the loopback address.
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image

from benchmarks.tables import text_table
from impasto.core.errors import ModelError
from impasto.core.model import StyleModel

HOST = "127.0.0.1"  # loopback only, by design
EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception): ")


class BenchmarkError(RuntimeError):
    """A one-line, user-facing reason the benchmark cannot run."""


def peak_rss_mib(pid: int, field_name: str = "VmHWM") -> float:
    """A process's peak (VmHWM) or current (VmRSS) resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) / 1024.0
    raise BenchmarkError(f"no {field_name} in /proc/{pid}/status (this measurement needs Linux)")


def descendants(pid: int) -> list[int]:
    """The processes started by ``pid``, at any depth (Ray's own and its replicas), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its closing bracket.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_peak_rss_mib(pid: int) -> float:
    """The sum of the peak resident memory of ``pid`` and every process it started: an upper
    bound of what the server held at once (the peaks need not coincide)."""
    total = peak_rss_mib(pid)
    for child in descendants(pid):
        try:
            total += peak_rss_mib(child)
        except (OSError, BenchmarkError):  # exited meanwhile, or a zombie without memory
            pass
    return total


@dataclass
class RunStats:
    mode: str
    latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)  # each answered request's X-Batch-Size
    errors: int = 0
    seconds: float = 0.0
    error_kinds: dict[str, int] = field(default_factory=dict)
    peak_rss_mib: float = float("nan")  # the server's process tree, over its whole life

    @property
    def mean_batch(self) -> float:
        """Images per model call: a call of b images answers b requests, so calls = sum(1/b)."""
        calls = sum(1.0 / b for b in self.batch_sizes)
        return len(self.batch_sizes) / calls if calls else float("nan")

    def row(self) -> list[str]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.asarray([np.nan])
        p50, p95, p99 = np.percentile(lat, [50, 95, 99])
        return [self.mode, str(len(self.latencies_ms) + self.errors), str(self.errors),
                f"{len(self.latencies_ms) / self.seconds:.1f}", f"{p50:.0f}", f"{p95:.0f}", f"{p99:.0f}",
                f"{self.mean_batch:.2f}", f"{self.peak_rss_mib:.0f}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def export_default_model(directory: Path) -> Path:
    """An untrained Johnson-size network (the architecture's defaults) as ONNX."""
    import torch

    from impasto.models.transformer import StylizationNetwork
    from impasto.training.export import export_onnx

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(StylizationNetwork(style_names=["untrained"]), directory / "untrained.onnx")


def sample_images(size: int, count: int = 4) -> list[bytes]:
    rng = np.random.default_rng(0)
    images = []
    for _ in range(count):
        small = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        buf = io.BytesIO()
        Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC).save(buf, "PNG")
        images.append(buf.getvalue())
    return images


@dataclass
class Server:
    proc: subprocess.Popen
    log: IO[str]  # the server's stderr

    def exit_reason(self) -> str | None:
        """The server's last exception line (else its last line) once it has exited; None while it runs."""
        if self.proc.poll() is None:
            return None
        self.log.seek(0)
        lines = self.log.read().strip().splitlines()
        exceptions = [line for line in lines if EXCEPTION_LINE.match(line)]
        return (exceptions or lines or [f"exit status {self.proc.returncode}"])[-1]


@dataclass(frozen=True)
class Engine:
    """``local`` (one process) or ``ray:N`` (Ray Serve, N model replicas)."""

    name: str = "local"
    replicas: int = 1

    @classmethod
    def parse(cls, text: str) -> Engine:
        name, _, count = text.strip().partition(":")
        if name == "local" and not count:
            return cls()
        if name == "ray" and (count or "1").isdigit() and int(count or "1") >= 1:
            return cls("ray", int(count or "1"))
        raise ValueError(f"engine {text!r}: use local or ray:N")

    def label(self, mode: str) -> str:
        prefix = "" if self.name == "local" else f"ray x{self.replicas} "
        return f"{prefix}batching {mode}"

    def flags(self) -> list[str]:
        return [] if self.name == "local" else ["--engine", "ray", "--replicas", str(self.replicas)]


@contextmanager
def running_server(models: Path, port: int, batching: bool, args, engine: Engine = Engine()):
    cmd = [sys.executable, "-m", "impasto.serving.server", "--models", str(models), "--host", HOST, "--port", str(port),
           "--batching" if batching else "--no-batching", "--max-batch-size", str(args.max_batch_size),
           "--max-batch-wait-ms", str(args.max_batch_wait_ms), "--max-queue", str(max(64, args.clients * 2)),
           "--log-level", "warning", *engine.flags()]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    # stderr goes to a file, not a pipe: nobody reads a pipe during the run, and a server logging
    # errors would block once its buffer is full.
    with tempfile.TemporaryFile("w+") as log:
        # No usage statistics sent by a Ray instance the benchmark starts.
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, text=True,
                                env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
        try:
            yield Server(proc, log)
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(15 if engine.name == "local" else 60)  # Ray stops its replicas and processes
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_ready(client, server: Server, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (reason := server.exit_reason()) is not None:
            raise BenchmarkError(f"server exited: {reason}")
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise BenchmarkError(f"server did not become ready within {timeout:g} s")


async def load(base: str, server: Server, images: list[bytes], args, mode: str, ready_timeout: float = 120.0) -> RunStats:
    import httpx

    stats = RunStats(mode)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    async with httpx.AsyncClient(base_url=base, timeout=args.request_timeout, limits=limits) as client:
        await wait_ready(client, server, ready_timeout)
        params = {"style": args.style} if args.style else {}
        sent = 0

        async def worker(index: int, until: float, record: bool):
            nonlocal sent
            i = index
            while time.monotonic() < until and (not record or sent < args.max_requests):
                if record:
                    sent += 1
                start = time.perf_counter()
                try:
                    r = await client.post("/v1/stylize", params=params, content=images[i % len(images)],
                                          headers={"content-type": "image/png"})
                    ok, kind = r.status_code == 200, str(r.status_code)
                except httpx.HTTPError as err:
                    ok, kind = False, type(err).__name__
                i += 1
                if not record:
                    continue
                if ok:
                    stats.latencies_ms.append((time.perf_counter() - start) * 1000.0)
                    stats.batch_sizes.append(int(r.headers["x-batch-size"]))
                else:
                    stats.errors += 1
                    stats.error_kinds[kind] = stats.error_kinds.get(kind, 0) + 1

        warm_until = time.monotonic() + args.warmup_seconds
        await asyncio.gather(*(worker(c, warm_until, False) for c in range(args.clients)))
        start = time.monotonic()
        await asyncio.gather(*(worker(c, start + args.seconds, True) for c in range(args.clients)))
        stats.seconds = time.monotonic() - start
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", help="directory of .onnx models (default: export an untrained default network)")
    p.add_argument("--style", help="style spec to request (default: the server's default style)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per mode (default %(default)s)")
    p.add_argument("--warmup-seconds", type=float, default=1.0, help="unmeasured load first (default %(default)s)")
    p.add_argument("--max-requests", type=int, default=100_000, help="stop a mode after this many requests")
    p.add_argument("--request-timeout", type=float, default=60.0,
                   help="seconds before a request counts as an error (default %(default)s)")
    p.add_argument("--image-size", type=int, default=256, help="square test image side (default %(default)s)")
    p.add_argument("--max-batch-size", type=int, default=8)
    p.add_argument("--max-batch-wait-ms", type=float, default=5.0)
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: onnxruntime's choice)")
    p.add_argument("--modes", default="on,off", help="batching modes to run, in order (default %(default)s)")
    p.add_argument("--engines", default="local",
                   help="servers to run, in order: local (one process), ray:N (Ray Serve, N model replicas; "
                        "the 'ray' extra); each runs every mode (default %(default)s)")
    args = p.parse_args(argv)
    if not (0 < args.seconds <= 600 and 0 < args.clients <= 1024 and args.max_requests > 0 and args.image_size >= 16
            and args.request_timeout > 0):
        p.error("need 0 < --seconds <= 600, 0 < --clients <= 1024, --max-requests > 0, --image-size >= 16, "
                "--request-timeout > 0")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"on", "off"}:
        p.error("--modes takes on, off or both")
    try:
        engines = [Engine.parse(text) for text in args.engines.split(",") if text.strip()]
    except ValueError as err:
        p.error(str(err))
    if not engines:
        p.error("--engines takes local, ray:N or several, comma-separated")

    try:
        return _run(args, modes, engines)
    except BenchmarkError as err:
        print(f"benchmarks.load: {err}", file=sys.stderr)
        return 2


def _run(args, modes: list[str], engines: list[Engine]) -> int:
    with tempfile.TemporaryDirectory(prefix="impasto-bench-") as tmp:
        if args.models:
            models = Path(args.models).expanduser()
            paths = sorted(models.glob("*.onnx")) if models.is_dir() else []
            if not paths:
                raise BenchmarkError(f"no .onnx models in {models}")
            for path in paths:  # a broken model is named here, in one line, before any server starts
                try:
                    StyleModel(path, device="cpu")
                except ModelError as err:
                    raise BenchmarkError(str(err)) from None
            print(f"model(s): {', '.join(path.name for path in paths)} from {models}")
        else:
            models = Path(tmp)
            export_default_model(models)
            print("model: no --models given: exported an UNTRAINED default-size network "
                  "(Johnson et al. widths 32/64/128, 5 residual blocks) to a temporary directory")
        print(f"load: {args.clients} clients, {args.seconds:g} s per mode (+{args.warmup_seconds:g} s warm-up), "
              f"{args.image_size}x{args.image_size} PNG, max batch {args.max_batch_size}, "
              f"max wait {args.max_batch_wait_ms:g} ms, {os.cpu_count()} CPUs visible")
        images = sample_images(args.image_size)
        rows = []
        for engine in engines:
            for mode in modes:
                port = _free_port()
                with running_server(models, port, mode == "on", args, engine) as server:
                    # Ray starts a whole local instance (GCS, raylet, controller, proxy) before the replicas.
                    ready_timeout = 120.0 if engine.name == "local" else 300.0
                    stats = asyncio.run(load(f"http://{HOST}:{port}", server, images, args, engine.label(mode), ready_timeout))
                    stats.peak_rss_mib = tree_peak_rss_mib(server.proc.pid)
                rows.append(stats.row())
                if stats.error_kinds:
                    print(f"{engine.label(mode)}: errors by kind: {stats.error_kinds}")
        print()
        print(text_table(["mode", "requests", "errors", "images/s", "p50 ms", "p95 ms", "p99 ms", "mean batch",
                          "peak RSS MiB"],
                         rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
