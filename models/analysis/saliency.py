"""Vanilla gradient saliency (Simonyan et al. 2014) and saliency-seeded GrabCut segmentation."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from impasto.models.analysis.hooks import frozen
from impasto.models.analysis.objectives import Target, input_gradient


class Saliency:
    """``max_c |d score / d pixel_c|``: ``[N, H, W]``."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __call__(self, x: torch.Tensor, target: Target) -> torch.Tensor:
        with frozen(self.model):
            grad = input_gradient(self.model, x, target)
        return grad.abs().amax(1)


def grabcut_from_saliency(image: torch.Tensor | np.ndarray, saliency: torch.Tensor | np.ndarray, *,
                          foreground: float = 0.95, probable: float = 0.8, background: float = 0.3,
                          iterations: int = 5) -> np.ndarray:
    """Segment the salient object with OpenCV's GrabCut, seeded from quantiles of the (blurred)
    saliency map: above the ``foreground`` quantile -> sure foreground, above ``probable`` ->
    probable foreground, below ``background`` -> sure background, the rest probable background.

    ``image``: ``[3, H, W]`` RGB [0, 1]; ``saliency``: ``[H, W]``. Returns a boolean ``[H, W]`` mask.
    """
    import cv2

    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    sal = saliency.detach().cpu().numpy() if isinstance(saliency, torch.Tensor) else np.asarray(saliency)
    bgr = np.ascontiguousarray((np.clip(img.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)[..., ::-1])
    # Raw gradients are speckled; a blur turns them into regions GrabCut can grow from.
    sigma = max(1.0, sal.shape[0] / 24)
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), sigma)
    q_fg, q_pr, q_bg = np.quantile(sal, [foreground, probable, background])
    mask = np.full(sal.shape, cv2.GC_PR_BGD, np.uint8)
    mask[sal >= q_pr] = cv2.GC_PR_FGD
    mask[sal >= q_fg] = cv2.GC_FGD
    mask[sal <= q_bg] = cv2.GC_BGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)
    cv2.grabCut(bgr, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
