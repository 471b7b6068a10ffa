"""Maximally activating patches (Girshick et al. 2014; Springenberg et al. 2015): for one channel
of a layer, the image regions (receptive fields) where it responds most over an image set."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from impasto.models.analysis.errors import AnalysisError
from impasto.models.analysis.filters import ActivationMaps
from impasto.models.analysis.receptive_field import ReceptiveField, receptive_field


@dataclass(frozen=True)
class Patch:
    image: int                          # index into the image batch
    y: int                              # unit position in the layer's map
    x: int
    value: float                        # activation
    box: tuple[int, int, int, int]      # receptive field (top, left, bottom, right) in pixels


def crop(image: torch.Tensor, box: tuple[int, int, int, int], fill: float = 0.5) -> torch.Tensor:
    """The ``box`` of a ``[3, H, W]`` image; parts outside the image (padding) are ``fill``."""
    top, left, bottom, right = box
    h, w = image.shape[-2:]
    pad = (max(0, -left), max(0, right - w), max(0, -top), max(0, bottom - h))
    padded = F.pad(image, pad, value=fill)
    return padded[:, top + pad[2]:bottom + pad[2], left + pad[0]:right + pad[0]]


class MaxActivatingPatches:
    def __init__(self, model: nn.Module, layer: str | nn.Module):
        self.model, self.layer = model, layer
        self.maps = ActivationMaps(model, layer)

    def receptive_field(self, image_size) -> ReceptiveField:
        return receptive_field(self.model, self.layer, tuple(image_size))

    def __call__(self, images: torch.Tensor, channels=None, *, k: int = 8, per_image: int = 2,
                 batch_size: int = 16) -> dict[int, list[Patch]]:
        """Top-``k`` patches per channel (default: the 8 channels with the highest peak), at most
        ``per_image`` from one image and not centred inside an already chosen patch's central half."""
        acts = torch.cat([self.maps(images[s:s + batch_size], normalize=False)
                          for s in range(0, images.shape[0], batch_size)])
        n, c, h, w = acts.shape
        if channels is None:
            channels = acts.amax((0, 2, 3)).topk(min(8, c)).indices.tolist()
        bad = [ch for ch in channels if not 0 <= ch < c]
        if bad:
            raise AnalysisError(f"channel(s) {bad} out of range: the layer has {c}")
        rf = self.receptive_field(images.shape[-2:])
        min_sep = (rf.size[0] / 2 / rf.jump[0], rf.size[1] / 2 / rf.jump[1])  # in units
        result = {}
        for ch in channels:
            order = acts[:, ch].flatten().argsort(descending=True)
            chosen: list[Patch] = []
            for flat in order.tolist():
                i, rem = divmod(flat, h * w)
                y, x = divmod(rem, w)
                same = [p for p in chosen if p.image == i]
                if len(same) >= per_image or any(abs(p.y - y) < min_sep[0] and abs(p.x - x) < min_sep[1] for p in same):
                    continue
                chosen.append(Patch(i, y, x, float(acts[i, ch, y, x]), rf.box(y, x)))
                if len(chosen) == k:
                    break
            result[ch] = chosen
        return result
