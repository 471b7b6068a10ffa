"""Smoke test of ``python -m benchmarks.quality``: 2 held-out photos (TIFF files), 1 style, 64 px, a
tiny exported model, 2 Gatys steps, both judges; and its one-line errors."""
from __future__ import annotations

import math

import pytest
import torch

from benchmarks.quality import main
from impasto.core.imageio import open_reference


@pytest.fixture()
def bench_dirs(tmp_path):
    content, styles = tmp_path / "content", tmp_path / "styles"
    content.mkdir()
    styles.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        open_reference(f"skimage:{name}").resize((96, 72)).save(content / f"{name}.tif")
    open_reference("skimage:colorwheel").resize((80, 80)).save(styles / "a.png")
    return content, styles


def _tiny_model(path):
    from impasto.models.transformer import StylizationNetwork
    from impasto.training.export import export_onnx

    torch.manual_seed(0)
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm="conditional_instance",
                             num_styles=2, style_names=["a", "b"])
    return export_onnx(net, path)


def _table(text: str, heading: str) -> dict[str, list[str]]:
    """The Markdown table under ``## heading``: cells by the first cell."""
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("| ")]
    return {r[0]: r[1:] for r in rows[2:]}  # without the header and alignment rows


@pytest.mark.timeout(180)
def test_quality_benchmark_end_to_end(tmp_path, bench_dirs, capsys, restore_torch_threads):
    content, styles = bench_dirs
    model = _tiny_model(tmp_path / "tiny.onnx")
    output = tmp_path / "out" / "bench.md"
    rc = main(["--styles-dir", str(styles), "--content-dir", str(content), "--model", str(model),
               "--johnson", str(model), "--no-peer", "--gatys-steps", "2", "--gatys-photos", "1", "--num-photos", "2",
               "--size", "64", "--holdout-every", "2", "--threads", "1", "--output", str(output),
               "--sheet-photos", "2"])
    assert rc == 0
    text = output.read_text()
    # A sheet per style: per photo (2 rows) the painting, the photo, then tiny, johnson and Gatys
    # (on the first photo only, a blank tile on the second).
    from PIL import Image
    sheet = Image.open(output.with_name("bench_a.jpg"))
    assert sheet.width > 5 * 256 > sheet.width - 256 and 2 * 256 < sheet.height < 3 * 256
    assert "2 held-out photo(s) (numbers 0–1 of the held-out split" in text
    assert "| method | photos | S_vgg | C_vgg | S_eff | C_eff | s/photo |" in text
    rows = _table(text, "a")
    assert set(rows) == {"tiny", "johnson (tiny)", "gatys (2 L-BFGS steps)", "photo (no stylisation)"}, text
    # held-out = every 2nd of the 4 sorted .tif photos -> 2; Gatys on 1 only
    assert rows["tiny"][0] == "2" and rows["gatys (2 L-BFGS steps)"][0] == "1"
    for method, (_, s_vgg, c_vgg, s_eff, c_eff, seconds) in rows.items():
        figures = [float(x) for x in (s_vgg, c_vgg, s_eff, c_eff, seconds)]
        assert all(0 <= x < math.inf for x in figures), f"{method}: {figures}"
        assert float(s_vgg) > 0 and float(s_eff) > 0, method  # no output matches the style's Grams exactly
    assert float(rows["photo (no stylisation)"][2]) == 0 and float(rows["photo (no stylisation)"][4]) == 0  # C of itself
    assert float(rows["tiny"][2]) > 0  # an untrained network changes the photo
    assert "summary" in capsys.readouterr().out
    # The acceptance comparison: the same network as "Johnson" is exactly on par, and no peer ran.
    comparison = _table(text, "tiny vs peer and Johnson, vgg judge (ratios: ours / theirs)")
    assert comparison["a"][2:5] == ["–", "–", "–"] and comparison["a"][5:] == ["1.00", "1.00", "yes"]


def test_quality_benchmark_clear_errors(tmp_path, bench_dirs, capsys):
    content, styles = bench_dirs
    assert main(["--styles-dir", str(tmp_path / "nope"), "--content-dir", str(content)]) == 2
    assert "styles folder not found" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--styles-dir", str(styles), "--content-dir", str(empty)]) == 2
    assert ".tif" in capsys.readouterr().err  # the message lists every suffix that would have counted
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchmarks.quality: ") and "not a loadable ONNX model" in err and len(err.splitlines()) == 1
    # held-out: 2 of the 4 photos (every 2nd), so the third does not exist
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--holdout-every", "2",
                 "--first-photo", "2"]) == 2
    assert "--first-photo 2 is past the 2 held-out photos" in capsys.readouterr().err
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--first-photo", "-1"]) == 2
    assert "--first-photo must be >= 0" in capsys.readouterr().err
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--styles", "zzz"]) == 2
    assert "zzz" in capsys.readouterr().err
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--device", "gpu"]) == 2
    assert "not a torch device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
