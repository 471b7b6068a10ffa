"""Large images in bounded memory: seam-free tiling with thumbnail instance normalisation (Chen et
al., AAAI 2022), and stroke-size control.

Instance norm makes every output pixel depend on statistics over the whole feature map, so naive
tiles (each with its own statistics) disagree at their borders. Here the statistics of every
normalisation layer are computed once, on a thumbnail of the image (longer side at most
:data:`THUMBNAIL_SIZE`), and frozen for every tile (the model's optional capability, see
:mod:`impasto.core.contract`). With frozen statistics the network is local: tiles overlap by its
receptive-field radius, start on its down-sampling grid, and the overlap is cropped away, so the
tiled result equals the untiled run with the same statistics (no blending).

The image stays ``uint8 [H, W, 3]``; tiles are made float one batch at a time, finished
(strength, colour) and written back into a ``uint8`` output, so memory grows with the image only
by its two ``uint8`` copies, and onnxruntime's arena is shrunk after the image's last tiles.

Stroke scale ``K``: the image is stylised at ``1/K`` of its size (tiled the same way when large),
up-sampled, and the photo's edges are put back with a guided filter (:mod:`impasto.core.guided`)
guided by the full-resolution photo's luminance: strokes ``K`` times larger, edges kept.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from impasto.core.errors import OptionError
from impasto.core.guided import guided_filter, luminance
from impasto.core.imageio import longer_side_size, to_array, to_uint8
from impasto.core.model import StyleModel

# The thumbnail the statistics come from, and the automatic policy: images whose longer side is
# larger are tiled (at most this size the thumbnail is the image, so tiling would change nothing).
THUMBNAIL_SIZE = 1024
DEFAULT_TILE_SIZE = 512
MIN_TILE_SIZE = 16
TILE_BATCH = 4  # tiles per onnxruntime call
MAX_STROKE_SCALE = 8.0
# Guided filter of the stroke-scale path: window radius per unit of scale, and regularisation
# (larger eps keeps more of the stylisation, smaller follows the photo's edges more closely).
GUIDE_RADIUS_PER_SCALE = 1.0
GUIDE_EPS = 1e-3

# finish(stylized [3, h, w], original [3, h, w]) -> [3, h, w], all float in [0, 1].
Finish = Callable[[np.ndarray, np.ndarray], np.ndarray]
# Called between batches of tiles; raises to stop a run nobody waits for any more (the service).
Check = Callable[[], None]


def _nothing() -> None:
    return None


def _keep(stylized: np.ndarray, _original: np.ndarray) -> np.ndarray:
    return stylized


@dataclass(frozen=True)
class Tile:
    """One tile: the ``core`` it writes and the ``window`` (core plus overlap) it is computed on,
    each ``(y0, y1, x0, x1)``."""

    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]

    @property
    def shape(self) -> tuple[int, int]:
        y0, y1, x0, x1 = self.window
        return y1 - y0, x1 - x0

    def crop(self) -> tuple[slice, slice]:
        """Where the core lies inside the window."""
        (y0, y1, x0, x1), (wy0, _, wx0, _) = self.core, self.window
        return slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0)


def plan_tiles(height: int, width: int, tile: int, margin: int, align: int = 1) -> list[Tile]:
    """Cores of ``tile`` pixels (rounded up to ``align``) on a grid from the top left, each with a
    window of ``margin`` more pixels (rounded up to ``align``) on every side, clipped to the image.
    Every window starts on a multiple of ``align``."""
    tile = -(-max(tile, 1) // align) * align
    margin = -(-margin // align) * align
    tiles = []
    for y0 in range(0, height, tile):
        for x0 in range(0, width, tile):
            y1, x1 = min(y0 + tile, height), min(x0 + tile, width)
            window = (max(0, y0 - margin), min(height, y1 + margin), max(0, x0 - margin), min(width, x1 + margin))
            tiles.append(Tile((y0, y1, x0, x1), window))
    return tiles


def check_stroke_scale(value: float) -> float:
    if not (math.isfinite(value) and 1.0 <= value <= MAX_STROKE_SCALE):
        raise OptionError(f"stroke scale must be between 1 and {MAX_STROKE_SCALE:g}, got {value:g}")
    return float(value)


def check_tile_size(value: int | None) -> int | None:
    if value is not None and value != 0 and value < MIN_TILE_SIZE:
        raise OptionError(f"tile size must be 0 (never tile) or at least {MIN_TILE_SIZE}, got {value}")
    return value


def tile_size_for(model: StyleModel, height: int, width: int, tile_size: int | None = None) -> int | None:
    """The policy: the tile size to run an image with, or None to run it whole.

    ``tile_size`` None is automatic: tile images whose longer side is over :data:`THUMBNAIL_SIZE`
    with :data:`DEFAULT_TILE_SIZE` tiles; 0 never tiles; a size always tiles. Models without the
    frozen-statistics capability (exported before it, or not impasto's) always run whole.
    """
    if model.tiling is None or tile_size == 0:
        return None
    if tile_size is None:
        return DEFAULT_TILE_SIZE if max(height, width) > THUMBNAIL_SIZE else None
    return tile_size


def resize_rgb(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb, "RGB").resize((width, height), Image.Resampling.LANCZOS))


def thumbnail_stats(model: StyleModel, rgb: np.ndarray, weights: np.ndarray | None,
                    size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """``[1, K]`` statistics of every normalisation layer on the image's thumbnail."""
    height, width = rgb.shape[:2]
    target = longer_side_size(width, height, size)
    thumb = rgb if target == (width, height) else resize_rgb(rgb, *target)
    return model.norm_stats(to_array(thumb)[None], None if weights is None else weights[None])


def _batches(tiles: list[Tile], size: int) -> Iterator[list[Tile]]:
    """Tiles of equal window shape, ``size`` at a time (a batch never mixes shapes)."""
    groups: dict[tuple[int, int], list[Tile]] = {}
    for tile in tiles:
        groups.setdefault(tile.shape, []).append(tile)
    for group in groups.values():
        for i in range(0, len(group), size):
            yield group[i:i + size]


def stylize_tiles(model: StyleModel, rgb: np.ndarray, weights: np.ndarray | None, stats: np.ndarray | None,
                  tile: int, finish: Finish = _keep, batch: int = TILE_BATCH, *, margin: int | None = None,
                  out: np.ndarray | None = None, check: Check = _nothing) -> np.ndarray:
    """Stylise ``uint8 [H, W, 3]`` tile by tile with frozen ``stats`` into ``out`` (default: a new
    ``uint8`` image; a float32 ``[H, W, 3]`` one keeps the unrounded result).

    ``margin`` (default: the model's, its receptive radius) and ``stats`` None (each tile its own
    statistics: naive tiling, which shows seams) are for comparisons only.
    """
    if stats is not None and model.tiling is None:
        raise OptionError(f"model {model.name} cannot tile (export it again with `impasto export`)")
    height, width = rgb.shape[:2]
    out = np.empty_like(rgb) if out is None else out
    align = model.tiling.align if model.tiling else 1
    margin = (model.tiling.margin if model.tiling else 0) if margin is None else margin
    tiles = plan_tiles(height, width, tile, margin, align)
    groups = list(_batches(tiles, batch))
    for index, group in enumerate(groups):
        check()
        windows = np.stack([to_array(rgb[y0:y1, x0:x1]) for y0, y1, x0, x1 in (t.window for t in group)])
        run_weights = None if weights is None else np.tile(weights, (len(group), 1))
        # The last batch gives onnxruntime's memory back: a service's next request may be small.
        styled = model.run(windows, run_weights, stats, release_memory=index == len(groups) - 1)
        for t, window, result in zip(group, windows, styled):
            rows, cols = t.crop()
            y0, y1, x0, x1 = t.core
            done = finish(result[:, rows, cols], window[:, rows, cols])
            out[y0:y1, x0:x1] = to_uint8(done) if out.dtype == np.uint8 else done.transpose(1, 2, 0)
        del windows, styled
    return out


def stylize_whole(model: StyleModel, rgb: np.ndarray, weights: np.ndarray | None,
                  finish: Finish = _keep) -> np.ndarray:
    """The untiled run (the network's own statistics), as ``uint8``."""
    original = to_array(rgb)
    styled = model.run(original[None], None if weights is None else weights[None])[0]
    return to_uint8(finish(styled, original))


def stylize_image(model: StyleModel, rgb: np.ndarray, weights: np.ndarray | None, *,
                  finish: Finish = _keep, tile_size: int | None = None, stroke_scale: float = 1.0,
                  batch: int = TILE_BATCH, check: Check = _nothing) -> np.ndarray:
    """Stylise ``uint8 [H, W, 3]`` into ``uint8 [H, W, 3]`` by the tiling policy
    (:func:`tile_size_for`), with strokes ``stroke_scale`` times larger."""
    check_tile_size(tile_size)
    if check_stroke_scale(stroke_scale) > 1.0:
        return _stroke_scaled(model, rgb, weights, finish, tile_size, stroke_scale, batch, check)
    height, width = rgb.shape[:2]
    tile = tile_size_for(model, height, width, tile_size)
    if tile is None:
        return stylize_whole(model, rgb, weights, finish)
    stats = thumbnail_stats(model, rgb, weights)
    return stylize_tiles(model, rgb, weights, stats, tile, finish, batch, check=check)


def _stroke_scaled(model: StyleModel, rgb: np.ndarray, weights: np.ndarray | None, finish: Finish,
                   tile_size: int | None, scale: float, batch: int, check: Check) -> np.ndarray:
    """Stylise at ``1/scale``, up-sample, restore the photo's edges with a guided filter; the
    last two steps run tile by tile (the filter is local: ``2 r`` pixels of overlap suffice)."""
    height, width = rgb.shape[:2]
    small_w, small_h = max(1, round(width / scale)), max(1, round(height / scale))
    small = stylize_image(model, resize_rgb(rgb, small_w, small_h), weights, tile_size=tile_size, batch=batch,
                          check=check)
    small_img = Image.fromarray(small, "RGB")
    del small
    radius = max(1, round(GUIDE_RADIUS_PER_SCALE * scale))
    out = np.empty_like(rgb)
    sx, sy = small_w / width, small_h / height
    for t in plan_tiles(height, width, tile_size or DEFAULT_TILE_SIZE, 2 * radius):
        check()
        y0, y1, x0, x1 = t.window
        # The window's part of the whole up-sampled image (PIL resamples a box of the source).
        up = small_img.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC,
                              box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy))
        photo = to_array(rgb[y0:y1, x0:x1])
        restored = np.clip(guided_filter(luminance(photo), to_array(up), radius, GUIDE_EPS), 0.0, 1.0)
        rows, cols = t.crop()
        cy0, cy1, cx0, cx1 = t.core
        out[cy0:cy1, cx0:cx1] = to_uint8(finish(restored[:, rows, cols], photo[:, rows, cols]))
    return out
