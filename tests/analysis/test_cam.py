import pytest
import torch
from torch import nn

from impasto.models.analysis import CAM, AnalysisError, GradCAM, GuidedGradCAM


def test_cam_is_gradcam_up_to_positive_scale(tiny, images):
    """At the last conv layer of a GAP + linear net, d y_c / d A_k = w_ck / (h w), so Grad-CAM is
    CAM divided by the number of positions."""
    tiny.eval()
    targets = torch.tensor([0, 4])
    cam = CAM(tiny)(images, targets, relu=False)
    grad = GradCAM(tiny, "features.8")(images, targets, relu=False)
    ratio = cam / grad
    assert torch.allclose(ratio, torch.full_like(ratio, cam.shape[-1] * cam.shape[-2]), rtol=1e-3)
    # default layer = the one the pool reads
    assert torch.allclose(GradCAM(tiny)(images, targets), grad.clamp_min(0))


def test_cam_rejects_head_that_is_not_gap_linear(images):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(AnalysisError, match="global-average-pool"):
        CAM(model)(images, 0)


def test_gradcam_upsamples_and_highlights_the_evidence():
    """A net that scores class 0 by the brightness of the left half must light up the left half."""
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[0].bias.zero_()
        model[4].weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -1.0]]))
    x = torch.zeros(1, 3, 16, 16)
    x[..., :8] = 1.0
    cam = GradCAM(model, "1")(x, 0, upsample_to_input=True)[0]
    assert cam.shape == (16, 16)
    assert cam[:, :6].min() > 0 and cam[:, 10:].max() == 0


def test_guided_gradcam_shape(tiny, images):
    tiny.eval()
    out = GuidedGradCAM(tiny, "features.5")(images, 2)
    assert out.shape == images.shape and out.abs().sum() > 0
