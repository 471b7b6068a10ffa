"""What the network looks at, directly: convolution filters and activation maps."""
from __future__ import annotations

import torch
from torch import nn

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.hooks import capture, frozen, resolve_layer


def first_conv(model: nn.Module) -> nn.Conv2d:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise AnalysisError("the model has no nn.Conv2d layer")


def conv_filters(model: nn.Module, layer: str | nn.Module | None = None, *, max_filters: int = 64,
                 max_channels: int = 16) -> torch.Tensor:
    """The filters of a conv layer (default: the first), each min-max normalised to [0, 1] on its
    own so weak and strong filters are equally visible.

    Returns ``[F, 3, k, k]`` (RGB) when the layer reads 3 channels, else ``[F, C, k, k]`` to show
    as ``C`` grayscale slices per filter (the first ``max_channels``).
    """
    conv = first_conv(model) if layer is None else resolve_layer(model, layer)
    if not isinstance(conv, nn.Conv2d):
        raise AnalysisError(f"{type(conv).__name__} is not a convolution: no filters to show")
    w = conv.weight.detach()[:max_filters].float()
    if w.shape[1] != 3:
        w = w[:, :max_channels]
    flat = w.reshape(w.shape[0], -1)
    lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
    return (w - lo) / (hi - lo).clamp_min(1e-12)


class ActivationMaps:
    """Activations of ``layer`` for a batch: ``[N, C, h, w]``, optionally min-max normalised over
    the whole layer per image (so that dead and weak channels stay dark, as in Yosinski's toolbox)."""

    def __init__(self, model: nn.Module, layer: str | nn.Module):
        self.model, self.layer = model, resolve_layer(model, layer)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, *, normalize: bool = True) -> torch.Tensor:
        with frozen(self.model), capture(self.layer) as cap:
            self.model(x)
        a = cap.value
        if not isinstance(a, torch.Tensor) or a.dim() != 4:
            raise AnalysisError("that layer's output is not a feature map [N, C, H, W]")
        a = a.detach().float()
        if normalize:
            flat = a.reshape(a.shape[0], -1)
            lo, hi = flat.min(1).values.view(-1, 1, 1, 1), flat.max(1).values.view(-1, 1, 1, 1)
            a = (a - lo) / (hi - lo).clamp_min(1e-12)
        return a


def layer_at_stride(model: nn.Module, x: torch.Tensor, stride: int, *, rectified: bool = True) -> str:
    """A sensible default layer for activation maps and patches: the last module whose output has
    ``1/stride`` of the input resolution, ignoring the insides of blocks that downsample from that
    resolution (their expansion layers) -> ``layer2`` in ResNet. With ``rectified``, only outputs
    that are all >= 0 (after a ReLU) count: linear bottlenecks, as EfficientNet's block outputs,
    are signed and show as flat grey (``blocks.2.1.bn2`` is picked there)."""
    from impasto.models.analysis.hooks import hooks

    # Identity modules (timm's disabled squeeze-excite, dropout slots) would only rename a tensor.
    names = {m: n for n, m in model.named_modules() if n and not isinstance(m, nn.Identity)}
    want = (x.shape[-2] // stride, x.shape[-1] // stride)
    size_in: dict[str, tuple] = {}
    done: list[tuple[str, tuple, bool]] = []  # (name, output size, all >= 0) in completion order

    def spatial(t):
        return tuple(t.shape[-2:]) if isinstance(t, torch.Tensor) and t.dim() == 4 else None

    def pre(module, inputs):
        size_in[names[module]] = spatial(inputs[0]) if inputs else None

    def post(module, inputs, output):
        size = spatial(output)
        done.append((names[module], size, size is not None and bool(output.min() >= 0)))

    with torch.no_grad(), frozen(model), hooks(*[(lambda m=m: m.register_forward_pre_hook(pre)) for m in names],
                                               *[(lambda m=m: m.register_forward_hook(post)) for m in names]):
        model(x[:1])
    downsampling = [n for n, out, _ in done if size_in.get(n) == want and out not in (want, None)]
    candidates = [n for n, out, positive in done if out == want and (positive or not rectified)
                  and not any(n.startswith(d + ".") for d in downsampling)]
    if not candidates:
        raise AnalysisError(f"no layer at stride {stride}; pass a layer name")
    return candidates[-1].removeprefix("net.")
