"""What a gradient method differentiates: a class score (pre-softmax logit) or one intermediate
neuron (a channel of a layer, at one position or averaged over positions)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.hooks import capture, resolve_layer


@dataclass(frozen=True)
class Neuron:
    """Channel ``channel`` of ``layer``'s output at ``(y, x)``; the spatial mean when ``y``/``x``
    are None (the layer's own resolution)."""

    layer: str | nn.Module
    channel: int
    y: int | None = None
    x: int | None = None


Target = int | Sequence[int] | torch.Tensor | Neuron


def class_indices(target, batch: int, num_classes: int) -> torch.Tensor:
    idx = torch.as_tensor(target, dtype=torch.long).reshape(-1)
    if idx.numel() == 1:
        idx = idx.expand(batch)
    if idx.numel() != batch:
        raise AnalysisError(f"{idx.numel()} targets for a batch of {batch}")
    if (idx < 0).any() or (idx >= num_classes).any():
        raise AnalysisError(f"class index out of range 0..{num_classes - 1}: {idx.tolist()}")
    return idx


def neuron_scores(activation: torch.Tensor, neuron: Neuron) -> torch.Tensor:
    if not 0 <= neuron.channel < activation.shape[1]:
        raise AnalysisError(f"channel {neuron.channel} out of range: the layer has {activation.shape[1]}")
    a = activation[:, neuron.channel]
    if neuron.y is None or neuron.x is None or a.dim() < 3:
        return a.reshape(a.shape[0], -1).mean(1)
    return a[:, neuron.y, neuron.x]


def target_scores(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """One score per image: ``[N]``, differentiable with respect to ``x``."""
    if isinstance(target, Neuron):
        with capture(resolve_layer(model, target.layer)) as cap:
            model(x)
        return neuron_scores(cap.value, target)
    logits = model(x)
    return logits.gather(1, class_indices(target, x.shape[0], logits.shape[1]).to(x.device)[:, None])[:, 0]


def input_gradient(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """d(score)/d(input) for each image (scores are independent per image, so one backward)."""
    x = x.detach().requires_grad_(True)
    scores = target_scores(model, x, target)
    (grad,) = torch.autograd.grad(scores.sum(), x)
    return grad
