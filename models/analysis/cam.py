"""Class activation maps: CAM (Zhou et al. 2016) for global-average-pool + linear heads, Grad-CAM
(Selvaraju et al. 2017) for any layer, and Guided Grad-CAM."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.guided import GuidedBackprop
from impasto.models.analysis.hooks import capture, frozen, last_linear, last_spatial_layer, resolve_layer
from impasto.models.analysis.objectives import Neuron, Target, class_indices, target_scores


def upsample(maps: torch.Tensor, size) -> torch.Tensor:
    """``[N, h, w]`` -> ``[N, H, W]`` (bilinear)."""
    return F.interpolate(maps[:, None], size=tuple(size), mode="bilinear", align_corners=False)[:, 0]


class GradCAM:
    """``relu(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial mean of ``d score / d A_k``.

    Returns ``[N, h, w]`` at the layer's resolution, or ``[N, H, W]`` with ``upsample=True``.
    ``layer`` defaults to the last spatial feature map (the one global pooling reads).
    """

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None):
        self.model, self.layer = model, layer

    def __call__(self, x: torch.Tensor, target: Target, *, relu: bool = True,
                 upsample_to_input: bool = False) -> torch.Tensor:
        layer = last_spatial_layer(self.model, x) if self.layer is None else resolve_layer(self.model, self.layer)
        with frozen(self.model), capture(layer) as cap:
            scores = target_scores(self.model, x.detach().requires_grad_(True), target)
            acts = cap.value
            if not isinstance(acts, torch.Tensor) or acts.dim() != 4:
                raise AnalysisError("Grad-CAM needs a layer whose output is a feature map [N, C, H, W]")
            (grads,) = torch.autograd.grad(scores.sum(), acts)
        maps = (grads.mean((2, 3), keepdim=True) * acts).sum(1).detach()
        maps = maps.clamp_min(0) if relu else maps
        return upsample(maps, x.shape[-2:]) if upsample_to_input else maps


class CAM:
    """``sum_k w_ck A_k``: the linear head's class weights applied at every position of the feature
    map it pools. Checks that the head really is global-average-pool + linear."""

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None):
        self.model, self.layer = model, layer

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, target: Target, *, relu: bool = True,
                 upsample_to_input: bool = False) -> torch.Tensor:
        if isinstance(target, Neuron):
            raise AnalysisError("CAM explains class scores only; use gradcam for a neuron")
        layer = last_spatial_layer(self.model, x) if self.layer is None else resolve_layer(self.model, self.layer)
        head = last_linear(self.model)
        with frozen(self.model), capture(layer) as acts, capture(head, inputs=True) as pooled:
            logits = self.model(x)
        a = acts.value
        if (not isinstance(a, torch.Tensor) or a.dim() != 4 or pooled.value.dim() != 2
                or pooled.value.shape[1] != a.shape[1]
                or not torch.allclose(a.mean((2, 3)), pooled.value, rtol=1e-4, atol=1e-5)):
            raise AnalysisError("CAM needs a global-average-pool + linear head fed by this layer; use gradcam")
        idx = class_indices(target, x.shape[0], logits.shape[1]).to(x.device)
        maps = torch.einsum("nchw,nc->nhw", a, head.weight[idx])
        maps = maps.clamp_min(0) if relu else maps
        return upsample(maps, x.shape[-2:]) if upsample_to_input else maps


class GuidedGradCAM:
    """Guided backprop gradients gated by the upsampled Grad-CAM map: ``[N, 3, H, W]``."""

    def __init__(self, model: nn.Module, layer: str | nn.Module | None = None):
        self.gradcam, self.guided = GradCAM(model, layer), GuidedBackprop(model, "guided")

    def __call__(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        cam = self.gradcam(x, target, upsample_to_input=True)
        return self.guided(x, target) * cam[:, None]
