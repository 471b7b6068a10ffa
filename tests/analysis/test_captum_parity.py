"""Our saliency, guided backprop, deconvnet, Grad-CAM and occlusion agree with captum's."""
import pytest
import torch
from captum.attr import Deconvolution, LayerGradCam
from captum.attr import GuidedBackprop as CaptumGuided
from captum.attr import Occlusion as CaptumOcclusion
from captum.attr import Saliency as CaptumSaliency

from impasto.models.analysis import GradCAM, GuidedBackprop, Occlusion, Saliency
from impasto.models.analysis.guided import Deconvnet

TARGETS = torch.tensor([1, 3])


def close(a, b, tol=1e-5):
    scale = b.abs().max().clamp_min(1e-12)
    assert b.abs().max() > 0, "degenerate comparison: captum's attribution is all zero"
    assert ((a - b).abs().max() / scale) < tol, f"max rel diff {((a - b).abs().max() / scale):.2e}"


def test_saliency(tiny, images):
    tiny.eval()
    theirs = CaptumSaliency(tiny).attribute(images, target=TARGETS, abs=True).amax(1)
    close(Saliency(tiny)(images, TARGETS), theirs)


def test_guided_backprop(tiny, images):
    tiny.eval()
    theirs = CaptumGuided(tiny).attribute(images, target=TARGETS)
    ours = GuidedBackprop(tiny)(images, TARGETS)
    close(ours, theirs)
    plain = Saliency(tiny)  # guided differs from plain gradients on this net (the test can fail)
    assert not torch.allclose(ours.abs().amax(1), plain(images, TARGETS))


def test_deconvnet(tiny, images):
    tiny.eval()
    close(Deconvnet(tiny)(images, TARGETS), Deconvolution(tiny).attribute(images, target=TARGETS))


@pytest.mark.parametrize("layer", ["features.5", "features.8"])
def test_gradcam(tiny, images, layer):
    tiny.eval()
    module = dict(tiny.named_modules())[layer]
    theirs = LayerGradCam(tiny, module).attribute(images, target=TARGETS, relu_attributions=True)[:, 0]
    close(GradCAM(tiny, layer)(images, TARGETS), theirs)


def test_occlusion(tiny, images):
    tiny.eval()
    probs = lambda x: tiny(x).softmax(1)  # noqa: E731
    theirs = CaptumOcclusion(probs).attribute(images, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4),
                                              baselines=0.5, target=TARGETS)
    ours = Occlusion(tiny)(images, TARGETS, window=8, stride=4, batch_size=5)
    assert ours.drops.shape == (2, 7, 7)
    close(ours.pixels, theirs.mean(1), tol=1e-4)
