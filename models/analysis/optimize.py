"""The image-optimisation loop shared by feature inversion, texture synthesis, DeepDream and Gatys
style transfer (pystiche-style: the methods differ only in objective and parametrisation).

The loop owns one tensor, the image, and nothing else: networks reached through the objective are
never switched to train mode, re-flagged for gradients or hooked, and gradients are taken with
respect to the image only, so a network comes out exactly as it went in (no ``.grad`` either).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

# image -> weighted loss terms; the loop minimises their sum.
Objective = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]
# (step, current image in [0, 1], that step's loss terms as floats)
Callback = Callable[[int, torch.Tensor, Mapping[str, float]], None]

OPTIMIZERS = ("lbfgs", "adam", "normgd")
PARAMETRIZATIONS = ("clamp", "sigmoid")
DEFAULT_LR = {"lbfgs": 1.0, "adam": 0.02, "normgd": 0.01}
_EPS = 1e-4  # keeps logit() finite for pure black/white pixels


@dataclass
class OptimResult:
    image: torch.Tensor  # detached, in [0, 1], same shape as the initial image
    history: list[dict[str, float]] = field(default_factory=list)  # one entry per step, "total" included

    def losses(self, term: str = "total") -> list[float]:
        return [h[term] for h in self.history]


class NormalizedGradientDescent(torch.optim.Optimizer):
    """``x -= lr * g / mean(|g|)``: DeepDream's update. The normalisation makes the step size
    independent of the layer's activation scale, which varies by orders of magnitude."""

    def __init__(self, params, lr: float = 0.01):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(p.grad, alpha=group["lr"] / (p.grad.abs().mean().item() + 1e-12))
        return loss


class Parametrization:
    """Maps the optimised tensor to an image in [0, 1]. ``clamp`` optimises pixels directly and
    projects them back into range after every step; ``sigmoid`` optimises logits, so every value
    is in range and no projection interferes with L-BFGS's curvature estimate."""

    def __init__(self, kind: str):
        if kind not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}, not {kind!r}")
        self.kind = kind

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        # A fresh contiguous tensor: L-BFGS views gradients flat, and the caller's image stays untouched.
        image = image.detach().clamp(0, 1).clone(memory_format=torch.contiguous_format)
        return torch.logit(image.clamp(_EPS, 1 - _EPS)) if self.kind == "sigmoid" else image

    def decode(self, param: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(param) if self.kind == "sigmoid" else param

    def project(self, param: torch.Tensor) -> None:
        if self.kind == "clamp":
            with torch.no_grad():
                param.clamp_(0, 1)


def make_optimizer(name: str, params, lr: float | None = None) -> torch.optim.Optimizer:
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "lbfgs":
        # One iteration per step() call, so the progress bar and callbacks see every iteration;
        # the curvature history lives in the optimizer state and carries over between calls.
        # max_eval bounds the line search; its default (1.25 * max_iter) would leave it none.
        return torch.optim.LBFGS(params, lr=lr, max_iter=1, max_eval=20, history_size=50,
                                 line_search_fn="strong_wolfe")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return NormalizedGradientDescent(params, lr=lr)


def _progress(steps: int, description: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=steps, desc=description, disable=not enabled, leave=False, dynamic_ncols=True)


def optimize_image(objective: Objective, init: torch.Tensor, *, steps: int, optimizer: str = "lbfgs",
                   lr: float | None = None, parametrization: str = "clamp", callback: Callback | None = None,
                   callback_every: int = 0, progress: bool = True, description: str = "optimising") -> OptimResult:
    """Minimise ``sum(objective(image).values())`` over the pixels of ``image``, starting at ``init``.

    ``init`` is any tensor in [0, 1] (usually ``[N, C, H, W]``); it is not modified. ``optimizer``
    is ``lbfgs`` (strong-Wolfe line search), ``adam`` or ``normgd`` (normalised gradient descent).
    ``callback(step, image, terms)`` runs every ``callback_every`` steps (and after the last one)
    when ``callback_every > 0``. Stops early if the loss becomes non-finite or L-BFGS converges.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, not {steps}")
    param_map = Parametrization(parametrization)
    param = nn.Parameter(param_map.encode(init))
    opt = make_optimizer(optimizer, [param], lr)
    history: list[dict[str, float]] = []
    last: dict[str, float] = {}

    def closure() -> torch.Tensor:
        terms = dict(objective(param_map.decode(param)))
        if not terms:
            raise ValueError("the objective returned no loss terms")
        total = sum(terms.values())
        # Gradient for the image alone: parameters of the caller's networks that require grad
        # get no .grad accumulated behind their owner's back.
        (param.grad,) = torch.autograd.grad(total, [param])
        last.clear()
        last.update({k: float(v.detach()) for k, v in terms.items()})
        last["total"] = float(total.detach())
        return total

    bar = _progress(steps, description, progress)
    try:
        with torch.enable_grad():  # a caller inside torch.no_grad() still gets gradients here
            for step in range(1, steps + 1):
                before = param.detach().clone() if optimizer == "lbfgs" else None
                opt.step(closure)
                param_map.project(param)
                # The closure's last evaluation is the line search's final point: the step's loss.
                history.append(dict(last))
                bar.set_postfix(loss=f"{last['total']:.4g}", refresh=False)
                bar.update(1)
                if callback is not None and callback_every > 0 and (step % callback_every == 0 or step == steps):
                    callback(step, param_map.decode(param).detach(), dict(last))
                if not math.isfinite(last["total"]):
                    break
                if before is not None and torch.equal(before, param.detach()):
                    break  # L-BFGS made no progress: converged (or the gradient vanished)
    finally:
        bar.close()
    return OptimResult(image=param_map.decode(param).detach().clamp(0, 1), history=history)
