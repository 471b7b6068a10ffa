"""The guided filter (He, Sun and Tang, ECCV 2010 / TPAMI 2013) in numpy, for restoring a photo's
edges in an up-sampled stylisation (stroke-size control, :mod:`impasto.core.tiling`).

``q = mean(a) * I + mean(b)`` with ``a = cov(I, p) / (var(I) + eps)`` and ``b = mean(p) - a * mean(I)``
over ``(2r + 1)²`` windows: where the guide ``I`` (the photo's luminance) has an edge the output
follows it, where it is flat the output is the input ``p`` (the stylisation) locally averaged.
An output pixel depends on pixels at most ``2 r`` away, so the filter can run tile by tile.
"""
from __future__ import annotations

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def box_mean(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over the ``(2r + 1)²`` window around each pixel of the last two axes, the window
    clipped at the borders (summed-area table, so the cost does not grow with ``r``)."""
    h, w = x.shape[-2:]
    table = np.zeros((*x.shape[:-2], h + 1, w + 1), dtype=np.float64)
    np.cumsum(np.cumsum(x, axis=-2, dtype=np.float64), axis=-1, out=table[..., 1:, 1:])
    y0, y1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    sums = (table[..., y1[:, None], x1[None, :]] - table[..., y0[:, None], x1[None, :]]
            - table[..., y1[:, None], x0[None, :]] + table[..., y0[:, None], x0[None, :]])
    counts = (y1 - y0)[:, None] * (x1 - x0)[None, :]
    return (sums / counts).astype(np.float32)


def guided_filter(guide: np.ndarray, src: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Filter ``src`` (``[C, H, W]``) guided by the grey ``guide`` (``[H, W]``), both float in [0, 1]."""
    mean_i = box_mean(guide, r)
    var_i = box_mean(guide * guide, r) - mean_i * mean_i
    mean_p = box_mean(src, r)
    cov_ip = box_mean(guide[None] * src, r) - mean_i[None] * mean_p
    a = cov_ip / (var_i[None] + eps)
    b = mean_p - a * mean_i[None]
    return box_mean(a, r) * guide[None] + box_mean(b, r)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """``[3, H, W]`` RGB -> ``[H, W]`` luma (BT.601)."""
    return np.tensordot(LUMA, rgb, axes=1)
