import pytest
import torch

from impasto.models.transformer import ConditionalInstanceNorm2d, StylizationNetwork, one_hot_styles


@pytest.mark.parametrize("norm", ["instance", "batch"])
@pytest.mark.parametrize("size", [(64, 64), (37, 50), (65, 71)])
def test_output_keeps_input_size_and_range(norm, size):
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm=norm).eval()
    x = torch.rand(2, 3, *size)
    y = net(x)
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


def test_default_architecture_matches_johnson():
    net = StylizationNetwork()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in (convs[0], convs[-1])] == [9, 9]
    assert [c.out_channels for c in convs[:3]] == [32, 64, 128]
    assert [c.stride[0] for c in convs[:3]] == [1, 2, 2]
    assert len(net.residuals) == 5
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(1.68e6, rel=0.02)


def test_dwsep_block_is_cheaper():
    basic = StylizationNetwork(block="basic")
    dwsep = StylizationNetwork(block="dwsep")
    count = lambda m: sum(p.numel() for p in m.residuals.parameters())  # noqa: E731
    assert count(dwsep) < count(basic) / 5


def _perturbed_cin(num_styles=3):
    torch.manual_seed(0)
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm="conditional_instance",
                             num_styles=num_styles).eval()
    for m in net.modules():
        if isinstance(m, ConditionalInstanceNorm2d):
            torch.nn.init.normal_(m.weight, 1.0, 0.5)
            torch.nn.init.normal_(m.bias, 0.0, 0.5)
    return net


def test_cin_one_hot_selects_exactly_that_style():
    cin = ConditionalInstanceNorm2d(4, 3)
    torch.nn.init.normal_(cin.weight)
    torch.nn.init.normal_(cin.bias)
    x = torch.randn(2, 4, 5, 5)
    out = cin(x, one_hot_styles(torch.tensor([2, 2]), 3))
    normed = torch.nn.functional.instance_norm(x)
    expected = normed * cin.weight[2][None, :, None, None] + cin.bias[2][None, :, None, None]
    torch.testing.assert_close(out, expected)


def test_cin_half_half_gives_gamma_beta_halfway():
    cin = ConditionalInstanceNorm2d(4, 2)
    torch.nn.init.normal_(cin.weight)
    torch.nn.init.normal_(cin.bias)
    x = torch.randn(1, 4, 6, 6)
    out = cin(x, torch.tensor([[0.5, 0.5]]))
    gamma = (cin.weight[0] + cin.weight[1]) / 2
    beta = (cin.bias[0] + cin.bias[1]) / 2
    expected = torch.nn.functional.instance_norm(x) * gamma[None, :, None, None] + beta[None, :, None, None]
    torch.testing.assert_close(out, expected)


def test_cin_network_mixes_styles_per_sample_in_one_batch():
    net = _perturbed_cin()
    x = torch.rand(1, 3, 40, 44)
    weights = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, 0]])
    batch = net(x.expand(3, -1, -1, -1), weights)
    for i in range(3):
        torch.testing.assert_close(batch[i:i + 1], net(x, weights[i:i + 1]), atol=1e-5, rtol=1e-4)
    assert (batch[0] - batch[1]).abs().mean() > 1e-3


def test_cin_requires_style_weights():
    with pytest.raises(ValueError, match="style_weights"):
        _perturbed_cin()(torch.rand(1, 3, 16, 16))


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="norm"):
        StylizationNetwork(norm="layer")
    with pytest.raises(ValueError, match="conditional_instance"):
        StylizationNetwork(norm="instance", num_styles=2)


def test_transfer_weights_keeps_known_styles_and_adds_a_new_one():
    from impasto.models.transformer import transfer_weights

    source = _perturbed_cin(3)
    source.style_names = ["a", "b", "c"]
    target = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm="conditional_instance",
                                num_styles=4, style_names=["c", "a", "b", "new"]).eval()
    assert transfer_weights(target, source) == ["new"]
    x = torch.rand(1, 3, 24, 24)
    for name in "abc":
        w_src = one_hot_styles(torch.tensor([source.style_names.index(name)]), 3)
        w_tgt = one_hot_styles(torch.tensor([target.style_names.index(name)]), 4)
        torch.testing.assert_close(target(x, w_tgt), source(x, w_src))
    cin = next(m for m in target.modules() if isinstance(m, ConditionalInstanceNorm2d))
    torch.testing.assert_close(cin.weight[3], cin.weight[:3].mean(0))
    with pytest.raises(ValueError, match="differ"):
        transfer_weights(StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1), source)
