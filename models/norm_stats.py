"""Instance-norm statistics made explicit, for seam-free tiling (thumbnail instance normalisation,
Chen et al., AAAI 2022).

Instance norm makes a stylisation network global: every pixel depends on per-channel means and
standard deviations over the whole feature map. :class:`NormStatsNetwork` wraps a network so that
each instance-norm layer reports the statistics it computed (output ``norm_stats``) and can use
given ones instead (inputs ``norm_stats`` and ``use_norm_stats``). With frozen statistics the
network is local (convolutions, padding, ReLU, resampling), so an image can be run in overlapping
tiles and each tile cropped to the part its receptive field saw correctly.

The weights and layers of the wrapped network are unchanged and so is its function: with
``use_norm_stats`` false the output is the network's own up to float rounding (each norm layer is
rewritten as two reductions and one per-channel scale and shift, which also carries a conditional
norm's style (gamma, beta): the fastest form onnxruntime runs, faster than its own
InstanceNormalization followed by the affine).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from impasto.models.transformer import ConditionalInstanceNorm2d, StylizationNetwork


@dataclass
class _Exchange:
    """What the norm layers of one forward pass read and write (set by :class:`NormStatsNetwork`)."""

    given: torch.Tensor | None = None  # [N or 1, K]
    use: torch.Tensor | None = None  # bool scalar
    offset: int = 0
    computed: list[torch.Tensor] = field(default_factory=list)


def _normalise(x: torch.Tensor, ex: _Exchange, channels: int, eps: float,
               gamma: torch.Tensor | None, beta: torch.Tensor | None) -> torch.Tensor:
    """``(x - mean) / std * gamma + beta`` with the statistics reported to (and maybe replaced from)
    ``ex``; ``gamma``/``beta`` are ``[C]``, ``[N, C]`` or None.

    Written for the exported graph's speed, where every pass over a feature map costs: two
    reductions (the mean and the root of the sum of squares, which read ``x`` once each) and one
    per-channel scale and shift that also carries the affine, instead of the five element-wise
    passes of the textbook form. The variance is ``E[x^2] - mean^2`` (clamped at 0 so that a flat
    map cannot round below it; the export's parity check holds it to the network's output).
    """
    mean = x.mean(dim=(2, 3))
    pixels = x.shape[2] * x.shape[3]
    mean_square = torch.linalg.vector_norm(x, dim=(2, 3)).square() / pixels
    std = torch.sqrt((mean_square - mean.square()).clamp_min(0) + eps)
    ex.computed += [mean, std]
    if ex.given is not None and ex.use is not None:
        start = ex.offset
        # An exact select, not a blend: frozen statistics are used bit for bit.
        mean = torch.where(ex.use, ex.given[:, start:start + channels], mean)
        std = torch.where(ex.use, ex.given[:, start + channels:start + 2 * channels], std)
    ex.offset += 2 * channels
    scale = 1 / std if gamma is None else gamma / std
    shift = -mean * scale if beta is None else beta - mean * scale
    return x * scale[:, :, None, None] + shift[:, :, None, None]


class StatsInstanceNorm(nn.Module):
    """``nn.InstanceNorm2d`` (biased variance, its eps and affine) with its statistics exposed."""

    def __init__(self, norm: nn.InstanceNorm2d, exchange: _Exchange):
        super().__init__()
        self.channels, self.eps, self.exchange = norm.num_features, norm.eps, exchange
        self.weight, self.bias = (norm.weight, norm.bias) if norm.affine else (None, None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _normalise(x, self.exchange, self.channels, self.eps, self.weight, self.bias)


class StatsConditionalNorm(nn.Module):
    """:class:`ConditionalInstanceNorm2d` with its statistics exposed, the style's (gamma, beta)
    folded into the normalisation's per-channel scale and shift."""

    def __init__(self, norm: ConditionalInstanceNorm2d, exchange: _Exchange):
        super().__init__()
        self.channels, self.eps, self.exchange = norm.norm.num_features, norm.norm.eps, exchange
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        return _normalise(x, self.exchange, self.channels, self.eps,
                          style_weights @ self.weight, style_weights @ self.bias)


def instance_norms(network: nn.Module) -> list[tuple[str, nn.InstanceNorm2d]]:
    return [(name, m) for name, m in network.named_modules() if isinstance(m, nn.InstanceNorm2d)]


class NormStatsNetwork(nn.Module):
    """A copy of ``network`` with explicit instance-norm statistics.

    ``forward(image, style_weights, norm_stats, use_norm_stats) -> (stylized, norm_stats)``:
    statistics are ``[N, K]``, per layer in call order its C means then its C standard deviations
    (``sqrt(var + eps)``). ``layers`` lists ``(name, channels)`` in that order.
    """

    def __init__(self, network: StylizationNetwork):
        super().__init__()
        if not instance_norms(network):
            raise ValueError("the network has no instance-norm layers")
        self.network = copy.deepcopy(network)
        self.conditional = network.conditional
        self.exchange = _Exchange()
        # Conditional norms first: their inner InstanceNorm2d is then no longer in the module tree.
        for name, module in list(self.network.named_modules()):
            if isinstance(module, ConditionalInstanceNorm2d):
                self._replace(name, StatsConditionalNorm(module, self.exchange))
        for name, norm in instance_norms(self.network):
            self._replace(name, StatsInstanceNorm(norm, self.exchange))
        self.layers = self._call_order(network)

    def _replace(self, name: str, module: nn.Module) -> None:
        parent_name, _, attr = name.rpartition(".")
        parent = self.network.get_submodule(parent_name) if parent_name else self.network
        setattr(parent, attr, module)

    def _call_order(self, network: StylizationNetwork) -> list[tuple[str, int]]:
        order: list[tuple[str, int]] = []
        # A conditional norm's statistics keep the name of the InstanceNorm2d it had inside.
        handles = [m.register_forward_hook(lambda m, i, o, name=name: order.append((name, m.channels)))
                   for name, m in self.network.named_modules() if isinstance(m, StatsInstanceNorm)]
        handles += [m.register_forward_hook(lambda m, i, o, name=name: order.append((f"{name}.norm", m.channels)))
                    for name, m in self.network.named_modules() if isinstance(m, StatsConditionalNorm)]
        try:
            image = torch.zeros(1, 3, 64, 64)
            weights = torch.ones(1, network.num_styles) / network.num_styles if self.conditional else None
            with torch.no_grad():
                self(image, weights)
        finally:
            for h in handles:
                h.remove()
        return order

    @property
    def num_stats(self) -> int:
        return sum(2 * c for _, c in self.layers)

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor | None = None,
                norm_stats: torch.Tensor | None = None, use_norm_stats: torch.Tensor | None = None):
        ex = self.exchange
        ex.given, ex.use, ex.offset, ex.computed = norm_stats, use_norm_stats, 0, []
        try:
            out = self.network(image, style_weights)
            return out, torch.cat(ex.computed, dim=1)
        finally:
            ex.given, ex.use, ex.computed = None, None, []


def receptive_radius(network: nn.Module, size: int = 256) -> tuple[int, int]:
    """``(radius, align)`` of a fully convolutional network with frozen statistics: an output pixel
    depends on input pixels at most ``radius`` away (per axis), and ``align`` is the total
    down-sampling, so tiles that start at multiples of it see the strided grids as the whole
    image does.

    Counted from every convolution's kernel, dilation and the input spacing it runs at (hooks on a
    ``size`` x ``size`` run), plus one coarsest-grid step for the rounding of strided sampling,
    nearest up-sampling and the pixel shuffle.
    """
    radius, spacings = 0, [1]

    def hook(module: nn.Conv2d, _inputs, output):
        nonlocal radius
        # From the output's size: the input may carry the padding of a separate pad layer.
        out_spacing = size // output.shape[-1]
        spacings.append(out_spacing)
        radius += (module.kernel_size[0] - 1) // 2 * module.dilation[0] * out_spacing // module.stride[0]

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, nn.Conv2d)]
    was_training = network.training
    network.eval()
    try:
        weights = None
        if getattr(network, "conditional", False):
            weights = torch.full((1, network.num_styles), 1.0 / network.num_styles)
        with torch.no_grad():
            network(torch.zeros(1, 3, size, size), weights)
    finally:
        network.train(was_training)
        for h in handles:
            h.remove()
    align = max(spacings)
    return radius + align, align
