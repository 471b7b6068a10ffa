"""Adversarial examples: the "fooling image" of CS231n (gradient ascent on a chosen class score
until the prediction flips), FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018), targeted
or untargeted, within an L-infinity budget on RGB [0, 1] pixels."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.hooks import frozen
from impasto.models.analysis.objectives import class_indices


@dataclass
class AttackResult:
    adversarial: torch.Tensor  # [N, 3, H, W] RGB in [0, 1]
    original: torch.Tensor     # [N]: predicted class of the input
    predicted: torch.Tensor    # [N]: predicted class of the adversarial image
    success: torch.Tensor      # [N] bool: flipped away from ``label`` / onto ``target``
    steps: int


def _predict(model, x):
    with torch.no_grad():
        return model(x).argmax(1)


def _result(model, x, adv, target, label, targeted, steps):
    pred = _predict(model, adv)
    success = pred == target if targeted else pred != label
    return AttackResult(adv.detach(), _predict(model, x), pred, success, steps)


def fooling_image(model: nn.Module, x: torch.Tensor, target, *, lr: float = 0.25,
                  max_steps: int = 100) -> AttackResult:
    """Raise the ``target`` score by L2-normalised gradient steps until it is the prediction."""
    with frozen(model):
        idx = class_indices(target, x.shape[0], model(x[:1]).shape[1]).to(x.device)
        adv = x.detach().clone()
        steps = 0
        for steps in range(max_steps + 1):
            adv.requires_grad_(True)
            logits = model(adv)
            if (logits.argmax(1) == idx).all():
                break
            if steps == max_steps:
                break
            (grad,) = torch.autograd.grad(logits.gather(1, idx[:, None]).sum(), adv)
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            adv = (adv.detach() + lr * grad / norm).clamp(0, 1)
        return _result(model, x, adv.detach(), idx, None, True, steps)


def _loss_grad(model, adv, classes):
    adv = adv.detach().requires_grad_(True)
    loss = F.cross_entropy(model(adv), classes, reduction="sum")
    (grad,) = torch.autograd.grad(loss, adv)
    return grad


def _classes(model, x, target, label, targeted):
    with torch.no_grad():
        logits = model(x)
    if targeted:
        if target is None:
            raise AnalysisError("a targeted attack needs a target class")
        return class_indices(target, x.shape[0], logits.shape[1]).to(x.device), None
    label = logits.argmax(1) if label is None else class_indices(label, x.shape[0], logits.shape[1]).to(x.device)
    return None, label


class FGSM:
    """One signed-gradient step of size ``eps``: away from ``label`` (default: the prediction), or
    towards ``target`` when ``targeted``."""

    def __init__(self, model: nn.Module, eps: float = 4 / 255):
        self.model, self.eps = model, eps

    def __call__(self, x, target=None, *, targeted: bool = False, label=None) -> AttackResult:
        with frozen(self.model):
            target, label = _classes(self.model, x, target, label, targeted)
            grad = _loss_grad(self.model, x, target if targeted else label)
            sign = -1.0 if targeted else 1.0
            adv = (x + sign * self.eps * grad.sign()).clamp(0, 1)
            return _result(self.model, x, adv, target, label, targeted, 1)


class PGD:
    """Projected gradient descent in the L-infinity ball of radius ``eps``: ``steps`` signed steps
    of ``alpha`` (default ``eps / 4``), each followed by projection onto the ball and [0, 1]."""

    def __init__(self, model: nn.Module, eps: float = 4 / 255, *, alpha: float | None = None,
                 steps: int = 10, random_start: bool = True, stop_when_fooled: bool = False, seed: int = 0):
        self.model, self.eps, self.steps = model, eps, steps
        self.alpha = eps / 4 if alpha is None else alpha
        self.random_start, self.stop_when_fooled, self.seed = random_start, stop_when_fooled, seed

    def __call__(self, x, target=None, *, targeted: bool = False, label=None) -> AttackResult:
        with frozen(self.model):
            target, label = _classes(self.model, x, target, label, targeted)
            classes, sign = (target, -1.0) if targeted else (label, 1.0)
            adv = x.detach().clone()
            if self.random_start:
                gen = torch.Generator().manual_seed(self.seed)
                adv = (adv + (torch.rand(x.shape, generator=gen) * 2 - 1).to(x) * self.eps).clamp(0, 1)
            step = 0
            while step < self.steps:
                step += 1
                grad = _loss_grad(self.model, adv, classes)
                adv = adv + sign * self.alpha * grad.sign()
                adv = torch.min(torch.max(adv, x - self.eps), x + self.eps).clamp(0, 1).detach()
                if self.stop_when_fooled:
                    pred = _predict(self.model, adv)
                    if ((pred == target) if targeted else (pred != label)).all():
                        break
            return _result(self.model, x, adv, target, label, targeted, step)
