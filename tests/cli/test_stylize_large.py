"""`impasto stylize --tile-size / --stroke-scale`: tiled output equals untiled, old models still work."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image

from impasto.serving.stylize import main
from tests.serving.tiling_models import export_plain, export_tiling, tiny_realtime


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("large")
    net = tiny_realtime()
    Image.fromarray(skimage.data.coffee()[:157, :203]).save(d / "coffee.png")  # odd sizes
    return {"dir": d, "tiling": export_tiling(net, d / "tiling.onnx"), "plain": export_plain(net, d / "plain.onnx")}


def stylize(setup, model, name, *args):
    out = setup["dir"] / name
    assert main([str(setup["dir"] / "coffee.png"), "-m", str(setup[model]), "-o", str(out), *args]) == 0
    return np.asarray(Image.open(out), dtype=int)


def test_tiles_with_strength_and_colour_equal_the_untiled_run(setup):
    options = ["-s", "wave:0.5,ink:0.5", "--strength", "0.7", "--preserve-color"]
    tiled = stylize(setup, "tiling", "tiled.png", "--tile-size", "24", *options)
    whole = stylize(setup, "tiling", "whole.png", "--tile-size", "0", *options)
    assert tiled.shape == whole.shape == (157, 203, 3)
    assert np.abs(tiled - whole).max() <= 1


def test_an_old_plain_model_runs_untiled_and_with_stroke_scale(setup):
    plain = stylize(setup, "plain", "plain.png", "--tile-size", "24")
    capable = stylize(setup, "tiling", "capable.png", "--tile-size", "0")
    assert np.abs(plain - capable).max() <= 1
    scaled = stylize(setup, "plain", "plain2.png", "--stroke-scale", "2")
    assert scaled.shape == plain.shape and np.abs(scaled - plain).mean() > 1


@pytest.mark.parametrize("args,message", [
    (["--stroke-scale", "0.5"], "stroke scale must be between 1 and 8, got 0.5"),
    (["--stroke-scale", "nan"], "stroke scale must be between 1 and 8, got nan"),
    (["--tile-size", "3"], "tile size must be 0 (never tile) or at least 16, got 3"),
])
def test_bad_values_are_one_line_and_exit_2(setup, capsys, args, message):
    assert main([str(setup["dir"] / "coffee.png"), "-m", str(setup["tiling"]), *args]) == 2
    err = capsys.readouterr().err
    assert err == f"impasto stylize: {message}\n"
