"""``impasto explain inversion|deepdream|texture|gatys`` end to end, at toy sizes and step counts."""
import pytest
import torch
from PIL import Image

from impasto.models.analysis.explain import main
from impasto.models.analysis.explain_optim import METHODS, fit


@pytest.fixture(autouse=True)
def one_thread():
    # Toy sizes gain nothing from threads, and OpenMP spin-waits badly on busy shared cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_image(path, colour, size=(40, 30)):
    img = Image.new("RGB", size, colour)
    for x in range(0, size[0], 6):  # some structure for the Gram matrices
        for y in range(size[1]):
            img.putpixel((x, y), (255 - colour[0], 255 - colour[1], 255 - colour[2]))
    img.save(path)
    return str(path)


def test_registered_methods():
    assert set(METHODS) == {"inversion", "deepdream", "texture", "gatys"}


@pytest.mark.parametrize("argv", [
    ["inversion", "--layers", "relu1_2", "relu2_2", "--steps", "2"],
    ["deepdream", "--layers", "relu2_1", "--octaves", "2", "--steps", "1"],
    ["texture", "--layers", "relu1_1", "relu2_1", "--steps", "2", "--scale", "1.5"],
    ["gatys", "--steps", "2", "--preserve-color"],
])
def test_methods_write_a_figure(argv, tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert main([*argv, "--size", "32", "-o", str(out)]) == 0
    assert out.is_file() and out.stat().st_size > 1000
    assert out.with_suffix(".txt").read_text().strip()
    assert str(out) in capsys.readouterr().out


def test_gatys_with_weighted_style_files(tmp_path):
    content = write_image(tmp_path / "content.png", (200, 120, 40))
    styles = [write_image(tmp_path / f"style{i}.jpg", c) for i, c in enumerate([(20, 60, 200), (220, 30, 30)])]
    out = tmp_path / "gatys.png"
    argv = ["gatys", "--image", content, "--style", *styles, "--style-weights", "0.7", "0.3", "--steps", "2",
            "--size", "32", "--optimizer", "adam", "--preserve-color", "histogram", "-o", str(out)]
    assert main(argv) == 0
    summary = out.with_suffix(".txt").read_text()
    assert "style0 x0.7, style1 x0.3" in summary and "histogram" in summary


@pytest.mark.parametrize("argv, message", [
    (["gatys", "--style", "{bad}", "--steps", "1"], "bad.png"),
    (["texture", "--image", "{bad}", "--steps", "1"], "bad.png"),
    (["gatys", "--style", "{good}", "--style-weights", "1", "2", "--steps", "1"], "one weight per style"),
    (["inversion", "--layers", "relu9_9", "--steps", "1"], "relu9_9"),
    (["deepdream", "--steps", "0"], "--steps"),
    (["deepdream", "--jitter", "-1"], "--jitter"),
    (["texture", "--lr", "0", "--steps", "1"], "--lr"),
    (["gatys", "--style", "{good}", "--style-weights", "0", "--steps", "1"], "at least one weight"),
])
def test_bad_input_exits_2(argv, message, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    good = write_image(tmp_path / "good.png", (10, 200, 10))
    argv = [a.replace("{bad}", str(bad)).replace("{good}", good) for a in argv]
    assert main([*argv, "--size", "32", "-o", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_fit_resizes_the_longer_side():
    x = fit(Image.new("RGB", (300, 150), (255, 0, 0)), 64)
    assert x.shape == (1, 3, 32, 64)
    assert torch.allclose(x[0, :, 5, 5], torch.tensor([1.0, 0.0, 0.0]))
