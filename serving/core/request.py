"""The torch-free steps around inference of one stylisation request, shared by ``impasto
stylize`` and the HTTP service: strength, colour preservation and encoding.

Strength moves the style weights toward the model's identity style inside the network when the
model has one (a gradual restyle); otherwise it fades the output's pixels toward the input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from impasto.core import imageio, postprocess
from impasto.core.errors import OptionError
from impasto.core.model import StyleModel

# How strength was applied: not at all (strength 1), in-network, or as a pixel fade.
STRENGTH_NONE, STRENGTH_IDENTITY, STRENGTH_PIXEL = "none", "identity", "pixel"


@dataclass(frozen=True)
class OutputControls:
    strength: float = 1.0  # 0 = the input, 1 = fully stylised
    preserve_color: bool = False  # keep the input's chrominance, restyle the luminance only

    def __post_init__(self) -> None:
        if not (math.isfinite(self.strength) and 0.0 <= self.strength <= 1.0):
            raise OptionError(f"strength must be between 0 and 1, got {self.strength:g}")

    def network_weights(self, model: StyleModel, weights: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """The style weights to run the network with, and the strength mode (``STRENGTH_*``)."""
        if self.strength >= 1.0:
            return weights, STRENGTH_NONE
        if weights is not None and model.blendable and model.identity_style is not None:
            identity = model.style_names.index(model.identity_style)
            return postprocess.identity_mix(weights, identity, self.strength), STRENGTH_IDENTITY
        return weights, STRENGTH_PIXEL

    def finish(self, stylized: np.ndarray, original: np.ndarray, mode: str) -> np.ndarray:
        """Apply what is left after inference to ``[3, H, W]`` arrays: a pixel fade, colour."""
        if mode == STRENGTH_PIXEL:
            stylized = postprocess.fade(stylized, original, self.strength)
        if self.preserve_color:
            stylized = postprocess.preserve_color(stylized, original)
        return stylized

    def encode(self, stylized: np.ndarray, original: np.ndarray, mode: str, fmt: str) -> tuple[bytes, str]:
        """:meth:`finish`, then encode as ``fmt`` -> ``(bytes, content type)``."""
        return imageio.encode(imageio.from_array(self.finish(stylized, original, mode)), fmt)
