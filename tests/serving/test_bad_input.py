"""Every class of bad input gets a 4xx with the JSON error body, never a 500."""
from __future__ import annotations

import io
import struct
import time
import zlib

import pytest
from PIL import Image

from impasto.serving.app import create_app
from tests.serving.helpers import app_client, png_bytes


def assert_error(r, status: int, error: str | None = None, detail: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"error", "detail"} and isinstance(body["detail"], str) and body["detail"]
    if error:
        assert body["error"] == error
    if detail:
        assert detail in body["detail"]
    return body


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A ~100-byte PNG whose header declares ``width`` x ``height`` (IHDR patched, CRC fixed)."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")  # length(4) type(4) data(13) crc(4); type starts at offset 12
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr: ihdr + 17])))
    return bytes(data)


def gif_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(buf, "GIF")
    return buf.getvalue()


def post(client, body: bytes | None = None, files=None, content_type="image/png", **params):
    if files is not None:
        return client.post("/v1/stylize", params=params, files=files)
    return client.post("/v1/stylize", params=params, content=body, headers={"content-type": content_type})


GOOD = png_bytes(32, 32)


@pytest.mark.parametrize("body, detail", [
    (b"", "no image"),
    (GOOD[: len(GOOD) // 2], "truncated"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image"),
    (b"definitely not an image", "not a readable image"),
    (gif_bytes(), "format GIF not accepted"),
], ids=["empty", "truncated", "corrupt-png", "garbage", "gif"])
def test_bad_images(client, body, detail):
    body = assert_error(post(client, body), 400, detail=detail)
    assert body["error"] in ("empty_body", "invalid_image")


@pytest.mark.parametrize("side, detail", [
    (50_000, "decompression bomb"),  # past Pillow's own hard limit: refused by Image.open
    (8_000, "8000x8000 is over the limit of 50000000 pixels"),  # under Pillow's, over the service's
])
def test_decompression_bomb_is_refused_from_the_header(client, side, detail):
    bomb = png_bomb(side, side)
    assert len(bomb) < 200
    start = time.perf_counter()
    r = post(client, bomb)
    assert time.perf_counter() - start < 2.0  # decoding 64 megapixels or more would take far longer
    assert_error(r, 400, "invalid_image", detail)


@pytest.mark.parametrize("params, status, error", [
    ({"style": "nope"}, 400, "invalid_style"),
    ({"style": "trio/nope"}, 400, "invalid_style"),
    ({"model": "nope"}, 400, "invalid_style"),
    ({"style": "ink", "model": "solo"}, 400, "invalid_style"),
    ({"style": "solo/wave,trio/ink"}, 400, "invalid_style"),
    ({"style": "ink:abc"}, 400, "invalid_style"),
    ({"style": "ink:"}, 400, "invalid_style"),
    ({"style": "wave:0,ink:0"}, 400, "invalid_style"),
    ({"style": "ink:-1"}, 400, "invalid_style"),
    ({"style": "ink:nan"}, 400, "invalid_style"),
    ({"style": "ink:inf"}, 400, "invalid_style"),
    ({"style": "wave:1,ink:1", "model": "solo"}, 400, "invalid_style"),
    ({"strength": -0.1}, 422, "invalid_parameters"),
    ({"strength": 1.5}, 422, "invalid_parameters"),
    ({"strength": "abc"}, 422, "invalid_parameters"),
    ({"strength": "nan"}, 422, "invalid_parameters"),
    ({"max_size": 0}, 422, "invalid_parameters"),
    ({"max_size": 10**9}, 422, "invalid_parameters"),
    ({"max_size": "big"}, 422, "invalid_parameters"),
    ({"format": "gif"}, 422, "invalid_parameters"),
    ({"preserve_color": "maybe"}, 422, "invalid_parameters"),
    ({"style": "x" * 3000}, 422, "invalid_parameters"),
])
def test_bad_parameters(client, params, status, error):
    assert_error(post(client, GOOD, **params), status, error)


def test_validation_errors_name_the_parameter(client):
    body = assert_error(post(client, GOOD, strength=2), 422)
    assert body["detail"].startswith("strength:")


def test_multipart_without_image_field(client):
    assert_error(post(client, files={"picture": ("a.png", GOOD, "image/png")}), 400, "bad_request", "'image'")


def test_multipart_text_field_instead_of_file(client):
    r = client.post("/v1/stylize", files={"image": (None, "not a file")})  # a multipart field without a file name
    assert r.request.headers["content-type"].startswith("multipart/form-data")
    assert_error(r, 400, "bad_request", "'image'")


def test_malformed_multipart(client):
    r = post(client, b"--xyz\r\ngarbage", content_type="multipart/form-data")  # no boundary parameter
    assert_error(r, 400, "bad_request", "multipart")


def test_unknown_route_and_wrong_method_are_json(client):
    assert_error(client.get("/v1/nothing"), 404, "not_found")
    assert_error(client.get("/v1/stylize"), 405, "method_not_allowed")


@pytest.fixture(scope="module")
def small_upload_client(model_dir):
    from tests.serving.helpers import make_settings

    with app_client(create_app(make_settings(model_dir, max_upload_bytes=2000, max_pixels=4000))) as c:
        yield c


def test_upload_over_the_byte_limit(small_upload_client):
    big = png_bytes(400, 400, seed=9)
    assert len(big) > 2000
    assert_error(post(small_upload_client, big), 413, "payload_too_large")
    assert_error(post(small_upload_client, files={"image": ("a.png", big, "image/png")}), 413, "payload_too_large")


def test_streamed_upload_without_content_length_is_cut_off(small_upload_client):
    def chunks():
        for _ in range(100):
            yield b"\x00" * 1000

    r = small_upload_client.post("/v1/stylize", content=chunks(), headers={"content-type": "image/png"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert_error(r, 413, "payload_too_large")


def test_pixel_limit(small_upload_client):
    buf = io.BytesIO()
    Image.new("RGB", (80, 80), "green").save(buf, "PNG")  # 6400 pixels > 4000 in a small file
    data = buf.getvalue()
    assert len(data) < 2000
    assert_error(post(small_upload_client, data), 400, "invalid_image", "over the limit of 4000 pixels")
