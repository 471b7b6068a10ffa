"""Quality metrics (impasto.models.quality) on tiny images; the benchmark built on them is tested in
tests/benchmarks/test_quality.py."""
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
