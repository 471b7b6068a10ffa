"""The ReLU backward rules of CS231n lecture 12 (Springenberg et al. 2015, fig. 1) on its 3x3 example."""
import pytest
import torch
from torch import nn

from impasto.models.analysis.guided import relu_backward_rule

FORWARD_IN = [[1, -1, 5], [2, -5, -7], [-3, 2, 4]]
UPSTREAM = [[-2, 0, -1], [6, -3, 1], [2, -1, 3]]
EXPECTED = {
    "backprop": [[-2, 0, -1], [6, 0, 0], [0, -1, 3]],
    "deconvnet": [[0, 0, 0], [6, 0, 1], [2, 0, 3]],
    "guided": [[0, 0, 0], [6, 0, 0], [0, 0, 3]],
}


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("rule", list(EXPECTED))
def test_lecture_example(rule, inplace):
    relu = nn.ReLU(inplace=inplace)
    model = nn.Sequential(nn.Identity(), relu)
    x = torch.tensor(FORWARD_IN, dtype=torch.float32, requires_grad=True)
    with relu_backward_rule(model, rule):
        out = model(x * 1.0)  # x * 1.0: a non-leaf, as inside a network (in-place on a leaf is illegal)
        assert out.tolist() == [[1, 0, 5], [2, 0, 0], [0, 2, 4]]
        out.backward(torch.tensor(UPSTREAM, dtype=torch.float32))
    assert x.grad.tolist() == EXPECTED[rule]
    assert relu.inplace is inplace
    assert not relu._backward_hooks and not relu._forward_hooks


def test_relu6_guided_masks_saturated_inputs():
    model = nn.Sequential(nn.Identity(), nn.ReLU6())
    x = torch.tensor([-1.0, 3.0, 7.0, 2.0], requires_grad=True)
    with relu_backward_rule(model, "guided"):
        model(x * 1.0).backward(torch.tensor([1.0, 1.0, 1.0, -1.0]))
    assert x.grad.tolist() == [0.0, 1.0, 0.0, 0.0]
