"""One stylisation request from bytes to bytes: decode, select, batch, post-process, encode.

CPU-heavy steps (decoding, resizing, encoding) run in worker threads so the event loop keeps
accepting requests; inference goes through the model's :class:`~impasto.serving.batching.Batcher`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from starlette.concurrency import run_in_threadpool

from impasto.core import imageio, postprocess
from impasto.serving.batching import Batcher
from impasto.serving.catalog import Catalog, Selection
from impasto.serving.settings import Settings

# The networks reflection-pad by up to 4 pixels and downsample twice; smaller inputs are
# edge-padded to this size for inference and cropped back, so thin or tiny images still work.
MIN_SIDE = 32


@dataclass
class StylizeOptions:
    style: str | None = None
    model: str | None = None
    strength: float = 1.0
    max_size: int | None = None
    preserve_color: bool = False
    format: str = "png"


@dataclass
class StylizeResult:
    body: bytes
    content_type: str
    width: int
    height: int
    selection: Selection
    batch_size: int
    inference_ms: float
    strength_mode: str


def pad_to_min(image: np.ndarray, min_side: int = MIN_SIDE) -> np.ndarray:
    _, h, w = image.shape
    if h >= min_side and w >= min_side:
        return image
    return np.pad(image, ((0, 0), (0, max(0, min_side - h)), (0, max(0, min_side - w))), mode="edge")


class Stylizer:
    def __init__(self, settings: Settings, catalog: Catalog, batchers: dict[str, Batcher]):
        self.settings, self.catalog, self.batchers = settings, catalog, batchers

    def _decode(self, data: bytes, max_size: int) -> np.ndarray:
        img = imageio.open_image(data, max_pixels=self.settings.max_pixels,
                                 formats=tuple(self.settings.input_formats))
        return imageio.to_array(imageio.limit_size(img, max_size))

    @staticmethod
    def _finish(stylized: np.ndarray, original: np.ndarray, options: StylizeOptions, fade: bool):
        if fade:
            stylized = postprocess.fade(stylized, original, options.strength)
        if options.preserve_color:
            stylized = postprocess.preserve_color(stylized, original)
        return imageio.encode(imageio.from_array(stylized), options.format)

    async def stylize(self, data: bytes, options: StylizeOptions) -> StylizeResult:
        selection = self.catalog.select(options.style, options.model)  # cheap: refuse bad styles first
        model = selection.model
        original = await run_in_threadpool(self._decode, data, options.max_size or self.settings.default_max_size)
        _, height, width = original.shape

        weights, mode = selection.weights, "none"
        if options.strength < 1.0:
            if weights is not None and model.identity_style in model.style_names:
                weights = postprocess.identity_mix(weights, model.style_names.index(model.identity_style),
                                                   options.strength)
                mode = "identity"
            else:
                mode = "pixel"
        result = await self.batchers[model.name].submit(pad_to_min(original), weights)
        stylized = result.output[:, :height, :width]
        body, content_type = await run_in_threadpool(self._finish, stylized, original, options, mode == "pixel")
        return StylizeResult(body, content_type, width, height, selection, result.batch_size,
                             result.inference_s * 1000.0, mode)


