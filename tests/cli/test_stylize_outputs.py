"""`impasto stylize` never loses a user's file, and one bad input never stops a batch: each failure
is one line at the end, the other inputs are still written, and a bad model is refused up front."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from impasto.serving import stylize
from tests.serving import onnx_graphs as graphs


def impasto(*args):
    return subprocess.run([sys.executable, "-m", "impasto.core.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def photo(path, seed=0, size=(40, 30)):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """1 - image: fast, and its output is easy to tell from its input."""
    return graphs.inverting_model(tmp_path_factory.mktemp("model") / "inv.onnx", styles=["wave", "udnie"], blend=True)


def run(capsys, *args):
    code = stylize.main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_output_equal_to_the_input_is_refused(model, tmp_path, capsys):
    a = photo(tmp_path / "a.png")
    before = a.read_bytes()
    for target in (a, tmp_path / "." / "a.png"):
        code, out, err = run(capsys, a, "-m", model, "-o", target)
        assert (code, out) == (2, "")
        assert err == f"impasto stylize: {target} is one of the inputs; it is never overwritten\n"
    assert a.read_bytes() == before


def test_a_users_file_with_an_output_name_is_read_not_overwritten(model, tmp_path, capsys):
    photo(tmp_path / "x.png", seed=1)
    photo(tmp_path / "x_wave.png", seed=2)  # the user's own file, also an input of this run
    before = (tmp_path / "x_wave.png").read_bytes()
    code, out, err = run(capsys, tmp_path, "-m", model, "-s", "wave")
    assert (code, err) == (0, "")
    assert (tmp_path / "x_wave.png").read_bytes() == before
    assert f"{tmp_path / 'x.png'} -> {tmp_path / 'x_wave-2.png'} ({tmp_path / 'x_wave.png'} is one of the inputs)" in out
    np.testing.assert_array_equal(pixels(tmp_path / "x_wave-2.png"), 255 - pixels(tmp_path / "x.png"))
    np.testing.assert_array_equal(pixels(tmp_path / "x_wave_wave.png"), 255 - pixels(tmp_path / "x_wave.png"))


def test_inputs_sharing_a_stem_get_outputs_of_their_own(model, tmp_path, capsys):
    photo(tmp_path / "a.png", seed=1)
    Image.open(photo(tmp_path / "b.png", seed=2)).save(tmp_path / "a.jpg", quality=100)
    (tmp_path / "b.png").unlink()
    code, out, _ = run(capsys, tmp_path / "a.png", tmp_path / "a.jpg", "-m", model, "-s", "wave", "-o", tmp_path / "out")
    assert code == 0
    assert "a_wave-2.png (" in out and "is an earlier output of this run)" in out
    written = {p.name: pixels(p) for p in (tmp_path / "out").iterdir()}
    assert sorted(written) == ["a_wave-2.png", "a_wave.png"]
    np.testing.assert_array_equal(written["a_wave.png"], 255 - pixels(tmp_path / "a.png"))  # in the order given
    np.testing.assert_array_equal(written["a_wave-2.png"], 255 - pixels(tmp_path / "a.jpg"))


def test_every_failure_is_one_line_at_the_end_and_the_rest_is_written(model, tmp_path, capsys, monkeypatch):
    good, *_ = (photo(tmp_path / f"{n}.png", seed=i) for i, n in enumerate(("good", "unwritable", "zz")))
    (tmp_path / "corrupt.png").write_bytes(good.read_bytes()[:100])
    real_write = stylize.atomic_write_bytes

    def write(target, data):
        if target.name.startswith("unwritable"):
            raise PermissionError(13, "Permission denied", str(target))
        return real_write(target, data)

    monkeypatch.setattr(stylize, "atomic_write_bytes", write)
    code, out, err = run(capsys, tmp_path / "*.png", tmp_path / "missing.png", "-m", model, "-o", tmp_path / "out")
    assert code == 1
    assert err.splitlines() == [
        f"impasto stylize: {tmp_path / 'missing.png'}: no such file or matching image",
        f"impasto stylize: {tmp_path / 'corrupt.png'}: corrupt or truncated image "
        + err.split("corrupt or truncated image ", 1)[1].splitlines()[0],
        f"impasto stylize: {tmp_path / 'out' / 'unwritable_wave.png'}: cannot write (Permission denied)",
    ]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_wave.png", "zz_wave.png"]


def test_an_unwritable_output_is_one_line_without_a_traceback(model, tmp_path):
    photo(tmp_path / "a.png")
    photo(tmp_path / "b.png", seed=1)
    (tmp_path / "blocker").write_bytes(b"a file, not a folder")
    result = impasto("stylize", tmp_path / "a.png", tmp_path / "b.png", "-m", model, "-o", tmp_path / "blocker" / "out")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"impasto stylize: {tmp_path / 'blocker' / 'out' / n}_wave.png: "
                                          f"cannot write ({tmp_path / 'blocker'} is not a folder)" for n in "ab"]
    one = impasto("stylize", tmp_path / "a.png", "-m", model, "-o", tmp_path / "blocker" / "a.png")
    assert one.returncode == 1
    assert one.stderr == (f"impasto stylize: {tmp_path / 'blocker' / 'a.png'}: cannot write "
                          f"({tmp_path / 'blocker'} is not a folder)\n")


def test_a_non_finite_result_is_an_error_line_never_a_black_image(tmp_path, capsys):
    model = graphs.stretch_model(tmp_path / "stretch.onnx")
    photo(tmp_path / "a.png")
    Image.new("RGB", (40, 30), (90, 90, 90)).save(tmp_path / "flat.png")
    code, _, err = run(capsys, tmp_path / "a.png", tmp_path / "flat.png", "-m", model, "-o", tmp_path / "out")
    assert code == 1
    assert err == "impasto stylize: stretch: the model's output is not finite (NaN or infinity)\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a_wave.png"]


@pytest.mark.parametrize("build", [graphs.half_size_model, graphs.nan_model, graphs.renamed_model])
def test_a_broken_model_is_one_line_before_any_file(tmp_path, capsys, build):
    model = build(tmp_path / "bad.onnx")
    photo(tmp_path / "a.png")
    code, out, err = run(capsys, tmp_path / "a.png", "-m", model)
    assert (code, out) == (2, "") and err.startswith(f"impasto stylize: {model}: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "bad.onnx"]
