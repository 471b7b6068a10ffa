"""The frozen-statistics capability of `impasto export` (seam-free tiling): statistics, radius, contract."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from impasto.core.contract import META_TILING, read_tiling
from impasto.core.errors import ModelError
from impasto.core.model import StyleModel
from impasto.models.norm_stats import NormStatsNetwork, receptive_radius
from impasto.models.transformer import StylizationNetwork
from impasto.training.export import export_onnx
from tests.serving.tiling_models import export_tiling, tiny_realtime


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    net = tiny_realtime(seed=1)
    return net, export_tiling(net, tmp_path_factory.mktemp("export") / "tiling.onnx")


def torch_norm_stats(net, image, weights):
    """Each InstanceNorm2d's per-channel mean and sqrt(biased var + eps), read by hooks, in call order."""
    stats = []

    def hook(module, inputs, _output):
        x = inputs[0]
        var = x.var(dim=(2, 3), unbiased=False)
        stats.extend([x.mean(dim=(2, 3)), torch.sqrt(var + module.eps)])

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    try:
        with torch.no_grad():
            net(image, weights)
    finally:
        for h in handles:
            h.remove()
    return torch.cat(stats, dim=1).numpy()


def test_the_statistics_output_is_what_the_torch_networks_norm_layers_compute(exported):
    net, path = exported
    model = StyleModel(path, device="cpu")
    g = torch.Generator().manual_seed(3)
    image, weights = torch.rand(2, 3, 75, 58, generator=g), torch.softmax(torch.rand(2, 3, generator=g), 1)
    got = model.norm_stats(image.numpy(), weights.numpy())
    expected = torch_norm_stats(net, image, weights)
    assert got.shape == expected.shape == (2, model.tiling.num_stats)
    assert np.abs(got - expected).max() <= 1e-4


def test_frozen_statistics_make_the_network_local_within_the_radius():
    net = tiny_realtime(seed=2)
    radius, align = receptive_radius(net)
    wrapped = NormStatsNetwork(net).eval()
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    image = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base, stats = wrapped(image, weights)
        poked = image.clone()
        poked[..., 80, 80] += 0.5
        changed = (wrapped(poked, weights, stats, torch.tensor(True))[0] - base).abs().amax(1)[0] > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert changed.any()
    assert (rows - 80).abs().max() <= radius and (cols - 80).abs().max() <= radius
    # Tight to within the rounding step: the change reaches past the radius less one grid step.
    assert (rows - 80).abs().max() >= radius - 2 * align


def test_the_realtime_network_radius_is_53_px():
    net = StylizationNetwork(widths=(16, 16, 48), kernel_sizes=(7, 3, 3), norm="conditional_instance",
                             num_styles=2, stem_stride=2, up_block="dwsep", head="pixel_shuffle")
    assert receptive_radius(net) == (53, 4)


def test_a_tiling_claim_the_graph_does_not_back_is_refused_in_one_line(exported, tmp_path):
    _, path = exported
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta[META_TILING])["align"] == 4
    with pytest.raises(ModelError, match="lacks computed_norm_stats, norm_stats, use_norm_stats"):
        read_tiling(meta, [], ["stylized"], "m.onnx")
    with pytest.raises(ModelError, match="must be a JSON object"):
        read_tiling({META_TILING: "{}"}, [], [], "m.onnx")


def test_batch_norm_networks_export_without_the_capability(tmp_path):
    net = StylizationNetwork(widths=(8, 16, 16), num_residual_blocks=1, norm="batch").eval()
    path = export_onnx(net, tmp_path / "bn.onnx")
    assert StyleModel(path, device="cpu").tiling is None


@pytest.mark.parametrize("norm", ["conditional_instance", "instance"])
def test_the_statistics_form_computes_what_the_network_computes_also_on_flat_images(norm):
    """The exported form folds the affine into one scale and shift and takes the variance as
    E[x^2] - mean^2; it must stay the network's maths, and a flat image (variance 0, where that
    difference can round below zero) must not turn into NaN."""
    torch.manual_seed(4)
    net = StylizationNetwork(widths=(8, 8, 16), num_residual_blocks=1, kernel_sizes=(7, 3, 3), norm=norm,
                             num_styles=3 if norm == "conditional_instance" else 1, stem_stride=2,
                             up_block="dwsep", head="pixel_shuffle").eval()
    for module in net.modules():
        if isinstance(module, torch.nn.InstanceNorm2d) and module.affine:
            torch.nn.init.normal_(module.weight, 1.0, 0.5)
    wrapped = NormStatsNetwork(net).eval()
    weights = torch.tensor([[0.2, 0.5, 0.3]]) if net.conditional else None
    g = torch.Generator().manual_seed(5)
    for image in (torch.rand(1, 3, 70, 45, generator=g), torch.full((1, 3, 64, 64), 0.37)):
        with torch.no_grad():
            expected, (got, stats) = net(image, weights), wrapped(image, weights)
        assert torch.isfinite(got).all() and torch.isfinite(stats).all()
        assert (got - expected).abs().max() <= 1e-4


def test_the_exported_normalisation_is_two_reductions_and_a_scale_and_shift(exported):
    """Each norm layer reads its feature map twice (mean, root sum of squares) and writes it once
    (scale and shift), without the textbook form's subtract, square and divide passes."""
    _, path = exported
    ops = [node.op_type for node in onnx.load(str(path)).graph.node]
    layers = len(StyleModel(path, device="cpu").tiling.layers)
    assert ops.count("ReduceMean") == ops.count("ReduceL2") == layers
    assert "Pow" not in ops and "InstanceNormalization" not in ops
