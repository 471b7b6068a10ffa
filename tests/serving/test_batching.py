"""The batcher on its own: batched outputs equal single runs, sizes never mix, the queue is bounded."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from impasto.core.model import StyleModel
from impasto.serving.batching import Batcher, QueueFull
from tests.serving.helpers import GatedModel


@pytest.fixture(scope="module")
def trio(model_dir):
    return StyleModel(model_dir / "trio.onnx", device="cpu", threads=1)


def _inputs(n: int, shapes, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        h, w = shapes[i % len(shapes)]
        weights = rng.random(3).astype(np.float32)
        weights[rng.integers(0, 3)] = 0.0  # blends of two styles and a few pure ones
        if i % 3 == 0:
            weights = np.eye(3, dtype=np.float32)[i % 3]
        items.append((rng.random((3, h, w), dtype=np.float32), weights / weights.sum()))
    return items


async def _submit_all(batcher: Batcher, items):
    batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(image, weights) for image, weights in items))
    finally:
        await batcher.stop()


def test_batched_results_equal_single_runs_and_sizes_never_mix(trio):
    model = GatedModel(trio)
    items = _inputs(11, [(40, 40), (33, 50), (40, 41)])
    batcher = Batcher("trio", model.run, max_batch_size=8, max_wait_s=0.2, max_queue=64)
    results = asyncio.run(_submit_all(batcher, items))
    assert sorted(s[0] for s in model.shapes) == [3, 4, 4]  # one batch per size, all requests in it
    assert all(r.batch_size > 1 for r in results)
    for (image, weights), result in zip(items, results):
        single = trio.run(image[None], weights[None])[0]
        assert result.output.shape == image.shape
        assert np.abs(result.output - single).max() < 1e-4


def test_max_batch_size_splits_a_group(trio):
    model = GatedModel(trio)
    items = _inputs(10, [(32, 32)])
    batcher = Batcher("trio", model.run, max_batch_size=4, max_wait_s=0.2, max_queue=64)
    results = asyncio.run(_submit_all(batcher, items))
    assert [s[0] for s in model.shapes] == [4, 4, 2]
    assert [r.batch_size for r in results] == [4] * 8 + [2] * 2


def test_batching_off_runs_one_by_one(trio):
    model = GatedModel(trio)
    batcher = Batcher("trio", model.run, max_batch_size=1, max_wait_s=0.0, max_queue=64)
    results = asyncio.run(_submit_all(batcher, _inputs(5, [(32, 32)])))
    assert [s[0] for s in model.shapes] == [1] * 5 and {r.batch_size for r in results} == {1}


def test_full_queue_refuses_and_a_cancelled_request_frees_its_slot(trio):
    model = GatedModel(trio)
    (a, wa), (b, wb), (c, wc), (d, wd) = _inputs(4, [(32, 32)])

    async def scenario():
        batcher = Batcher("trio", model.run, max_batch_size=8, max_wait_s=0.0, max_queue=2)
        batcher.start()
        model.gate.clear()
        first = asyncio.create_task(batcher.submit(a, wa))
        await asyncio.to_thread(model.entered.wait, 10)  # `a` is running, the queue is empty
        second = asyncio.create_task(batcher.submit(b, wb))
        third = asyncio.create_task(batcher.submit(c, wc))
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        with pytest.raises(QueueFull):
            await batcher.submit(d, wd)
        third.cancel()  # e.g. its request timed out
        await asyncio.gather(third, return_exceptions=True)
        assert batcher.depth == 1
        fourth = asyncio.create_task(batcher.submit(d, wd))
        model.gate.set()
        done = await asyncio.gather(first, second, fourth)
        await batcher.stop()
        return done

    results = asyncio.run(scenario())
    assert [s[0] for s in model.shapes] == [1, 2]  # b and d batched together after a; c never ran
    for (image, weights), result in zip([(a, wa), (b, wb), (d, wd)], results):
        assert np.abs(result.output - trio.run(image[None], weights[None])[0]).max() < 1e-4


def test_a_failing_model_fails_every_request_of_its_batch():
    def broken(images, weights):
        raise RuntimeError("onnxruntime exploded")

    batcher = Batcher("broken", broken, max_batch_size=4, max_wait_s=0.05, max_queue=8)
    items = _inputs(3, [(32, 32)])

    async def scenario():
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(i, w) for i, w in items), return_exceptions=True)
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert all(isinstance(r, RuntimeError) for r in results)
