"""`impasto stylize` end to end, as a user runs it (a subprocess), on real photos."""
import subprocess
import sys

import numpy as np
import pytest
import skimage.data
from PIL import Image


def impasto(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "impasto.core.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    d = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.coffee()[:203, :301]).save(d / "coffee.jpg")  # 301x203: not multiples of 4
    rgba = np.dstack([skimage.data.chelsea()[:90, :130], np.full((90, 130), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(d / "cat_rgba.png")
    Image.fromarray(skimage.data.camera()[:64, :80]).save(d / "gray.png")
    Image.fromarray(skimage.data.astronaut()[:66, :70]).convert("P", palette=Image.Palette.ADAPTIVE).save(d / "pal.png")
    (d / "corrupt.jpg").write_bytes(open(d / "coffee.jpg", "rb").read()[:300])
    return d


def test_stylize_files_dirs_and_odd_sizes(tiny_onnx, photos, tmp_path):
    out = tmp_path / "out"
    result = impasto("stylize", photos, "-m", tiny_onnx, "-o", out)
    # The corrupt file is reported in one line and the exit code is non-zero ...
    assert result.returncode == 1
    assert "corrupt.jpg" in result.stderr and "Traceback" not in result.stderr
    assert len([l for l in result.stderr.splitlines() if l.strip()]) == 1
    # ... while every other input is still written, at its own size.
    sizes = {p.name: Image.open(p).size for p in out.glob("*.png")}
    assert sizes == {"coffee_ihc.png": (301, 203), "cat_rgba_ihc.png": (130, 90), "gray_ihc.png": (80, 64),
                     "pal_ihc.png": (70, 66)}
    stylized = np.asarray(Image.open(out / "coffee_ihc.png"), dtype=np.float32)
    original = np.asarray(Image.open(photos / "coffee.jpg"), dtype=np.float32)
    assert np.abs(stylized - original).mean() > 5  # it did something


def test_exif_orientation_and_max_size(tiny_onnx, tmp_path):
    img = Image.fromarray(skimage.data.rocket()[:120, :200])
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    assert impasto("stylize", tmp_path / "rotated.jpg", "-m", tiny_onnx, "-o", tmp_path / "r.png").returncode == 0
    assert Image.open(tmp_path / "r.png").size == (120, 200)  # portrait, as displayed
    assert impasto("stylize", tmp_path / "rotated.jpg", "-m", tiny_onnx, "--max-size", "99",
                   "-o", tmp_path / "small.png").returncode == 0
    assert Image.open(tmp_path / "small.png").size == (59, 99)


def test_globs_and_unknown_style(tiny_onnx, photos, tmp_path):
    result = impasto("stylize", str(photos / "c*.png"), "-m", tiny_onnx, "-o", tmp_path)
    assert result.returncode == 0 and (tmp_path / "cat_rgba_ihc.png").is_file()
    bad = impasto("stylize", photos / "coffee.jpg", "-m", tiny_onnx, "-s", "monet")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "impasto stylize: unknown style 'monet'; available: ihc"


def test_styles_lists_model_styles(tiny_onnx):
    result = impasto("styles", "-m", tiny_onnx)
    assert result.returncode == 0 and "ihc" in result.stdout


def test_missing_model_is_a_one_line_error(tmp_path):
    result = impasto("stylize", tmp_path / "x.jpg", "-m", tmp_path / "none.onnx")
    assert result.returncode == 2 and "model not found" in result.stderr and "Traceback" not in result.stderr


def test_unknown_command():
    result = impasto("paint")
    assert result.returncode == 2 and "unknown command" in result.stderr


def test_train_config_errors_are_one_line(tmp_path):
    result = impasto("train", "style=image", f"style_image={tmp_path / 'missing.jpg'}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (f"impasto train: style 'custom': cannot read image "
                                                     f"{tmp_path / 'missing.jpg'}: no such file")
    assert "Traceback" not in result.stderr
    bad = impasto("train", "network.norm=layer", f"hydra.run.dir={tmp_path}")
    assert bad.returncode == 2 and bad.stderr.strip().endswith("unknown norm 'layer'; choose one of "
                                                              "instance, batch, conditional_instance")
