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


def test_tiny_and_thin_images_keep_their_size(tiny_onnx, tmp_path):
    sizes = [(1, 1), (3, 200), (200, 3)]
    for w, h in sizes:
        Image.fromarray(skimage.data.coffee()[:h, :w]).save(tmp_path / f"in_{w}x{h}.png")
    result = impasto("stylize", *(tmp_path / f"in_{w}x{h}.png" for w, h in sizes), "-m", tiny_onnx, "-o", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert {p.name: Image.open(p).size for p in (tmp_path / "out").glob("*.png")} == {
        f"in_{w}x{h}_ihc.png": (w, h) for w, h in sizes}


def ycbcr(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("YCbCr"), dtype=np.float32)


@pytest.fixture(scope="module")
def small_photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("small") / "coffee.png"
    Image.fromarray(skimage.data.coffee()[::6, ::6]).save(path)  # 100x67
    return path


def test_strength_moves_toward_the_identity_style_inside_the_network(tmp_path):
    # The bundled model has an identity style: strength 0 is that style's output, near the photo.
    photo_path = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).resize((128, 96), Image.Resampling.BICUBIC).save(photo_path)
    runs = {"full": ("-s", "starry_night"), "zero": ("-s", "starry_night", "--strength", "0"), "identity": ("-s", "identity")}
    out = {}
    for name, args in runs.items():
        result = impasto("stylize", photo_path, *args, "-o", tmp_path / f"{name}.png")
        assert result.returncode == 0, result.stderr
        out[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=np.float32)
    photo = np.asarray(Image.open(photo_path), dtype=np.float32)
    assert np.abs(out["zero"] - out["identity"]).max() <= 1
    assert np.abs(out["zero"] - photo).mean() < 0.6 * np.abs(out["full"] - photo).mean()


def test_strength_fades_pixels_without_an_identity_style(tiny_onnx, small_photo, tmp_path):
    photo = np.asarray(Image.open(small_photo), dtype=np.int16)
    assert impasto("stylize", small_photo, "-m", tiny_onnx, "--strength", "0", "-o", tmp_path / "z.png").returncode == 0
    assert np.abs(np.asarray(Image.open(tmp_path / "z.png"), dtype=np.int16) - photo).max() <= 1


def test_preserve_color_keeps_the_photos_chroma(small_photo, tmp_path):
    for flag, name in ((), "plain.png"), (("--preserve-color",), "kept.png"):
        result = impasto("stylize", small_photo, "-s", "starry_night", *flag, "-o", tmp_path / name)
        assert result.returncode == 0, result.stderr
    photo, plain, kept = ycbcr(small_photo), ycbcr(tmp_path / "plain.png"), ycbcr(tmp_path / "kept.png")
    inside = (kept[..., 0] > 25) & (kept[..., 0] < 230)  # where clipping to [0, 255] cannot move the colour
    assert np.abs(kept[inside, 1:] - photo[inside, 1:]).mean() < 3  # the photo's chroma ...
    assert np.abs(plain[inside, 1:] - photo[inside, 1:]).mean() > 3 * np.abs(kept[inside, 1:] - photo[inside, 1:]).mean()
    assert np.abs(kept[..., 0] - plain[..., 0]).mean() < 3  # ... with the stylised luminance


@pytest.mark.parametrize("args, message", [
    (("--strength", "1.5"), "impasto stylize: strength must be between 0 and 1, got 1.5"),
    (("--strength", "nan"), "impasto stylize: strength must be between 0 and 1, got nan"),
    (("--strength", "abc"), "impasto stylize: argument --strength: invalid float value: 'abc'"),
    (("-s", "the_scream:-1"), "impasto stylize: style weight for 'the_scream' must be a finite number >= 0, got -1"),
    (("--colour",), "impasto stylize: unrecognized arguments: --colour"),
])
def test_option_errors_are_one_line(small_photo, tmp_path, args, message):
    result = impasto("stylize", small_photo, *args, "-o", tmp_path / "x.png")
    assert result.returncode == 2 and result.stderr == message + "\n"
    assert not (tmp_path / "x.png").exists()


def test_a_model_prefixed_blend_names_its_output_after_the_styles(small_photo, tmp_path):
    from impasto.core.model import default_model_path
    from impasto.serving.stylize import main

    prefix = default_model_path().stem
    assert main([str(small_photo), "-s", f"{prefix}/wave:3,udnie:1", "-o", f"{tmp_path}/"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["coffee_wave-0.75_udnie-0.25.png"]
