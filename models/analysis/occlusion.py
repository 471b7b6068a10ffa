"""Occlusion sensitivity (Zeiler & Fergus 2014): slide a grey patch over the image and record the
drop in the target class probability."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from impasto.models.analysis.hooks import frozen
from impasto.models.analysis.objectives import class_indices


@dataclass
class OcclusionResult:
    drops: torch.Tensor   # [N, rows, cols]: p(target) - p(target | patch at that position)
    pixels: torch.Tensor  # [N, H, W]: each pixel's mean drop over the patches covering it
    base: torch.Tensor    # [N]: p(target) on the intact image


class Occlusion:
    def __init__(self, model: nn.Module):
        self.model = model

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, target, *, window: int = 32, stride: int = 8,
                 baseline: float = 0.5, batch_size: int = 32) -> OcclusionResult:
        n, _, h, w = x.shape
        rows, cols = (h - window) // stride + 1, (w - window) // stride + 1
        ys = torch.arange(rows) * stride
        xs = torch.arange(cols) * stride
        with frozen(self.model):
            probs = self.model(x).softmax(1)
            idx = class_indices(target, n, probs.shape[1]).to(x.device)
            base = probs.gather(1, idx[:, None])[:, 0]
            drops = torch.empty(n, rows * cols)
            positions = [(int(y), int(x_)) for y in ys for x_ in xs]
            for i in range(n):
                for s in range(0, len(positions), batch_size):
                    chunk = positions[s:s + batch_size]
                    occluded = x[i:i + 1].repeat(len(chunk), 1, 1, 1)
                    for j, (y0, x0) in enumerate(chunk):
                        occluded[j, :, y0:y0 + window, x0:x0 + window] = baseline
                    p = self.model(occluded).softmax(1)[:, idx[i]]
                    drops[i, s:s + len(chunk)] = base[i] - p
        # Per-pixel map: sum of drops of the windows covering a pixel / how many cover it.
        cover = torch.ones(1, window * window, rows * cols)
        fold = dict(output_size=(h, w), kernel_size=window, stride=stride)
        total = F.fold(drops[:, None].expand(n, window * window, -1).contiguous(), **fold)
        count = F.fold(cover, **fold)
        pixels = torch.where(count > 0, total / count.clamp_min(1), torch.zeros(()))[:, 0]
        return OcclusionResult(drops.view(n, rows, cols), pixels, base)
