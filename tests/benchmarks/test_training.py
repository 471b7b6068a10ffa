"""Smoke test of ``python -m benchmarks.training``: one training step of the default config at 32 px
(style targets at 32 px too), then one stylisation run per size in eager PyTorch and onnxruntime."""
from __future__ import annotations

import math
import re

import pytest

from benchmarks.training import main


@pytest.mark.timeout(180)
def test_training_benchmark_prints_throughput_and_latency(capsys, restore_torch_threads):
    # 24 px is under the networks' minimum side: the onnxruntime column goes through StyleModel's padding.
    assert main(["--train-steps", "1", "--train-size", "32", "--batch-size", "1", "--repeats", "1",
                 "--sizes", "24", "40", "--threads", "1", "--override", "style_size=32"]) == 0
    out = capsys.readouterr().out
    throughput = re.search(r"training \(style_size=32, 32x32, batch 1\): ([\d.]+) images/s \(([\d.]+) s/step\)", out)
    assert throughput, out
    images_per_s, seconds_per_step = map(float, throughput.groups())
    assert 0 < images_per_s < math.inf and seconds_per_step == pytest.approx(1 / images_per_s, rel=0.05, abs=0.01)
    rows = re.findall(r"^\s*(\d+)² +([\d.]+) ms +([\d.]+) ms +([\d.]+)x$", out, re.MULTILINE)
    assert [int(r[0]) for r in rows] == [24, 40], out
    for _, eager, onnx, speedup in rows:
        assert 0 < float(eager) < math.inf and 0 < float(onnx) < math.inf, out
        assert float(speedup) == pytest.approx(float(eager) / float(onnx), rel=0.1), out


def test_training_benchmark_bad_override_is_one_line(capsys):
    assert main(["--train-steps", "1", "--override", "network=nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchmarks.training: ") and "network/nope" in err and len(err.splitlines()) == 1
