"""One stylisation request from bytes to bytes: decode, select, batch, post-process, encode.

CPU-heavy steps (decoding, resizing, encoding) run in worker threads so the event loop keeps
accepting requests; inference goes through the model's :class:`~impasto.serving.batching.Batcher`.
What decoding will cost is known from the header and reserved from the
:class:`~impasto.serving.budget.PixelBudget` before any pixel is decoded (JPEGs decode at a reduced
scale when they are much larger than the size asked for). A request that stops waiting leaves its
worker thread to skip the stages it has not begun.
Strength, colour preservation and encoding are :class:`~impasto.core.request.OutputControls`, as
in ``impasto stylize``.
"""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import numpy as np
from PIL import Image
from starlette.concurrency import run_in_threadpool

from impasto.core import imageio, tiling
from impasto.core.errors import ImageError
from impasto.core.request import OutputControls
from impasto.serving.batching import Overloaded, Submitter
from impasto.serving.budget import PixelBudget, Reservation
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
    stroke_scale: float = 1.0


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
    replica: str | None = None


class Abandoned(Exception):
    """Raised in a worker thread whose request stopped waiting: the remaining stages are skipped."""


class Stylizer:
    def __init__(self, settings: Settings, catalog: Catalog, batchers: dict[str, Submitter]):
        self.settings, self.catalog, self.batchers = settings, catalog, batchers
        # One budget for every model of this process: decoded images share its memory.
        self.budget = PixelBudget(settings.decode_budget_pixels)

    def _open(self, data: bytes, max_size: int) -> tuple[Image.Image, int]:
        """The undecoded image, header limits checked, and the pixels decoding it will produce."""
        img = imageio.open_header(data, max_pixels=self.settings.max_pixels,
                                  formats=tuple(self.settings.input_formats),
                                  max_aspect_ratio=self.settings.max_aspect_ratio)
        width, height = imageio.draft_for(img, max_size)
        return img, width * height

    @staticmethod
    async def _in_stages(reservation: Reservation, value: Any, *stages: Callable[[Any], Any]) -> Any:
        """``stages`` applied one after another to ``value`` in a worker thread, which holds
        ``reservation`` while it runs.

        When the request stops waiting (timeout, client gone) the await ends at once and the
        thread skips the stages it has not started (Pillow cannot be interrupted inside one).
        """
        stop = threading.Event()

        def work() -> Any:
            result = value
            try:
                for stage in stages:
                    if stop.is_set():
                        raise Abandoned
                    result = stage(result)
                return result
            finally:
                reservation.drop()

        reservation.hold()
        try:
            return await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except asyncio.CancelledError:
            stop.set()
            raise

    async def stylize(self, data: bytes, options: StylizeOptions) -> StylizeResult:
        # Cheap checks first: bad options and styles are refused before any decoding.
        controls = OutputControls(options.strength, options.preserve_color)
        tiling.check_stroke_scale(options.stroke_scale)
        selection = self.catalog.select(options.style, options.model)
        model = selection.model
        max_size = options.max_size or self.settings.default_max_size
        try:
            img, pixels = await run_in_threadpool(self._open, data, max_size)
            if pixels > self.budget.capacity:
                raise ImageError(f"decoding this image takes {pixels} pixels, over the service's decode budget "
                                 f"of {self.budget.capacity}")
            reservation = self.budget.reserve(pixels, model.name)
            try:
                width, height = imageio.longer_side_size(img.width, img.height, max_size)
                if options.stroke_scale > 1.0 or tiling.tile_size_for(model, height, width):
                    return await self._large(reservation, img, max_size, controls, selection, options)
                def keep(array: np.ndarray) -> np.ndarray:  # the decoded original is garbage from here on
                    reservation.shrink(array.shape[1] * array.shape[2])
                    return array

                original = await self._in_stages(reservation, img, imageio.load_rgb,
                                                 lambda rgb: imageio.resize_longer(rgb, max_size),
                                                 imageio.to_array, keep)
                del img
                _, height, width = original.shape
                weights, mode = controls.network_weights(model, selection.weights)
                result = await self.batchers[model.name].submit(original, weights)
                body, content_type = await self._in_stages(
                    reservation, result.output, lambda out: controls.finish(out, original, mode),
                    imageio.from_array, lambda pil: imageio.encode(pil, options.format))
            finally:
                reservation.drop()
        except MemoryError:
            # Memory ran out under the limits above: the server is overloaded, not the input bad.
            raise Overloaded(model.name, "not enough memory for this request now") from None
        return StylizeResult(body, content_type, width, height, selection, result.batch_size,
                             result.inference_s * 1000.0, mode, result.replica)

    async def _large(self, reservation: Reservation, img: Image.Image, max_size: int, controls: OutputControls,
                     selection: Selection, options: StylizeOptions) -> StylizeResult:
        """Tiled (large images) or stroke-scaled requests: the image stays uint8 and its tiles go
        through onnxruntime in batches of their own, in a worker thread, outside the batcher, whose
        batches hold whole images of one size."""
        model = selection.model
        weights, mode = controls.network_weights(model, selection.weights)
        timing: dict[str, float] = {}
        gone = threading.Event()

        def check() -> None:  # a request that stopped waiting stops its remaining tiles
            if gone.is_set():
                raise Abandoned

        def stylize(rgb: np.ndarray) -> np.ndarray:
            start = time.perf_counter()
            out = tiling.stylize_image(model, rgb, weights, stroke_scale=options.stroke_scale, check=check,
                                       finish=lambda styled, original: controls.finish(styled, original, mode))
            timing["inference_s"] = time.perf_counter() - start
            return out

        try:
            out = await self._in_stages(reservation, img, imageio.load_rgb,
                                        lambda rgb: imageio.resize_longer(rgb, max_size), np.asarray, stylize)
        except asyncio.CancelledError:
            gone.set()
            raise
        del img
        height, width = out.shape[:2]
        body, content_type = await self._in_stages(
            reservation, out, lambda arr: Image.fromarray(arr, "RGB"), lambda pil: imageio.encode(pil, options.format))
        return StylizeResult(body, content_type, width, height, selection, 1, timing["inference_s"] * 1000.0, mode)
