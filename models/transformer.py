"""Feed-forward stylization networks (Johnson et al., ECCV 2016) with selectable normalisation.

The architecture is built from small blocks and a norm-layer factory so that a slimmer real-time
variant is a config (widths, block count, kernel sizes, block type), not a fork.

Every block takes ``(x, style_weights)``: conditional instance norm (Dumoulin et al., ICLR 2017)
needs the per-sample style mix, the other norms ignore it. Pixel convention at both ends: float32
RGB in [0, 1], NCHW.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("instance", "batch", "conditional_instance")


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm with one (gamma, beta) pair per style and shared statistics.

    ``style_weights`` is ``[N, num_styles]``; each sample's gamma/beta is the weighted sum of the
    per-style parameters, so a one-hot row is exactly that style and a convex mix blends styles
    inside one forward pass (different mixes per sample in one batch).
    """

    def __init__(self, num_features: int, num_styles: int):
        super().__init__()
        self.num_styles = num_styles
        self.norm = nn.InstanceNorm2d(num_features, affine=False)
        self.weight = nn.Parameter(torch.ones(num_styles, num_features))
        self.bias = nn.Parameter(torch.zeros(num_styles, num_features))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        gamma = (style_weights @ self.weight)[:, :, None, None]
        beta = (style_weights @ self.bias)[:, :, None, None]
        return self.norm(x) * gamma + beta


class _Unconditional(nn.Module):
    """Adapts a plain norm layer to the ``(x, style_weights)`` call convention."""

    def __init__(self, norm: nn.Module):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(x)


def make_norm(kind: str, channels: int, num_styles: int = 1) -> nn.Module:
    """Norm-layer factory: ``instance`` (Ulyanov), ``batch`` or ``conditional_instance``."""
    if kind == "instance":
        return _Unconditional(nn.InstanceNorm2d(channels, affine=True))
    if kind == "batch":
        return _Unconditional(nn.BatchNorm2d(channels))
    if kind == "conditional_instance":
        return ConditionalInstanceNorm2d(channels, num_styles)
    raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(NORMS)}")


class ConvLayer(nn.Module):
    """Reflection-padded convolution (no zero-padding border artefacts)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__()
        self.pad = nn.ReflectionPad2d(kernel // 2)
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.pad(x))


class ConvNormAct(nn.Module):
    """Conv -> norm -> optional ReLU, optionally after a 2x nearest-neighbour upsample.

    Upsampling by resize + conv instead of transposed convolution avoids checkerboard artefacts
    (Odena et al., 2016).
    """

    def __init__(self, c_in, c_out, kernel, *, stride=1, upsample=False, norm="instance",
                 num_styles=1, act=True):
        super().__init__()
        self.upsample = upsample
        self.conv = ConvLayer(c_in, c_out, kernel, stride)
        self.norm = make_norm(norm, c_out, num_styles)
        self.act = act

    def forward(self, x, style_weights=None):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = self.norm(self.conv(x), style_weights)
        return F.relu(x) if self.act else x


class ResidualBlock(nn.Module):
    """Two 3x3 conv+norm layers with an identity skip (He et al. 2016, as in Johnson et al.)."""

    def __init__(self, channels: int, norm: str = "instance", num_styles: int = 1, kernel: int = 3):
        super().__init__()
        self.a = ConvNormAct(channels, channels, kernel, norm=norm, num_styles=num_styles)
        self.b = ConvNormAct(channels, channels, kernel, norm=norm, num_styles=num_styles, act=False)

    def forward(self, x, style_weights=None):
        return x + self.b(self.a(x, style_weights), style_weights)


class DepthwiseSeparableResidualBlock(nn.Module):
    """Residual block with depthwise 3x3 + pointwise 1x1 convolutions (MobileNet-style).

    Roughly ``k*k/C + 1`` times cheaper than :class:`ResidualBlock` at the same width.
    """

    def __init__(self, channels: int, norm: str = "instance", num_styles: int = 1, kernel: int = 3):
        super().__init__()
        self.dw_a = ConvLayer(channels, channels, kernel, groups=channels)
        self.pw_a = nn.Conv2d(channels, channels, 1)
        self.norm_a = make_norm(norm, channels, num_styles)
        self.dw_b = ConvLayer(channels, channels, kernel, groups=channels)
        self.pw_b = nn.Conv2d(channels, channels, 1)
        self.norm_b = make_norm(norm, channels, num_styles)

    def forward(self, x, style_weights=None):
        y = F.relu(self.norm_a(self.pw_a(self.dw_a(x)), style_weights))
        y = self.norm_b(self.pw_b(self.dw_b(y)), style_weights)
        return x + y


RESIDUAL_BLOCKS = {"basic": ResidualBlock, "dwsep": DepthwiseSeparableResidualBlock}


class SeparableUpsample(nn.Module):
    """Cheap 2x up-sampling stage: 1x1 projection, nearest 2x, depthwise kxk conv -> norm -> ReLU.

    A 1x1 convolution commutes with nearest-neighbour up-sampling, so the channel mixing runs at
    the *low* resolution (4x fewer pixels); only a depthwise conv on the narrower output runs at the
    high resolution. Drop-in for ``ConvNormAct(..., upsample=True)``.
    """

    def __init__(self, c_in, c_out, kernel, *, norm="instance", num_styles=1, act=True):
        super().__init__()
        self.project = nn.Conv2d(c_in, c_out, 1)
        self.depthwise = ConvLayer(c_out, c_out, kernel, groups=c_out)
        self.norm = make_norm(norm, c_out, num_styles)
        self.act = act

    def forward(self, x, style_weights=None):
        x = F.interpolate(self.project(x), scale_factor=2.0, mode="nearest")
        x = self.norm(self.depthwise(x), style_weights)
        return F.relu(x) if self.act else x


def icnr_(conv: nn.Conv2d, scale: int) -> None:
    """Initialise a sub-pixel conv so that the ``scale**2`` outputs that ``PixelShuffle(scale)``
    spreads over one block start identical (Aitken et al. 2017, "ICNR"): training starts from
    nearest-neighbour up-sampling instead of a per-position pattern, the checkerboard that
    independently initialised sub-pixel filters print on every output."""
    shared = nn.Conv2d(conv.in_channels, conv.out_channels // scale**2, conv.kernel_size)  # default init
    with torch.no_grad():
        conv.weight.copy_(shared.weight.repeat_interleave(scale**2, dim=0))
        conv.bias.copy_(shared.bias.repeat_interleave(scale**2, dim=0))


UPSAMPLE_BLOCKS = ("conv", "dwsep")
HEADS = ("conv", "pixel_shuffle")
PADDINGS = ("reflect", "zeros")


class StylizationNetwork(nn.Module):
    """Johnson-style image transformation network.

    Defaults reproduce Johnson et al.: 9x9 conv 32 -> stride-2 3x3 64 -> stride-2 3x3 128 ->
    5 residual blocks -> two upsampling stages 64 -> 32 -> 9x9 conv to 3.

    Inputs of any size work: the two stride-2 stages round up, and the output is cropped back to
    the input size, so sizes that are not multiples of 4 keep their exact shape.

    Real-time options (defaults keep Johnson's network exactly; ``conf/network/realtime.yaml``):

    - ``stem_stride=2``: the first (``kernel_sizes[0]``) conv is strided and maps RGB straight to
      ``widths[1]`` channels at half resolution -- no full-resolution feature map in the encoder;
    - ``up_block="dwsep"``: up-sampling stages are :class:`SeparableUpsample` (1x1 projection at the
      low resolution, nearest 2x, depthwise conv) instead of nearest 2x + full conv;
    - ``head="pixel_shuffle"``: the last (``kernel_sizes[2]``) conv runs at half resolution to
      ``3 * 4`` channels, rearranged to full-resolution RGB (sub-pixel convolution, Shi et al. 2016;
      ICNR-initialised, see :func:`icnr_`); the half -> full up-sampling stage goes away;
    - ``padding="zeros"``: convolutions zero-pad themselves instead of a separate reflection pad.

    ``widths[0]`` (full resolution) is unused when both ``stem_stride=2`` and
    ``head="pixel_shuffle"``.
    """

    def __init__(
        self,
        *,
        widths: Sequence[int] = (32, 64, 128),
        num_residual_blocks: int = 5,
        kernel_sizes: Sequence[int] = (9, 3, 9),
        residual_kernel: int = 3,
        block: str = "basic",
        norm: str = "instance",
        num_styles: int = 1,
        style_names: Sequence[str] | None = None,
        stem_stride: int = 1,
        up_block: str = "conv",
        head: str = "conv",
        padding: str = "reflect",
    ):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        if block not in RESIDUAL_BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {', '.join(RESIDUAL_BLOCKS)}")
        if norm != "conditional_instance" and num_styles != 1:
            raise ValueError(f"norm={norm!r} holds one style; use norm=conditional_instance for {num_styles}")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 (Johnson) or 2 (first conv at half resolution), got {stem_stride}")
        if up_block not in UPSAMPLE_BLOCKS:
            raise ValueError(f"unknown up_block {up_block!r}; choose one of {', '.join(UPSAMPLE_BLOCKS)}")
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEADS)}")
        if padding not in PADDINGS:
            raise ValueError(f"unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}")
        if len(widths) != 3 or len(kernel_sizes) != 3:
            raise ValueError("widths need three entries (full, half, quarter resolution) and "
                             "kernel_sizes three (first, down/up-sampling, last)")
        w1, w2, w3 = widths
        k_in, k_down, k_out = kernel_sizes[0], kernel_sizes[1], kernel_sizes[2]
        common = dict(norm=norm, num_styles=num_styles)
        self.norm_kind = norm
        self.num_styles = num_styles
        self.style_names = list(style_names) if style_names else [f"style{i}" for i in range(num_styles)]
        if len(self.style_names) != num_styles:
            raise ValueError(f"{len(self.style_names)} style names for {num_styles} styles")
        self.stem_stride, self.up_block, self.head_kind = stem_stride, up_block, head
        if stem_stride == 1:
            encoder = [ConvNormAct(3, w1, k_in, **common), ConvNormAct(w1, w2, k_down, stride=2, **common)]
        else:  # no full-resolution feature map: the first (k_in) conv maps RGB straight to half resolution
            encoder = [ConvNormAct(3, w2, k_in, stride=2, **common)]
        self.encoder = nn.ModuleList(encoder + [ConvNormAct(w2, w3, k_down, stride=2, **common)])
        block_cls = RESIDUAL_BLOCKS[block]
        self.residuals = nn.ModuleList(
            [block_cls(w3, kernel=residual_kernel, **common) for _ in range(num_residual_blocks)])

        def up(c_in, c_out):
            if up_block == "dwsep":
                return SeparableUpsample(c_in, c_out, k_down, **common)
            return ConvNormAct(c_in, c_out, k_down, upsample=True, **common)

        if head == "conv":  # half -> full resolution stage, then the k_out conv to RGB at full resolution
            self.decoder = nn.ModuleList([up(w3, w2), up(w2, w1)])
            self.head = ConvLayer(w1, 3, k_out)
        else:  # the k_out conv runs at half resolution to 3*2*2 channels, rearranged to full (sub-pixel conv)
            self.decoder = nn.ModuleList([up(w3, w2)])
            self.head = nn.Sequential(ConvLayer(w2, 3 * 4, k_out), nn.PixelShuffle(2))
            icnr_(self.head[0].conv, scale=2)
        self.padding = padding
        if padding == "zeros":  # the convolution pads itself: no separate Pad pass over each feature map
            for layer in self.modules():
                if isinstance(layer, ConvLayer):
                    layer.pad = nn.Identity()
                    layer.conv.padding = (layer.conv.kernel_size[0] // 2, layer.conv.kernel_size[1] // 2)

    @property
    def conditional(self) -> bool:
        return self.norm_kind == "conditional_instance"

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            if style_weights is None:
                raise ValueError("a conditional-instance-norm network needs style_weights [N, num_styles]")
            style_weights = style_weights.to(image.dtype)
        height, width = image.shape[-2:]
        x = image
        for layer in self.encoder:
            x = layer(x, style_weights)
        for layer in self.residuals:
            x = layer(x, style_weights)
        for layer in self.decoder:
            x = layer(x, style_weights)
        # Scaled tanh keeps the output in the [0, 1] pixel convention with a smooth gradient.
        out = 0.5 * (torch.tanh(self.head(x)) + 1.0)
        return out[..., :height, :width]


def conv_macs(network: nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of all convolutions for one ``height`` x ``width`` image.

    Counted from the actual output shapes (forward hooks), so it follows any architecture option;
    norms, activations, padding and resizes are not counted (they are memory-bound, not MAC-bound).
    """
    total = 0

    def hook(module, _inputs, output):
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += output.numel() * k * module.in_channels // module.groups

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, nn.Conv2d)]
    was_training = network.training
    network.eval()
    try:
        image = torch.zeros(1, 3, height, width)
        weights = None
        if getattr(network, "conditional", False):
            weights = torch.full((1, network.num_styles), 1.0 / network.num_styles)
        with torch.no_grad():
            network(image, weights)
    finally:
        network.train(was_training)
        for h in handles:
            h.remove()
    return int(total)


def one_hot_styles(style_ids: torch.Tensor, num_styles: int) -> torch.Tensor:
    """``[N]`` integer style ids -> ``[N, num_styles]`` float one-hot weights."""
    return F.one_hot(style_ids.long(), num_styles).float()


def transfer_weights(target: StylizationNetwork, source: StylizationNetwork) -> list[str]:
    """Copy ``source``'s weights into ``target`` (same architecture), matching CIN rows by style name.

    Styles of ``target`` that ``source`` lacks start from the mean of ``source``'s (gamma, beta)
    rows: a neutral point from which a new style is learned (e.g. with only norm layers trainable).
    Returns the names of the new styles.
    """
    if target.conditional != source.conditional:
        raise ValueError("source and target networks differ in normalisation")
    rows = [source.style_names.index(n) if n in source.style_names else None for n in target.style_names]
    cin_keys = {f"{name}.{p}" for name, m in target.named_modules()
                if isinstance(m, ConditionalInstanceNorm2d) for p in ("weight", "bias")}
    src_state, state = source.state_dict(), {}
    for key, value in target.state_dict().items():
        src = src_state.get(key)
        if src is None:
            raise ValueError(f"source network has no {key!r}: architectures differ")
        if key in cin_keys and src.shape[1:] == value.shape[1:]:
            state[key] = torch.stack([src[r] if r is not None else src.mean(0) for r in rows])
        elif src.shape == value.shape:
            state[key] = src
        else:
            raise ValueError(f"{key}: shape {tuple(src.shape)} in the source, {tuple(value.shape)} here")
    target.load_state_dict(state)
    return [n for n, r in zip(target.style_names, rows) if r is None]
