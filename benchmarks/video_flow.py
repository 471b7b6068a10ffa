"""A real clip for the flicker benchmark: its frames and OpenCV Farnebäck flow between them.

The motion of a real clip is estimated, not known: backward flow from frame ``t+1`` to frame ``t``
says where each pixel of ``t+1`` lies in ``t`` (the :class:`~benchmarks.clips.Grid` the warping
error needs), and forward flow from ``t`` to ``t+1`` checks it. A pixel is occluded (left out of
the error) where the two disagree, by the forward-backward test of Ruder et al. 2016 ("Artistic
style transfer for videos"): ``|b + f(p + b)|² > 0.01 (|b|² + |f(p + b)|²) + 0.5``, or where the
backward flow points outside frame ``t``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.clips import Clip, ClipError, Grid, inside, pixel_grid, sample_bilinear
from impasto.core.errors import ImageError
from impasto.core.imageio import is_image_file, open_image, resize_longer

# OpenCV's own example settings for dense Farnebäck flow (samples/python/opt_flow.py).
FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _cv2():
    try:
        import cv2
    except ImportError:
        raise ClipError("--video needs OpenCV: pip install 'impasto[analysis]'") from None
    return cv2


def read_frames(source: str | Path, size: int, max_frames: int) -> np.ndarray:
    """Up to ``max_frames`` frames of a video file (OpenCV) or of a folder of images (sorted by
    name), longer side resized to ``size``: ``[T, H, W, 3]`` float32 in [0, 1]."""
    path = Path(source).expanduser()
    pils: list[Image.Image] = []
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if is_image_file(p))[:max_frames]
        try:
            pils = [open_image(p) for p in files]
        except ImageError as err:
            raise ClipError(str(err)) from None
    elif path.is_file():
        cv2 = _cv2()
        capture = cv2.VideoCapture(str(path))
        try:
            while capture.isOpened() and len(pils) < max_frames:
                ok, frame = capture.read()
                if not ok:
                    break
                pils.append(Image.fromarray(np.ascontiguousarray(frame[:, :, ::-1])))  # BGR -> RGB
        finally:
            capture.release()
    else:
        raise ClipError(f"video not found: {path}")
    if len(pils) < 2:
        raise ClipError(f"{path}: need at least 2 readable frames, got {len(pils)}")
    frames = [np.asarray(resize_longer(p, size, upscale=True), dtype=np.float32) / 255 for p in pils]
    if any(f.shape != frames[0].shape for f in frames):
        raise ClipError(f"{path}: frames differ in size")
    return np.stack(frames)


def _gray(frame: np.ndarray) -> np.ndarray:
    cv2 = _cv2()
    return cv2.cvtColor(np.round(frame * 255).astype(np.uint8), cv2.COLOR_RGB2GRAY)


def flow_grid(previous: np.ndarray, current: np.ndarray) -> Grid:
    """Where each pixel of ``current`` (frame t+1) lies in ``previous`` (frame t), by Farnebäck
    flow, with occluded and out-of-frame pixels marked invalid."""
    cv2 = _cv2()
    prev_gray, cur_gray = _gray(previous), _gray(current)
    # calcOpticalFlowFarneback(a, b) gives f with a(p) ~ b(p + f(p)).
    backward = cv2.calcOpticalFlowFarneback(cur_gray, prev_gray, None, **FARNEBACK).astype(np.float64)
    forward = cv2.calcOpticalFlowFarneback(prev_gray, cur_gray, None, **FARNEBACK).astype(np.float64)
    height, width = cur_gray.shape
    xs, ys = pixel_grid(width, height)
    x, y = xs + backward[..., 0], ys + backward[..., 1]
    forward_there = sample_bilinear(forward, x, y)
    both = backward + forward_there
    consistent = (np.square(both).sum(-1)
                  <= 0.01 * (np.square(backward).sum(-1) + np.square(forward_there).sum(-1)) + 0.5)
    return Grid(x, y, inside(x, y, width, height) & consistent)


def video_clip(source: str | Path, size: int, max_frames: int) -> Clip:
    frames = read_frames(source, size, max_frames)
    grids = [flow_grid(frames[t], frames[t + 1]) for t in range(len(frames) - 1)]
    return Clip(f"video: {Path(source).name}", frames, grids)
