"""One stylisation request from bytes to bytes: decode, select, batch, post-process, encode.

CPU-heavy steps (decoding, resizing, encoding) run in worker threads so the event loop keeps
accepting requests; inference goes through the model's :class:`~impasto.serving.batching.Batcher`.
Strength, colour preservation and encoding are :class:`~impasto.core.request.OutputControls`, as
in ``impasto stylize``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from starlette.concurrency import run_in_threadpool

from impasto.core import imageio
from impasto.core.request import OutputControls
from impasto.serving.batching import Batcher
from impasto.serving.catalog import Catalog, Selection
from impasto.serving.settings import Settings


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


class Stylizer:
    def __init__(self, settings: Settings, catalog: Catalog, batchers: dict[str, Batcher]):
        self.settings, self.catalog, self.batchers = settings, catalog, batchers

    def _decode(self, data: bytes, max_size: int) -> np.ndarray:
        img = imageio.open_image(data, max_pixels=self.settings.max_pixels,
                                 formats=tuple(self.settings.input_formats))
        return imageio.to_array(imageio.resize_longer(img, max_size))

    async def stylize(self, data: bytes, options: StylizeOptions) -> StylizeResult:
        # Cheap checks first: bad options and styles are refused before any decoding.
        controls = OutputControls(options.strength, options.preserve_color)
        selection = self.catalog.select(options.style, options.model)
        model = selection.model
        original = await run_in_threadpool(self._decode, data, options.max_size or self.settings.default_max_size)
        _, height, width = original.shape
        weights, mode = controls.network_weights(model, selection.weights)
        result = await self.batchers[model.name].submit(original, weights)
        body, content_type = await run_in_threadpool(controls.encode, result.output, original, mode, options.format)
        return StylizeResult(body, content_type, width, height, selection, result.batch_size,
                             result.inference_s * 1000.0, mode)
