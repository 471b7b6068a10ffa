"""Hook plumbing shared by every method: each hook lives inside a context manager and is removed
in ``finally``, and the caller's model gets back its modes and ``requires_grad`` flags, also when
the method raises half-way."""
from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from impasto.models.analysis.errors import AnalysisError

# The classifier wrapper keeps the backbone under ``net``; users name layers as the backbone does.
WRAPPED_PREFIX = "net."


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    """A module of ``model`` by its dotted name (``"blocks.5"``, ``"layer4"``), or the module itself."""
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    for name in (layer, WRAPPED_PREFIX + layer):
        if name and name in modules:
            return modules[name]
    names = [n.removeprefix(WRAPPED_PREFIX) for n in modules if n]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; e.g. {', '.join(names[:6])}"
    raise AnalysisError(f"unknown layer {layer!r}{hint}")


def layer_name(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name.removeprefix(WRAPPED_PREFIX) or "<model>"
    return type(module).__name__


@contextmanager
def frozen(model: nn.Module, *, train: bool = False) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter for the duration (gradients still
    reach the input); each module's mode and each parameter's flag are restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.train(train)
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


@contextmanager
def hooks(*registrations: Callable[[], torch.utils.hooks.RemovableHandle]) -> Iterator[None]:
    """Register hooks (each a zero-argument callable returning a handle); remove them on exit."""
    handles = []
    try:
        for register in registrations:
            handles.append(register())
        yield
    finally:
        for handle in handles:
            handle.remove()


class Capture:
    """The output of ``module`` at the last forward (``.value``), kept in the graph."""

    def __init__(self):
        self.value: torch.Tensor | None = None

    def __call__(self, module, inputs, output):
        self.value = output


class CaptureInput:
    """The first input of ``module`` at the last forward (``.value``)."""

    def __init__(self):
        self.value: torch.Tensor | None = None

    def __call__(self, module, inputs):
        self.value = inputs[0]


@contextmanager
def capture(module: nn.Module, *, inputs: bool = False) -> Iterator[Capture | CaptureInput]:
    """Record ``module``'s output (or first input) during the block."""
    cap = CaptureInput() if inputs else Capture()
    register = (lambda: module.register_forward_pre_hook(cap)) if inputs \
        else (lambda: module.register_forward_hook(cap))
    with hooks(register):
        yield cap


def last_linear(model: nn.Module) -> nn.Linear:
    """The classifier head: the last ``nn.Linear`` in registration order."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise AnalysisError("the model has no nn.Linear head, so no penultimate layer")
    return linears[-1]


def last_spatial_layer(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """The outermost module whose output is the last feature map with spatial extent (> 1 x 1):
    the layer that global pooling reads (``bn2`` in EfficientNet, ``layer4`` in ResNet)."""
    last: list[nn.Module] = []

    def record(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[-2:].numel() > 1:
            last[:] = [module]

    candidates = [m for m in model.modules() if m is not model]
    with torch.no_grad(), frozen(model), hooks(*[(lambda m=m: m.register_forward_hook(record))
                                                 for m in candidates]):
        model(x[:1])
    if not last:
        raise AnalysisError("the model has no layer with a spatial feature map")
    return last[0]


def all_hook_counts(model: nn.Module) -> int:
    """Total number of hooks on ``model``'s modules (for hygiene checks)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())


def relu_modules(model: nn.Module, types: Iterable[type] = (nn.ReLU, nn.ReLU6)) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, tuple(types))]
