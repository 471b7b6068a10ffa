"""The service with large images (tiled with thumbnail statistics) and stroke_scale."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.serving.helpers import app_client, decode, make_settings, png_bytes


def post(client, data: bytes, **params):
    return client.post("/v1/stylize", params={"style": "trio/wave", **params}, files={"image": ("p.png", data)})


@pytest.mark.parametrize("value", ["0.5", "9", "nan", "abc"])
def test_stroke_scale_out_of_range_is_a_422_json_error(client, value):
    r = post(client, png_bytes(64, 48), stroke_scale=value)
    assert r.status_code == 422, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == "invalid_parameters" and "stroke_scale" in body["detail"]


def test_stroke_scale_keeps_the_size_and_changes_the_image(client):
    data = png_bytes(96, 72, seed=3)
    one, two = post(client, data), post(client, data, stroke_scale="2")
    assert one.status_code == two.status_code == 200, two.text
    assert decode(two.content).shape == decode(one.content).shape == (72, 96, 3)
    assert np.abs(decode(two.content).astype(int) - decode(one.content).astype(int)).mean() > 1


@pytest.mark.slow
def test_a_4k_upload_is_tiled_and_answered_at_full_size(model_dir):
    """Slow: a 4K image through the (tiny) network on 2 shared cores."""
    from skimage import data as photos

    from impasto.serving.app import create_app

    buf = io.BytesIO()
    Image.fromarray(photos.astronaut()).resize((3840, 2160), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
    with app_client(create_app(make_settings(model_dir, request_timeout_s=900))) as client:
        r = post(client, buf.getvalue(), max_size="3840")
    assert r.status_code == 200, r.text
    assert r.headers["X-Image-Size"] == "3840x2160"
    out = decode(r.content)
    assert out.shape == (2160, 3840, 3) and out.std() > 5
