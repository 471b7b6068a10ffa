"""Output controls applied around inference: strength and colour preservation.

All arrays are float32 ``[3, H, W]`` RGB in [0, 1].
"""
from __future__ import annotations

import numpy as np

# ITU-R BT.601 full-range (JPEG) RGB <-> YCbCr, offsets in [0, 1] units.
RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114],
                         [-0.168736, -0.331264, 0.5],
                         [0.5, -0.418688, -0.081312]], dtype=np.float32)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR).astype(np.float32)
YCBCR_OFFSET = np.array([0.0, 0.5, 0.5], dtype=np.float32)[:, None, None]


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jhw->ihw", RGB_TO_YCBCR, rgb) + YCBCR_OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    return np.einsum("ij,jhw->ihw", YCBCR_TO_RGB, ycc - YCBCR_OFFSET)


def preserve_color(stylized: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Stylised luminance with the original's chrominance (Gatys et al. 2016, "luminance-only")."""
    ycc = rgb_to_ycbcr(original)
    ycc[0] = rgb_to_ycbcr(stylized)[0]
    return np.clip(ycbcr_to_rgb(ycc), 0.0, 1.0).astype(np.float32)


def fade(stylized: np.ndarray, original: np.ndarray, strength: float) -> np.ndarray:
    """Pixel blend ``strength * stylised + (1 - strength) * original`` (models without an identity style)."""
    if strength >= 1.0:
        return stylized
    return (strength * stylized + (1.0 - strength) * original).astype(np.float32)


def identity_mix(weights: np.ndarray, identity_index: int, strength: float) -> np.ndarray:
    """Move ``strength`` of the way from the identity style to ``weights`` inside the network.

    For a conditional-instance-norm model trained with an identity style this interpolates the
    normalisation parameters, which looks like a gradual restyle rather than a cross-fade.
    """
    identity = np.zeros_like(weights)
    identity[identity_index] = 1.0
    return (strength * weights + (1.0 - strength) * identity).astype(np.float32)
