"""Helpers shared by the service tests: test images, settings, readiness, live servers."""
from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(width: int, height: int, seed: int = 0, fmt: str = "PNG") -> bytes:
    """A smooth random colour image (compresses well, distinct per seed)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 8), max(2, width // 8), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def make_settings(model_dir: Path, **overrides):
    from impasto.serving.settings import Settings

    return Settings(models=model_dir, threads=1, **overrides)


def wait_ready(get, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("service did not become ready")


@contextlib.contextmanager
def app_client(app, ready: bool = True):
    from fastapi.testclient import TestClient

    # localhost: the service answers only the Host names it serves (TestClient's default is "testserver").
    with TestClient(app, base_url="http://localhost", raise_server_exceptions=False) as client:
        if ready:
            wait_ready(client.get)
        yield client


@contextlib.contextmanager
def live_server(app, **config):
    """Run ``app`` with a real uvicorn on 127.0.0.1 (an OS-chosen port) in a thread; yields the base URL.

    uvicorn is configured as ``impasto serve`` configures it (protocol, timeouts) from the app's
    settings; ``config`` overrides ``uvicorn.Config`` arguments.
    """
    import httpx
    import uvicorn

    from impasto.serving.server import uvicorn_options

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = {**uvicorn_options(app.state.service.settings), "log_level": "warning", **config}
    options.pop("host"), options.pop("port")
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        with httpx.Client(base_url=base) as probe:
            wait_ready(probe.get)
        yield base
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


class GatedModel:
    """A StyleModel whose ``run`` waits while ``gate`` is closed: holds requests in flight on demand.

    ``shapes`` records the input shape of every call (to see what was batched with what).
    """

    def __init__(self, model):
        self._model = model
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.shapes: list[tuple] = []

    def __getattr__(self, name):
        return getattr(self._model, name)

    def run(self, images, style_weights=None):
        self.shapes.append(images.shape)
        self.entered.set()
        if not self.gate.wait(30):
            raise TimeoutError("gate never opened")
        return self._model.run(images, style_weights)


def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)
