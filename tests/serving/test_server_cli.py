"""``impasto serve``: configuration from flags and IMPASTO_* variables, clear start-up errors, a real run."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from impasto.serving import server
from impasto.serving import settings as settings_module
from impasto.serving.settings import Settings

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
    resolved = Settings(models=model_dir, batching=False, max_batch_wait_ms=2.5, input_formats=("PNG",))
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


def test_impasto_serve_runs_a_real_server(model_dir):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "impasto.core.cli", "serve", "--models", str(model_dir),
                             "--port", str(port), "--log-level", "warning"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not become ready:\n{proc.communicate(timeout=5)[0]}")
            time.sleep(0.1)
        styles = httpx.get(f"http://127.0.0.1:{port}/v1/styles").json()
        assert {s["id"] for s in styles["styles"]} == {"solo/wave", "trio/wave", "trio/ink", "trio/plain"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_broken_model_file_fails_start_up_with_its_name(tmp_path):
    from fastapi.testclient import TestClient

    from impasto.core.errors import ModelError
    from impasto.serving.app import create_app

    (tmp_path / "broken.onnx").write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="broken.onnx"):
        with TestClient(create_app(Settings(models=tmp_path))):
            pass
