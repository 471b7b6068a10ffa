"""Quality metrics (impasto.models.quality) and the quality benchmark script, on tiny images."""
from __future__ import annotations

import itertools

import pytest
import torch

from impasto.models.quality import (
    EFFICIENTNET_CONTENT_LAYER,
    EFFICIENTNET_STYLE_LAYERS,
    VGG_CONTENT_LAYER,
    VGG_STYLE_LAYERS,
    Judge,
    content_distance,
    efficientnet_judge,
    style_distance,
    vgg_judge,
)
from impasto.training.images import load_tensor


@pytest.fixture(scope="module")
def vgg():
    return vgg_judge()


@pytest.fixture(scope="module")
def eff():
    return efficientnet_judge()


@pytest.fixture(scope="module")
def photo():
    return load_tensor("skimage:astronaut", 64)[None]


@pytest.fixture(scope="module")
def style():
    return load_tensor("skimage:coffee", 64)[None]  # 64 x 43: another size than the photo


def test_pure_functions_on_random_features():
    torch.manual_seed(0)
    a = {"x": torch.rand(2, 4, 8, 8), "y": torch.rand(2, 6, 4, 4)}
    s = {"x": torch.rand(1, 4, 5, 7), "y": torch.rand(1, 6, 3, 3)}
    assert torch.allclose(style_distance(a, a, ["x", "y"]), torch.zeros(2), atol=1e-6)
    d = style_distance(a, s, ["x", "y"])
    assert d.shape == (2,) and (d > 0).all()
    assert torch.equal(content_distance(a, a, "x"), torch.zeros(2))
    with pytest.raises(ValueError, match="differ in size"):
        content_distance(a, {"x": torch.rand(1, 4, 5, 5)}, "x")


@pytest.mark.parametrize("which", ["vgg", "eff"])
def test_self_distances_are_zero(which, request, photo, style):
    judge: Judge = request.getfixturevalue(which)
    assert judge.style_distance(photo, photo).item() == pytest.approx(0, abs=1e-5)
    assert judge.content_distance(photo, photo).item() == 0
    # out = the style image itself: S ~ 0 although its size differs from the photo's
    assert style.shape[-2:] != photo.shape[-2:]
    assert judge.style_distance(style, style).item() == pytest.approx(0, abs=1e-5)
    s, c = judge.distances(photo, judge.targets(photo, style))
    assert s.item() > 0.05 and c.item() == 0


def test_style_distance_falls_as_gram_moves_to_style():
    torch.manual_seed(0)
    start = {"x": torch.rand(1, 8, 6, 6)}
    target = {"x": torch.rand(1, 8, 6, 6) ** 3}
    dists = [style_distance({"x": (1 - t) * start["x"] + t * target["x"]}, target, ["x"]).item()
             for t in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)]
    assert all(a > b for a, b in itertools.pairwise(dists)) and dists[-1] == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("which", ["vgg", "eff"])
def test_style_falls_towards_the_style(which, request, photo, style):
    judge: Judge = request.getfixturevalue(which)
    resized = torch.nn.functional.interpolate(style, size=photo.shape[-2:], mode="bilinear", align_corners=False)
    far = judge.style_distance(photo, style).item()
    # the style image itself at another resolution (80 px instead of 64) is much closer than the photo
    other_size = load_tensor("skimage:coffee", 80)[None]
    assert judge.style_distance(other_size, style).item() < 0.75 * far
    # the style image squeezed to the photo's shape is closer than the photo too
    assert judge.style_distance(resized, style).item() < 0.75 * far


@pytest.mark.parametrize("which", ["vgg", "eff"])
def test_content_grows_with_noise(which, request, photo):
    judge: Judge = request.getfixturevalue(which)
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(photo.shape, generator=g)
    dists = [judge.content_distance((photo + sigma * noise).clamp(0, 1), photo).item() for sigma in (0.02, 0.1, 0.3)]
    assert 0 < dists[0] < dists[1] < dists[2]


def test_judges_expose_their_layers(vgg, eff, photo):
    assert vgg.style_layers == list(VGG_STYLE_LAYERS) and vgg.content_layer == VGG_CONTENT_LAYER
    assert eff.style_layers == list(EFFICIENTNET_STYLE_LAYERS) and eff.content_layer == EFFICIENTNET_CONTENT_LAYER
    feats = eff.features(photo)
    assert set(feats) == {*EFFICIENTNET_STYLE_LAYERS, EFFICIENTNET_CONTENT_LAYER}
    # five distinct stages, getting deeper (more channels, lower resolution)
    channels = [feats[l].shape[1] for l in EFFICIENTNET_STYLE_LAYERS]
    assert len(set(EFFICIENTNET_STYLE_LAYERS)) == 5 and channels == sorted(channels)
    assert not any(p.requires_grad for p in eff.extractor.parameters())


def test_unknown_efficientnet_stage():
    from impasto.models.quality import EfficientNetFeatures

    with pytest.raises(ValueError, match="unknown EfficientNet stage"):
        EfficientNetFeatures(["blocks.9"], classifier=object())


# ------------------------------------------------------------------------------------ script

@pytest.fixture()
def bench_dirs(tmp_path):
    from impasto.training.images import load_pil

    content, styles = tmp_path / "content", tmp_path / "styles"
    content.mkdir()
    styles.mkdir()
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        load_pil(f"skimage:{name}").resize((96, 72)).save(content / f"{name}.png")
    load_pil("skimage:colorwheel").resize((80, 80)).save(styles / "a.png")
    return content, styles


def _tiny_model(path):
    from impasto.models.transformer import StylizationNetwork
    from impasto.training.export import export_onnx

    torch.manual_seed(0)
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm="conditional_instance",
                             num_styles=2, style_names=["a", "b"])
    return export_onnx(net, path)


def test_benchmark_end_to_end(tmp_path, bench_dirs, capsys):
    from benchmarks.quality import main

    content, styles = bench_dirs
    model = _tiny_model(tmp_path / "tiny.onnx")
    output = tmp_path / "out" / "bench.md"
    rc = main(["--styles-dir", str(styles), "--content-dir", str(content), "--model", str(model),
               "--johnson", str(model), "--no-peer", "--gatys-steps", "2", "--gatys-photos", "1", "--num-photos", "2", "--size", "64",
               "--holdout-every", "2", "--threads", "1", "--output", str(output)])
    assert rc == 0
    text = output.read_text()
    assert "| method | photos | S_vgg | C_vgg | S_eff | C_eff | s/photo |" in text
    assert "## a" in text and "## Summary" in text
    section = text.split("## a", 1)[1].split("## Summary", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in section.splitlines() if line.startswith("| ")}
    assert "tiny" in rows and "gatys (2 L-BFGS steps)" in rows and "photo (no stylisation)" in rows
    # held-out = every 2nd of 4 sorted photos -> 2; Gatys on 1 only
    assert rows["tiny"].split("|")[2].strip() == "2"
    assert rows["gatys (2 L-BFGS steps)"].split("|")[2].strip() == "1"
    photo_row = rows["photo (no stylisation)"].split("|")
    assert float(photo_row[4]) == 0 and float(photo_row[6]) == 0  # C_vgg, C_eff of the photo itself
    assert "summary" in capsys.readouterr().out
    # The acceptance comparison: the same network as "Johnson" is exactly on par, and no peer ran.
    comparison = text.split("## tiny vs peer and Johnson, vgg judge", 1)[1].split("##", 1)[0]
    row = [c.strip() for c in next(l for l in comparison.splitlines() if l.startswith("| a ")).split("|")[1:-1]]
    assert row[3:6] == ["–", "–", "–"] and row[6:] == ["1.00", "1.00", "yes"]


def test_benchmark_clear_errors(tmp_path, bench_dirs, capsys):
    from benchmarks.quality import main

    content, styles = bench_dirs
    assert main(["--styles-dir", str(tmp_path / "nope"), "--content-dir", str(content)]) == 2
    assert "styles folder not found" in capsys.readouterr().err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a loadable ONNX model" in err and len(err.splitlines()) == 1
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--styles", "zzz"]) == 2
    assert "zzz" in capsys.readouterr().err
    assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--device", "gpu"]) == 2
    assert "not a torch device" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["--styles-dir", str(styles), "--content-dir", str(content), "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err
