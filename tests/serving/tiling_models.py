"""Tiny exported networks for the tiling tests: the real-time architecture (strided stem,
separable up-sampling, pixel-shuffle head) with conditional instance norm, exported the normal way
(frozen-statistics capability) and the way models were exported before it (plain contract)."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest

STYLES = ["wave", "ink", "plain"]


def tiny_realtime(seed: int = 0):
    torch = pytest.importorskip("torch")
    from impasto.models.transformer import ConditionalInstanceNorm2d, StylizationNetwork

    torch.manual_seed(seed)
    net = StylizationNetwork(widths=(8, 8, 16), num_residual_blocks=2, kernel_sizes=(7, 3, 3),
                             norm="conditional_instance", num_styles=3, style_names=STYLES,
                             stem_stride=2, up_block="dwsep", head="pixel_shuffle")
    for module in net.modules():  # untrained CIN styles are identical: make them differ
        if isinstance(module, ConditionalInstanceNorm2d):
            torch.nn.init.normal_(module.weight, 1.0, 0.5)
            torch.nn.init.normal_(module.bias, 0.0, 0.5)
    return net.eval()


def export_tiling(net, path: Path) -> Path:
    from impasto.training.export import export_onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_onnx(net, path, identity_style="plain")


def export_plain(net, path: Path) -> Path:
    """As ``impasto export`` wrote models before the tiling capability: image (+ weights) -> stylized."""
    import onnx
    import torch

    from impasto.core.contract import build_metadata, write_metadata

    image, weights = torch.rand(1, 3, 67, 93), torch.full((1, len(STYLES)), 1.0 / len(STYLES))
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "style_weights": {0: "batch"},
            "stylized": {0: "batch", 2: "height", 3: "width"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (image, weights), str(path), input_names=["image", "style_weights"],
                          output_names=["stylized"], dynamic_axes=axes, opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    write_metadata(model, build_metadata(STYLES, identity_style="plain"))
    onnx.save(model, str(path))
    return path
