"""Property-based API tests from the app's own OpenAPI schema: no input may cause a 5xx."""
from __future__ import annotations

import io

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import GenerationMode

from impasto.serving.app import create_app
from tests.serving.helpers import make_settings


@st.composite
def image_bytes(draw, fmt: str):
    """Mostly real images of random size and colour, sometimes arbitrary bytes."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.binary(max_size=256))
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    buf = io.BytesIO()
    Image.new("RGB", (w, h), tuple(draw(st.lists(st.integers(0, 255), min_size=3, max_size=3)))).save(buf, fmt)
    return buf.getvalue()


schemathesis.openapi.media_type("image/png", image_bytes("PNG"))
schemathesis.openapi.media_type("image/jpeg", image_bytes("JPEG"))
schemathesis.openapi.media_type("image/webp", image_bytes("WEBP"))
schemathesis.openapi.media_type("application/octet-stream", image_bytes("PNG"))


@pytest.fixture(scope="module")
def api_schema(model_dir):
    # schemathesis' ASGI client sends "Host: testserver", which the service does not serve by default.
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(make_settings(model_dir, allowed_hosts="testserver")))


# Hypothesis directly on the schema's strategies (schemathesis' pytest loaders need a pytest < 9).
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_input_causes_a_server_error(api_schema, mode):
    statuses = []

    @given(case=api_schema.as_strategy(generation_mode=mode))
    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)
    def check(case):
        response = case.call_and_validate(checks=[schemathesis.checks.not_a_server_error])
        statuses.append((case.operation.path, response.status_code))
        if response.status_code >= 400:  # every refusal has the uniform JSON error body
            body = response.json()
            assert set(body) == {"error", "detail"}, body

    check()
    stylize = [status for path, status in statuses if path == "/v1/stylize"]
    assert stylize, "no /v1/stylize case was generated"
    if mode == GenerationMode.POSITIVE:
        assert 200 in stylize  # the generated images really reach the model
