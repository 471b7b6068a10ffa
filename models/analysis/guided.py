"""Guided backpropagation (Springenberg et al. 2015) and deconvnet (Zeiler & Fergus 2014): plain
backprop with the backward pass through each ReLU replaced.

With forward input ``x`` and upstream gradient ``g`` at a ReLU:
- backprop:  ``g * (x > 0)``            (autograd's own rule)
- deconvnet: ``g * (g > 0)``            (the forward input is ignored)
- guided:    ``g * (x > 0) * (g > 0)``  (both)

Implemented with temporary full backward hooks on the ReLU modules (``nn.ReLU`` and timm's
``nn.ReLU6``; for ReLU6 the forward mask is ``0 < x < 6``): the hook gets autograd's
``grad_input = g * (x > 0)`` and ``grad_output = g``, so guided = ``relu(grad_input)`` and
deconvnet = ``relu(grad_output)``. In-place ReLUs are switched to out-of-place for the duration
(backward hooks can't wrap an in-place op) and switched back afterwards.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.hooks import frozen, hooks, relu_modules
from impasto.models.analysis.objectives import Target, input_gradient

RULES = ("guided", "deconvnet", "backprop")


def _hook(rule: str):
    def hook(module, grad_input, grad_output):
        if grad_input[0] is None:
            return None
        if rule == "guided":
            return (F.relu(grad_input[0]),)
        return (F.relu(grad_output[0]),)  # deconvnet
    return hook


@contextmanager
def relu_backward_rule(model: nn.Module, rule: str) -> Iterator[None]:
    """Within the block, every ReLU of ``model`` backpropagates with ``rule``."""
    if rule not in RULES:
        raise AnalysisError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    modules = relu_modules(model)
    if not modules:
        raise AnalysisError("the model has no ReLU modules (nn.ReLU / nn.ReLU6) to modify")
    if rule == "backprop":
        yield
        return
    inplace = [(m, m.inplace) for m in modules]
    try:
        for m, _ in inplace:
            m.inplace = False
        hook = _hook(rule)
        with hooks(*[(lambda m=m: m.register_full_backward_hook(hook)) for m in modules]):
            yield
    finally:
        for m, flag in inplace:
            m.inplace = flag


class GuidedBackprop:
    """Input gradient of a class score or a :class:`~impasto.models.analysis.objectives.Neuron` under the
    ``guided`` (default) or ``deconvnet`` ReLU rule: ``[N, 3, H, W]``, signed."""

    def __init__(self, model: nn.Module, rule: str = "guided"):
        if rule not in RULES:
            raise AnalysisError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
        self.model, self.rule = model, rule

    def __call__(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        with frozen(self.model), relu_backward_rule(self.model, self.rule):
            return input_gradient(self.model, x, target)


class Deconvnet(GuidedBackprop):
    def __init__(self, model: nn.Module):
        super().__init__(model, "deconvnet")
