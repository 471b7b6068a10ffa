"""Image references used in configs: a file path or ``skimage:NAME`` for scikit-image's bundled
photos (offline). Loaded as float32 RGB ``[3, H, W]`` in [0, 1]."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from impasto.core.errors import ImageError
from impasto.core.imageio import open_image
from impasto.models.analysis.images import skimage_photo

SKIMAGE_PREFIX = "skimage:"
# Colour photos that scikit-image ships inside its wheel (no download needed).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "motorcycle_right",
                  "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")


class ImageLoadError(ValueError):
    """An image referenced by the config cannot be read."""


def load_pil(ref: str | Path) -> Image.Image:
    """``skimage:NAME`` or a path -> RGB PIL image (EXIF orientation, alpha on white), decoded by the
    same code as ``impasto stylize``."""
    ref = str(ref)
    if ref.startswith(SKIMAGE_PREFIX):
        name = ref[len(SKIMAGE_PREFIX):]
        if name not in SKIMAGE_PHOTOS:
            raise ImageLoadError(f"unknown scikit-image photo {name!r}; choose one of {', '.join(SKIMAGE_PHOTOS)}")
        return skimage_photo(name)
    try:
        return open_image(Path(ref).expanduser())
    except ImageError as err:
        raise ImageLoadError(f"cannot read image {err}") from None


def resize_longer(img: Image.Image, size: int | None) -> Image.Image:
    if not size or max(img.size) == size:
        return img
    scale = size / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                      Image.Resampling.LANCZOS)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0


def load_tensor(ref: str | Path, size: int | None = None) -> torch.Tensor:
    """Load ``ref`` as ``[3, H, W]`` in [0, 1], the longer side resized to ``size`` if given."""
    return pil_to_tensor(resize_longer(load_pil(ref), size))
