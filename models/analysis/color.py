"""Colour preservation for style transfer (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving
Color in Neural Artistic Style Transfer"): both of the paper's methods.

- ``luminance``: transfer the style on the luminance channel alone, then put the content's chroma
  back. The output's chroma *is* the content's, exactly (up to clipping to [0, 1]).
- ``histogram``: recolour each style image so its colour mean and covariance match the content's
  (a linear map), then transfer as usual. Colours follow the content's palette only in the mean.

Luminance and chroma are the base's YCbCr (:mod:`impasto.core.postprocess`, the same matrices), so
``preserve_color`` means the same here as in ``impasto stylize`` and the HTTP service.
"""
from __future__ import annotations

import torch

from impasto.core.postprocess import RGB_TO_YCBCR, YCBCR_OFFSET, YCBCR_TO_RGB

PRESERVE_COLOR = ("luminance", "histogram")


def _apply(matrix, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", torch.from_numpy(matrix).to(image), image)


def _offset(image: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(YCBCR_OFFSET).to(image).view(1, 3, 1, 1)


def rgb_to_ycbcr(image: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` RGB -> YCbCr, all three in [0, 1] (chroma centred on 0.5)."""
    return _apply(RGB_TO_YCBCR, image) + _offset(image)


def ycbcr_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return _apply(YCBCR_TO_RGB, image - _offset(image))


def luminance(image: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` -> ``[N, 1, H, W]`` luma."""
    return rgb_to_ycbcr(image)[:, :1]


def with_chroma(y: torch.Tensor, chroma_source: torch.Tensor) -> torch.Tensor:
    """Luminance ``y`` ``[N, 1, H, W]`` + the chroma of RGB ``chroma_source`` -> RGB in [0, 1]."""
    chroma = rgb_to_ycbcr(chroma_source)[:, 1:]
    return ycbcr_to_rgb(torch.cat([y, chroma], dim=1)).clamp(0, 1)


def preserve_color(stylized: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """The stylised image's luminance with the original's chroma: the torch twin of
    :func:`impasto.core.postprocess.preserve_color` (``[N, 3, H, W]`` here, ``[3, H, W]`` there)."""
    return with_chroma(luminance(stylized), original)


def match_luminance(style_y: torch.Tensor, content_y: torch.Tensor) -> torch.Tensor:
    """Shift and scale the style's luminance to the content's mean and standard deviation, so the
    transfer copies the style's texture, not its overall brightness or contrast."""
    s_mean, s_std = style_y.mean(), style_y.std().clamp_min(1e-6)
    return ((style_y - s_mean) * (content_y.std() / s_std) + content_y.mean()).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    values = values.clamp_min(1e-8) ** (-0.5 if inverse else 0.5)
    return vectors @ torch.diag(values) @ vectors.T


def match_color(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Linear map of ``source``'s RGB pixels so their mean and covariance equal ``reference``'s
    (``[1, 3, H, W]`` each; sizes may differ). Uses the symmetric matrix square roots, the variant
    that Gatys et al. found to give the least distorted colours."""
    def stats(image):
        pixels = image.reshape(3, -1).double()
        mean = pixels.mean(dim=1, keepdim=True)
        centred = pixels - mean
        return pixels, mean, centred @ centred.T / pixels.shape[1] + 1e-8 * torch.eye(3, dtype=torch.float64)

    pixels, s_mean, s_cov = stats(source)
    _, r_mean, r_cov = stats(reference)
    transform = _sqrtm(r_cov) @ _sqrtm(s_cov, inverse=True)
    mapped = transform @ (pixels - s_mean) + r_mean
    return mapped.reshape(source.shape).to(source.dtype).clamp(0, 1)
