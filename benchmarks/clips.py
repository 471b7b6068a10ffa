"""Synthetic clips with exactly known motion, and the warping error of a stylised clip.

A clip is rendered from a larger source image: frame ``t`` samples the source at ``M_t · (x, y, 1)``
for every frame pixel ``(x, y)`` (pixel centres at integer coordinates), ``M_t`` an affine map. The
motion between consecutive frames is then known in closed form: pixel ``y`` of frame ``t+1`` shows
what frame ``t`` shows at ``M_t⁻¹ M_{t+1} · y``. Photometric clips (a brightness ramp, sensor noise)
keep ``M_t`` fixed, so their flow is the identity.

Warping error (Lai et al. 2018, "Learning Blind Video Temporal Consistency"): warp the output
``O_t`` into frame ``t+1``'s coordinates with that motion and average the squared difference to
``O_{t+1}`` over the pixels visible in both frames (the mask drops pixels whose source point lies
outside frame ``t``); the clip's error is the mean over its frame pairs. Values are in [0, 1] image
units and averaged over the three channels (Lai et al. sum the channels: 3× these figures).

Sampling is exact bilinear interpolation in float64 (``cv2.warpAffine`` and ``cv2.remap`` round
coordinates to 1/32 px), so an integer shift reproduces pixels bit for bit and an unstylised
integer pan has an error of exactly 0.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Tolerance of the visibility test: float error of a composed affine map, far below a pixel.
_EDGE_EPS = 1e-6


class ClipError(ValueError):
    """A clip that cannot be rendered as asked (one line, for the user)."""


@dataclass(frozen=True)
class Grid:
    """Where each pixel of frame ``t+1`` lies in frame ``t`` (``x``, ``y``: ``[H, W]`` float64) and
    whether that point is inside frame ``t`` and not occluded (``valid``: ``[H, W]`` bool)."""
    x: np.ndarray
    y: np.ndarray
    valid: np.ndarray


@dataclass(frozen=True)
class ClipSpec:
    """One kind of synthetic clip: per-frame motion and photometric change."""
    name: str
    description: str
    velocity: tuple[float, float] = (0.0, 0.0)  # px per frame (x right, y down), of the camera over the scene
    zoom: float = 1.0          # scale per frame (> 1 zooms in)
    rotation: float = 0.0      # degrees per frame
    gain: float = 0.0          # brightness gain change per frame (1 at the middle frame)
    noise: float = 0.0         # standard deviation of fresh Gaussian noise per frame, [0, 1] units

    @property
    def static(self) -> bool:
        return self.velocity == (0.0, 0.0) and self.zoom == 1.0 and self.rotation == 0.0

    @property
    def integer_pan(self) -> bool:
        """A pure whole-pixel pan: the unstylised clip's warping error is exactly 0."""
        return (self.zoom == 1.0 and self.rotation == 0.0 and self.gain == 0.0 and self.noise == 0.0
                and not self.static and all(float(v).is_integer() for v in self.velocity))


CLIP_TYPES: dict[str, ClipSpec] = {c.name: c for c in (
    ClipSpec("pan_x", "horizontal pan, 3 px/frame", velocity=(3.0, 0.0)),
    ClipSpec("pan_y", "vertical pan, 2 px/frame", velocity=(0.0, 2.0)),
    ClipSpec("pan_subpixel", "horizontal pan, 0.5 px/frame (bilinear resampling)", velocity=(0.5, 0.0)),
    ClipSpec("zoom", "slow zoom in, 1 %/frame about the centre", zoom=1.01),
    ClipSpec("rotate", "rotation, 0.5°/frame about the centre", rotation=0.5),
    ClipSpec("brightness", "static scene, brightness gain +3 %/frame (flow: identity)", gain=0.03),
    ClipSpec("noise", "static scene, fresh Gaussian noise σ = 0.03 per frame (flow: identity)", noise=0.03),
)}


# ----------------------------------------------------------------------------------- sampling

def sample_bilinear(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``image`` ``[H, W, C]`` sampled at float coordinates ``x``, ``y`` (``[h, w]``, clamped to the
    image), exact bilinear in float64: at integer coordinates the pixels come back unchanged."""
    height, width = image.shape[:2]
    if height < 2 or width < 2:
        raise ClipError(f"frames need at least 2x2 pixels, got {width}x{height}")
    x = np.clip(x, 0, width - 1)
    y = np.clip(y, 0, height - 1)
    # The last row/column samples with weight 1 on itself through the cell to its left/above.
    x0 = np.minimum(np.floor(x).astype(np.intp), width - 2)
    y0 = np.minimum(np.floor(y).astype(np.intp), height - 2)
    fx, fy = (x - x0).reshape(-1, 1), (y - y0).reshape(-1, 1)
    flat = image.reshape(height * width, -1).astype(np.float64, copy=False)
    index = (y0 * width + x0).reshape(-1)
    top = flat.take(index, axis=0) * (1 - fx) + flat.take(index + 1, axis=0) * fx
    bottom = flat.take(index + width, axis=0) * (1 - fx) + flat.take(index + width + 1, axis=0) * fx
    return (top * (1 - fy) + bottom * fy).reshape(*x.shape, flat.shape[1])


def inside(x: np.ndarray, y: np.ndarray, width: int, height: int) -> np.ndarray:
    """Points a bilinear sample can take from the image alone (no clamped border)."""
    return (x >= -_EDGE_EPS) & (x <= width - 1 + _EDGE_EPS) & (y >= -_EDGE_EPS) & (y <= height - 1 + _EDGE_EPS)


def pixel_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width]
    return xs.astype(np.float64), ys.astype(np.float64)


def apply_affine(matrix: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``matrix`` 3x3 (or 2x3) affine applied to coordinate arrays."""
    return (matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2],
            matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2])


def affine_grid(matrix: np.ndarray, width: int, height: int) -> Grid:
    """The grid of a known affine motion: pixel ``p`` of frame ``t+1`` is at ``matrix · p`` in frame ``t``."""
    x, y = apply_affine(matrix, *pixel_grid(width, height))
    return Grid(x, y, inside(x, y, width, height))


def warp(image: np.ndarray, grid: Grid) -> np.ndarray:
    """Frame ``t``'s image in frame ``t+1``'s coordinates (invalid pixels hold clamped values)."""
    return sample_bilinear(image, grid.x, grid.y)


def pair_error(previous: np.ndarray, current: np.ndarray, grid: Grid) -> float:
    """Mean squared difference between ``warp(previous)`` and ``current`` over ``grid.valid``
    pixels and the channels; NaN when no pixel is visible in both frames."""
    count = int(grid.valid.sum())
    if not count:
        return math.nan
    diff = warp(previous, grid)[grid.valid] - current.astype(np.float64)[grid.valid]
    return float(np.square(diff).sum() / (count * current.shape[-1]))


def warping_error(frames: Sequence[np.ndarray] | np.ndarray, grids: Sequence[Grid]) -> float:
    """Mean over consecutive pairs of :func:`pair_error`; ``frames`` ``[T, H, W, C]`` in [0, 1],
    ``grids`` the ``T-1`` motions between them (pairs with nothing visible are left out)."""
    if len(frames) != len(grids) + 1:
        raise ClipError(f"{len(frames)} frames need {len(frames) - 1} motions, got {len(grids)}")
    errors = [pair_error(frames[t], frames[t + 1], g) for t, g in enumerate(grids)]
    errors = [e for e in errors if not math.isnan(e)]
    return float(np.mean(errors)) if errors else math.nan


# ---------------------------------------------------------------------------------- rendering

@dataclass
class Clip:
    name: str
    frames: np.ndarray      # [T, H, W, 3] float32 in [0, 1], 8-bit levels
    grids: list[Grid]       # T-1 motions between consecutive frames
    spec: ClipSpec | None = None


def _rotation_scale(scale: float, degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return scale * np.array([[c, -s], [s, c]])


def frame_matrices(spec: ClipSpec, frames: int) -> list[np.ndarray]:
    """``M_t`` (3x3) from frame pixels to source pixels, relative to a frame pivot at the origin and
    a source pivot at the origin (:func:`render_clip` adds both). Zoom and rotation run from
    ``-mid`` to ``+mid`` frames so the footprint stays small; pans start at an integer offset so a
    whole-pixel pan renders as exact crops."""
    mid = (frames - 1) / 2
    shift = [math.floor(v * mid) for v in spec.velocity]
    mats = []
    for t in range(frames):
        m = np.eye(3)
        # Zooming in: each frame sees a smaller part of the source.
        m[:2, :2] = _rotation_scale(spec.zoom ** -(t - mid), spec.rotation * (t - mid))
        m[0, 2] = spec.velocity[0] * t - shift[0]
        m[1, 2] = spec.velocity[1] * t - shift[1]
        mats.append(m)
    return mats


def source_size_needed(spec: ClipSpec, frames: int, size: int) -> tuple[int, int]:
    """The smallest source (width, height) around its pivot that holds every frame's footprint."""
    pivot = size // 2
    corners = np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], dtype=np.float64) - pivot
    extent = np.zeros(2)
    for m in frame_matrices(spec, frames):
        pts = corners @ m[:2, :2].T + m[:2, 2]
        extent = np.maximum(extent, np.abs(pts).max(axis=0))
    side = 2 * np.ceil(extent).astype(int) + 3  # + the pivot pixel and one pixel of slack each side
    return int(side[0]), int(side[1])


def render_clip(source: np.ndarray, spec: ClipSpec, frames: int, size: int,
                rng: np.random.Generator | None = None) -> Clip:
    """``frames`` square frames of ``size`` px from ``source`` (``[H, W, 3]`` float in [0, 1],
    large enough: see :func:`source_size_needed`), quantised to 8-bit levels like a real video."""
    if frames < 2:
        raise ClipError("a clip needs at least 2 frames")
    height, width = source.shape[:2]
    pivot = size // 2
    src_pivot = (width - 1) // 2, (height - 1) // 2
    to_pivot, from_pivot = np.eye(3), np.eye(3)
    to_pivot[:2, 2] = -pivot
    from_pivot[:2, 2] = src_pivot
    mats = [from_pivot @ m @ to_pivot for m in frame_matrices(spec, frames)]
    rng = rng or np.random.default_rng(0)
    xs, ys = pixel_grid(size, size)
    mid = (frames - 1) / 2
    out = []
    for t, m in enumerate(mats):
        x, y = apply_affine(m, xs, ys)
        if not inside(x, y, width, height).all():
            raise ClipError(f"{spec.name}: frame {t} reaches outside the {width}x{height} source "
                            f"(needs {source_size_needed(spec, frames, size)})")
        frame = sample_bilinear(source, x, y)
        if spec.gain:
            frame = frame * (1 + spec.gain * (t - mid))
        if spec.noise:
            frame = frame + rng.normal(0.0, spec.noise, frame.shape)
        out.append(np.round(np.clip(frame, 0, 1) * 255) / 255)
    # Pixel p of frame t+1 is source point M_{t+1} p, which frame t shows at M_t^-1 M_{t+1} p.
    grids = [affine_grid(np.linalg.inv(mats[t]) @ mats[t + 1], size, size) for t in range(frames - 1)]
    return Clip(spec.name, np.stack(out).astype(np.float32), grids, spec)
