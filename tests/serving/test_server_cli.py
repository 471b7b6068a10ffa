"""``impasto serve``: configuration from flags and IMPASTO_* variables, clear start-up errors, a real run."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from impasto.core import cli
from impasto.serving import server
from impasto.serving import settings as settings_module
from impasto.serving.settings import Settings
from tests.serving.helpers import png_bytes

ROOT = Path(__file__).resolve().parents[2]


def test_environment_variables_configure_the_service(monkeypatch, tmp_path):
    monkeypatch.setenv("IMPASTO_MODELS", str(tmp_path))
    monkeypatch.setenv("IMPASTO_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("IMPASTO_BATCHING", "false")
    s = Settings()
    assert (s.models, s.max_batch_size, s.batching) == (tmp_path, 16, False)
    assert Settings(max_batch_size=2).max_batch_size == 2  # explicit values (flags) win


def test_flags_are_parsed_into_settings():
    parsed = server.parse_args(["--models", "m", "--port", "9000", "--no-batching", "--max-batch-wait-ms", "2.5"])
    assert parsed == {"models": "m", "port": 9000, "batching": False, "max_batch_wait_ms": 2.5}


def test_worker_processes_get_the_resolved_settings(monkeypatch, model_dir):
    """With --workers N each worker builds its app from IMPASTO_* variables: they must round-trip."""
    monkeypatch.setattr(os, "environ", {})
    resolved = Settings(models=model_dir, batching=False, max_batch_wait_ms=2.5, input_formats=("PNG",),
                        allowed_hosts=("a.example", "[::1]"), header_timeout_s=0.5)
    server.export_environment(resolved)
    assert os.environ["IMPASTO_BATCHING"] == "false"
    assert Settings() == resolved


def test_missing_models_directory_is_a_clear_error(tmp_path, capsys):
    assert server.main(["--models", str(tmp_path / "nowhere")]) == 2
    assert "models directory not found" in capsys.readouterr().err


def test_directory_without_models_is_a_clear_error(tmp_path, capsys):
    assert server.main(["--models", str(tmp_path)]) == 2
    assert "no .onnx models" in capsys.readouterr().err


def test_without_bundled_models_the_error_says_to_pass_models(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("IMPASTO_MODELS", raising=False)
    monkeypatch.setattr(settings_module, "BUNDLED_MODELS", tmp_path / "bundled")
    assert server.main([]) == 2
    assert "--models" in capsys.readouterr().err


def test_invalid_setting_is_a_clear_error(model_dir, capsys):
    assert server.main(["--models", str(model_dir), "--max-batch-size", "0"]) == 2
    assert "max_batch_size" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    """A running `impasto serve` subprocess; ``output`` holds what it printed once it has stopped."""

    def __init__(self, proc: subprocess.Popen, base: str):
        self.proc, self.base, self.output = proc, base, ""


@contextlib.contextmanager
def impasto_serve(model_dir: Path, *args: str, ready_answers: int = 1, env: dict | None = None):
    """Start `impasto serve` on a free port, wait for ``ready_answers`` 200s in a row from /readyz
    (several: with several workers, more than one is probably up), stop it with SIGINT at the end."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "impasto.core.cli", "serve", "--models", str(model_dir),
                             "--port", str(port), "--threads", "1", "--log-level", "warning", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    serve = Serve(proc, f"http://127.0.0.1:{port}")
    try:
        deadline, ready = time.monotonic() + 60, 0
        while ready < ready_answers:
            try:
                ready = ready + 1 if httpx.get(serve.base + "/readyz", timeout=1).status_code == 200 else 0
            except httpx.TransportError:
                ready = 0
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not become ready:\n{proc.communicate(timeout=5)[0]}")
            time.sleep(0.05)
        yield serve
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            serve.output = proc.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            serve.output = proc.communicate()[0]


def test_impasto_serve_runs_a_real_server(model_dir):
    with impasto_serve(model_dir) as serve:
        styles = httpx.get(serve.base + "/v1/styles").json()
        assert {s["id"] for s in styles["styles"]} == {"solo/wave", "trio/wave", "trio/ink", "trio/plain"}


def test_a_broken_model_file_fails_start_up_with_its_name(tmp_path):
    from fastapi.testclient import TestClient

    from impasto.core.errors import ModelError
    from impasto.serving.app import create_app

    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="broken.onnx"):
        with TestClient(create_app(Settings(models=tmp_path))):
            pass


def test_connection_and_browser_flags_are_parsed_into_settings():
    parsed = server.parse_args(["--keep-alive-timeout-s", "2", "--header-timeout-s", "3",
                                "--allowed-hosts", "a.example, b.example", "--allowed-origins", "https://ui.example"])
    s = Settings(**parsed)
    assert (s.keep_alive_timeout_s, s.header_timeout_s) == (2.0, 3.0)
    assert s.allowed_hosts == ("a.example", "b.example") and s.allowed_origins == ("https://ui.example",)
    assert Settings(host="10.0.0.5").served_hosts() == ("localhost", "127.0.0.1", "::1", "10.0.0.5")


def _bad_metadata_model(model_dir: Path, target: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(model_dir / "trio.onnx"))
    for prop in model.metadata_props:
        if prop.key == "impasto.style_names":
            prop.value = "[not json"
    onnx.save(model, str(target / "badmeta.onnx"))
    return target


@pytest.mark.parametrize("case", ["corrupt", "bad-metadata", "cuda"])
def test_unusable_models_or_device_are_one_line_before_uvicorn_starts(model_dir, tmp_path, case):
    """Checked in `impasto serve` itself: one line and exit 2, not a uvicorn traceback with exit 3."""
    args = ["--models", str(tmp_path), "--port", str(_free_port())]
    if case == "corrupt":
        (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    elif case == "bad-metadata":
        _bad_metadata_model(model_dir, tmp_path)
    else:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("this machine has CUDA")
        args = ["--models", str(model_dir), "--device", "cuda", "--port", str(_free_port())]
    proc = subprocess.run([sys.executable, "-m", "impasto.core.cli", "serve", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("impasto serve: "), proc.stderr
    assert {"corrupt": "broken.onnx", "bad-metadata": "badmeta.onnx", "cuda": "cuda"}[case] in lines[0]
    assert "Uvicorn" not in proc.stdout + proc.stderr


def _counter(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_metrics_of_several_workers_add_up(model_dir, tmp_path):
    """Each scrape is answered by one worker; the counts it shows are those of all of them."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    with impasto_serve(model_dir, "--workers", "2", ready_answers=4, env=env) as serve:
        series = 'impasto_http_requests_total{method="GET",route="/healthz",status="200"}'
        for _ in range(30):  # a new connection each: the kernel spreads them over both workers
            assert httpx.get(serve.base + "/healthz", headers={"connection": "close"}).status_code == 200
        for _ in range(6):
            metrics = httpx.get(serve.base + "/metrics", headers={"connection": "close"}).text
            assert _counter(metrics, series) == 30
    assert "Traceback" not in serve.output, serve.output
    assert not list(tmp_path.glob("impasto-metrics-*"))  # the workers' metric files are removed at exit


def test_sigterm_lets_in_flight_requests_finish(model_dir):
    """A request the batcher is still holding (a long batch wait) is answered after SIGTERM."""
    with impasto_serve(model_dir, "--max-batch-wait-ms", "1500") as serve, ThreadPoolExecutor(1) as pool:
        start = time.monotonic()
        request = pool.submit(httpx.post, serve.base + "/v1/stylize?style=ink", content=png_bytes(32, 32),
                              headers={"content-type": "image/png"}, timeout=30)
        time.sleep(0.5)  # the request is waiting in the batcher
        serve.proc.send_signal(signal.SIGTERM)
        assert request.result().status_code == 200 and time.monotonic() - start >= 1.4
        assert serve.proc.wait(15) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once drained
    assert "Traceback" not in serve.output, serve.output


def test_ray_flags_are_parsed_into_settings():
    parsed = server.parse_args(["--engine", "ray", "--replicas", "3", "--autoscale", "1:4"])
    s = Settings(**parsed)
    assert (s.engine, s.replicas, s.autoscale) == ("ray", 3, (1, 4))
    assert server.main(["--engine", "ray", "--autoscale", "4:1"]) == 2


def test_without_the_ray_extra_the_engine_names_it(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert cli.main(["serve", "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "impasto serve --engine ray needs the 'ray' extra: pip install 'impasto[ray]' (missing: ray)"
