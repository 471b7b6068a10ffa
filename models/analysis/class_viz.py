"""Class (or neuron) visualisation by gradient ascent on the input (Simonyan et al. 2014) with the
regularisers of Yosinski et al. 2015, "Understanding Neural Networks Through Deep Visualization":

    I* = argmax_I S(I) - lambda * ||I||^2

and, between steps: a Gaussian blur every ``blur_every`` steps, zeroing pixels whose norm is
below the ``clip_norm_pct`` percentile (small values) and pixels whose contribution
``|I * dS/dI|`` is below the ``clip_contrib_pct`` percentile (small gradients). Random jitter
(a roll of up to ``jitter`` pixels) keeps high-frequency patterns from accumulating.

The image is optimised as an offset from mid-grey (the classifier's input is RGB [0, 1]), so
"zero" means grey and the L2 penalty pulls towards it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from impasto.models.analysis.hooks import frozen
from impasto.models.analysis.objectives import Target, target_scores


@dataclass
class ClassVizResult:
    image: torch.Tensor            # [3, H, W] RGB in [0, 1]
    scores: list[float] = field(default_factory=list)  # target score at each step


class ClassVisualization:
    def __init__(self, model: nn.Module, *, steps: int = 200, lr: float = 0.02, l2: float = 1e-4,
                 blur_every: int = 4, blur_sigma: float = 0.5, clip_norm_pct: float = 10.0,
                 clip_contrib_pct: float = 10.0, jitter: int = 8, progress: bool = False):
        self.model = model
        self.steps, self.lr, self.l2 = steps, lr, l2
        self.blur_every, self.blur_sigma, self.jitter = blur_every, blur_sigma, jitter
        self.clip_norm_pct, self.clip_contrib_pct = clip_norm_pct, clip_contrib_pct
        self.progress = progress

    def __call__(self, target: Target, size: int = 224, *, seed: int = 0) -> ClassVizResult:
        from tqdm.auto import tqdm

        gen = torch.Generator().manual_seed(seed)
        delta = 0.01 * torch.randn(1, 3, size, size, generator=gen)
        result = ClassVizResult(delta)
        with frozen(self.model):
            for step in tqdm(range(self.steps), desc="class visualisation", disable=not self.progress,
                             leave=False):
                dy, dx = (torch.randint(-self.jitter, self.jitter + 1, (2,), generator=gen).tolist()
                          if self.jitter else (0, 0))
                d = torch.roll(delta, (dy, dx), (2, 3)).requires_grad_(True)
                score = target_scores(self.model, (0.5 + d).clamp(0, 1), target)[0]
                objective = score - self.l2 * d.pow(2).sum()
                (grad,) = torch.autograd.grad(objective, d)
                result.scores.append(float(score.detach()))
                with torch.no_grad():
                    # Normalised step: the scale of raw gradients varies by orders of magnitude
                    # between classes and layers.
                    d = d + self.lr * grad / grad.abs().mean().clamp_min(1e-12)
                    d = torch.roll(d, (-dy, -dx), (2, 3))
                    grad = torch.roll(grad, (-dy, -dx), (2, 3))
                    if self.blur_every and (step + 1) % self.blur_every == 0 and self.blur_sigma > 0:
                        k = 2 * round(3 * self.blur_sigma) + 1
                        d = gaussian_blur(d, [k, k], [self.blur_sigma] * 2)
                    if self.clip_norm_pct > 0:
                        norm = d.norm(dim=1, keepdim=True)
                        d = d * (norm >= torch.quantile(norm.flatten(), self.clip_norm_pct / 100))
                    if self.clip_contrib_pct > 0:
                        contrib = (d * grad).sum(1, keepdim=True).abs()
                        d = d * (contrib >= torch.quantile(contrib.flatten(), self.clip_contrib_pct / 100))
                    delta = d.clamp(-0.5, 0.5)
            with torch.no_grad():
                result.scores.append(float(target_scores(self.model, 0.5 + delta, target)[0]))
        result.image = (0.5 + delta)[0]
        return result
