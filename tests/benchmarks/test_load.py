"""Smoke test of ``python -m benchmarks.load``: a real server on loopback, 2 clients, under a second
per mode, the bundled model, tiny images."""
from __future__ import annotations

import math
import subprocess
import sys
import tempfile

import pytest

from benchmarks.load import Server, main
from impasto.core.model import BUNDLED_MODELS, bundled_models


@pytest.mark.timeout(120)
def test_load_benchmark_measures_both_modes(capsys):
    assert bundled_models(), "the bundled model is missing"
    rc = main(["--models", str(BUNDLED_MODELS), "--clients", "2", "--seconds", "0.7", "--warmup-seconds", "0.2",
               "--image-size", "32", "--max-batch-wait-ms", "2", "--request-timeout", "20"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {line[:12].strip(): line[12:].split() for line in out.splitlines() if line.startswith("batching ")}
    assert set(rows) == {"batching on", "batching off"}, out
    for mode, (requests, errors, images_per_s, p50, p95, p99, mean_batch, peak_rss) in rows.items():
        assert int(errors) == 0 and int(requests) > 0, f"{mode}: {out}"
        assert 0 < float(images_per_s) < math.inf and 0 <= float(p50) <= float(p95) <= float(p99), f"{mode}: {out}"
        assert float(mean_batch) >= 1, f"{mode}: {out}"  # at least one request went through the model
        assert 20 < float(peak_rss) < 4096, f"{mode}: {out}"  # a real process's resident memory, in MiB
    assert float(rows["batching off"][-2]) == 1  # without batching every model call holds one image


def test_load_benchmark_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--image-size", "8"])
    assert exit_info.value.code == 2 and "--image-size >= 16" in capsys.readouterr().err
    assert main(["--models", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"benchmarks.load: no .onnx models in {tmp_path}"
    bad = tmp_path / "models"
    bad.mkdir()
    (bad / "broken.onnx").write_bytes(b"not onnx")
    assert main(["--models", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"benchmarks.load: {bad / 'broken.onnx'}: not a loadable ONNX model") and len(err.splitlines()) == 1


def test_a_server_that_exits_is_reported_by_its_exception_line():
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([sys.executable, "-c", "raise ValueError('no port for you')"], stderr=log, text=True)
        server = Server(proc, log)
        proc.wait(30)
        assert server.exit_reason() == "ValueError: no port for you"


@pytest.mark.timeout(180)
def test_load_benchmark_runs_the_ray_engine(capsys):
    pytest.importorskip("ray")
    rc = main(["--models", str(BUNDLED_MODELS), "--engines", "ray:1", "--modes", "on", "--clients", "2",
               "--seconds", "0.7", "--warmup-seconds", "0.2", "--image-size", "32", "--max-batch-wait-ms", "2",
               "--request-timeout", "20"])
    out = capsys.readouterr().out
    assert rc == 0, out
    (row,) = [line.split() for line in out.splitlines() if line.startswith("ray x1 batching on")]
    requests, errors, images_per_s, p50, p95, p99, mean_batch, peak_rss = row[4:]
    assert int(errors) == 0 and int(requests) > 0 and float(images_per_s) > 0, out
    assert 1 <= float(mean_batch) <= 8 and float(peak_rss) > 20, out  # Ray's processes and replicas, in MiB
