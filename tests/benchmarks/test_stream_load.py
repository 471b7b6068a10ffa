"""Smoke test of ``python -m benchmarks.stream_load``: a real server on loopback with the bundled
model, one camera-stream client for about two seconds, small frames."""
from __future__ import annotations

import pytest

from benchmarks.stream_load import main


@pytest.mark.timeout(120)
def test_stream_load_measures_a_client(capsys):
    rc = main(["--clients", "1", "--seconds", "2", "--warmup-seconds", "0.3", "--width", "64", "--height", "48"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {line.split()[0] + (" " + line.split()[1] if line.startswith("client") else ""): line.split()
            for line in out.splitlines() if line.startswith(("client 1", "all "))}
    assert set(rows) == {"client 1", "all"}, out
    frames, fps, p50, p99, drops, batch = rows["all"][1:]
    assert int(frames) > 0 and float(fps) > 0 and 0 < float(p50) <= float(p99), out
    assert int(drops) == 0 and float(batch) == 1, out  # one frame in flight: nothing to drop, nothing to batch with
    assert rows["client 1"][2:] == rows["all"][1:], out


def test_stream_load_clear_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--url", "http://127.0.0.1:1/"])
    assert exit_info.value.code == 2 and "--url takes ws://" in capsys.readouterr().err
    assert main(["--models", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"benchmarks.stream_load: no .onnx models in {tmp_path}"
    assert main(["--url", "ws://127.0.0.1:9/api/stream", "--seconds", "1", "--warmup-seconds", "0"]) == 2
    assert capsys.readouterr().err.startswith("benchmarks.stream_load: cannot connect to ws://127.0.0.1:9/api/stream")
