"""Images in: files, folders or globs -> named float32 RGB [0, 1] tensors; offline defaults from
scikit-image's bundled photos."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from impasto.core.errors import ImageError
from impasto.core.imageio import SKIMAGE_PHOTOS, expand_inputs, open_image, skimage_photo
from impasto.models.analysis.errors import AnalysisError
from impasto.models.images import pil_to_tensor

# ImageNet-like subjects among scikit-image's photos (bundled, no download).
DEFAULT_SINGLE = ("chelsea", "coffee", "rocket")
# The set methods look for neighbours: the other half of a stereo pair would be a trivial one, and
# the colour wheel is no photo.
DEFAULT_SET = tuple(name for name in SKIMAGE_PHOTOS if name not in ("motorcycle_right", "colorwheel"))


@dataclass
class NamedImage:
    name: str
    image: Image.Image  # RGB


def default_images(names: Sequence[str] = DEFAULT_SINGLE) -> list[NamedImage]:
    return [NamedImage(n, skimage_photo(n)) for n in names]


def default_image_set() -> list[NamedImage]:
    """16 images for the set methods (neighbours, embedding, patches): each bundled colour photo
    and its mirror image, so that feature-space neighbours have something to find."""
    out = []
    for photo in default_images(DEFAULT_SET):
        out.append(photo)
        out.append(NamedImage(photo.name + "-flip", photo.image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    return out


def expand_paths(specs: Sequence[str]) -> list[Path]:
    """Files, folders (their images, sorted) and globs, as ``impasto stylize`` reads them; a spec
    that names nothing is an error here, since an analysis needs every image it was given."""
    files, missing = expand_inputs(list(specs))
    if missing:
        raise AnalysisError(f"{missing[0]}: no such file or matching image")
    if not files:
        raise AnalysisError(f"no image files in {', '.join(specs)}")
    return files


def load_images(specs: Sequence[str] | None, *, default: Sequence[NamedImage] | None = None,
                limit: int | None = None) -> list[NamedImage]:
    """Open the images named by ``specs`` (files, folders, globs), or ``default`` when none."""
    if not specs:
        images = list(default if default is not None else default_images())
    else:
        images = []
        for path in expand_paths(specs):
            try:
                images.append(NamedImage(path.stem, open_image(path)))
            except ImageError as err:
                raise AnalysisError(str(err)) from None
    return images[:limit] if limit else images


def to_tensor(img: Image.Image, size: int, *, crop: bool = True) -> torch.Tensor:
    """``[3, size, size]``: shorter side resized to ``size`` then centre-cropped (the standard
    ImageNet evaluation view), or the whole image squashed when ``crop`` is False."""
    x = pil_to_tensor(img)[None]
    h, w = x.shape[-2:]
    if crop:
        scale = size / min(h, w)
        new = (max(size, round(h * scale)), max(size, round(w * scale)))
    else:
        new = (size, size)
    x = F.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[0, :, top:top + size, left:left + size].clamp(0, 1).contiguous()


def batch(images: Sequence[NamedImage], size: int) -> torch.Tensor:
    return torch.stack([to_tensor(i.image, size) for i in images])
