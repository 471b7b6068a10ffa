"""Images referenced by configs (a file path or ``skimage:NAME``) as float32 RGB tensors."""
from __future__ import annotations

from pathlib import Path

import torch

from impasto.core.imageio import open_reference, resize_longer
from impasto.models.images import pil_to_tensor


def load_tensor(ref: str | Path, size: int | None = None) -> torch.Tensor:
    """Load ``ref`` as ``[3, H, W]`` in [0, 1], the longer side resized (up or down) to ``size`` if
    given; an unreadable image is an :class:`~impasto.core.errors.ImageError`."""
    return pil_to_tensor(resize_longer(open_reference(ref), size, upscale=True))
