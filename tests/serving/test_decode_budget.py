"""Decoding is paid for before it starts: declared-huge uploads, thin strips, the decode budget,
JPEG draft decoding, memory errors and timed-out work."""
from __future__ import annotations

import asyncio
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from benchmarks.attack import jpeg_declaring, png_strip
from impasto.core import imageio
from impasto.serving.app import create_app
from impasto.serving.batching import Batcher
from tests.serving.helpers import app_client, make_settings, png_bytes, wait_until
from tests.serving.test_bad_input import png_bomb


def post(client, data: bytes, content_type: str = "image/png", **params):
    return client.post("/v1/stylize", params=params, content=data, headers={"content-type": content_type})


def assert_json_error(r, status: int, error: str, detail: str = "") -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == error and detail in body["detail"], body


def jpeg(width: int, height: int) -> bytes:
    return png_bytes(width, height, fmt="JPEG")


def test_a_tiny_jpeg_declaring_7000x7000_is_refused_as_truncated_not_answered_grey(client):
    bomb = jpeg_declaring(7000, 7000)
    assert len(bomb) < 1000
    start = time.perf_counter()
    r = post(client, bomb, "image/jpeg")
    assert time.perf_counter() - start < 0.5  # decoding 49 megapixels takes over a second
    assert_json_error(r, 400, "invalid_image", "632 bytes cannot hold 7000x7000 pixels")


def test_a_tiny_png_declaring_7000x7000_is_refused_before_decoding(client):
    assert_json_error(post(client, png_bomb(7000, 7000)), 400, "invalid_image", "cannot hold 7000x7000 pixels")


def test_arithmetic_coded_jpeg_is_refused():
    data = bytearray(jpeg(32, 32))
    data[data.index(b"\xff\xc0") + 1] = 0xC9  # the same frame, declared arithmetic-coded
    with pytest.raises(imageio.ImageError, match="arithmetic-coded JPEG not accepted"):
        imageio.open_header(bytes(data))


def test_real_images_pass_the_completeness_check():
    for data in (jpeg(2000, 1500), png_bytes(2000, 1500), png_strip(3000, 3000)):
        assert imageio.open_header(data).size in ((2000, 1500), (3000, 3000))


def test_a_25_million_by_2_strip_is_refused_before_decoding(client):
    strip = png_strip(25_000_000, 2)
    start = time.perf_counter()
    r = post(client, strip)
    assert time.perf_counter() - start < 0.5  # decoding it took 7.7 s
    assert_json_error(r, 400, "invalid_image", "too thin")


def test_a_thin_but_ordinary_image_still_works(client):
    r = post(client, png_bytes(3, 200))
    assert r.status_code == 200, r.text
    assert r.headers["X-Image-Size"] == "3x200" and Image.open(io.BytesIO(r.content)).size == (3, 200)


def test_the_aspect_ratio_limit_is_a_setting(model_dir):
    with app_client(create_app(make_settings(model_dir, max_aspect_ratio=4))) as c:
        assert_json_error(post(c, png_bytes(50, 10)), 400, "invalid_image", "at most 4 times")
        assert post(c, png_bytes(40, 10)).status_code == 200


def test_draft_decoding_shrinks_big_jpegs_before_decoding():
    img = imageio.open_header(jpeg(2000, 1500))
    assert imageio.draft_for(img, 256) == (500, 375)  # 1/4 scale: still at least 256 on the longer side
    start = time.perf_counter()
    assert imageio.load_rgb(img).size == (500, 375)
    assert time.perf_counter() - start < 0.1
    small = imageio.open_header(jpeg(500, 400))
    assert imageio.draft_for(small, 256) == (500, 400)  # under twice the target: full size
    assert imageio.draft_for(imageio.open_header(png_bytes(2000, 1500)), 256) == (2000, 1500)  # PNG has no draft


def test_a_big_jpeg_fits_a_budget_its_full_decode_would_not(model_dir):
    # 3 megapixels decoded in full, 187 500 at 1/4 scale: only the draft fits a 1-megapixel budget.
    with app_client(create_app(make_settings(model_dir, decode_budget_pixels=1_000_000))) as c:
        r = post(c, jpeg(2000, 1500), "image/jpeg", max_size=256)
        assert r.status_code == 200, r.text
        assert r.headers["X-Image-Size"] == "256x192"
        assert_json_error(post(c, png_bytes(2000, 1500), max_size=256), 400, "invalid_image", "decode budget")
        assert c.app.state.service.stylizer.budget.used == 0


def test_over_the_decode_budget_answers_503_at_once_and_pixels_come_back(model_dir):
    with app_client(create_app(make_settings(model_dir, decode_budget_pixels=10_000, retry_after_s=2))) as c:
        budget = c.app.state.service.stylizer.budget
        held = budget.reserve(8_000, "other requests")  # what requests in flight hold
        start = time.perf_counter()
        r = post(c, png_bytes(64, 64))  # 4096 more pixels than the budget has left
        assert time.perf_counter() - start < 0.5
        assert_json_error(r, 503, "overloaded", "decode budget")
        assert r.headers["Retry-After"] == "2"
        held.drop()
        assert post(c, png_bytes(64, 64)).status_code == 200
        assert budget.used == 0
        assert 'impasto_rejected_total{model="solo"} 1.0' in c.get("/metrics").text


@pytest.fixture(scope="module")
def slow_client(model_dir):
    with app_client(create_app(make_settings(model_dir, request_timeout_s=0.2))) as c:
        yield c


def test_memory_errors_are_503_not_500(slow_client, monkeypatch):
    def no_memory(img):
        raise MemoryError

    monkeypatch.setattr(imageio, "load_rgb", no_memory)
    r = post(slow_client, png_bytes(32, 32))
    assert_json_error(r, 503, "overloaded", "not enough memory")
    assert r.headers["Retry-After"] == "1"
    assert slow_client.app.state.service.stylizer.budget.used == 0


def test_a_timed_out_request_stops_its_work_and_its_pixels_return_when_its_thread_ends(slow_client, monkeypatch):
    decoding, resized = threading.Event(), []
    load_rgb = imageio.load_rgb

    def slow_load(img):
        decoding.set()
        time.sleep(0.6)
        return load_rgb(img)

    monkeypatch.setattr(imageio, "load_rgb", slow_load)
    monkeypatch.setattr(imageio, "resize_longer", lambda *a, **k: resized.append(1))
    budget = slow_client.app.state.service.stylizer.budget
    start = time.perf_counter()
    r = post(slow_client, png_bytes(64, 48))
    assert time.perf_counter() - start < 0.5  # answered at the timeout, not when decoding ends
    assert_json_error(r, 504, "timeout")
    assert decoding.is_set() and budget.used == 64 * 48  # the thread still holds what it decodes
    wait_until(lambda: budget.used == 0, timeout=3)
    time.sleep(0.05)
    assert resized == []  # the stages after the decode were skipped


def test_the_batcher_never_runs_a_request_cancelled_before_its_batch_is_taken():
    runs: list[int] = []

    def run(images, weights):
        runs.append(len(images))
        return images

    async def scenario():
        batcher = Batcher("m", run, max_batch_size=8, max_wait_s=60, max_queue=8)
        batcher.start()
        kept = asyncio.create_task(batcher.submit(np.zeros((3, 8, 8), np.float32)))
        dropped = asyncio.create_task(batcher.submit(np.ones((3, 8, 8), np.float32)))
        await asyncio.sleep(0.01)
        assert batcher.depth == 2
        # Cancelling cancels the request's future at once; its task removes the item only when it
        # next runs. A batch taken in between must leave it out.
        dropped.cancel()
        batch = batcher._take_ready(float("inf"))
        assert batch is not None and len(batch) == 1 and batcher.depth == 0
        await batcher._dispatch(batch)
        result = await kept
        await asyncio.gather(dropped, return_exceptions=True)
        assert batcher.depth == 0  # the cancelled task's own clean-up does not count it twice
        await batcher.stop()
        return result

    result = asyncio.run(scenario())
    assert runs == [1] and result.batch_size == 1 and not result.output.any()


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_transparency_is_composited_on_white_with_one_copy(mode):
    rng = np.random.default_rng(1)
    rgba = Image.fromarray(rng.integers(0, 256, (64, 64, 4), dtype=np.uint8), "RGBA").convert(mode)
    expected = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba.convert("RGBA")).convert("RGB")
    assert np.array_equal(np.asarray(imageio.to_rgb(rgba)), np.asarray(expected))
