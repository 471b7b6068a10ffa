"""``impasto explain`` end to end, in process, at small sizes."""
import numpy as np
import pytest
from PIL import Image

from impasto.core import cli
from impasto.models.analysis import explain


@pytest.fixture
def cat_file(tmp_path):
    from skimage import data

    path = tmp_path / "chelsea.png"
    Image.fromarray(np.asarray(data.chelsea())).save(path)
    return path


def png_ok(path):
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 200 and img.height > 100


def test_gradcam_guided_on_a_file(tmp_path, cat_file, capsys):
    out = tmp_path / "g.png"
    assert explain.main(["gradcam", "--guided", "--image", str(cat_file), "--target", "tabby cat",
                         "--size", "96", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "chelsea: top-5" in printed and "Grad-CAM of tabby (281)" in printed and str(out) in printed
    png_ok(out)
    assert "top-5" in out.with_suffix(".txt").read_text()


def test_saliency_defaults_through_the_dispatcher(tmp_path, capsys):
    out = tmp_path / "s.png"
    assert cli.main(["explain", "saliency", "--size", "64", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert all(f"{name}: top-5" in printed for name in ("chelsea", "coffee", "rocket"))
    png_ok(out)


def test_neighbors_on_the_default_set(tmp_path, capsys):
    out = tmp_path / "n.png"
    assert explain.main(["neighbors", "--size", "48", "-k", "3", "-o", str(out)]) == 0
    assert "16 images" in capsys.readouterr().out
    png_ok(out)


def test_filters(tmp_path):
    out = tmp_path / "f.png"
    assert explain.main(["filters", "-o", str(out)]) == 0
    png_ok(out)


def test_default_output_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert explain.main(["cam", "--size", "64", "--image", str(_save_noise(tmp_path))]) == 0
    png_ok(tmp_path / "outputs/explain/cam.png")


def _save_noise(tmp_path):
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("argv,message", [
    (["saliency", "--image", "missing.png"], "missing.png: no such file"),
    (["saliency", "--target", "no such class", "--size", "32"], "no ImageNet class matches"),
    (["gradcam", "--layer", "blocks.99", "--size", "32"], "unknown layer 'blocks.99'"),
    (["filters", "--model", "resnet18", "--weights", "nowhere.pth"], "ImageNet weights unavailable"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert explain.main(argv + ["-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    assert explain.main(["occlusion", "--image", str(bad)]) == 2
    assert "bad.jpg" in capsys.readouterr().err


def test_unknown_method(capsys):
    assert explain.main(["no-such-method"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'no-such-method'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv,message", [
    (["occlusion", "--window", "0"], "argument --window: must be at least 1, not 0"),
    (["class-viz", "--lr", "-1"], "argument --lr: must be above 0, not -1"),
    (["saliency", "--size", "8"], "argument --size: must be at least 16, not 8"),
    (["adversarial", "--eps", "nan"], "argument --eps: must be a finite number"),
    (["neighbors", "-k", "two"], "argument -k: invalid int value: 'two'"),
])
def test_bad_option_values_are_one_line(argv, message, capsys):
    assert explain.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("output,message", [
    ("figure", "must end in a figure format"),
    ("{file}/x.png", "cannot write"),   # found before the method runs
    ("{dir}", "cannot write"),          # found when the figure is saved
])
def test_unusable_output_path_is_one_line(output, message, tmp_path, capsys):
    blocker, taken = tmp_path / "file", tmp_path / "taken.png"
    blocker.write_text("a file where a folder should be")
    taken.mkdir()
    assert explain.main(["filters", "-o", output.replace("{file}", str(blocker)).replace("{dir}", str(taken))]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_bug_is_not_dressed_up_as_a_user_error(monkeypatch):
    """Only the project's user errors become "error: ..." + exit 2; a ValueError from inside a
    method is a bug and keeps its traceback."""
    def broken(args):
        raise ValueError("internal inconsistency")

    add_arguments, _ = explain.METHODS["saliency"]
    monkeypatch.setitem(explain.METHODS, "saliency", (add_arguments, broken))
    with pytest.raises(ValueError, match="internal inconsistency"):
        explain.main(["saliency"])


def test_registry_lists_every_method():
    expected = {"filters", "activations", "neighbors", "embedding", "patches", "occlusion", "saliency", "grabcut",
                "guided-backprop", "cam", "gradcam", "class-viz", "adversarial",
                "inversion", "deepdream", "texture", "gatys"}
    assert set(explain.METHODS) == expected
    parser = explain.build_parser()
    for name in expected:
        args = parser.parse_args([name])
        assert callable(args.run) and args.image is None and args.seed == 0
