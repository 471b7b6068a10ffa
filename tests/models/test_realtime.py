"""The real-time network config: composes, keeps the model contract, exports, stays small."""
import pytest
import torch

from impasto.models.transformer import ConditionalInstanceNorm2d, StylizationNetwork, conv_macs, one_hot_styles
from impasto.training.config import compose_config
from impasto.training.networks import build_network

STYLES = ["starry", "wave", "mosaic"]


def _network(config: str, **kwargs) -> StylizationNetwork:
    cfg = compose_config([f"network={config}"])
    if cfg.network.norm == "conditional_instance":
        kwargs.setdefault("num_styles", len(STYLES))
        kwargs.setdefault("style_names", STYLES)
    return build_network(cfg.network, **kwargs)


def _perturb(net: StylizationNetwork) -> StylizationNetwork:
    """Untrained CIN starts at gamma=1, beta=0 for every style; make the styles differ."""
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, ConditionalInstanceNorm2d):
            torch.nn.init.normal_(m.weight, 1.0, 0.5)
            torch.nn.init.normal_(m.bias, 0.0, 0.5)
    return net.eval()


@pytest.fixture(scope="module")
def realtime_cin():
    return _perturb(_network("realtime_cin"))


def test_configs_compose_and_build():
    single = _network("realtime")
    assert isinstance(single, StylizationNetwork) and not single.conditional
    cin = _network("realtime_cin")
    assert cin.conditional and cin.num_styles == 3 and cin.style_names == STYLES
    # The real-time options are really on: strided stem, separable up-sampling, sub-pixel head.
    assert cin.encoder[0].conv.conv.stride == (2, 2) and len(cin.encoder) == 2
    assert len(cin.decoder) == 1 and isinstance(cin.head[-1], torch.nn.PixelShuffle)


def test_subpixel_head_starts_without_checkerboard():
    """ICNR: an untrained sub-pixel head is nearest-neighbour up-sampling, so each 2x2 output block
    is one value; the default per-channel init would print a fixed 2x2 pattern on every image."""
    head = _network("realtime_cin").head
    with torch.no_grad():
        y = head(torch.randn(2, head[0].conv.in_channels, 9, 11))
    blocks = y.unflatten(2, (-1, 2)).unflatten(4, (-1, 2))  # [N, 3, H/2, 2, W/2, 2]
    assert torch.equal(blocks, blocks[:, :, :, :1, :, :1].expand_as(blocks))
    assert y.std() > 0.01  # not a constant


@pytest.mark.parametrize("size", [(67, 93), (64, 64), (33, 50), (130, 61), (41, 41)])
def test_output_size_equals_input_size(realtime_cin, size):
    x = torch.rand(2, 3, *size)
    with torch.no_grad():
        y = realtime_cin(x, one_hot_styles(torch.tensor([0, 2]), 3))
    assert y.shape == x.shape
    assert y.min() >= 0 and y.max() <= 1


@pytest.mark.parametrize("size", [(67, 93), (37, 50)])
def test_single_style_output_size(size):
    net = _network("realtime").eval()
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert net(x).shape == x.shape


def test_cin_one_hot_and_blend_per_sample(realtime_cin):
    x = torch.rand(1, 3, 48, 56)
    weights = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0.5, 0.5, 0]])
    with torch.no_grad():
        batch = realtime_cin(x.expand(3, -1, -1, -1), weights)
        for i in range(3):
            torch.testing.assert_close(batch[i:i + 1], realtime_cin(x, weights[i:i + 1]), atol=1e-5, rtol=1e-4)
    assert (batch[0] - batch[1]).abs().mean() > 1e-3  # different styles really differ
    assert (batch[2] - batch[0]).abs().mean() > 1e-4 and (batch[2] - batch[1]).abs().mean() > 1e-4


def test_onnx_export_parity(realtime_cin, tmp_path):
    pytest.importorskip("onnxruntime")
    from impasto.training.export import DEFAULT_TOLERANCE, export_onnx, parity_check

    path = export_onnx(realtime_cin, tmp_path / "realtime.onnx")
    results = parity_check(realtime_cin, path)  # includes 67x93 and a batch of 3 at 130x61
    assert results and max(diff for _, diff in results) < DEFAULT_TOLERANCE


def test_params_and_macs_well_below_johnson(realtime_cin):
    johnson = _network("johnson_cin")
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(realtime_cin) < params(johnson) / 4
    # MACs scale with the pixel count, so 256^2 tells the 1024^2 ratio (~15 vs ~161 GMAC there).
    assert conv_macs(realtime_cin, 256, 256) < conv_macs(johnson, 256, 256) / 5
    # ...but not starved: the quarter-resolution residual stack keeps most of the parameters.
    assert params(realtime_cin.residuals) > 0.7 * params(realtime_cin)


def test_conv_macs_matches_hand_count_for_johnson():
    net = StylizationNetwork()
    h = w = 128
    full, half, quarter = h * w, h * w // 4, h * w // 16
    expected = (full * 81 * 3 * 32 + half * 9 * 32 * 64 + quarter * 9 * 64 * 128
                + 10 * quarter * 9 * 128 * 128 + half * 9 * 128 * 64 + full * 9 * 64 * 32 + full * 81 * 32 * 3)
    assert conv_macs(net, h, w) == expected


@pytest.mark.parametrize("option", [dict(stem_stride=3), dict(up_block="transposed"), dict(head="deconv"),
                                    dict(padding="circular")])
def test_bad_realtime_options_are_rejected(option):
    with pytest.raises(ValueError):
        StylizationNetwork(**option)


def test_options_compose_with_johnson_layout():
    """stem_stride=2 with the conv head keeps a full-resolution decoder stage; dwsep blocks + reflect work."""
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, stem_stride=2, up_block="dwsep",
                             block="dwsep").eval()
    x = torch.rand(1, 3, 45, 51)
    with torch.no_grad():
        assert net(x).shape == x.shape
    assert len(net.decoder) == 2 and net.head.conv.in_channels == 8

