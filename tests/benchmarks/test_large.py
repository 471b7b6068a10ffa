"""Smoke test of ``python -m benchmarks.large`` on tiny sizes with a tiny tiling model."""
from __future__ import annotations

import re

import pytest

from benchmarks.large import main, seam_ratio
from tests.serving.tiling_models import export_plain, export_tiling, tiny_realtime


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("large")
    net = tiny_realtime()
    return export_tiling(net, d / "tiling.onnx"), export_plain(net, d / "plain.onnx")


@pytest.mark.timeout(600)
def test_large_prints_time_memory_parity_seams_and_server_memory(models, tmp_path, capsys):
    seams, stroke = tmp_path / "seams.png", tmp_path / "stroke.png"
    rc = main(["--model", str(models[0]), "--style", "ink", "--content-dir", str(tmp_path / "none"),
               "--sizes", "160x96,200x120", "--untiled-max-pixels", "20000", "--tile-size", "32",
               "--parity-size", "120x80", "--seam-size", "160x112", "--serve-requests", "2",
               "--serve-size", "320x200", "--rss-bound-mib", "1024", "--seam-figure", str(seams),
               "--stroke-figure", str(stroke), "--stroke-size", "96x64"])
    out = capsys.readouterr().out
    assert rc == 0, out
    runs = re.findall(r"^(\d+x\d+)\s+(tiled|untiled)\s+([\d.]+)\s+(\d+)$", out, re.MULTILINE)
    assert [(size, mode) for size, mode, _, _ in runs] == [("160x96", "tiled"), ("160x96", "untiled"),
                                                          ("200x120", "tiled")], out
    assert all(0 < int(rss) < 1024 for *_, rss in runs), out  # the RSS bound, in a child process
    assert re.search(r"max \|tiled - untiled\|.*\s0\.00e\+00\s+<= 1e-3\s+yes", out), out
    assert re.search(r"server answers 200 .*\s2/2\s", out), out
    # 160x112 fits the untiled limit: the tiled image equals the whole one, so tiling adds nothing.
    assert re.search(r"max \|tiled - untiled\| \(uint8\), 160x112\s+0\s", out), out
    assert re.search(r"seam ratio added by tiling \(tiled / untiled\)\s+1\.000\s+<= 1\.05\s+yes", out), out
    assert seams.is_file() and stroke.is_file()


def test_seam_ratio_sees_a_step_at_tile_lines_only():
    import numpy as np

    flat = np.random.default_rng(0).integers(100, 110, (64, 64, 3)).astype(np.uint8)
    assert seam_ratio(flat, 16, 4) == pytest.approx(1.0, abs=0.1)
    stepped = flat.copy()
    stepped[:, 16:32] += 40
    assert seam_ratio(stepped, 16, 4) > 2


def test_a_model_without_the_capability_is_a_one_line_error(models, capsys):
    assert main(["--model", str(models[1]), "--serve-requests", "0"]) == 2
    assert "no frozen-statistics capability" in capsys.readouterr().err
