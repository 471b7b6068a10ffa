"""The service's endpoints through the real app (TestClient runs the lifespan)."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from impasto.core import imageio, postprocess
from impasto.core.model import StyleModel
from tests.serving.helpers import decode, png_bytes


@pytest.fixture(scope="module")
def trio(model_dir):
    return StyleModel(model_dir / "trio.onnx", device="cpu", threads=1)


@pytest.fixture(scope="module")
def solo(model_dir):
    return StyleModel(model_dir / "solo.onnx", device="cpu", threads=1)


def direct(model: StyleModel, data: bytes, weights=None, max_size: int = 1024) -> np.ndarray:
    """What onnxruntime gives for this image, outside the service: float [3, H, W]."""
    x = imageio.to_array(imageio.resize_longer(imageio.open_image(data), max_size))
    w = None if weights is None else np.asarray(weights, dtype=np.float32)[None]
    return model.run(x[None], w)[0]


def as_pixels(chw: np.ndarray) -> np.ndarray:
    return np.asarray(imageio.from_array(chw), dtype=np.int16)


def stylize(client, data: bytes, **params):
    return client.post("/v1/stylize", params=params, files={"image": ("in.png", data, "image/png")})


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_after_warm_up(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "models": ["solo", "trio"]}


def test_styles_lists_every_style_of_every_model(client):
    body = client.get("/v1/styles").json()
    assert {s["id"] for s in body["styles"]} == {"solo/wave", "trio/wave", "trio/ink", "trio/plain"}
    by_id = {s["id"]: s for s in body["styles"]}
    assert by_id["trio/ink"]["blendable"] and not by_id["solo/wave"]["blendable"]
    assert by_id["trio/plain"]["identity"] and not by_id["trio/wave"]["identity"]
    assert by_id["trio/wave"]["info"] == {"title": "Wave"}
    assert {m["name"]: m["identity_style"] for m in body["models"]} == {"solo": None, "trio": "plain"}


def test_stylize_multipart_returns_the_models_output(client, trio):
    data = png_bytes(70, 45, seed=1)  # odd sizes, not multiples of 4
    r = stylize(client, data, style="ink")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    for header in ("X-Process-Time-Ms", "X-Inference-Time-Ms"):
        assert float(r.headers[header]) >= 0
    assert r.headers["X-Batch-Size"] == "1" and r.headers["X-Model"] == "trio"
    got = decode(r.content)
    assert got.shape == (45, 70, 3)
    expected = as_pixels(direct(trio, data, [0, 1, 0]))
    assert np.abs(got - expected).max() <= 1
    other = as_pixels(direct(trio, data, [1, 0, 0]))
    assert np.abs(got - other).max() > 10  # the style parameter really selects the style


def test_stylize_raw_body(client, trio):
    data = png_bytes(64, 48, seed=2)
    r = client.post("/v1/stylize?style=trio/wave", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200
    assert np.abs(decode(r.content) - as_pixels(direct(trio, data, [1, 0, 0]))).max() <= 1


@pytest.mark.parametrize("params, model", [({"style": "wave", "model": "solo"}, "solo"),
                                           ({"style": "solo/wave"}, "solo"),
                                           ({"style": "wave", "model": "trio"}, "trio"),
                                           ({"style": "plain"}, "trio"),
                                           ({"model": "solo"}, "solo")])
def test_style_disambiguation(client, params, model):
    r = stylize(client, png_bytes(40, 40), **params)
    assert r.status_code == 200, r.text
    assert r.headers["X-Model"] == model


def test_ambiguous_style_is_refused_with_the_choices(client):
    r = stylize(client, png_bytes(40, 40), style="wave")
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_style" and "solo" in r.json()["detail"] and "trio" in r.json()["detail"]


def test_blend_inside_one_model(client, trio):
    data = png_bytes(60, 50, seed=3)
    r = stylize(client, data, style="wave:3,ink:1")
    assert r.status_code == 200 and r.headers["X-Style"] == "wave:0.75,ink:0.25"
    got = decode(r.content)
    assert np.abs(got - as_pixels(direct(trio, data, [0.75, 0.25, 0]))).max() <= 1
    for pure in ([1, 0, 0], [0, 1, 0]):
        assert np.abs(got - as_pixels(direct(trio, data, pure))).max() > 5


def test_strength_uses_the_identity_style_when_the_model_has_one(client, trio):
    data = png_bytes(50, 40, seed=4)
    r = stylize(client, data, style="ink", strength=0.25)
    assert r.status_code == 200 and r.headers["X-Strength-Mode"] == "identity"
    # A quarter of the way from the identity style ("plain") to "ink", inside the network.
    expected = direct(trio, data, [0, 0.25, 0.75])
    assert np.abs(decode(r.content) - as_pixels(expected)).max() <= 1
    zero = stylize(client, data, style="ink", strength=0)
    assert np.abs(decode(zero.content) - as_pixels(direct(trio, data, [0, 0, 1]))).max() <= 1


def test_strength_fades_pixels_without_an_identity_style(client, solo):
    data = png_bytes(50, 40, seed=5)
    r = stylize(client, data, model="solo", strength=0.4)
    assert r.status_code == 200 and r.headers["X-Strength-Mode"] == "pixel"
    original = imageio.to_array(imageio.open_image(data))
    expected = 0.4 * direct(solo, data) + 0.6 * original
    assert np.abs(decode(r.content) - as_pixels(expected)).max() <= 1
    zero = stylize(client, data, model="solo", strength=0)
    assert np.abs(decode(zero.content) - decode(data)).max() <= 1  # strength 0 gives the original back


def test_preserve_color_keeps_chrominance_and_restyles_luminance(client, trio):
    data = png_bytes(64, 64, seed=6)
    r = stylize(client, data, style="ink", preserve_color=True)
    assert r.status_code == 200
    got = postprocess.rgb_to_ycbcr(decode(r.content).transpose(2, 0, 1).astype(np.float32) / 255)
    original = postprocess.rgb_to_ycbcr(decode(data).transpose(2, 0, 1).astype(np.float32) / 255)
    stylized = postprocess.rgb_to_ycbcr(direct(trio, data, [0, 1, 0]))
    inside = (stylized[0] > 0.1) & (stylized[0] < 0.9)  # where clipping to [0, 1] cannot move the colour
    assert np.abs(got[1:, inside] - original[1:, inside]).mean() < 0.02
    assert np.abs(got[0] - stylized[0]).mean() < 0.02
    assert np.abs(got[0] - original[0]).mean() > 0.05


@pytest.mark.parametrize("fmt, content_type, pil", [("png", "image/png", "PNG"), ("jpeg", "image/jpeg", "JPEG"),
                                                    ("webp", "image/webp", "WEBP")])
def test_output_formats(client, fmt, content_type, pil):
    r = stylize(client, png_bytes(48, 32), style="ink", format=fmt)
    assert r.status_code == 200 and r.headers["content-type"] == content_type
    img = Image.open(io.BytesIO(r.content))
    assert img.format == pil and img.size == (48, 32)


@pytest.mark.parametrize("in_fmt", ["JPEG", "WEBP"])
def test_accepts_jpeg_and_webp_uploads(client, in_fmt):
    r = stylize(client, png_bytes(40, 30, fmt=in_fmt), style="ink")
    assert r.status_code == 200 and decode(r.content).shape == (30, 40, 3)


def test_max_size_downscales_the_longer_side(client):
    r = stylize(client, png_bytes(200, 100), style="ink", max_size=50)
    assert r.status_code == 200 and r.headers["X-Image-Size"] == "50x25"
    assert decode(r.content).shape == (25, 50, 3)


@pytest.mark.parametrize("size", [(1, 1), (3, 200), (200, 5), (31, 33)])
def test_tiny_and_thin_images_keep_their_size(client, size):
    r = stylize(client, png_bytes(*size), style="wave:1,ink:1")
    assert r.status_code == 200, r.text
    assert decode(r.content).shape == (size[1], size[0], 3)


def test_metrics_exposes_counts_latency_batches_and_queue(client):
    stylize(client, png_bytes(32, 32), style="ink")
    stylize(client, png_bytes(32, 32), style="nope")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'impasto_http_requests_total{method="POST",route="/v1/stylize",status="200"}' in text
    assert 'impasto_http_requests_total{method="POST",route="/v1/stylize",status="400"}' in text
    assert 'impasto_http_request_duration_seconds_count{route="/v1/stylize"}' in text
    assert 'impasto_batch_size_count{model="trio"}' in text
    assert 'impasto_inference_duration_seconds_count{model="trio"}' in text
    assert 'impasto_queue_depth{model="trio"} 0.0' in text
    assert 'impasto_errors_total{error="invalid_style",route="/v1/stylize"}' in text


def test_openapi_docs_and_schema(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "cdn" not in docs.text and "https://" not in docs.text  # the docs page works offline too
    assets = re.findall(r'(?:src|href)="(/[^"]+)"', docs.text)
    assert len(assets) >= 2
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    op = schema["paths"]["/v1/stylize"]["post"]
    assert {"multipart/form-data", "image/png", "application/octet-stream"} <= set(op["requestBody"]["content"])
    params = {p["name"]: p for p in op["parameters"]}
    assert {"style", "model", "strength", "max_size", "preserve_color", "format"} <= set(params)
    assert params["strength"]["schema"]["maximum"] == 1
    assert {"/v1/styles", "/healthz", "/readyz", "/metrics"} <= set(schema["paths"])


def test_web_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for ref in ("/static/app.js", "/static/style.css"):
        assert ref in page.text
        assert client.get(ref).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
