"""Receptive fields from the architecture agree with where the gradient of one unit reaches."""
import pytest
import torch
import torchvision
from torch import nn

from impasto.models.analysis import receptive_field


class Branchy(nn.Module):
    """Strided, dilated, padded convs, average pooling, explicit padding and a residual branch."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 5, stride=2, padding=2)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.dilated = nn.Conv2d(4, 4, 3, padding=0, dilation=2)
        self.shortcut = nn.Conv2d(4, 4, 1)
        self.out = nn.Conv2d(4, 4, 3, stride=2)

    def forward(self, x):
        x = self.pool(self.stem(x))
        x = nn.functional.pad(self.dilated(x), (2, 2, 2, 2)) + self.shortcut(x)
        return self.out(x)


def gradient_box(model, layer, size, y, x):
    acts = {}
    handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: acts.update(out=o))
    inp = torch.zeros(1, 3, size, size, requires_grad=True)
    try:
        model(inp)
        acts["out"][0, :, y, x].sum().backward()
    finally:
        handle.remove()
    rows, cols = inp.grad[0].abs().sum(0).nonzero(as_tuple=True)
    return rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1


@pytest.mark.parametrize("layer,unit", [("stem", (5, 7)), ("pool", (4, 3)), ("dilated", (3, 4)), ("out", (3, 2))])
def test_matches_gradient_support(layer, unit):
    torch.manual_seed(0)
    model = Branchy()
    for p in model.parameters():
        nn.init.uniform_(p, 0.1, 1.0)  # positive weights: no accidental cancellation
    size = 96
    rf = receptive_field(model, layer, size)
    top, left, bottom, right = rf.box(*unit)
    assert 0 <= top and bottom <= size and 0 <= left and right <= size, "pick an interior unit"
    assert gradient_box(model, layer, size, *unit) == (top, left, bottom, right)


def test_resnet18_known_values():
    model = torchvision.models.resnet18()
    assert receptive_field(model, "layer4", 224).size == (435, 435)
    assert receptive_field(model, "layer1", 224).jump == (4, 4)


def test_tf_same_padding_of_efficientnet(effnet):
    """timm's Conv2dSame pads asymmetrically (more on the bottom/right): the start shifts."""
    rf = receptive_field(effnet, "conv_stem", 224)
    assert rf.size == (3, 3) and rf.jump == (2, 2) and rf.start == (1, 1)
