"""Cross-request batching: concurrent requests for one model share one onnxruntime call.

Requests are grouped by image shape, so a batch never mixes sizes (no padding, so no sample can
leak into another through instance-norm statistics or borders); each sample carries its own
``style_weights`` row, so different styles and blends share a batch. A group is dispatched when it
is full or when its oldest request has waited ``max_wait_s``. Inference runs on a one-thread
executor per model (onnxruntime parallelises inside the call), off the event loop. The queue of
requests not yet dispatched is bounded: :class:`QueueFull` lets the caller answer 503 at once
instead of letting memory grow.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, cast

import numpy as np

RunFn = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]


class Overloaded(Exception):
    """The service cannot take this request now (answered 503 with Retry-After); ``model`` labels
    the rejection."""

    def __init__(self, model: str, message: str):
        super().__init__(message)
        self.model = model


class QueueFull(Overloaded):
    """The model's queue holds ``max_queue`` requests already."""

    def __init__(self, model: str, depth: int):
        super().__init__(model, f"model {model}: {depth} requests queued")


@dataclass
class BatchResult:
    output: np.ndarray  # [3, H, W]
    batch_size: int
    inference_s: float
    replica: str | None = None  # which replica ran it, when inference runs in another process (Ray)


class Submitter(Protocol):
    """What the request pipeline sends images to: a :class:`Batcher`, or a client of remote replicas
    (:mod:`impasto.serving.ray_app`) that each run one."""

    async def submit(self, image: np.ndarray, weights: np.ndarray | None = None) -> BatchResult: ...


@dataclass(eq=False)  # identity, not array comparison, when removing a cancelled item
class _Item:
    image: np.ndarray
    weights: np.ndarray | None
    future: asyncio.Future
    deadline: float
    key: tuple = field(init=False)

    def __post_init__(self):
        self.key = self.image.shape


class Batcher:
    """Per-model request queue and dispatcher; ``start()`` inside the running event loop."""

    def __init__(self, name: str, run: RunFn, *, max_batch_size: int = 8, max_wait_s: float = 0.005,
                 max_queue: int = 64, on_batch: Callable[[int, float], None] | None = None,
                 on_depth: Callable[[int], None] | None = None):
        self.name, self._run_fn = name, run
        self.max_batch_size, self.max_wait_s, self.max_queue = max_batch_size, max_wait_s, max_queue
        self._on_batch, self._on_depth = on_batch, on_depth
        self._groups: dict[tuple, list[_Item]] = {}  # insertion order = age of each group
        self._depth = 0
        self._wakeup = asyncio.Event()  # binds to the running loop on first use
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{name}")

    @property
    def depth(self) -> int:
        """Requests waiting to be dispatched (the one running is not counted)."""
        return self._depth

    @property
    def running(self) -> bool:
        """Started and its dispatch loop still alive (a replica's health check asks)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for items in self._groups.values():
            for item in items:
                if not item.future.done():
                    item.future.set_exception(RuntimeError("service shutting down"))
        self._groups.clear()
        self._set_depth(0)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, image: np.ndarray, weights: np.ndarray | None = None) -> BatchResult:
        """Queue one ``[3, H, W]`` image (+ ``[S]`` style weights); resolves with its own output."""
        if self._task is None:
            raise RuntimeError("batcher not started")
        if self._depth >= self.max_queue:
            raise QueueFull(self.name, self._depth)
        loop = asyncio.get_running_loop()
        item = _Item(image, weights, loop.create_future(), loop.time() + self.max_wait_s)
        self._groups.setdefault(item.key, []).append(item)
        self._set_depth(self._depth + 1)
        self._wakeup.set()
        try:
            return await item.future
        except asyncio.CancelledError:  # timed out or client gone: free its queue slot now
            self._discard(item)
            raise

    def _discard(self, item: _Item) -> None:
        group = self._groups.get(item.key)
        if group and item in group:
            group.remove(item)
            if not group:
                del self._groups[item.key]
            self._set_depth(self._depth - 1)

    def _drop_abandoned(self) -> None:
        """Forget requests whose future is already cancelled (timed out, client gone).

        Cancelling the waiting task cancels its future at once, but the task removes its item only
        when it next runs; a batch taken in between must not spend inference on it.
        """
        for item in [item for items in self._groups.values() for item in items if item.future.done()]:
            self._discard(item)

    def _set_depth(self, depth: int) -> None:
        self._depth = depth
        if self._on_depth:
            self._on_depth(depth)

    def _take_ready(self, now: float) -> list[_Item] | None:
        """The oldest group that is full or whose first request's wait is over."""
        self._drop_abandoned()
        for key, items in self._groups.items():
            if len(items) >= self.max_batch_size or items[0].deadline <= now:
                batch, rest = items[: self.max_batch_size], items[self.max_batch_size:]
                if rest:
                    self._groups[key] = rest
                else:
                    del self._groups[key]
                self._set_depth(self._depth - len(batch))
                return batch
        return None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            # Cleared before looking, so a submit() arriving after the look always wakes us.
            self._wakeup.clear()
            batch = self._take_ready(loop.time())
            if batch is not None:
                await self._dispatch(batch)
                continue
            timeout = None
            if self._groups:
                timeout = max(0.0, min(items[0].deadline for items in self._groups.values()) - loop.time())
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                pass

    def _infer(self, batch: list[_Item]) -> np.ndarray:
        # Stacking copies every image: done on the inference thread, not on the event loop.
        images = np.stack([item.image for item in batch])
        # One model's requests all carry weights (blendable) or none do.
        weights = None if batch[0].weights is None else np.stack([cast(np.ndarray, item.weights) for item in batch])
        return self._run_fn(images, weights)

    async def _dispatch(self, batch: list[_Item]) -> None:
        start = time.perf_counter()
        try:
            out = await asyncio.get_running_loop().run_in_executor(self._executor, self._infer, batch)
        except asyncio.CancelledError:  # shutting down mid-batch
            for item in batch:
                item.future.cancel()
            raise
        except Exception as err:  # the model failed: every request of the batch hears about it
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        elapsed = time.perf_counter() - start
        if self._on_batch:
            self._on_batch(len(batch), elapsed)
        for i, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result(BatchResult(out[i], len(batch), elapsed))
