"""Matplotlib figures in the layouts of the lecture slides.

Built with the object-oriented API (:class:`matplotlib.figure.Figure`), which needs neither pyplot
nor a display: the process's backend and pyplot's figure list are left alone, so the figures work
inside notebooks and GUI programs as well as on headless machines. Import this module only where
a figure is drawn; it is what pulls in matplotlib.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage


def to_hwc(image) -> np.ndarray:
    """``[3, H, W]`` tensor / ``[H, W, 3]`` array / ``[H, W]`` -> numpy for ``imshow``."""
    arr = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    return arr


def normalize_map(m) -> np.ndarray:
    m = to_hwc(m).astype(np.float64)
    lo, hi = m.min(), m.max()
    return (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)


def gradient_to_rgb(grad) -> np.ndarray:
    """Signed input gradients as an image: centred on grey, scaled by a high percentile so a few
    extreme pixels don't wash the rest out (the usual guided-backprop rendering)."""
    g = to_hwc(grad).astype(np.float64)
    scale = np.percentile(np.abs(g), 99.5) or 1.0
    return np.clip(0.5 + 0.5 * g / scale, 0, 1)


@dataclass
class Panel:
    title: str
    data: object                 # RGB image, or a 2-D map
    kind: str = "rgb"            # "rgb" | "map" | "overlay"
    under: object = None         # the RGB image an overlay is drawn on
    cmap: str = "jet"


def _draw(ax, p: Panel):
    if p.kind == "map":
        ax.imshow(normalize_map(p.data), cmap=p.cmap if p.cmap != "jet" else "gray")
    elif p.kind == "overlay":
        ax.imshow(np.clip(to_hwc(p.under), 0, 1))
        ax.imshow(normalize_map(p.data), cmap=p.cmap, alpha=0.5)
    else:
        ax.imshow(np.clip(to_hwc(p.data), 0, 1), cmap="gray" if to_hwc(p.data).ndim == 2 else None)
    ax.set_title(p.title, fontsize=9)
    ax.axis("off")


def panels_figure(rows: Sequence[Sequence[Panel]], title: str = "", panel_size: float = 2.6):
    """One row of panels per image (original, map, overlay, ...)."""
    nrows, ncols = len(rows), max(len(r) for r in rows)
    fig = Figure(figsize=(max(panel_size * ncols, 5.0), panel_size * nrows + 0.4))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for r, row in enumerate(rows):
        for c in range(ncols):
            if c < len(row):
                _draw(axes[r][c], row[c])
            else:
                axes[r][c].axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def grid_figure(tiles: Sequence, ncols: int, title: str = "", tile_size: float = 0.7,
                row_labels: Sequence[str] | None = None, tile_titles: Sequence[str] | None = None, cmap="gray"):
    """A grid of small images (filters, activation maps, patches), no gaps, optional row labels."""
    nrows = max(1, -(-len(tiles) // ncols))
    fig = Figure(figsize=(tile_size * ncols + (1.2 if row_labels else 0.2), tile_size * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        if i < len(tiles):
            arr = to_hwc(tiles[i])
            ax.imshow(np.clip(arr, 0, 1), cmap=cmap if arr.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
            if tile_titles:
                ax.set_title(tile_titles[i], fontsize=6, pad=2)
    if row_labels:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    top = 1 - 0.45 / fig.get_figheight() if title else 1
    fig.tight_layout(pad=0.3, h_pad=0.2 if not tile_titles else 0.6, w_pad=0.2, rect=(0, 0, 1, top))
    return fig


def scatter_thumbnails(coords: np.ndarray, images: Sequence, labels: Sequence[str] = (), title: str = "",
                       zoom: float = 0.35):
    """2-D embedding with each point drawn as its image (the lecture's t-SNE picture)."""
    fig = Figure(figsize=(9, 8))
    ax = fig.subplots()
    ax.scatter(coords[:, 0], coords[:, 1], s=4, alpha=0.3)
    for i, (xy, img) in enumerate(zip(coords, images)):
        ab = AnnotationBbox(OffsetImage(np.clip(to_hwc(img), 0, 1), zoom=zoom), xy, frameon=True, pad=0.1)
        ax.add_artist(ab)
        if labels:  # below the thumbnail: half its height in points (72 per inch, 100 dpi) + a gap
            below = to_hwc(img).shape[0] * zoom * 0.72 / 2 + 6
            ax.annotate(labels[i], xy, xytext=(0, -below), textcoords="offset points", ha="center",
                        va="top", fontsize=6)
    span = coords.max(0) - coords.min(0)
    margin = 0.12 * np.where(span > 0, span, 1)
    ax.set_xlim(coords[:, 0].min() - margin[0], coords[:, 0].max() + margin[0])
    ax.set_ylim(coords[:, 1].min() - margin[1], coords[:, 1].max() + margin[1])
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def neighbors_figure(images: Sequence, names: Sequence[str], queries: Sequence[int],
                     pixel_nn, feature_nn, title: str = ""):
    """Per query row: the query, its pixel-space neighbours, then its feature-space neighbours."""
    k = pixel_nn.shape[1]
    ncols = 1 + 2 * k
    fig = Figure(figsize=(1.5 * ncols + 0.4, 1.6 * len(queries) + 0.6))
    axes = fig.subplots(len(queries), ncols, squeeze=False)
    for r, q in enumerate(queries):
        cells = [(q, f"query\n{names[q]}")] + [(int(j), names[int(j)]) for j in pixel_nn[r]] \
            + [(int(j), names[int(j)]) for j in feature_nn[r]]
        for c, (idx, label) in enumerate(cells):
            ax = axes[r][c]
            ax.imshow(np.clip(to_hwc(images[idx]), 0, 1))
            ax.set_title(label, fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "black" if c == 0 else ("tab:orange" if c <= k else "tab:blue")
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2)
    # Column headers as figure text: annotations outside the axes would make tight_layout shrink them.
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=1 - 0.75 / fig.get_figheight(),
                        wspace=0.08, hspace=0.35)
    header_y = 1 - 0.45 / fig.get_figheight()
    left_of = lambda c: axes[0][c].get_position().x0  # noqa: E731
    fig.text(left_of(1), header_y, "pixel space (L2)", fontsize=9, color="tab:orange")
    fig.text(left_of(1 + k), header_y, "feature space (L2, penultimate layer)", fontsize=9, color="tab:blue")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def sized_figure(images: Sequence[torch.Tensor], titles: Sequence[str], title: str = "", *, height: float = 3.2,
                 max_width: float = 16.0):
    """One row of images drawn at their relative pixel sizes (a 2x texture looks 2x larger)."""
    widths = [int(x.shape[-1]) for x in images]
    tallest = max(int(x.shape[-2]) for x in images)
    fig_w = min(max_width, height * sum(widths) / tallest + 0.3)
    fig = Figure(figsize=(fig_w, fig_w * tallest / sum(widths) + 1.0))
    axes = fig.subplots(1, len(images), width_ratios=widths, squeeze=False)
    for ax, x, t in zip(axes[0], images, titles):
        ax.imshow(np.clip(to_hwc(x[0] if x.dim() == 4 else x), 0, 1), extent=(0, x.shape[-1], x.shape[-2], 0))
        ax.set_xlim(0, x.shape[-1])
        ax.set_ylim(tallest, 0)  # top-aligned, at the same pixel scale as the tallest image
        ax.set_title(t, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if title else 1))  # keep the suptitle clear of two-line titles
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
