"""PIL images as torch tensors: the one conversion the torch side uses (pixels as
:func:`impasto.core.imageio.to_array` reads them)."""
from __future__ import annotations

import torch
from PIL import Image

from impasto.core.imageio import to_array


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float32 ``[3, H, W]`` in [0, 1]."""
    return torch.from_numpy(to_array(img))
