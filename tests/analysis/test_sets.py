"""Nearest neighbours, embeddings, patches, filters, activation maps, image loading."""
import numpy as np
import pytest
import torch
from PIL import Image

from impasto.models.analysis import (
    ActivationMaps,
    AnalysisError,
    MaxActivatingPatches,
    conv_filters,
    embed_2d,
    nearest_neighbors,
    penultimate_features,
)
from impasto.models.analysis.images import load_images, to_tensor
from impasto.models.analysis.patches import crop


def test_nearest_neighbors_excludes_self_and_orders_by_distance():
    feats = torch.tensor([[0.0], [1.0], [3.0], [10.0]])
    assert nearest_neighbors(feats, [1, 3], k=2).tolist() == [[0, 2], [2, 1]]


def test_penultimate_features_are_the_pooled_map(tiny, images):
    tiny.eval()
    feats = penultimate_features(tiny, images, batch_size=1)
    with torch.no_grad():
        assert torch.allclose(feats, tiny.features(images).mean((2, 3)), atol=1e-6)


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embed_2d(method):
    rng = np.random.default_rng(0)
    feats = torch.from_numpy(np.concatenate([rng.normal(0, 1, (6, 8)), rng.normal(20, 1, (6, 8))]))
    xy = embed_2d(feats, method)
    assert xy.shape == (12, 2)
    # the two clusters stay apart
    a, b = xy[:6].mean(0), xy[6:].mean(0)
    assert np.linalg.norm(a - b) > 2 * max(xy[:6].std(0).max(), xy[6:].std(0).max())


def test_patches_are_top_activations(tiny, images):
    tiny.eval()
    found = MaxActivatingPatches(tiny, "features.5")(images, [3], k=3, per_image=2)[3]
    acts = ActivationMaps(tiny, "features.5")(images, normalize=False)[:, 3]
    assert found[0].value == pytest.approx(acts.max().item())
    assert [p.value for p in found] == sorted((p.value for p in found), reverse=True)
    assert all(crop(images[p.image], p.box).shape == (3, 8, 8) for p in found)  # conv3, pool2, conv3: 3 + 1 + 2 * 2 px


def test_crop_pads_outside_with_grey():
    img = torch.zeros(3, 4, 4)
    out = crop(img, (-1, -1, 2, 2))
    assert out.shape == (3, 3, 3) and out[:, 0, 0].eq(0.5).all() and out[:, 1, 1].eq(0).all()


def test_filters_are_normalised_per_filter(tiny):
    w = conv_filters(tiny)
    assert w.shape == (8, 3, 3, 3)
    flat = w.flatten(1)
    assert torch.allclose(flat.min(1).values, torch.zeros(8)) and torch.allclose(flat.max(1).values, torch.ones(8))
    assert conv_filters(tiny, "features.4").shape == (16, 8, 3, 3)
    with pytest.raises(AnalysisError, match="not a convolution"):
        conv_filters(tiny, "features.2")


def test_unknown_layer_suggests_names(tiny):
    with pytest.raises(AnalysisError, match="did you mean features.5"):
        ActivationMaps(tiny, "features.55")


def test_load_images_from_folder_glob_and_bad_file(tmp_path):
    for i in range(2):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / f"im{i}.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    assert [i.name for i in load_images([str(tmp_path / "im*.png")])] == ["im0", "im1"]
    with pytest.raises(AnalysisError, match="bad.jpg"):
        load_images([str(tmp_path)])
    with pytest.raises(AnalysisError, match="no such file"):
        load_images([str(tmp_path / "missing.png")])
    x = to_tensor(load_images([str(tmp_path / "im1.png")])[0].image, 16)
    assert x.shape == (3, 16, 16) and torch.allclose(x, torch.full_like(x, 40 / 255), atol=1e-6)


def test_grabcut_segments_the_salient_object():
    from impasto.models.analysis import grabcut_from_saliency

    rng = np.random.default_rng(0)
    img = torch.from_numpy(rng.uniform(0.0, 0.2, (3, 64, 64)).astype(np.float32))
    img[0, 20:44, 20:44] = 0.9  # a red square on dark noise
    sal = torch.zeros(64, 64)
    sal[26:38, 26:38] = 1.0     # saliency only on its centre
    mask = grabcut_from_saliency(img, sal)
    assert mask[22:42, 22:42].mean() > 0.95 and mask[:16].mean() < 0.05 and mask[:, 50:].mean() < 0.05
