"""Receptive fields computed from the architecture.

One forward pass runs under a ``TorchFunctionMode`` that sees every convolution, pooling and
padding the model executes (whatever module calls them: torchvision, timm's ``Conv2dSame``, ...)
and propagates, per tensor, the receptive field of its units in input pixels:

    size_out  = size_in + (dilation * (kernel - 1)) * jump_in
    jump_out  = jump_in * stride
    start_out = start_in + (dilation * (kernel - 1) / 2 - padding) * jump_in

``start`` is the centre of unit 0 in input pixel coordinates (pixel ``i`` has centre ``i``).
Where branches meet (residual adds, concatenations) the largest field wins, as the output unit
sees the union of both.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.hooks import frozen, hooks, resolve_layer


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[float, float]   # (height, width) in input pixels
    jump: tuple[float, float]   # input pixels between neighbouring units
    start: tuple[float, float]  # centre of unit (0, 0) in input pixel coordinates

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` (exclusive end) of unit ``(y, x)``'s field; may extend
        past the image where the field covers padding."""
        cy, cx = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        top, left = round(cy - (self.size[0] - 1) / 2), round(cx - (self.size[1] - 1) / 2)
        return top, left, top + int(self.size[0]), left + int(self.size[1])

    def _conv(self, kernel, stride, padding, dilation) -> ReceptiveField:
        size, jump, start = [], [], []
        for d in range(2):
            k_eff = dilation[d] * (kernel[d] - 1)
            size.append(self.size[d] + k_eff * self.jump[d])
            start.append(self.start[d] + (k_eff / 2 - padding[d]) * self.jump[d])
            jump.append(self.jump[d] * stride[d])
        return ReceptiveField(tuple(size), tuple(jump), tuple(start))


PIXEL = ReceptiveField((1.0, 1.0), (1.0, 1.0), (0.0, 0.0))


def _pair(v, default=None):
    if v is None:
        v = default
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    return v * 2 if len(v) == 1 else v


def _arg(args, kwargs, index, name, default=None):
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


class _Tracker(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.fields: dict[int, tuple[torch.Tensor, ReceptiveField]] = {}

    def field(self, t) -> ReceptiveField | None:
        entry = self.fields.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry[1] if entry is not None and entry[0] is t else None

    def set(self, t, rf):
        self.fields[id(t)] = (t, rf)  # the tensor is kept so its id cannot be reused

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [a for a in (*args, *kwargs.values()) for a in (a if isinstance(a, (list, tuple)) else [a])]
        known = [rf for rf in map(self.field, inputs) if rf is not None]
        if not known:
            return out
        name = getattr(func, "__name__", "")
        rf = max(known, key=lambda f: f.size[0] * f.size[1])
        if name in ("conv2d", "conv_transpose2d") and self.field(args[0]) is not None:
            if name == "conv_transpose2d":
                raise AnalysisError("receptive fields through transposed convolutions are not supported")
            weight = _arg(args, kwargs, 1, "weight")
            padding = _arg(args, kwargs, 4, "padding", 0)
            kernel = tuple(weight.shape[-2:])
            dilation = _pair(_arg(args, kwargs, 5, "dilation", 1))
            if isinstance(padding, str):  # "same" / "valid"
                padding = tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel)) if padding == "same" else (0, 0)
            rf = self.field(args[0])._conv(kernel, _pair(_arg(args, kwargs, 3, "stride", 1)), _pair(padding), dilation)
        elif name.startswith(("max_pool2d", "avg_pool2d", "lp_pool2d", "_max_pool2d")):
            kernel = _pair(_arg(args, kwargs, 1, "kernel_size"))
            stride = _pair(_arg(args, kwargs, 2, "stride") or kernel)
            padding = _pair(_arg(args, kwargs, 3, "padding", 0))
            dilation = _pair(_arg(args, kwargs, 4, "dilation", 1)) if "max" in name else (1, 1)
            rf = self.field(args[0])._conv(kernel, stride, padding, dilation)
        elif name == "pad" and self.field(args[0]) is not None:
            pad = list(_arg(args, kwargs, 1, "pad")) + [0, 0, 0, 0]
            left, top = pad[0], pad[2]  # F.pad lists the last dimension first
            src = self.field(args[0])
            rf = ReceptiveField(src.size, src.jump, (src.start[0] - top * src.jump[0], src.start[1] - left * src.jump[1]))
        elif name.startswith(("adaptive_", "interpolate", "upsample")):
            return out  # global pooling / resampling: the field is no longer a sliding window
        for o in (out if isinstance(out, (tuple, list)) else [out]):
            if isinstance(o, torch.Tensor) and o.dim() == 4:
                self.set(o, rf)
        return out


def receptive_field(model: nn.Module, layer: str | nn.Module, input_size: int | tuple[int, int] = 224) -> ReceptiveField:
    """The receptive field of ``layer``'s output units for an input of ``input_size`` (the size
    matters for "same" padding computed from the input, as in TF-ported models)."""
    module = resolve_layer(model, layer)
    h, w = _pair(input_size)
    found: list[ReceptiveField | None] = []
    tracker = _Tracker()

    def record(mod, inputs, output):
        if not found:
            found.append(tracker.field(output))

    x = torch.zeros(1, 3, h, w)
    with torch.no_grad(), frozen(model), hooks(lambda: module.register_forward_hook(record)):
        with tracker:
            tracker.set(x, PIXEL)
            model(x)
    if not found or found[0] is None:
        raise AnalysisError("could not trace a receptive field to this layer (not a spatial feature map?)")
    return found[0]
