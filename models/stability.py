"""Temporal stability learned from single images (Wang et al. 2020, "compound regularisation").

A feed-forward stylisation network flickers on video because small input changes (sensor noise, a
sub-pixel pan, a slight deformation) change its output by more than they change the image. Instead
of optical flow between real video frames, warp a training crop by a random smooth flow plus a
small global shift, add a little noise, and penalise the difference between the stylisation of the
warped input and the warped stylisation: ``‖T(W(x) + n) − W(T(x))‖²`` over pixels that ``W`` maps
from inside the image. Noise resilience (``W`` = identity) and shift equivariance (``W`` = a shift)
are special cases. Odd and sub-pixel shifts matter most for networks with a stride-2 stem and a
pixel-shuffle head, which are not equivariant to them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StabilitySettings:
    """``weight`` multiplies the term (0 turns it off); displacements are in pixels of the crop."""
    weight: float = 0.0
    max_shift: float = 2.0       # uniform global shift per sample, in [-max_shift, max_shift] px per axis
    flow_magnitude: float = 1.0  # smooth part: coarse random displacements in [-m, m] px, bicubically upsampled
    flow_grid: int = 4           # coarse grid side of the smooth part: its smoothness
    noise_std: float = 0.01      # Gaussian noise added to the warped input ([0, 1] image units)

    def __post_init__(self) -> None:
        if self.weight < 0 or self.max_shift < 0 or self.flow_magnitude < 0 or self.noise_std < 0:
            raise ValueError(f"stability settings must not be negative: {self}")
        if self.flow_grid < 2:
            raise ValueError(f"stability flow_grid must be at least 2, not {self.flow_grid}")


@dataclass(frozen=True)
class Warp:
    """A backward warp: output pixel (y, x) samples the source at ``coords[..., (x, y)]`` (pixels)."""
    coords: torch.Tensor  # [N, H, W, 2]

    @property
    def grid(self) -> torch.Tensor:
        """``coords`` in grid_sample's normalised units (``align_corners=False``)."""
        height, width = self.coords.shape[1:3]
        scale = self.coords.new_tensor([width, height])
        return (2 * self.coords + 1) / scale - 1

    def valid(self) -> torch.Tensor:
        """``[N, 1, H, W]``: 1 where all four bilinear neighbours of the sample lie inside the source."""
        height, width = self.coords.shape[1:3]
        x, y = self.coords.unbind(-1)
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        return inside.unsqueeze(1).to(self.coords.dtype)

    def __call__(self, images: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
        return F.grid_sample(images, self.grid.to(images.dtype), mode="bilinear", padding_mode=padding_mode,
                             align_corners=False)


def identity_coords(n: int, height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(height, device=device, dtype=dtype),
                            torch.arange(width, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xs, ys], -1).expand(n, height, width, 2)


def random_warp(n: int, height: int, width: int, settings: StabilitySettings, device=None,
                generator: torch.Generator | None = None) -> Warp:
    """A random smooth flow plus a global shift per sample (see :class:`StabilitySettings`)."""
    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=device) * 2 - 1

    coarse = uniform(n, 2, settings.flow_grid, settings.flow_grid) * settings.flow_magnitude
    flow = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    flow = flow + uniform(n, 2, 1, 1) * settings.max_shift
    return Warp(identity_coords(n, height, width, device) + flow.permute(0, 2, 3, 1))


def stability_loss(stylize: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, outputs: torch.Tensor,
                   warp: Warp, noise_std: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean squared difference between ``stylize(warp(images) + noise)`` and ``warp(outputs)``
    (``outputs = stylize(images)``) over the pixels ``warp`` samples from inside the image.

    The input is warped with reflected borders, so the few pixels the warp brings in from outside
    do not shift the network's instance-norm statistics; they are left out of the mean anyway.
    """
    moved = warp(images, padding_mode="reflection")
    if noise_std:
        moved = moved + noise_std * torch.randn(moved.shape, generator=generator, device=moved.device,
                                                dtype=moved.dtype)
    restyled = stylize(moved)
    target = warp(outputs)
    mask = warp.valid().to(outputs.dtype)
    squared = (restyled - target).square() * mask
    return squared.sum() / (mask.sum() * outputs.shape[1]).clamp_min(1.0)
